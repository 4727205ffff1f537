"""Config center use cases that change something: configs, atomic publish, releases, release policy,
retention. The reads (versions, history, diff, content, notifications) are in `queries.py` and are
re-exported here, so other domains depend on this module only.

`publish` is one transaction: the config row is locked, the idempotency key and `expected_version`
checked, the content parsed and validated against the config's schema, the version sealed and
added, the release and the policy changed when asked, a notification, an audit row and the replay
record added. Callers own the transaction; nothing here commits. Content is never logged or audited.
GitOps and the Terraform provider reach the config center only through these functions or the API.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from xcloudflow.audit import service as audit
from xcloudflow.audit.schemas import AuditContext
from xcloudflow.conflux import content as sealed
from xcloudflow.conflux import formats, retention, rules
from xcloudflow.conflux.models import (
    ConfluxConfig,
    ConfluxEnvironment,
    ConfluxNotification,
    ConfluxPublishRequest,
    ConfluxRelease,
    ConfluxRule,
    ConfluxVersion,
)
from xcloudflow.conflux.queries import (
    ConfigAddress,
    _address,
    _config_out,
    _env_id,
    _find,
    _get,
    _policy,
    _release_out,
    _rule_names,
    _rules,
    _stable_ref,
    _version_by,
    _version_out,
    address_of,
    check_part,
    diff,
    get_config,
    get_config_by_id,
    get_policy,
    history,
    last_notification_id,
    latest_content,
    list_configs,
    list_releases,
    list_versions,
    notifications_since,
    show_version,
    version_content,
    version_rows_for_resolve,
)
from xcloudflow.conflux.schemas import (
    ConfigOut,
    ConfigPut,
    PolicyIn,
    PolicyOut,
    PublishIn,
    PublishOut,
    ReleaseIn,
    ReleaseOut,
    RetentionResult,
    RuleIn,
)
from xcloudflow.conflux.watch import queue_wakeup
from xcloudflow.db.base import utcnow
from xcloudflow.db.dialect import insert_ignore
from xcloudflow.errors import Conflict, Invalid, NotFound, Unprocessable
from xcloudflow.iam import service as iam
from xcloudflow.iam.schemas import Principal
from xcloudflow.keys.keyring import Keyring

# The reads live in queries.py; these names are part of the service's interface for other domains.
__all__ = [
    "ConfigAddress",
    "address_of",
    "apply_retention",
    "check_part",
    "delete_config",
    "diff",
    "get_config",
    "get_config_by_id",
    "get_policy",
    "history",
    "last_notification_id",
    "latest_content",
    "list_configs",
    "list_releases",
    "list_versions",
    "notifications_since",
    "publish",
    "put_config",
    "put_policy",
    "release",
    "show_version",
    "version_content",
    "version_rows_for_resolve",
]

NOTIFICATION_TTL = timedelta(days=7)


# ---------------------------------------------------------------- notifications


def _notify(session: Session, config: ConfluxConfig, kind: str, version: int | None) -> None:
    # Locking the environment row makes notification ids of one environment commit in increasing
    # order, so a watcher that saw id N never misses an id below N committed later.
    session.scalars(
        select(ConfluxEnvironment.id).where(ConfluxEnvironment.id == config.environment_id).with_for_update()
    ).one()
    session.add(
        ConfluxNotification(
            environment_id=config.environment_id,
            config_id=config.id,
            name=config.name,
            kind=kind,
            version=version,
        )
    )
    session.flush()
    queue_wakeup(session, (config.org_id, config.tenant, config.application, config.environment))


# ---------------------------------------------------------------- configs


def _ensure_environment(session: Session, org_id: int, address: ConfigAddress) -> int:
    values = {
        "org_id": org_id,
        "tenant": address.tenant,
        "application": address.application,
        "environment": address.environment,
        "created_at": utcnow(),
    }
    insert_ignore(
        session,
        ConfluxEnvironment.__table__,  # type: ignore[arg-type]
        values,
        conflict=["org_id", "tenant", "application", "environment"],
    )
    env_id = _env_id(session, (org_id, *address.scope))
    assert env_id is not None
    return env_id


def put_config(
    *, session: Session, principal: Principal, ctx: AuditContext, address: ConfigAddress, body: ConfigPut
) -> tuple[ConfigOut, bool]:
    """Create or replace a config's settings; (config, created). Unchanged settings write nothing."""
    iam.require(principal, "writer", action="changing configs")
    fmt = formats.check_format(body.format)
    if body.schema_ is not None:
        formats.check_schema(body.schema_)
    policy = retention.check_policy(body.retention.model_dump()) if body.retention is not None else None
    config = _find(session, principal.org_id, address, lock=True)
    if config is None:
        env_id = _ensure_environment(session, principal.org_id, address)
        config = ConfluxConfig(
            org_id=principal.org_id,
            environment_id=env_id,
            tenant=address.tenant,
            application=address.application,
            environment=address.environment,
            name=address.name,
            format=fmt,
            schema_text=body.schema_,
            retention=policy,
            description=body.description,
            version_seq=0,
            policy_revision=0,
            created_by=ctx.actor,
        )
        try:
            with session.begin_nested():
                session.add(config)
                session.flush()
        except IntegrityError as exc:
            raise Conflict(f"config {address} was created at the same time; retry") from exc
        audit.record(
            session=session,
            ctx=ctx,
            action="conflux.config.create",
            resource=f"conflux/{address}",
            details={"format": fmt, "schema": body.schema_ is not None, "retention": policy},
        )
        _notify(session, config, "config", None)
        return _config_out(session, config), True
    if fmt != config.format and config.version_seq > 0:
        raise Conflict(
            f"config {address} has versions in {config.format}; its format cannot change to {fmt} "
            "(create a new config instead)",
            details={"format": config.format},
        )
    changes = {
        key: new
        for key, old, new in (
            ("format", config.format, fmt),
            ("schema", config.schema_text, body.schema_),
            ("retention", config.retention or None, policy),
            ("description", config.description, body.description),
        )
        if old != new
    }
    if not changes:
        return _config_out(session, config), False
    config.format = fmt
    config.schema_text = body.schema_
    config.retention = policy
    config.description = body.description
    config.updated_at = utcnow()
    audit.record(
        session=session,
        ctx=ctx,
        action="conflux.config.update",
        resource=f"conflux/{address}",
        details={"changed": sorted(changes)},
    )
    _notify(session, config, "config", None)
    return _config_out(session, config), False


