"""Resolve: which version, and what content, a client with given labels (and client id) gets now.

The hot path of the config center: one query for the config (its rules are cached per policy
revision), the rule evaluation of `rules.resolve`, and the content from the in-process cache of
decrypted versions (versions are immutable, so that cache is never stale). On top, what a config
resolves from (id, format, stable version, rules) is remembered per process for
`XCF_CONFLUX_RESOLVE_CACHE_SECONDS` (default 1 s): a change made through this process drops it at
commit; a change made through another replica is seen within that time (clients that must know at
once use watch). Reads only; never writes, never audits (clients poll this).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from xcloudflow.conflux import content as sealed
from xcloudflow.conflux import rules, service
from xcloudflow.conflux.schemas import ResolveOut
from xcloudflow.conflux.service import ConfigAddress
from xcloudflow.conflux.watch import Scope, on_local_change
from xcloudflow.errors import NotFound
from xcloudflow.keys.keyring import Keyring


@dataclass(frozen=True)
class _Source:
    config_id: uuid.UUID
    format: str
    stable: str | None
    rules: tuple[rules.Rule, ...]
    scope: Scope
    # The JSON answer per (version id, rule): serializing a large content string is the costly part.
    bodies: dict[tuple[str, str | None], bytes] = field(default_factory=dict, compare=False)


_SOURCES: dict[tuple[int, ConfigAddress], tuple[float, _Source]] = {}
_LOCK = threading.Lock()
_MAX = 50_000


def _forget(scopes: set[Scope]) -> None:
    with _LOCK:
        for key in [k for k, (_t, src) in _SOURCES.items() if src.scope in scopes]:
            del _SOURCES[key]


on_local_change(_forget)


def _answer(src: _Source, version_id: str, rule: str | None, version: sealed.CachedVersion) -> ResolveOut:
    return ResolveOut(
        config_id=src.config_id,
        version=version.number,
        version_id=uuid.UUID(version_id),
        checksum=version.checksum,
        format=src.format,
        content=version.content,
        rule=rule,
    )


def cached(
    *, org_id: int, address: ConfigAddress, labels: Mapping[str, str], client_id: str | None
) -> tuple[str, bytes] | None:
    """The answer from memory alone (no database): the version id and the JSON body of a ResolveOut; or
    None when something is not cached or too old."""
    with _LOCK:
        hit = _SOURCES.get((org_id, address))
    if hit is None or hit[0] <= time.monotonic():
        return None
    src = hit[1]
    version_id, rule = rules.resolve(src.rules, src.stable, labels, client_id or None, str(src.config_id))
    if version_id is None:
        return None  # answered (404) by the database path, which says why
    body = src.bodies.get((version_id, rule))
    if body is None:
        version = sealed.CACHE.get(uuid.UUID(version_id))
        if version is None:
            return None
        body = _answer(src, version_id, rule, version).model_dump_json().encode()
        if len(src.bodies) < 64:
            src.bodies[(version_id, rule)] = body
    return version_id, body


def resolve(
    *,
    session: Session,
    keyring: Keyring,
    org_id: int,
    address: ConfigAddress,
    labels: Mapping[str, str],
    client_id: str | None,
    remember_seconds: float = 0.0,
) -> ResolveOut:
    config, found = service.version_rows_for_resolve(session=session, org_id=org_id, address=address)
    if remember_seconds > 0:
        src = _Source(
            config.id,
            config.format,
            str(config.stable_version_id) if config.stable_version_id is not None else None,
            tuple(found),
            (config.org_id, config.tenant, config.application, config.environment),
        )
        with _LOCK:
            if len(_SOURCES) >= _MAX:
                _SOURCES.clear()
            _SOURCES[(org_id, address)] = (time.monotonic() + remember_seconds, src)
    stable = str(config.stable_version_id) if config.stable_version_id is not None else None
    version_id, rule = rules.resolve(found, stable, labels, client_id or None, str(config.id))
    if version_id is None:
        raise NotFound(
            f"nothing released for {address}: no stable version and no rule matches",
            code="nothing_released",
        )
    wanted = uuid.UUID(version_id)
    version = service.version_content(session=session, keyring=keyring, config=config, version_id=wanted)
    return ResolveOut(
        config_id=config.id,
        version=version.number,
        version_id=wanted,
        checksum=version.checksum,
        format=config.format,
        content=version.content,
        rule=rule,
    )
