"""State versions: write, read, list, diff, rollback, outputs, delete/restore, purge.

A write is one transaction: the head row is locked, the lock holder checked, a new `states` row with
the sealed (compressed, encrypted) bytes is added, the head moves, an outbox row and an audit row are
added, and a NOTIFY is queued for after commit. Callers own the transaction; nothing here commits.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session, undefer

from xcloudflow.audit import service as audit
from xcloudflow.audit.schemas import AuditContext
from xcloudflow.db.base import utcnow
from xcloudflow.db.dialect import notify
from xcloudflow.db.pagination import check_limit, decode_cursor, page_of
from xcloudflow.errors import Conflict, Forbidden, Gone, Invalid, NotFound
from xcloudflow.formats import PULUMI_SECRET_SIG
from xcloudflow.keys import service as keys
from xcloudflow.keys.keyring import Keyring
from xcloudflow.state import documents, locking
from xcloudflow.state.documents import StackRef, Upload
from xcloudflow.state.heads import find_head, get_head, lock_head
from xcloudflow.state.models import StateHead, StateLock, StateOutbox, StateVersion
from xcloudflow.state.schemas import (
    LockInfo,
    OutputsOut,
    OutputValue,
    StackOut,
    StackPage,
    StateDiff,
    StateVersionOut,
    VersionPage,
)

NOTIFY_CHANNEL = "xcf_state_written"


def _aad(org_id: int, head_id: int, version: int) -> bytes:
    return f"xcf:state:{org_id}:{head_id}:{version}".encode()


@dataclass
class StateContent:
    """A version's metadata and its plaintext as a lazy stream (decrypted chunk by chunk)."""

    version: StateVersionOut
    md5_base64: str
    chunks: Iterator[bytes]
    outputs_only: bool = False  # a redacted document (read_outputs_only), not the stored bytes


def _version_row(session: Session, head: StateHead, version: int, *, content: bool = False) -> StateVersion:
    stmt = select(StateVersion).where(StateVersion.head_id == head.id, StateVersion.version == version)
    if content:
        stmt = stmt.options(undefer(StateVersion.content))
    row = session.scalars(stmt).first()
    if row is None:
        raise NotFound(f"stack {head.tool}/{head.project}/{head.stack} has no version {version}")
    return row


def _open(session: Session, keyring: Keyring, row: StateVersion) -> Iterator[bytes]:
    if row.purged_at is not None or row.content is None:
        raise Gone(f"version {row.version} was purged by {row.purged_by} at {row.purged_at}")
    assert row.data_key_id is not None
    return keys.open_sealed(
        session=session,
        keyring=keyring,
        data_key_id=row.data_key_id,
        aad=_aad(row.org_id, row.head_id, row.version),
        blob=row.content,
    )


def _append_version(
    *,
    session: Session,
    keyring: Keyring,
    ctx: AuditContext,
    head: StateHead,
    upload: Upload,
    facts: documents.DocumentFacts,
    source: str,
    action: str,
    extra_details: dict[str, object] | None = None,
) -> StateVersionOut:
    previous = _version_row(session, head, head.head_version) if head.head_version > 0 else None
    version = head.head_version + 1
    data_key_id, blob = keys.seal(
        session=session,
        keyring=keyring,
        org_id=head.org_id,
        aad=_aad(head.org_id, head.id, version),
        chunks=upload.chunks(),
    )
    row = StateVersion(
        head_id=head.id,
        org_id=head.org_id,
        tool=head.tool,
        project=head.project,
        stack=head.stack,
        version=version,
        serial=facts.serial,
        lineage=facts.lineage,
        etag=upload.sha256,
        md5=upload.md5_hex,
        size=upload.size,
        actor=ctx.actor,
        source=source,
        data_key_id=data_key_id,
        content=blob,
    )
    session.add(row)
    head.head_version = version
    head.updated_at = utcnow()
    session.flush()
    session.add(StateOutbox(state_id=row.id, head_id=head.id, org_id=head.org_id, version=version))
    details: dict[str, object] = {
        "version": version,
        "serial": facts.serial,
        "size": upload.size,
        "etag": upload.sha256,
    }
    warnings = []
    if previous is not None and facts.lineage is not None and previous.lineage not in (None, facts.lineage):
        warnings.append(f"lineage changed from {previous.lineage} to {facts.lineage}")
    if (
        previous is not None
        and facts.serial is not None
        and previous.serial is not None
        and facts.serial < previous.serial
    ):
        warnings.append(f"serial went back from {previous.serial} to {facts.serial}")
    if warnings:
        details["warnings"] = warnings
    details.update(extra_details or {})
    audit.record(
        session=session,
        ctx=ctx,
        action=action,
        resource=f"stack/{head.tool}/{head.project}/{head.stack}",
        details=details,
    )
    notify(session, NOTIFY_CHANNEL, f"{head.id}:{version}")
    session.flush()
    return StateVersionOut.model_validate(row)


