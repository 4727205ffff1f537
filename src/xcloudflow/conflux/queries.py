"""Config center reads: addresses, rows, the shapes the API answers with, versions, history, diff,
content, and the notification reads watchers need.

Read-only: nothing here writes, audits or commits (`service.py` holds every change). `service`
re-exports the public names, so other domains keep calling `conflux.service.get_config` and friends.
"""

from __future__ import annotations

import re
import threading
import uuid
from dataclasses import dataclass

from sqlalchemy import func, select, tuple_
from sqlalchemy.orm import Session, undefer

from xcloudflow.conflux import content as sealed
from xcloudflow.conflux import rules, textdiff
from xcloudflow.conflux.models import (
    ConfluxConfig,
    ConfluxEnvironment,
    ConfluxNotification,
    ConfluxRelease,
    ConfluxRule,
    ConfluxVersion,
)
from xcloudflow.conflux.schemas import (
    ConfigOut,
    ConfigPage,
    DiffOut,
    Effective,
    HistoryOut,
    NotificationOut,
    PolicyOut,
    PolicyRuleOut,
    ReleaseOut,
    VersionOut,
    VersionPage,
    VersionRef,
)
from xcloudflow.conflux.watch import Scope
from xcloudflow.db.pagination import check_limit, decode_cursor, page_of
from xcloudflow.errors import Invalid, NotFound
from xcloudflow.keys.keyring import Keyring

PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
PART_NAMES = ("tenant", "application", "environment", "name")


@dataclass(frozen=True)
class ConfigAddress:
    """`tenant/application/environment/name`, e.g. `my-tenant/app-a/production/database.toml`."""

    tenant: str
    application: str
    environment: str
    name: str

    def __post_init__(self) -> None:
        for field_name in PART_NAMES:
            check_part(field_name, getattr(self, field_name))

    @classmethod
    def parse(cls, text: str) -> ConfigAddress:
        parts = text.strip().strip("/").split("/")
        if len(parts) != 4:
            raise Invalid(
                f"a config address is tenant/application/environment/name, not {text!r}",
                details={"field": "address"},
            )
        return cls(*parts)

    @property
    def scope(self) -> tuple[str, str, str]:
        return (self.tenant, self.application, self.environment)

    def __str__(self) -> str:
        return f"{self.tenant}/{self.application}/{self.environment}/{self.name}"


def check_part(field_name: str, value: str) -> str:
    if not isinstance(value, str) or not PART.match(value):
        raise Invalid(
            f"{field_name} {value!r} is invalid: letters, digits and '._-', starting with a letter or "
            "digit, at most 128 characters",
            details={"field": field_name},
        )
    return value


def _find(
    session: Session, org_id: int, address: ConfigAddress, *, lock: bool = False
) -> ConfluxConfig | None:
    stmt = select(ConfluxConfig).where(
        ConfluxConfig.org_id == org_id,
        ConfluxConfig.tenant == address.tenant,
        ConfluxConfig.application == address.application,
        ConfluxConfig.environment == address.environment,
        ConfluxConfig.name == address.name,
    )
    if lock:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    return session.scalars(stmt).first()


def _get(session: Session, org_id: int, address: ConfigAddress, *, lock: bool = False) -> ConfluxConfig:
    config = _find(session, org_id, address, lock=lock)
    if config is None:
        raise NotFound(f"no config {address}")
    return config


def _address(config: ConfluxConfig) -> ConfigAddress:
    return ConfigAddress(config.tenant, config.application, config.environment, config.name)


def _version_by(
    session: Session, config: ConfluxConfig, *, number: int | None = None, version_id: uuid.UUID | None = None
) -> ConfluxVersion | None:
    stmt = select(ConfluxVersion).where(ConfluxVersion.config_id == config.id)
    if number is not None:
        stmt = stmt.where(ConfluxVersion.number == number)
    if version_id is not None:
        stmt = stmt.where(ConfluxVersion.id == version_id)
    return session.scalars(stmt).first()


def _version(session: Session, config: ConfluxConfig, number: int) -> ConfluxVersion:
    row = _version_by(session, config, number=number)
    if row is None:
        raise NotFound(f"config {_address(config)} has no version {number}")
    return row


