"""Stack locks with Terraform's semantics.

LOCK with a new ID takes the lock; the same ID again succeeds (Terraform retries); another ID gets
`Locked` carrying the holder's LockInfo. UNLOCK with the holder's ID releases; with another ID it is
409 with the holder's LockInfo; with no ID it is a forced unlock (`terraform force-unlock`), which
needs the writer role and is audited. Locks are rows, never session advisory locks.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from xcloudflow.audit import service as audit
from xcloudflow.audit.schemas import AuditContext
from xcloudflow.db.base import utcnow
from xcloudflow.errors import Conflict, Locked
from xcloudflow.state.documents import StackRef
from xcloudflow.state.heads import lock_head
from xcloudflow.state.models import StateLock
from xcloudflow.state.schemas import LockInfo, LockOut


def _key(org_id: int, ref: StackRef) -> tuple[int, str, str, str]:
    return (org_id, ref.tool, ref.project, ref.stack)


def to_info(lock: StateLock) -> LockInfo:
    return LockInfo(
        ID=lock.lock_id,
        Operation=lock.operation or "",
        Info=lock.info or "",
        Who=lock.who or "",
        Version=lock.tf_version or "",
        Created=lock.lock_created or "",
        Path=lock.path or "",
    )


def to_out(lock: StateLock) -> LockOut:
    return LockOut(
        **to_info(lock).model_dump(),
        actor=lock.actor,
        locked_at=lock.created_at,
        age_seconds=round((utcnow() - lock.created_at).total_seconds(), 3),
    )


def current_lock(*, session: Session, org_id: int, ref: StackRef) -> StateLock | None:
    return session.get(StateLock, _key(org_id, ref))


def check_writable(*, session: Session, org_id: int, ref: StackRef, lock_id: str | None) -> None:
    """Refuse a change unless the stack is unlocked or locked by `lock_id`."""
    lock = current_lock(session=session, org_id=org_id, ref=ref)
    if lock is not None and lock.lock_id != lock_id:
        given = "without a lock ID" if not lock_id else f"with lock ID {lock_id}"
        raise Locked(
            f"stack {ref} is locked by {lock.who or lock.actor} (lock ID {lock.lock_id}, "
            f"operation {lock.operation or 'unknown'}); the change came {given}",
            lock_info=to_info(lock).model_dump(),
        )


def acquire(*, session: Session, ctx: AuditContext, org_id: int, ref: StackRef, info: LockInfo) -> LockInfo:
    lock_head(session=session, org_id=org_id, ref=ref, create=True)
    lock = current_lock(session=session, org_id=org_id, ref=ref)
    if lock is not None:
        if lock.lock_id == info.ID:
            return to_info(lock)
        raise Locked(
            f"stack {ref} is already locked by {lock.who or lock.actor} (lock ID {lock.lock_id})",
            lock_info=to_info(lock).model_dump(),
        )
    session.add(
        StateLock(
            org_id=org_id,
            tool=ref.tool,
            project=ref.project,
            stack=ref.stack,
            lock_id=info.ID,
            operation=info.Operation,
            info=info.Info,
            who=info.Who,
            tf_version=info.Version,
            lock_created=info.Created,
            path=info.Path,
            actor=ctx.actor,
        )
    )
    audit.record(
        session=session,
        ctx=ctx,
        action="state.lock",
        resource=f"stack/{ref}",
        details={"lock_id": info.ID, "operation": info.Operation, "who": info.Who},
    )
    session.flush()
    return info


def release(
    *, session: Session, ctx: AuditContext, org_id: int, ref: StackRef, lock_id: str | None
) -> LockInfo:
    """Release a lock; `lock_id=None` forces it (the caller has checked the writer role)."""
    lock_head(session=session, org_id=org_id, ref=ref, create=True, allow_deleted=True)
    lock = current_lock(session=session, org_id=org_id, ref=ref)
    if lock is None:
        raise Conflict(f"stack {ref} is not locked")
    if lock_id is not None and lock.lock_id != lock_id:
        raise Locked(
            f"stack {ref} is locked with another ID ({lock.lock_id}, held by {lock.who or lock.actor}); "
            f"use force-unlock to break it",
            lock_info=to_info(lock).model_dump(),
            status=409,
        )
    info = to_info(lock)
    session.delete(lock)
    forced = lock_id is None
    audit.record(
        session=session,
        ctx=ctx,
        action="state.force_unlock" if forced else "state.unlock",
        resource=f"stack/{ref}",
        details={
            "lock_id": info.ID,
            "holder": info.Who,
            "operation": info.Operation,
            "held_since": lock.created_at.isoformat(),
        },
    )
    session.flush()
    return info
