"""Turning stored state versions into resource events, the current inventory and dependency edges.

`ingest_version` diffs a stack's current projection (what `resources_current` holds for it) against
a new version, writes `resource_events` and upserts `resources_current`, `dependency_edges` and
`resource_refs`, all in the caller's transaction. Work is proportional to what changed: unchanged
resources are recognised by their salted attribute hash and not touched. Event ids, run ids and
times derive from the version, so replaying every version (`rebuild`) reproduces the same rows.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, insert, or_, select, tuple_, update
from sqlalchemy.orm import Session

from xcloudflow.db.base import utcnow
from xcloudflow.db.dialect import ensure_monthly_partitions, try_advisory_xact_lock, upsert
from xcloudflow.errors import DomainError
from xcloudflow.inventory import diffing, identity, redact
from xcloudflow.inventory.models import (
    DependencyEdge,
    InventoryError,
    InventoryProgress,
    ResourceCurrent,
    ResourceEvent,
    ResourceRef,
)
from xcloudflow.inventory.parsing import InventoryParseError, ParsedResource, parse, state_secrets
from xcloudflow.keys import service as keys
from xcloudflow.keys.keyring import Keyring
from xcloudflow.state import service as state
from xcloudflow.state.service import StoredVersion

log = logging.getLogger("xcloudflow.inventory")
_CONSUMER_LOCK = 0x58434601  # advisory lock namespace of the inventory consumer


@dataclass
class Resolved:
    """A parsed resource with its identity and redacted attributes."""

    res: ParsedResource
    uid: uuid.UUID
    global_id: str | None
    attrs: dict[str, Any]
    attrs_hash: str
    source_hash: str
    region: str | None = None


def run_id_of(head_id: int, version: int) -> uuid.UUID:
    return uuid.uuid5(identity.NAMESPACE, f"run|{head_id}|{version}")


def _event_id(run_id: uuid.UUID, uid: uuid.UUID, action: str) -> uuid.UUID:
    return uuid.uuid5(identity.NAMESPACE, f"event|{run_id}|{uid}|{action}")


@dataclass
class Known:
    """What the projection holds for one of the stack's live resources."""

    uid: uuid.UUID
    addr: str
    attrs_hash: str
    source_hash: str


def _resolve(
    parsed: list[ParsedResource],
    sv: StoredVersion,
    salt: bytes,
    known: dict[str, Known],
    secrets: redact.KnownSecrets,
) -> tuple[dict[uuid.UUID, Resolved], set[uuid.UUID]]:
    """Identity and redacted attributes of every resource; unchanged ones (same keyed hash of the
    stored instance at the same address, and the same secrets in the state) keep what the projection
    has and skip redaction."""
    out: dict[uuid.UUID, Resolved] = {}
    unchanged: set[uuid.UUID] = set()
    secrets_digest = secrets.digest(salt=salt)
    for res in parsed:
        source_hash = redact.keyed_hash(res.source + secrets_digest, salt=salt)
        prior = known.get(res.addr)
        if prior is not None and prior.source_hash == source_hash and prior.uid not in out:
            res.attrs = {}
            out[prior.uid] = Resolved(res, prior.uid, None, {}, prior.attrs_hash, source_hash)
            unchanged.add(prior.uid)
            continue
        uid, gid = identity.stable_uid(res, tool=sv.tool, project=sv.project, stack=sv.stack)
        if uid in out:  # the same global id twice in one state (e.g. a deposed instance): keep both apart
            uid, gid = uuid.uuid5(identity.NAMESPACE, f"dup|{uid}|{res.addr}"), None
        attrs = redact.redact(res.attrs, salt=salt, sensitive_paths=res.sensitive_paths, known=secrets)
        region = identity.region_of(res)
        res.attrs = {}  # from here on only the redacted form exists: no secret can reach a table
        out[uid] = Resolved(res, uid, gid, attrs, redact.attrs_hash(attrs, salt=salt), source_hash, region)
    return out, unchanged


