"""Resolve: which version, and what content, a client with given labels (and client id) gets now.

The hot path of the config center: one query for the config, one for its rules, the rule evaluation
of `rules.resolve`, and the content from the in-process cache of decrypted versions (versions are
immutable, so the cache is never stale). Reads only; never writes, never audits (clients poll this).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from sqlalchemy.orm import Session

from xcloudflow.conflux import rules, service
from xcloudflow.conflux.schemas import ResolveOut
from xcloudflow.conflux.service import ConfigAddress
from xcloudflow.errors import NotFound
from xcloudflow.keys.keyring import Keyring


def resolve(
    *,
    session: Session,
    keyring: Keyring,
    org_id: int,
    address: ConfigAddress,
    labels: Mapping[str, str],
    client_id: str | None,
) -> ResolveOut:
    config, found = service.version_rows_for_resolve(session=session, org_id=org_id, address=address)
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