def delete_config(
    *, session: Session, principal: Principal, ctx: AuditContext, address: ConfigAddress
) -> None:
    """Delete a config with all its versions, releases and policy (clients then get 404)."""
    iam.require(principal, "writer", action="deleting configs")
    config = _get(session, principal.org_id, address, lock=True)
    _notify(session, config, "delete", None)
    session.execute(delete(ConfluxRule).where(ConfluxRule.config_id == config.id))
    session.execute(delete(ConfluxConfig).where(ConfluxConfig.id == config.id))
    audit.record(
        session=session,
        ctx=ctx,
        action="conflux.config.delete",
        resource=f"conflux/{address}",
        details={"versions": config.version_seq},
    )
    session.expunge(config)


# ---------------------------------------------------------------- policy


def _check_revision(config: ConfluxConfig, expected: int | None) -> None:
    if expected is not None and expected != config.policy_revision:
        raise Conflict(
            f"the policy of {_address(config)} is at revision {config.policy_revision}, not {expected}: "
            "someone changed it meanwhile; read it again",
            details={"expected_revision": expected, "revision": config.policy_revision},
        )


def _build_rules(
    session: Session, config: ConfluxConfig, items: Sequence[RuleIn], new_version: ConfluxVersion | None
) -> list[tuple[rules.Rule, int]]:
    """(rule, version number) per item, each naming an existing version of this config."""
    built: list[tuple[rules.Rule, int]] = []
    for item in items:
        name = item.name or f"rule-{item.priority}"
        if item.version is not None and item.version_id is not None:
            raise Invalid(f"rule {name!r}: give version or version_id, not both", details={"rule": name})
        if item.version is None and item.version_id is None:
            if new_version is None:
                raise Invalid(f"rule {name!r}: give version or version_id", details={"rule": name})
            row: ConfluxVersion | None = new_version
        elif new_version is not None and (
            item.version == new_version.number or item.version_id == new_version.id
        ):
            row = new_version
        else:
            row = _version_by(session, config, number=item.version, version_id=item.version_id)
        if row is None:
            wanted = (
                f"version {item.version}" if item.version is not None else f"version id {item.version_id}"
            )
            raise Unprocessable(
                f"rule {name!r} points at {wanted} of {_address(config)}, which does not exist",
                code="unknown_version",
                details={
                    "rule": name,
                    "version": item.version,
                    "version_id": str(item.version_id) if item.version_id else None,
                },
            )
        rule = rules.Rule(
            name=name,
            priority=item.priority,
            version_id=str(row.id),
            labels=dict(item.labels),
            percentage=item.percentage,
        )
        built.append((rule, row.number))
    rules.check_rules([r for r, _ in built])
    return built


