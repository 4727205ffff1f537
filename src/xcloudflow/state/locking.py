"""Stack locks with Terraform's semantics.

LOCK with a new ID takes the lock; the same ID again succeeds (Terraform retries); another ID gets
`Locked` carrying the holder's LockInfo. UNLOCK with the holder's ID releases; with another ID it is
409 with the holder's LockInfo; with no ID it is a forced unlock (`terraform force-unlock`), which
needs the writer role and is audited. Locks are rows, never session advisory locks.

A lock survives its holder's crash. `expire_stale` (the server's lock-expiry loop) breaks the ones
nobody will release, by the operator's policy: a lock whose holder is a job that has finished (its job
token no longer works, so it cannot unlock), and, when `XCF_STATE_LOCK_MAX_AGE_SECONDS` is set, a lock
older than that which no running job holds. Each is audited as `state.lock.expire` with the reason.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from xcloudflow.audit import service as audit
from xcloudflow.audit.schemas import AuditContext
from xcloudflow.db.base import utcnow
from xcloudflow.errors import Conflict, Locked
from xcloudflow.state.documents import StackRef
from xcloudflow.state.heads import lock_head
from xcloudflow.state.models import StateLock
from xcloudflow.state.schemas import LockInfo, LockOut

JOB_HOLDER_PREFIX = "job:"  # the actor of a lock taken with a job token: job:<job id>
MAX_AGE_SETTING = "XCF_STATE_LOCK_MAX_AGE_SECONDS"


# Job statuses whose job may still use its lock (a queued one is a retry that gets a token again);
# any other status (succeeded, failed, canceled, errored, or "missing") means nobody will unlock.
_JOB_ALIVE = frozenset({"queued", "claimed", "running"})


@dataclass(frozen=True)
class ExpiredLock:
    org_id: int
    ref: StackRef
    info: LockInfo
    reason: str


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


def to_out(lock: StateLock, *, now: datetime | None = None) -> LockOut:
    return LockOut(
        **to_info(lock).model_dump(),
        actor=lock.actor,
        locked_at=lock.created_at,
        age_seconds=round(((now or utcnow()) - lock.created_at).total_seconds(), 3),
    )


def list_locks(
    *, session: Session, org_id: int, now: datetime | None = None
) -> list[tuple[StackRef, LockOut]]:
    """Every lock of an organization, oldest first."""
    rows = session.scalars(
        select(StateLock).where(StateLock.org_id == org_id).order_by(StateLock.created_at)
    ).all()
    return [(StackRef(r.tool, r.project, r.stack), to_out(r, now=now)) for r in rows]


def _expiry_reason(
    lock: StateLock, now: datetime, max_age_seconds: float, holders: Mapping[str, str], expire_finished: bool
) -> str | None:
    status = holders.get(lock.actor or "")
    if status is not None and status not in _JOB_ALIVE:
        return f"its holder {lock.actor} has finished ({status})" if expire_finished else None
    age = (now - lock.created_at).total_seconds()
    if status is None and max_age_seconds > 0 and age > max_age_seconds:
        return f"held for {age:.0f}s, longer than {MAX_AGE_SETTING} ({max_age_seconds:.0f}s)"
    return None


def expire_stale(
    *,
    session: Session,
    now: datetime,
    max_age_seconds: float,
    expire_finished: bool,
    job_holders: Callable[[Sequence[str]], Mapping[str, str]],
) -> list[ExpiredLock]:
    """Break the locks the policy says nobody will release (see the module doc); `job_holders` maps the
    `job:<id>` actors given to their job's status ("missing" for no such job). Safe with several replicas: each lock is re-read under
    its stack's row lock before it is deleted."""
    if not expire_finished and max_age_seconds <= 0:
        return []
    candidates = session.scalars(select(StateLock).order_by(StateLock.created_at)).all()
    jobs = sorted({c.actor for c in candidates if c.actor and c.actor.startswith(JOB_HOLDER_PREFIX)})
    holders = job_holders(jobs) if jobs else {}
    expired: list[ExpiredLock] = []
    for candidate in candidates:
        if _expiry_reason(candidate, now, max_age_seconds, holders, expire_finished) is None:
            continue
        org_id, lock_id = candidate.org_id, candidate.lock_id
        ref = StackRef(candidate.tool, candidate.project, candidate.stack)
        lock_head(session=session, org_id=org_id, ref=ref, create=True, allow_deleted=True)
        # Re-read under the stack's row lock: another replica may have released or replaced it meanwhile.
        lock = session.scalars(
            select(StateLock)
            .where(
                StateLock.org_id == org_id,
                StateLock.tool == ref.tool,
                StateLock.project == ref.project,
                StateLock.stack == ref.stack,
            )
            .execution_options(populate_existing=True)
        ).first()
        if lock is None or lock.lock_id != lock_id:
            continue
        reason = _expiry_reason(lock, now, max_age_seconds, holders, expire_finished)
        if reason is None:
            continue
        info = to_info(lock)
        session.delete(lock)
        audit.record(
            session=session,
            ctx=AuditContext(actor="system", org_id=org_id),
            action="state.lock.expire",
            resource=f"stack/{ref}",
            details={
                "lock_id": info.ID,
                "holder": lock.actor,
                "who": info.Who,
                "operation": info.Operation,
                "held_since": lock.created_at.isoformat(),
                "reason": reason,
            },
        )
        expired.append(ExpiredLock(org_id, ref, info, reason))
    session.flush()
    return expired


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