def write_state(
    *,
    session: Session,
    keyring: Keyring,
    ctx: AuditContext,
    org_id: int,
    ref: StackRef,
    upload: Upload,
    lock_id: str | None,
    source: str = "backend",
) -> StateVersionOut:
    """Store a new version of a stack from a finished upload (validated here)."""
    facts = documents.inspect(ref.tool, upload.stream())
    head = lock_head(session=session, org_id=org_id, ref=ref, create=True)
    locking.check_writable(session=session, org_id=org_id, ref=ref, lock_id=lock_id)
    return _append_version(
        session=session,
        keyring=keyring,
        ctx=ctx,
        head=head,
        upload=upload,
        facts=facts,
        source=source,
        action="state.write",
    )


def read_content(
    *, session: Session, keyring: Keyring, org_id: int, ref: StackRef, version: int | None = None
) -> StateContent | None:
    """The bytes of a version (the head by default); None when the stack has no state yet."""
    head = find_head(session=session, org_id=org_id, ref=ref)
    if head is None:
        if version is not None:
            raise NotFound(f"no stack {ref}")
        return None
    if head.deleted_at is not None:
        get_head(session=session, org_id=org_id, ref=ref)  # raises Gone with the restore hint
    wanted = version if version is not None else head.head_version
    if wanted == 0:
        return None
    row = _version_row(session, head, wanted, content=True)
    chunks = _open(session, keyring, row)
    return StateContent(
        version=StateVersionOut.model_validate(row),
        md5_base64=base64.b64encode(bytes.fromhex(row.md5)).decode(),
        chunks=chunks,
    )


# What Terraform's state reader needs of a v4 document besides the outputs (statefile/version4.go).
_OUTPUTS_ONLY_KEYS = ("version", "terraform_version", "serial", "lineage")


def read_outputs_only(
    *, session: Session, keyring: Keyring, org_id: int, ref: StackRef
) -> StateContent | None:
    """The head version as a state holding only its non-sensitive outputs and no resource (HCP's "read
    outputs" access): what `terraform_remote_state` needs, without the raw state's secrets. Sensitive
    outputs are left out, so reading one fails in the reader's plan instead of showing its value."""
    if ref.tool != "terraform":
        raise Forbidden(
            f"reading the raw state of {ref} needs the writer role; readers get its non-sensitive outputs "
            f"from /api/v1/stacks/{ref.tool}/{ref.project}/{ref.stack}/outputs"
        )
    head = find_head(session=session, org_id=org_id, ref=ref)
    if head is None:
        return None
    if head.deleted_at is not None:
        get_head(session=session, org_id=org_id, ref=ref)  # raises Gone with the restore hint
    if head.head_version == 0:
        return None
    doc = _load(session, keyring, head, head.head_version)
    raw = doc.get("outputs")
    public = {
        name: {"value": out.get("value"), "type": out.get("type")}
        for name, out in (raw.items() if isinstance(raw, dict) else ())
        if isinstance(out, dict) and not out.get("sensitive")
    }
    redacted = {key: doc.get(key) for key in _OUTPUTS_ONLY_KEYS} | {
        "outputs": public,
        "resources": [],
        "check_results": None,
    }
    data = json.dumps(redacted, indent=2).encode() + b"\n"
    row = _version_row(session, head, head.head_version)
    version = StateVersionOut.model_validate(row).model_copy(
        update={"size": len(data), "etag": hashlib.sha256(data).hexdigest()}
    )
    return StateContent(
        version=version,
        md5_base64=base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode(),
        chunks=iter([data]),
        outputs_only=True,
    )