def _replace_rules(session: Session, config: ConfluxConfig, built: list[tuple[rules.Rule, int]]) -> bool:
    """Store the rules; False (nothing written) when they equal the current ones."""
    current = {
        (r.name, r.priority, str(r.version_id), tuple(sorted(r.labels.items())), r.percentage)
        for r in _rules(session, config.id)
    }
    wanted = {
        (r.name, r.priority, r.version_id, tuple(sorted(r.labels.items())), r.percentage) for r, _ in built
    }
    if current == wanted:
        return False
    session.execute(delete(ConfluxRule).where(ConfluxRule.config_id == config.id))
    for rule, _ in built:
        session.add(
            ConfluxRule(
                config_id=config.id,
                name=rule.name,
                priority=rule.priority,
                version_id=uuid.UUID(rule.version_id),
                labels=dict(rule.labels),
                percentage=rule.percentage,
            )
        )
    config.policy_revision += 1
    config.updated_at = utcnow()
    session.flush()
    return True


def put_policy(
    *, session: Session, principal: Principal, ctx: AuditContext, address: ConfigAddress, body: PolicyIn
) -> PolicyOut:
    """Replace all rules of a config's release policy."""
    iam.require(principal, "writer", action="changing release policies")
    config = _get(session, principal.org_id, address, lock=True)
    _check_revision(config, body.expected_revision)
    built = _build_rules(session, config, body.rules, None)
    if _replace_rules(session, config, built):
        audit.record(
            session=session,
            ctx=ctx,
            action="conflux.policy.update",
            resource=f"conflux/{address}",
            details={
                "revision": config.policy_revision,
                "rules": [{"name": r.name, "priority": r.priority, "version": n} for r, n in built],
            },
        )
        _notify(session, config, "policy", None)
    return _policy(session, config)


# ---------------------------------------------------------------- publish and releases


def _request_hash(body: PublishIn) -> str:
    # What makes two publishes "the same request": not expected_version (a retry after success would
    # otherwise fail its own check) and not the idempotency key itself.
    canonical = {
        "content": body.content,
        "description": body.description,
        "is_stable": body.is_stable,
        "policy": body.policy.model_dump(mode="json") if body.policy is not None else None,
    }
    return hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()


def _make_stable(
    session: Session, config: ConfluxConfig, row: ConfluxVersion, actor: str | None, note: str | None
) -> ConfluxRelease:
    config.stable_version_id = row.id
    config.updated_at = utcnow()
    release = ConfluxRelease(
        config_id=config.id, version_id=row.id, version=row.number, released_by=actor, note=note
    )
    session.add(release)
    session.flush()
    return release


def publish(
    *,
    session: Session,
    keyring: Keyring,
    principal: Principal,
    ctx: AuditContext,
    address: ConfigAddress,
    body: PublishIn,
) -> PublishOut:
    """Add a version (validated, sealed), optionally make it stable and/or replace the policy."""
    iam.require(principal, "writer", action="publishing configs")
    config = _get(session, principal.org_id, address, lock=True)
    digest = _request_hash(body)
    if body.idempotency_key is not None:
        earlier = session.get(ConfluxPublishRequest, (config.id, body.idempotency_key))
        if earlier is not None:
            if earlier.request_hash != digest:
                raise Conflict(
                    f"idempotency key {body.idempotency_key!r} was used for a different publish of {address} "
                    "(other content, description, stability or policy)",
                    code="idempotency_conflict",
                    details={"idempotency_key": body.idempotency_key},
                )
            return PublishOut.model_validate({**earlier.result, "replayed": True})
    latest = config.version_seq
    if body.expected_version is not None and body.expected_version != latest:
        raise Conflict(
            f"{address} is at version {latest}, not {body.expected_version}: someone published meanwhile",
            code="version_conflict",
            details={"expected_version": body.expected_version, "latest_version": latest},
        )
    schema = formats.check_schema(config.schema_text) if config.schema_text else None
    formats.validate(body.content, config.format, schema)
    number = latest + 1
    data_key_id, blob = sealed.seal(
        session=session,
        keyring=keyring,
        org_id=config.org_id,
        config_id=config.id,
        number=number,
        content=body.content,
    )
    row = ConfluxVersion(
        config_id=config.id,
        number=number,
        checksum=sealed.checksum(body.content),
        size=len(body.content.encode()),
        description=body.description,
        author=ctx.actor,
        source=body.source or "api",
        data_key_id=data_key_id,
        content=blob,
    )
    session.add(row)
    config.version_seq = number
    config.updated_at = utcnow()
    session.flush()
    kind = "publish"
    if body.is_stable:
        _make_stable(session, config, row, ctx.actor, body.description or "published as stable")
        kind = "release"
    policy_changed = False
    if body.policy is not None:
        _check_revision(config, None)
        policy_changed = _replace_rules(
            session, config, _build_rules(session, config, body.policy.rules, row)
        )
        if policy_changed and kind == "publish":
            kind = "policy"
    out = PublishOut(
        config_id=config.id,
        version=_version_out(row, config.stable_version_id, _rule_names(session, config.id).get(row.id, [])),
        stable=_stable_ref(session, config),
        policy=_policy(session, config),
    )
    if body.idempotency_key is not None:
        session.add(
            ConfluxPublishRequest(
                config_id=config.id,
                key=body.idempotency_key,
                request_hash=digest,
                result=out.model_dump(mode="json", exclude={"replayed"}),
            )
        )
    audit.record(
        session=session,
        ctx=ctx,
        action="conflux.publish",
        resource=f"conflux/{address}",
        details={
            "version": number,
            "checksum": row.checksum,
            "stable": body.is_stable,
            "policy_changed": policy_changed,
            "source": row.source,
            "idempotency_key": body.idempotency_key,
        },
    )
    _notify(session, config, kind, number)
    sealed.CACHE.put(row.id, sealed.CachedVersion(number=number, checksum=row.checksum, content=body.content))
    return out