def _edges(
    resolved: dict[uuid.UUID, Resolved], only: set[uuid.UUID] | None = None
) -> set[tuple[uuid.UUID, uuid.UUID, str]]:
    """depends_on / parent / provider edges inside one version (src depends on dst), of every
    resource or of the `only` ones."""
    by_addr: dict[str, list[uuid.UUID]] = defaultdict(list)
    for r in resolved.values():
        by_addr[r.res.base_addr].append(r.uid)
        if r.res.addr != r.res.base_addr:
            by_addr[r.res.addr].append(r.uid)
    edges: set[tuple[uuid.UUID, uuid.UUID, str]] = set()
    for r in resolved.values():
        if only is not None and r.uid not in only:
            continue
        for dep in r.res.depends_on:
            edges.update((r.uid, dst, "depends_on") for dst in by_addr.get(dep, ()) if dst != r.uid)
        if r.res.parent:
            edges.update((r.uid, dst, "parent") for dst in by_addr.get(r.res.parent, ()))
        if r.res.provider_ref:
            provider_urn = r.res.provider_ref.rsplit("::", 1)[0]
            edges.update((r.uid, dst, "provider") for dst in by_addr.get(provider_urn, ()))
    return edges


def _record_error(session: Session, sv: StoredVersion, message: str) -> None:
    session.add(
        InventoryError(org_id=sv.org_id, head_id=sv.head_id, state_version=sv.version, message=message)
    )
    log.warning("inventory: %s/%s/%s version %d: %s", sv.tool, sv.project, sv.stack, sv.version, message)


def _progress(session: Session, sv: StoredVersion) -> InventoryProgress:
    progress = session.get(InventoryProgress, sv.head_id)
    if progress is None:
        progress = InventoryProgress(head_id=sv.head_id, org_id=sv.org_id, last_version=0)
        session.add(progress)
    return progress


def ingest_version(
    *, session: Session, keyring: Keyring, sv: StoredVersion, include_data: bool = False
) -> int:
    """Project one stored version; returns the number of events written (0 if already done)."""
    progress = _progress(session, sv)
    if sv.version <= progress.last_version:
        return 0
    progress.last_version = sv.version
    progress.updated_at = utcnow()
    try:
        doc = state.load_document(session=session, keyring=keyring, head_id=sv.head_id, version=sv.version)
        parsed = parse(sv.tool, doc, include_data=include_data)
        # Every secret of the state, looked for in every resource (Terraform marks where a secret went
        # in, not where it comes out; see redact).
        secrets = state_secrets(doc) if sv.tool == "terraform" else redact.KnownSecrets()
        del doc
    except (InventoryParseError, DomainError) as exc:
        _record_error(session, sv, str(exc))
        session.flush()
        return 0
    salt = keys.derive_org_secret(
        session=session, keyring=keyring, org_id=sv.org_id, purpose="inventory-hash"
    )
    known = [
        Known(*row)
        for row in session.execute(
            select(
                ResourceCurrent.stable_uid,
                ResourceCurrent.addr,
                ResourceCurrent.attrs_hash,
                ResourceCurrent.source_hash,
            ).where(
                ResourceCurrent.org_id == sv.org_id,
                ResourceCurrent.head_id == sv.head_id,
                ResourceCurrent.deleted_at.is_(None),
            )
        ).all()
    ]
    new, unchanged = _resolve(parsed, sv, salt, {k.addr: k for k in known}, secrets)
    count = _apply(session, sv, new, unchanged, known)
    session.flush()
    return count