def _load(session: Session, keyring: Keyring, head: StateHead, version: int) -> dict[str, object]:
    row = _version_row(session, head, version, content=True)
    doc = documents.load_json(_open(session, keyring, row))
    if not isinstance(doc, dict):
        raise Invalid(f"version {version} is not a JSON object")
    return doc


def _stack_out(head: StateHead, latest: StateVersion | None, lock: StateLock | None) -> StackOut:
    return StackOut(
        tool=head.tool,
        project=head.project,
        stack=head.stack,
        head_version=head.head_version,
        serial=latest.serial if latest else None,
        lineage=latest.lineage if latest else None,
        size=latest.size if latest else None,
        etag=latest.etag if latest else None,
        created_at=head.created_at,
        updated_at=head.updated_at,
        deleted_at=head.deleted_at,
        lock=locking.to_out(lock) if lock else None,
    )


def show_stack(*, session: Session, org_id: int, ref: StackRef) -> StackOut:
    head = get_head(session=session, org_id=org_id, ref=ref, allow_deleted=True)
    latest = _version_row(session, head, head.head_version) if head.head_version else None
    lock = locking.current_lock(session=session, org_id=org_id, ref=ref)
    return _stack_out(head, latest, lock)


def list_stacks(
    *,
    session: Session,
    org_id: int,
    tool: str | None = None,
    project: str | None = None,
    include_deleted: bool = False,
    cursor: str | None = None,
    limit: int = 100,
) -> StackPage:
    check_limit(limit)
    stmt = (
        select(StateHead, StateVersion, StateLock)
        .outerjoin(
            StateVersion,
            (StateVersion.head_id == StateHead.id) & (StateVersion.version == StateHead.head_version),
        )
        .outerjoin(
            StateLock,
            (StateLock.org_id == StateHead.org_id)
            & (StateLock.tool == StateHead.tool)
            & (StateLock.project == StateHead.project)
            & (StateLock.stack == StateHead.stack),
        )
        .where(StateHead.org_id == org_id)
    )
    if tool:
        stmt = stmt.where(StateHead.tool == documents.check_tool(tool))
    if project:
        stmt = stmt.where(StateHead.project == project)
    if not include_deleted:
        stmt = stmt.where(StateHead.deleted_at.is_(None))
    after = decode_cursor(cursor)
    if after is not None:
        stmt = stmt.where(StateHead.id > int(after))
    rows, next_cursor = page_of(
        session.execute(stmt.order_by(StateHead.id).limit(limit + 1)).all(), limit, lambda r: r[0].id
    )
    return StackPage(items=[_stack_out(h, v, lk) for h, v, lk in rows], next_cursor=next_cursor)


def list_versions(
    *, session: Session, org_id: int, ref: StackRef, cursor: str | None = None, limit: int = 100
) -> VersionPage:
    check_limit(limit)
    head = get_head(session=session, org_id=org_id, ref=ref, allow_deleted=True)
    stmt = select(StateVersion).where(StateVersion.head_id == head.id)
    after = decode_cursor(cursor)
    if after is not None:
        stmt = stmt.where(StateVersion.version < int(after))
    rows, next_cursor = page_of(
        list(session.scalars(stmt.order_by(StateVersion.version.desc()).limit(limit + 1))),
        limit,
        lambda r: r.version,
    )
    return VersionPage(items=[StateVersionOut.model_validate(r) for r in rows], next_cursor=next_cursor)