def _rules(session: Session, config_id: uuid.UUID) -> list[PolicyRuleOut]:
    rows = session.execute(
        select(ConfluxRule, ConfluxVersion.number)
        .join(ConfluxVersion, ConfluxVersion.id == ConfluxRule.version_id)
        .where(ConfluxRule.config_id == config_id)
    ).all()
    out = [
        PolicyRuleOut(
            name=r.name,
            priority=r.priority,
            version_id=r.version_id,
            version=number,
            labels=dict(r.labels or {}),
            percentage=r.percentage,
        )
        for r, number in rows
    ]
    return sorted(out, key=lambda r: (-r.priority, r.name))


def _policy(session: Session, config: ConfluxConfig) -> PolicyOut:
    return PolicyOut(revision=config.policy_revision, rules=_rules(session, config.id))


def _stable_ref(session: Session, config: ConfluxConfig) -> VersionRef | None:
    if config.stable_version_id is None:
        return None
    number = session.scalar(
        select(ConfluxVersion.number).where(ConfluxVersion.id == config.stable_version_id)
    )
    return VersionRef(id=config.stable_version_id, number=number) if number is not None else None


def _config_out(session: Session, config: ConfluxConfig) -> ConfigOut:
    return ConfigOut(
        id=config.id,
        tenant=config.tenant,
        application=config.application,
        environment=config.environment,
        name=config.name,
        address=str(_address(config)),
        format=config.format,
        schema_=config.schema_text,
        retention=config.retention or None,
        description=config.description,
        created_at=config.created_at,
        created_by=config.created_by,
        updated_at=config.updated_at,
        latest_version=config.version_seq or None,
        stable=_stable_ref(session, config),
        policy=_policy(session, config),
    )


def _version_out(row: ConfluxVersion, stable_id: uuid.UUID | None, rule_names: list[str]) -> VersionOut:
    return VersionOut(
        id=row.id,
        number=row.number,
        checksum=row.checksum,
        size=row.size,
        description=row.description,
        author=row.author,
        source=row.source,
        created_at=row.created_at,
        stable=row.id == stable_id,
        rules=sorted(rule_names),
    )


def _rule_names(session: Session, config_id: uuid.UUID) -> dict[uuid.UUID, list[str]]:
    names: dict[uuid.UUID, list[str]] = {}
    for version_id, name in session.execute(
        select(ConfluxRule.version_id, ConfluxRule.name).where(ConfluxRule.config_id == config_id)
    ):
        names.setdefault(version_id, []).append(name)
    return names


def _content_of(session: Session, keyring: Keyring, config: ConfluxConfig, row: ConfluxVersion) -> str:
    cached = sealed.CACHE.get(row.id)
    if cached is not None:
        return cached.content
    blob = session.scalar(select(ConfluxVersion.content).where(ConfluxVersion.id == row.id))
    assert blob is not None
    return sealed.open_content(
        session=session,
        keyring=keyring,
        org_id=config.org_id,
        config_id=config.id,
        version_id=row.id,
        number=row.number,
        digest=row.checksum,
        data_key_id=row.data_key_id,
        blob=blob,
    )


def _env_id(session: Session, scope: Scope) -> int | None:
    org_id, tenant, application, environment = scope
    return session.scalar(
        select(ConfluxEnvironment.id).where(
            ConfluxEnvironment.org_id == org_id,
            ConfluxEnvironment.tenant == tenant,
            ConfluxEnvironment.application == application,
            ConfluxEnvironment.environment == environment,
        )
    )


def last_notification_id(*, session: Session, scope: Scope) -> int:
    """The newest notification id of an environment; 0 when it has none (or does not exist yet)."""
    env_id = _env_id(session, scope)
    if env_id is None:
        return 0
    return int(
        session.scalar(
            select(func.max(ConfluxNotification.id)).where(ConfluxNotification.environment_id == env_id)
        )
        or 0
    )