def _apply(
    session: Session,
    sv: StoredVersion,
    new: dict[uuid.UUID, Resolved],
    unchanged: set[uuid.UUID],
    known: list[Known],
) -> int:
    old_meta = {k.uid: (k.addr, k.attrs_hash) for k in known}
    changed = [
        u
        for u in new
        if u in old_meta
        and u not in unchanged
        and (old_meta[u][1] != new[u].attrs_hash or old_meta[u][0] != new[u].res.addr)
    ]
    gone = [u for u in old_meta if u not in new]
    old_attrs: dict[uuid.UUID, dict[str, Any]] = {}
    gone_fields: dict[uuid.UUID, tuple[str, str, str | None]] = {}
    wanted = changed + gone
    for chunk in _chunks(wanted, 500):
        for uid, attrs, provider, rtype, region in session.execute(
            select(
                ResourceCurrent.stable_uid,
                ResourceCurrent.attrs,
                ResourceCurrent.provider,
                ResourceCurrent.resource_type,
                ResourceCurrent.region,
            ).where(ResourceCurrent.org_id == sv.org_id, ResourceCurrent.stable_uid.in_(chunk))
        ).all():
            old_attrs[uid] = attrs
            gone_fields[uid] = (provider, rtype, region)
    old = {u: diffing.Snapshot(old_meta[u][0], old_attrs[u], old_meta[u][1]) for u in wanted}
    created = [u for u in new if u not in old_meta]
    events = diffing.diff(
        old,
        {u: diffing.Snapshot(new[u].res.addr, new[u].attrs, new[u].attrs_hash) for u in changed + created},
    )
    run_id = run_id_of(sv.head_id, sv.version)
    rows = []
    for ev in events:
        r = new.get(ev.stable_uid)
        if r is not None:
            provider, rtype, region = r.res.provider, r.res.resource_type, r.region
        else:
            provider, rtype, region = gone_fields[ev.stable_uid]
        rows.append(
            {
                "id": _event_id(run_id, ev.stable_uid, ev.action),
                "at": sv.created_at,
                "org_id": sv.org_id,
                "run_id": run_id,
                "stable_uid": ev.stable_uid,
                "provider": provider,
                "resource_type": rtype,
                "addr": ev.addr,
                "action": ev.action,
                "patch_json": ev.patch,
                "before_hash": ev.before_hash,
                "after_hash": ev.after_hash,
                "cloud": identity.cloud_of(provider or ""),
                "region": region,
                "tool": sv.tool,
                "project": sv.project,
                "stack": sv.stack,
                "head_id": sv.head_id,
                "state_version": sv.version,
            }
        )
    for batch in _chunks(rows, 1000):  # bounded batches keep the serialized JSON out of memory at once
        session.execute(insert(ResourceEvent), batch)
    # Resources whose stored instance changed without changing their redacted attributes (e.g. only
    # their dependencies): refresh their source hash so the next version can skip them.
    changed_set = set(changed)
    refreshed = [new[u] for u in new if u in old_meta and u not in unchanged and u not in changed_set]
    _project_current(session, sv, run_id, [new[u] for u in changed + created], gone)
    for r in refreshed:
        session.execute(
            update(ResourceCurrent)
            .where(ResourceCurrent.org_id == sv.org_id, ResourceCurrent.stable_uid == r.uid)
            .values(source_hash=r.source_hash)
        )
    _project_edges(
        session,
        sv,
        new,
        changed + created,
        gone,
        restructured=bool(created or gone),
        reshaped=changed + [r.uid for r in refreshed],
    )
    return len(rows)


def _project_current(
    session: Session, sv: StoredVersion, run_id: uuid.UUID, upserts: list[Resolved], gone: list[uuid.UUID]
) -> None:
    now = utcnow()
    rows = [
        {
            "org_id": sv.org_id,
            "stable_uid": r.uid,
            "head_id": sv.head_id,
            "tool": sv.tool,
            "project": sv.project,
            "stack": sv.stack,
            "kind": r.res.kind,
            "provider": r.res.provider,
            "resource_type": r.res.resource_type,
            "addr": r.res.addr,
            "global_id": r.global_id,
            "native_id": (r.res.native_id or "")[:512] or None,
            "cloud": identity.cloud_of(r.res.provider),
            "region": r.region,
            "attrs": r.attrs,
            "attrs_hash": r.attrs_hash,
            "source_hash": r.source_hash,
            "last_run_id": run_id,
            "state_version": sv.version,
            "created_at": sv.created_at,
            "updated_at": now,
            "deleted_at": None,
        }
        for r in upserts
    ]
    keep = [k for k in rows[0] if k not in ("org_id", "stable_uid", "created_at")] if rows else []
    for chunk in _chunks(rows, 1000):
        upsert(session, ResourceCurrent.__table__, chunk, conflict=["org_id", "stable_uid"], update=keep)  # type: ignore[arg-type]
    for i in range(0, len(gone), 500):
        session.execute(
            update(ResourceCurrent)
            .where(ResourceCurrent.org_id == sv.org_id, ResourceCurrent.stable_uid.in_(gone[i : i + 500]))
            .values(deleted_at=sv.created_at, last_run_id=run_id, state_version=sv.version, updated_at=now)
        )