def show_version(*, session: Session, org_id: int, ref: StackRef, version: int) -> StateVersionOut:
    head = get_head(session=session, org_id=org_id, ref=ref, allow_deleted=True)
    return StateVersionOut.model_validate(_version_row(session, head, version))


def diff_versions(
    *, session: Session, keyring: Keyring, org_id: int, ref: StackRef, from_version: int, to_version: int
) -> StateDiff:
    head = get_head(session=session, org_id=org_id, ref=ref, allow_deleted=True)
    before = documents.resource_map(ref.tool, _load(session, keyring, head, from_version))
    after = documents.resource_map(ref.tool, _load(session, keyring, head, to_version))
    return StateDiff(
        from_version=from_version,
        to_version=to_version,
        added=sorted(after.keys() - before.keys()),
        removed=sorted(before.keys() - after.keys()),
        changed=sorted(k for k in before.keys() & after.keys() if before[k] != after[k]),
    )


def rollback(
    *,
    session: Session,
    keyring: Keyring,
    ctx: AuditContext,
    org_id: int,
    ref: StackRef,
    version: int,
    lock_id: str | None,
    max_bytes: int,
) -> StateVersionOut:
    """Write a new version whose content is an old one's, made acceptable to the next plan.

    Terraform refuses a state whose serial is not newer or whose lineage differs, so the restored
    document gets the head's lineage and head serial + 1. Pulumi documents are restored as they were.
    """
    head = lock_head(session=session, org_id=org_id, ref=ref, create=False)
    locking.check_writable(session=session, org_id=org_id, ref=ref, lock_id=lock_id)
    if version == head.head_version:
        raise Conflict(f"version {version} is already the head of {ref}")
    doc = _load(session, keyring, head, version)
    if ref.tool == "terraform":
        current = _version_row(session, head, head.head_version)
        doc["serial"] = (current.serial or 0) + 1
        doc["lineage"] = current.lineage
    upload = Upload.from_bytes(json.dumps(doc, indent=2).encode() + b"\n", max_bytes=max_bytes)
    try:
        facts = documents.inspect(ref.tool, upload.stream())
        return _append_version(
            session=session,
            keyring=keyring,
            ctx=ctx,
            head=head,
            upload=upload,
            facts=facts,
            source="rollback",
            action="state.rollback",
            extra_details={"restored_version": version},
        )
    finally:
        upload.close()


def outputs(
    *, session: Session, keyring: Keyring, org_id: int, ref: StackRef, reveal_sensitive: bool
) -> OutputsOut:
    head = get_head(session=session, org_id=org_id, ref=ref)
    if head.head_version == 0:
        return OutputsOut(version=0, outputs={})
    doc = _load(session, keyring, head, head.head_version)
    result: dict[str, OutputValue] = {}
    if ref.tool == "terraform":
        raw = doc.get("outputs") or {}
        assert isinstance(raw, dict)
        for name, out in raw.items():
            sensitive = bool(out.get("sensitive"))
            value = out.get("value") if reveal_sensitive or not sensitive else "(sensitive)"
            result[name] = OutputValue(value=value, type=out.get("type"), sensitive=sensitive)
    else:
        deployment = doc.get("deployment") or {}
        assert isinstance(deployment, dict)
        for res in deployment.get("resources") or []:
            if res.get("type") == "pulumi:pulumi:Stack":
                for name, value in (res.get("outputs") or {}).items():
                    secret = isinstance(value, dict) and PULUMI_SECRET_SIG in value
                    shown = value if reveal_sensitive or not secret else "(sensitive)"
                    result[name] = OutputValue(value=shown, sensitive=secret)
    return OutputsOut(version=head.head_version, outputs=result)