def notifications_since(
    *, session: Session, scope: Scope, since: int, names: frozenset[str] | None = None, limit: int = 500
) -> list[NotificationOut]:
    env_id = _env_id(session, scope)
    if env_id is None:
        return []
    stmt = select(ConfluxNotification).where(
        ConfluxNotification.environment_id == env_id, ConfluxNotification.id > since
    )
    if names is not None:
        stmt = stmt.where(ConfluxNotification.name.in_(sorted(names)))
    prefix = "/".join(scope[1:])
    return [
        NotificationOut(id=n.id, address=f"{prefix}/{n.name}", name=n.name, kind=n.kind, version=n.version)
        for n in session.scalars(stmt.order_by(ConfluxNotification.id).limit(limit))
    ]


def get_config(*, session: Session, org_id: int, address: ConfigAddress) -> ConfigOut:
    return _config_out(session, _get(session, org_id, address))


def get_config_by_id(*, session: Session, org_id: int, config_id: uuid.UUID) -> ConfigOut:
    config = session.get(ConfluxConfig, config_id)
    if config is None or config.org_id != org_id:
        raise NotFound(f"no config with id {config_id}")
    return _config_out(session, config)


def address_of(*, session: Session, org_id: int, config_id: uuid.UUID) -> ConfigAddress:
    config = session.get(ConfluxConfig, config_id)
    if config is None or config.org_id != org_id:
        raise NotFound(f"no config with id {config_id}")
    return _address(config)


def list_configs(
    *,
    session: Session,
    org_id: int,
    tenant: str | None = None,
    application: str | None = None,
    environment: str | None = None,
    cursor: str | None = None,
    limit: int = 100,
) -> ConfigPage:
    check_limit(limit)
    stmt = select(ConfluxConfig).where(ConfluxConfig.org_id == org_id)
    for column, value in (
        (ConfluxConfig.tenant, tenant),
        (ConfluxConfig.application, application),
        (ConfluxConfig.environment, environment),
    ):
        if value:
            stmt = stmt.where(column == value)
    key = (ConfluxConfig.tenant, ConfluxConfig.application, ConfluxConfig.environment, ConfluxConfig.name)
    after = decode_cursor(cursor)
    if after is not None:
        if not isinstance(after, list) or len(after) != 4:
            raise Invalid("cursor is not one this server handed out", details={"field": "cursor"})
        stmt = stmt.where(tuple_(*key) > tuple_(*after))
    rows, next_cursor = page_of(
        list(session.scalars(stmt.order_by(*key).limit(limit + 1))),
        limit,
        lambda c: [c.tenant, c.application, c.environment, c.name],
    )
    return ConfigPage(items=[_config_out(session, c) for c in rows], next_cursor=next_cursor)


def get_policy(*, session: Session, org_id: int, address: ConfigAddress) -> PolicyOut:
    return _policy(session, _get(session, org_id, address))


def _release_out(row: ConfluxRelease) -> ReleaseOut:
    return ReleaseOut(
        id=row.id,
        version=row.version,
        version_id=row.version_id,
        released_by=row.released_by,
        released_at=row.released_at,
        note=row.note,
    )


def list_releases(
    *, session: Session, org_id: int, address: ConfigAddress, limit: int = 100
) -> list[ReleaseOut]:
    check_limit(limit)
    config = _get(session, org_id, address)
    rows = session.scalars(
        select(ConfluxRelease)
        .where(ConfluxRelease.config_id == config.id)
        .order_by(ConfluxRelease.id.desc())
        .limit(limit)
    )
    return [_release_out(r) for r in rows]


def list_versions(
    *, session: Session, org_id: int, address: ConfigAddress, cursor: str | None = None, limit: int = 100
) -> VersionPage:
    check_limit(limit)
    config = _get(session, org_id, address)
    stmt = select(ConfluxVersion).where(ConfluxVersion.config_id == config.id)
    after = decode_cursor(cursor)
    if after is not None:
        if not isinstance(after, int):
            raise Invalid("cursor is not one this server handed out", details={"field": "cursor"})
        stmt = stmt.where(ConfluxVersion.number < after)
    rows, next_cursor = page_of(
        list(session.scalars(stmt.order_by(ConfluxVersion.number.desc()).limit(limit + 1))),
        limit,
        lambda v: v.number,
    )
    names = _rule_names(session, config.id)
    return VersionPage(
        items=[_version_out(r, config.stable_version_id, names.get(r.id, [])) for r in rows],
        next_cursor=next_cursor,
    )