def _project_edges(
    session: Session,
    sv: StoredVersion,
    new: dict[uuid.UUID, Resolved],
    touched: list[uuid.UUID],
    gone: list[uuid.UUID],
    *,
    restructured: bool,
    reshaped: list[uuid.UUID],
) -> None:
    """Bring the stack's edges in line with `new`.

    When no resource appeared or went (`restructured` false), an address still names the same uid,
    and a resource whose stored instance did not change has the same dependencies: only the
    `reshaped` ones (changed attributes or dependencies) need their edges compared.
    """
    org = sv.org_id
    if restructured:
        wanted = _edges(new)
        srcs = list(new.keys() | set(gone))
    else:
        wanted = _edges(new, only=set(reshaped))
        srcs = reshaped
    have: set[tuple[uuid.UUID, uuid.UUID, str]] = set()
    for i in range(0, len(srcs), 500):
        have.update(
            session.execute(
                select(DependencyEdge.src_uid, DependencyEdge.dst_uid, DependencyEdge.kind).where(
                    DependencyEdge.org_id == org,
                    DependencyEdge.src_uid.in_(srcs[i : i + 500]),
                    DependencyEdge.kind != "ref",
                )
            ).all()
        )
    stale = have - wanted
    for i, chunk in enumerate(_chunks(sorted(stale), 300)):
        del i
        session.execute(
            delete(DependencyEdge).where(
                DependencyEdge.org_id == org,
                tuple_(DependencyEdge.src_uid, DependencyEdge.dst_uid, DependencyEdge.kind).in_(chunk),
            )
        )
    fresh = wanted - have
    if fresh:
        session.execute(
            insert(DependencyEdge),
            [{"org_id": org, "src_uid": s, "dst_uid": d, "kind": k} for s, d, k in fresh],
        )
    # Deleted resources lose every edge and ref, in both directions.
    for chunk in _chunks(gone, 500):
        session.execute(
            delete(DependencyEdge).where(
                DependencyEdge.org_id == org,
                or_(DependencyEdge.src_uid.in_(chunk), DependencyEdge.dst_uid.in_(chunk)),
            )
        )
        session.execute(delete(ResourceRef).where(ResourceRef.org_id == org, ResourceRef.src_uid.in_(chunk)))
    _project_refs(session, org, [new[u] for u in touched])


def _project_refs(session: Session, org: int, touched: list[Resolved]) -> None:
    """`ref` edges: attribute values of touched resources that name another resource, and values of any
    resource that name a touched one."""
    if not touched:
        return
    uids = [r.uid for r in touched]
    for chunk in _chunks(uids, 500):
        session.execute(delete(ResourceRef).where(ResourceRef.org_id == org, ResourceRef.src_uid.in_(chunk)))
        session.execute(
            delete(DependencyEdge).where(
                DependencyEdge.org_id == org, DependencyEdge.kind == "ref", DependencyEdge.src_uid.in_(chunk)
            )
        )
    refs: list[dict[str, Any]] = []
    for r in touched:
        own = {v for v in (r.global_id, r.res.native_id) if v}
        refs.extend(
            {"org_id": org, "src_uid": r.uid, "value": v} for v in identity.ref_candidates(r.attrs, own)
        )
    if refs:
        session.execute(insert(ResourceRef), refs)
    edges: set[tuple[uuid.UUID, uuid.UUID]] = set()
    # Outgoing: values of touched resources that are some live resource's id (two indexed lookups).
    targets: dict[str, set[uuid.UUID]] = defaultdict(set)
    values = sorted({ref["value"] for ref in refs})
    for chunk in _chunks(values, 500):
        for column in (ResourceCurrent.global_id, ResourceCurrent.native_id):
            for uid, value in session.execute(
                select(ResourceCurrent.stable_uid, column).where(
                    ResourceCurrent.org_id == org, column.in_(chunk), ResourceCurrent.deleted_at.is_(None)
                )
            ).all():
                if value is not None:
                    targets[value].add(uid)
    for ref in refs:
        edges.update((ref["src_uid"], t) for t in targets.get(ref["value"], ()) if t != ref["src_uid"])
    # Incoming: other resources whose values name a touched resource.
    by_name: dict[str, set[uuid.UUID]] = defaultdict(set)
    for r in touched:
        for v in (r.global_id, r.res.native_id):
            if v:
                by_name[v].add(r.uid)
    for chunk in _chunks(sorted(by_name), 500):
        for src, value in session.execute(
            select(ResourceRef.src_uid, ResourceRef.value).where(
                ResourceRef.org_id == org, ResourceRef.value.in_(chunk)
            )
        ).all():
            edges.update((src, dst) for dst in by_name[value] if dst != src)
    if edges:
        existing: set[tuple[uuid.UUID, uuid.UUID]] = set()
        for chunk in _chunks(sorted(edges), 300):
            existing.update(
                session.execute(
                    select(DependencyEdge.src_uid, DependencyEdge.dst_uid).where(
                        DependencyEdge.org_id == org,
                        DependencyEdge.kind == "ref",
                        tuple_(DependencyEdge.src_uid, DependencyEdge.dst_uid).in_(chunk),
                    )
                ).all()
            )
        add = edges - existing
        if add:
            session.execute(
                insert(DependencyEdge),
                [{"org_id": org, "src_uid": s, "dst_uid": d, "kind": "ref"} for s, d in add],
            )