def delete_stack(*, session: Session, ctx: AuditContext, org_id: int, ref: StackRef) -> StackOut:
    head = lock_head(session=session, org_id=org_id, ref=ref, create=False)
    locking.check_writable(session=session, org_id=org_id, ref=ref, lock_id=None)
    head.deleted_at = utcnow()
    head.deleted_by = ctx.actor
    audit.record(
        session=session,
        ctx=ctx,
        action="state.delete",
        resource=f"stack/{ref}",
        details={"head_version": head.head_version},
    )
    session.flush()
    return show_stack(session=session, org_id=org_id, ref=ref)


def restore_stack(*, session: Session, ctx: AuditContext, org_id: int, ref: StackRef) -> StackOut:
    head = lock_head(session=session, org_id=org_id, ref=ref, create=False, allow_deleted=True)
    if head.deleted_at is None:
        raise Conflict(f"stack {ref} is not deleted")
    head.deleted_at = None
    head.deleted_by = None
    audit.record(session=session, ctx=ctx, action="state.restore", resource=f"stack/{ref}")
    session.flush()
    return show_stack(session=session, org_id=org_id, ref=ref)


def purge_version(
    *, session: Session, ctx: AuditContext, org_id: int, ref: StackRef, version: int
) -> StateVersionOut:
    """Erase one version's content for good (a leaked secret); its metadata stays as a tombstone."""
    head = lock_head(session=session, org_id=org_id, ref=ref, create=False, allow_deleted=True)
    row = _version_row(session, head, version)
    if version == head.head_version:
        raise Conflict(
            f"version {version} is the head of {ref}: write a new version (or roll back) before purging it"
        )
    if row.purged_at is None:
        row.content = None
        row.purged_at = utcnow()
        row.purged_by = ctx.actor
        audit.record(
            session=session,
            ctx=ctx,
            action="state.purge_version",
            resource=f"stack/{ref}",
            details={"version": version, "etag": row.etag},
        )
    session.flush()
    return StateVersionOut.model_validate(row)


def purge_expired(*, session: Session, ctx: AuditContext, retention_days: int) -> int:
    """Hard-delete stacks soft-deleted longer ago than the retention period; returns how many."""
    cutoff = utcnow() - timedelta(days=retention_days)
    heads = list(session.scalars(select(StateHead).where(StateHead.deleted_at < cutoff).with_for_update()))
    for head in heads:
        ref = f"{head.tool}/{head.project}/{head.stack}"
        session.execute(delete(StateOutbox).where(StateOutbox.head_id == head.id))
        session.execute(delete(StateVersion).where(StateVersion.head_id == head.id))
        session.execute(
            delete(StateLock).where(
                StateLock.org_id == head.org_id,
                StateLock.tool == head.tool,
                StateLock.project == head.project,
                StateLock.stack == head.stack,
            )
        )
        audit.record(
            session=session,
            ctx=AuditContext(actor=ctx.actor, org_id=head.org_id, request_id=ctx.request_id),
            action="state.purge_stack",
            resource=f"stack/{ref}",
            details={"deleted_at": head.deleted_at.isoformat() if head.deleted_at else None},
        )
        session.delete(head)
    session.flush()
    return len(heads)


# ---- the feed consumers (inventory) read: outbox rows and stored documents ----


@dataclass(frozen=True)
class StoredVersion:
    """A stored state version as consumers see it (no content)."""

    outbox_id: int | None
    head_id: int
    org_id: int
    tool: str
    project: str
    stack: str
    version: int
    created_at: datetime


def pending_heads(*, session: Session, limit: int = 50, defer_locked_seconds: float = 0) -> list[int]:
    """Stacks with unprocessed writes, oldest write first.

    With `defer_locked_seconds`, a stack locked for less than that long is left for later: an
    operation (a Terraform apply or plan) is running on it, and its writes are better read once it
    is done than while the consumer competes with it for the machine.
    """
    stmt = select(StateOutbox.head_id, func.min(StateOutbox.id).label("first")).where(
        StateOutbox.processed_at.is_(None)
    )
    if defer_locked_seconds > 0:
        busy = (
            select(StateHead.id)
            .join(
                StateLock,
                (StateLock.org_id == StateHead.org_id)
                & (StateLock.tool == StateHead.tool)
                & (StateLock.project == StateHead.project)
                & (StateLock.stack == StateHead.stack),
            )
            .where(StateLock.created_at > utcnow() - timedelta(seconds=defer_locked_seconds))
        )
        stmt = stmt.where(StateOutbox.head_id.not_in(busy))
    rows = session.execute(stmt.group_by(StateOutbox.head_id).order_by("first").limit(limit)).all()
    return [r[0] for r in rows]