def release(
    *, session: Session, principal: Principal, ctx: AuditContext, address: ConfigAddress, body: ReleaseIn
) -> tuple[ReleaseOut, bool]:
    """Make a version stable (a rollback when it is an earlier one); (release, created). A version that
    is stable already gives its current release and writes nothing."""
    iam.require(principal, "writer", action="releasing configs")
    if (body.version is None) == (body.version_id is None):
        raise Invalid("give version or version_id (exactly one)", details={"field": "version"})
    config = _get(session, principal.org_id, address, lock=True)
    row = _version_by(session, config, number=body.version, version_id=body.version_id)
    if row is None:
        wanted = body.version if body.version is not None else body.version_id
        raise NotFound(f"config {address} has no version {wanted}")
    if config.stable_version_id == row.id:
        current = session.scalars(
            select(ConfluxRelease)
            .where(ConfluxRelease.config_id == config.id)
            .order_by(ConfluxRelease.id.desc())
        ).first()
        if current is not None:
            return _release_out(current), False
    previous = _stable_ref(session, config)
    rel = _make_stable(session, config, row, ctx.actor, body.note)
    audit.record(
        session=session,
        ctx=ctx,
        action="conflux.release",
        resource=f"conflux/{address}",
        details={"version": row.number, "previous": previous.number if previous else None, "note": body.note},
    )
    _notify(session, config, "release", row.number)
    return _release_out(rel), True


# ---------------------------------------------------------------- retention


def apply_retention(*, session: Session, now: datetime | None = None) -> list[RetentionResult]:
    """Delete the versions each config's retention policy lets go (never the stable one, one a rule
    names, or the newest), and notifications older than a week. Audited per config."""
    now = now or utcnow()
    results: list[RetentionResult] = []
    candidates = session.execute(
        select(ConfluxConfig.id, ConfluxConfig.retention).where(ConfluxConfig.version_seq > 1)
    ).all()
    for config_id, policy in candidates:
        if not policy or not policy.get("rules"):
            continue
        config = session.scalars(
            select(ConfluxConfig)
            .where(ConfluxConfig.id == config_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        ).first()
        if config is None:
            continue
        versions = [
            retention.VersionInfo(id=str(v_id), number=number, created_at=created)
            for v_id, number, created in session.execute(
                select(ConfluxVersion.id, ConfluxVersion.number, ConfluxVersion.created_at).where(
                    ConfluxVersion.config_id == config.id
                )
            )
        ]
        protected = {str(v) for v in _rule_names(session, config.id)}
        if config.stable_version_id is not None:
            protected.add(str(config.stable_version_id))
        doomed = retention.to_delete(versions, config.retention, protected=protected, now=now)
        if not doomed:
            continue
        ids = [uuid.UUID(v) for v in doomed]
        numbers = sorted(v.number for v in versions if v.id in set(doomed))
        session.execute(delete(ConfluxVersion).where(ConfluxVersion.id.in_(ids)))
        for version_id in ids:
            sealed.CACHE.discard(version_id)
        address = _address(config)
        audit.record(
            session=session,
            ctx=AuditContext(actor="system", org_id=config.org_id),
            action="conflux.retention",
            resource=f"conflux/{address}",
            details={"deleted": numbers, "policy": config.retention},
        )
        results.append(RetentionResult(config_id=config.id, address=str(address), deleted=numbers))
    session.execute(
        delete(ConfluxNotification).where(ConfluxNotification.created_at < now - NOTIFICATION_TTL)
    )
    session.flush()
    return results