def _chunks(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


# ---- the consumer ----


def consume_stack(*, session: Session, keyring: Keyring, head_id: int) -> int | None:
    """Process a stack's pending writes in version order; None when another consumer holds it."""
    if not try_advisory_xact_lock(session, _CONSUMER_LOCK, head_id % 2**31):
        return None
    total = 0
    pending = state.pending_versions(session=session, head_id=head_id)
    for sv in pending:
        total += ingest_version(session=session, keyring=keyring, sv=sv)
    state.mark_processed(
        session=session, outbox_ids=[sv.outbox_id for sv in pending if sv.outbox_id is not None]
    )
    return total


def pending_stacks(*, session: Session, limit: int = 50, defer_locked_seconds: float = 0) -> list[int]:
    return state.pending_heads(session=session, limit=limit, defer_locked_seconds=defer_locked_seconds)


def rebuild(*, session: Session, keyring: Keyring, org_id: int, ref: Any = None) -> int:
    """Empty the projections (of one stack, or the organization) and replay every stored version."""
    versions = state.stored_versions(session=session, org_id=org_id, ref=ref)
    heads = sorted({v.head_id for v in versions})
    if ref is None:
        for model in (
            ResourceEvent,
            ResourceCurrent,
            DependencyEdge,
            ResourceRef,
            InventoryProgress,
            InventoryError,
        ):
            session.execute(delete(model).where(model.org_id == org_id))
    else:
        uids = list(
            session.scalars(
                select(ResourceCurrent.stable_uid).where(
                    ResourceCurrent.org_id == org_id, ResourceCurrent.head_id.in_(heads)
                )
            )
        )
        for chunk in _chunks(uids, 500):
            session.execute(
                delete(DependencyEdge).where(
                    DependencyEdge.org_id == org_id,
                    or_(DependencyEdge.src_uid.in_(chunk), DependencyEdge.dst_uid.in_(chunk)),
                )
            )
            session.execute(
                delete(ResourceRef).where(ResourceRef.org_id == org_id, ResourceRef.src_uid.in_(chunk))
            )
        for model in (ResourceEvent, ResourceCurrent, InventoryProgress, InventoryError):
            session.execute(delete(model).where(model.head_id.in_(heads)))
    session.flush()
    events = 0
    for sv in versions:
        events += ingest_version(session=session, keyring=keyring, sv=sv)
    return events


def ensure_partitions(*, session: Session, months_ahead: int = 2) -> list[str]:
    """Create the event log's monthly partitions ahead of time (PostgreSQL; nothing on SQLite)."""
    return ensure_monthly_partitions(session.connection(), "resource_events", months_ahead=months_ahead)