def pending_versions(*, session: Session, head_id: int) -> list[StoredVersion]:
    """A stack's unprocessed writes in version order (the caller holds the stack's consumer lock)."""
    rows = session.execute(
        select(StateOutbox.id, StateVersion)
        .join(StateVersion, StateVersion.id == StateOutbox.state_id)
        .where(StateOutbox.head_id == head_id, StateOutbox.processed_at.is_(None))
        .order_by(StateOutbox.version)
    ).all()
    return [_stored(v, outbox_id) for outbox_id, v in rows]


def _stored(v: StateVersion, outbox_id: int | None) -> StoredVersion:
    return StoredVersion(outbox_id, v.head_id, v.org_id, v.tool, v.project, v.stack, v.version, v.created_at)


def mark_processed(*, session: Session, outbox_ids: list[int]) -> None:
    if outbox_ids:
        session.execute(
            update(StateOutbox).where(StateOutbox.id.in_(outbox_ids)).values(processed_at=utcnow())
        )


def stored_versions(
    *, session: Session, org_id: int | None = None, ref: StackRef | None = None
) -> list[StoredVersion]:
    """Every stored version (for replay), per stack in version order."""
    stmt = select(StateVersion).join(StateHead, StateHead.id == StateVersion.head_id)
    if org_id is not None:
        stmt = stmt.where(StateVersion.org_id == org_id)
    if ref is not None:
        stmt = stmt.where(
            StateVersion.tool == ref.tool,
            StateVersion.project == ref.project,
            StateVersion.stack == ref.stack,
        )
    return [
        _stored(v, None) for v in session.scalars(stmt.order_by(StateVersion.head_id, StateVersion.version))
    ]


def load_document(*, session: Session, keyring: Keyring, head_id: int, version: int) -> dict[str, Any]:
    """A stored version parsed as a JSON object, streamed (raises Gone when purged, Invalid when it
    is not a JSON object)."""
    row = session.scalars(
        select(StateVersion)
        .where(StateVersion.head_id == head_id, StateVersion.version == version)
        .options(undefer(StateVersion.content))
    ).one()
    chunks = _open(session, keyring, row)
    # Drop the session's reference to the sealed bytes: only the decrypting stream holds them, so
    # they are freed as soon as it is read (not kept while the document is parsed and used).
    session.expire(row, ["content"])
    try:
        return documents.load_object_streaming(chunks)
    except ValueError as exc:
        raise Invalid(f"version {version} is not a JSON object: {exc}") from exc


def release_lock_held_by(
    *, session: Session, ctx: AuditContext, org_id: int, project: str, stack: str, actor: str
) -> LockInfo | None:
    """Break the Terraform lock of a stack if (and only if) `actor` took it; e.g. a job whose agent died."""
    ref = StackRef("terraform", project, stack)
    lock = locking.current_lock(session=session, org_id=org_id, ref=ref)
    if lock is None or lock.actor != actor:
        return None
    return locking.release(session=session, ctx=ctx, org_id=org_id, ref=ref, lock_id=None)


def head_serial(*, session: Session, org_id: int, project: str, stack: str) -> tuple[int | None, str | None]:
    """(serial, lineage) of a Terraform stack's current version; (None, None) when it has none."""
    head = find_head(session=session, org_id=org_id, ref=StackRef("terraform", project, stack))
    if head is None or not head.head_version or head.deleted_at is not None:
        return None, None
    latest = _version_row(session, head, head.head_version)
    return latest.serial, latest.lineage