def show_version(
    *, session: Session, keyring: Keyring, org_id: int, address: ConfigAddress, number: int
) -> VersionOut:
    config = _get(session, org_id, address)
    row = _version(session, config, number)
    out = _version_out(row, config.stable_version_id, _rule_names(session, config.id).get(row.id, []))
    out.content = _content_of(session, keyring, config, row)
    return out


def history(*, session: Session, org_id: int, address: ConfigAddress, limit: int = 50) -> HistoryOut:
    """What is effective now (stable + rules) next to what was published and every stable change."""
    config = _get(session, org_id, address)
    versions = list_versions(session=session, org_id=org_id, address=address, limit=limit).items
    return HistoryOut(
        effective=Effective(stable=_stable_ref(session, config), rules=_rules(session, config.id)),
        versions=versions,
        releases=list_releases(session=session, org_id=org_id, address=address, limit=limit),
    )


def diff(
    *,
    session: Session,
    keyring: Keyring,
    org_id: int,
    address: ConfigAddress,
    from_version: int,
    to_version: int,
) -> DiffOut:
    config = _get(session, org_id, address)
    old = _content_of(session, keyring, config, _version(session, config, from_version))
    new = _content_of(session, keyring, config, _version(session, config, to_version))
    text = textdiff.unified(
        old, new, old_label=f"{address}@{from_version}", new_label=f"{address}@{to_version}"
    )
    return DiffOut(from_=from_version, to=to_version, diff=text)


def latest_content(
    *, session: Session, keyring: Keyring, org_id: int, address: ConfigAddress
) -> tuple[int, str] | None:
    """(number, content) of the newest version; None when the config does not exist or has none."""
    config = _find(session, org_id, address)
    if config is None or config.version_seq == 0:
        return None
    row = _version_by(session, config, number=config.version_seq)
    if row is None:
        return None
    return row.number, _content_of(session, keyring, config, row)


def version_rows_for_resolve(
    *, session: Session, org_id: int, address: ConfigAddress
) -> tuple[ConfluxConfig, list[rules.Rule]]:
    """The config and its rules, for resolve (kept here so resolve never reads the tables itself)."""
    config = _get(session, org_id, address)
    key = (config.id, config.policy_revision)
    with _RULES_LOCK:
        cached = _RULES.get(key)
    if cached is not None:
        return config, list(cached)
    found = [
        rules.Rule(
            name=r.name,
            priority=r.priority,
            version_id=str(r.version_id),
            labels=dict(r.labels or {}),
            percentage=r.percentage,
        )
        for r in session.scalars(select(ConfluxRule).where(ConfluxRule.config_id == config.id))
    ]
    with _RULES_LOCK:
        if len(_RULES) >= _RULES_MAX:
            _RULES.clear()
        _RULES[key] = tuple(found)
    return config, found


# A config's rules change only with its policy revision (every policy write bumps it), so the rules of
# (config id, revision) never go stale: resolve skips their query when the revision is known.
_RULES: dict[tuple[uuid.UUID, int], tuple[rules.Rule, ...]] = {}
_RULES_LOCK = threading.Lock()
_RULES_MAX = 20_000


def version_content(
    *, session: Session, keyring: Keyring, config: ConfluxConfig, version_id: uuid.UUID
) -> sealed.CachedVersion:
    """A version's number, checksum and content, from the cache when possible."""
    cached = sealed.CACHE.get(version_id)
    if cached is not None:
        return cached
    row = session.scalars(
        select(ConfluxVersion)
        .where(ConfluxVersion.id == version_id, ConfluxVersion.config_id == config.id)
        .options(undefer(ConfluxVersion.content))
    ).first()
    if row is None:
        raise NotFound(f"version {version_id} of {_address(config)} no longer exists")
    text = sealed.open_content(
        session=session,
        keyring=keyring,
        org_id=config.org_id,
        config_id=config.id,
        version_id=row.id,
        number=row.number,
        digest=row.checksum,
        data_key_id=row.data_key_id,
        blob=row.content,
    )
    return sealed.CachedVersion(number=row.number, checksum=row.checksum, content=text)
