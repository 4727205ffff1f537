"""The job queue's use cases: enqueue, claim, start, logs, artifacts, finish, cancel, reap, read.

Claiming is atomic: on PostgreSQL `SELECT ... FOR UPDATE SKIP LOCKED` lets concurrent claimers pass
each other's rows; on SQLite every write transaction is `BEGIN IMMEDIATE`, so claimers are serialized
and SQLAlchemy leaves the FOR UPDATE out. A job runs at most once per attempt: a job whose lease ran
out is marked `errored` with the reason and is never handed out again on its own; only a failure the
agent itself calls retryable goes back to the queue (up to `max_attempts`). Callers own the
transaction; nothing here commits.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from xcloudflow.audit import service as audit
from xcloudflow.audit.schemas import AuditContext
from xcloudflow.db.base import utcnow
from xcloudflow.db.pagination import check_limit, newest_cursor, newest_first, page_of
from xcloudflow.errors import Conflict, Forbidden, Invalid, NotFound, TooLarge
from xcloudflow.iam import service as iam
from xcloudflow.iam.schemas import Principal
from xcloudflow.jobs import agents
from xcloudflow.jobs.agents import JOB_TOKEN_PREFIX, AgentIdentity
from xcloudflow.jobs.models import (
    ACTIVE_STATUSES,
    FINISHED_STATUSES,
    JOB_STATUSES,
    Agent,
    AgentPool,
    Job,
    JobArtifact,
    JobLog,
)
from xcloudflow.jobs.schemas import (
    ARTIFACT_NAME_PATTERN,
    ArtifactOut,
    CancelSignal,
    JobAssignment,
    JobLogLine,
    JobLogPage,
    JobOut,
    JobPage,
)
from xcloudflow.jobs.waker import notify_enqueued
from xcloudflow.keys import service as keys
from xcloudflow.keys.keyring import Keyring

# Kinds an admin may enqueue by hand (POST /api/v1/jobs): checks of the agents themselves.
DIAGNOSTIC_KINDS = frozenset({"agent.diagnose", "agent.sleep"})
_ARTIFACT_NAME = re.compile(ARTIFACT_NAME_PATTERN)
MAX_RETRY_DELAY_SECONDS = 300


class JobListener(Protocol):
    """Called in the transaction that changes a job: `event` is started, retrying or finished."""

    def __call__(self, session: Session, job: Job, event: str) -> None: ...


_listeners: dict[str, JobListener] = {}


def on_job_event(kind_prefix: str, listener: JobListener) -> None:
    """Let the domain that owns jobs of kinds starting with `kind_prefix` follow them (runs, later engines).

    Listeners run in the same transaction as the job change, so a job and what it drives never disagree.
    """
    _listeners[kind_prefix] = listener


def _emit(session: Session, job: Job, event: str) -> None:
    for prefix, listener in _listeners.items():
        if job.kind.startswith(prefix):
            listener(session, job, event)


@dataclass(frozen=True)
class JobIdentity:
    """The job behind a job token, checked against the job id of the route."""

    job_id: uuid.UUID
    org_id: int
    agent_id: int | None


def _job_out(job: Job, pool: str) -> JobOut:
    return JobOut(
        id=job.id,
        kind=job.kind,
        payload=job.payload,
        pool=pool,
        status=job.status,
        attempts=job.attempts,
        max_attempts=job.max_attempts,
        agent=job.agent_name,
        created_at=job.created_at,
        created_by=job.created_by,
        claimed_at=job.claimed_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        lease_expires_at=job.lease_expires_at,
        result=job.result,
        error=job.error,
        cancel_requested_at=job.cancel_requested_at,
    )


def _pool_name(session: Session, pool_id: int) -> str:
    return session.get_one(AgentPool, pool_id).name


# ---------------------------------------------------------------- enqueue


def enqueue(
    *,
    session: Session,
    org_id: int,
    kind: str,
    payload: dict[str, Any],
    pool: str = agents.EMBEDDED_POOL,
    max_attempts: int = 1,
    ctx: AuditContext | None = None,
) -> JobOut:
    """Queue a job for `pool` (the organization's `embedded` pool is created on first use).

    `ctx` is given when a person asks for the job; the audit row is then written here.
    """
    if max_attempts < 1:
        raise Invalid("max_attempts must be at least 1", details={"field": "max_attempts"})
    if pool == agents.EMBEDDED_POOL:
        row = agents.ensure_pool(session=session, org_id=org_id, name=pool)
    else:
        row = agents.pool_by_name(session=session, org_id=org_id, name=pool)
    job = Job(
        id=uuid.uuid4(),
        org_id=org_id,
        pool_id=row.id,
        kind=kind,
        payload=payload,
        status="queued",
        attempts=0,
        max_attempts=max_attempts,
        created_at=utcnow(),
        created_by=ctx.actor if ctx else None,
        log_seq=0,
    )
    session.add(job)
    session.flush()
    notify_enqueued(session, row.id)
    if ctx is not None:
        audit.record(
            session=session,
            ctx=ctx,
            action="jobs.job.enqueue",
            resource=f"job/{job.id}",
            details={"kind": kind, "pool": pool},
        )
    return _job_out(job, row.name)


def enqueue_diagnostic(
    *,
    session: Session,
    principal: Principal,
    ctx: AuditContext,
    kind: str,
    payload: dict[str, Any],
    pool: str,
    max_attempts: int,
) -> JobOut:
    iam.require(principal, "admin", action="enqueueing jobs by hand")
    if kind not in DIAGNOSTIC_KINDS:
        raise Invalid(
            f"kind {kind} cannot be enqueued by hand; allowed: {', '.join(sorted(DIAGNOSTIC_KINDS))}",
            details={"field": "kind"},
        )
    return enqueue(
        session=session,
        org_id=principal.org_id,
        kind=kind,
        payload=payload,
        pool=pool,
        max_attempts=max_attempts,
        ctx=ctx,
    )


# ---------------------------------------------------------------- claim


def _claimable(agent: AgentIdentity, now: datetime) -> Any:
    return and_(
        Job.pool_id == agent.pool_id,
        Job.status == "queued",
        Job.kind.in_(agent.kinds),
        or_(Job.available_at.is_(None), Job.available_at <= now),
    )


def has_queued(*, session: Session, agent: AgentIdentity) -> bool:
    """A cheap read-only look before a write transaction (SQLite serializes every writer)."""
    return session.scalars(select(Job.id).where(_claimable(agent, utcnow())).limit(1)).first() is not None


def claim_next(*, session: Session, agent: AgentIdentity, lease_seconds: float) -> JobAssignment | None:
    """Hand the oldest claimable job of the agent's pool to the agent, with a fresh job token."""
    now = utcnow()
    active = session.scalar(
        select(func.count())
        .select_from(Job)
        .where(Job.agent_id == agent.agent_id, Job.status.in_(ACTIVE_STATUSES))
    )
    if (active or 0) >= agent.capacity:
        return None
    job = session.scalars(
        select(Job)
        .where(_claimable(agent, now))
        .order_by(Job.created_at, Job.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    ).first()
    if job is None:
        return None
    secret = agents.new_secret(JOB_TOKEN_PREFIX)
    job.status = "claimed"
    job.agent_id = agent.agent_id
    job.agent_name = agent.name
    job.attempts += 1
    job.claimed_at = now
    job.started_at = None
    job.lease_expires_at = now + timedelta(seconds=lease_seconds)
    job.token_hash = iam.hash_token(secret)
    session.flush()
    return JobAssignment(
        id=job.id,
        kind=job.kind,
        payload=job.payload,
        attempt=job.attempts,
        token=secret,
        lease_expires_at=job.lease_expires_at,
    )


# ---------------------------------------------------------------- the job's own token


def authenticate_job(
    *, session: Session, token: str, job_id: uuid.UUID, finished_ok: bool = False
) -> JobIdentity:
    """The job a job token belongs to, which must be `job_id` and (unless `finished_ok`) unfinished."""
    job = session.scalars(select(Job).where(Job.token_hash == iam.hash_token(token))).first()
    if job is None:
        raise agents.wrong_token(
            session=session, token=token, expected="the job token (xcfj_...) handed out with the job"
        )
    if job.id != job_id:
        if session.get(Job, job_id) is None:
            raise NotFound(f"no job {job_id}")
        raise Forbidden(f"this job token belongs to job {job.id}, not {job_id}")
    if job.status in FINISHED_STATUSES and not finished_ok:
        raise Conflict(f"job {job.id} already finished ({job.status})")
    return JobIdentity(job_id=job.id, org_id=job.org_id, agent_id=job.agent_id)


def _active_job(session: Session, ident: JobIdentity) -> Job:
    job = session.scalars(select(Job).where(Job.id == ident.job_id).with_for_update()).first()
    if job is None:
        raise NotFound(f"no job {ident.job_id}")
    if job.status not in ACTIVE_STATUSES:
        raise Conflict(f"job {job.id} is {job.status}, not running", details={"status": job.status})
    return job


def start(*, session: Session, job: JobIdentity, lease_seconds: float) -> JobOut:
    row = _active_job(session, job)
    if row.status == "claimed":
        now = utcnow()
        row.status = "running"
        row.started_at = now
        row.lease_expires_at = now + timedelta(seconds=lease_seconds)
        session.flush()
        _emit(session, row, "started")
    session.flush()
    return _job_out(row, _pool_name(session, row.pool_id))


def append_log(*, session: Session, job: JobIdentity, chunks: list[str], max_chunk_bytes: int) -> int:
    """Store log chunks in order; returns the seq of the last one."""
    for chunk in chunks:
        if len(chunk.encode()) > max_chunk_bytes:
            raise TooLarge(f"a log chunk may hold at most {max_chunk_bytes} bytes; split it")
    row = _active_job(session, job)
    now = utcnow()
    seq = row.log_seq
    for chunk in chunks:
        seq += 1
        session.add(JobLog(job_id=row.id, seq=seq, at=now, text=chunk))
    row.log_seq = seq
    session.flush()
    return seq


def _artifact_aad(job_id: uuid.UUID, name: str) -> bytes:
    return f"xcf:job-artifact:{job_id}:{name}".encode()


def check_artifact_name(name: str) -> str:
    if not _ARTIFACT_NAME.match(name) or ".." in name:
        raise Invalid(
            f"artifact name {name!r} is not valid: letters, digits, '.', '_', '-', at most 128, no '..'",
            details={"field": "name"},
        )
    return name


def upload_artifact(
    *, session: Session, keyring: Keyring, job: JobIdentity, name: str, data: bytes, max_bytes: int
) -> ArtifactOut:
    """Store an artifact sealed under the job's organization; re-sending the same bytes is a no-op."""
    check_artifact_name(name)
    if len(data) > max_bytes:
        raise TooLarge(f"artifact {name} is {len(data)} bytes; the limit is {max_bytes}")
    row = _active_job(session, job)
    digest = hashlib.sha256(data).hexdigest()
    existing = session.get(JobArtifact, (row.id, name))
    if existing is not None:
        if existing.sha256 != digest:
            raise Conflict(f"job {row.id} already has a different artifact {name}")
        return ArtifactOut(name=name, size=existing.size, sha256=digest, created_at=existing.created_at)
    key_id, blob = keys.seal(
        session=session, keyring=keyring, org_id=row.org_id, aad=_artifact_aad(row.id, name), chunks=[data]
    )
    art = JobArtifact(
        job_id=row.id,
        name=name,
        size=len(data),
        sha256=digest,
        created_at=utcnow(),
        data_key_id=key_id,
        content=blob,
    )
    session.add(art)
    session.flush()
    return ArtifactOut(name=name, size=art.size, sha256=digest, created_at=art.created_at)


def finish(
    *,
    session: Session,
    job: JobIdentity,
    outcome: str,
    result: dict[str, Any] | None,
    error: str | None,
    retryable: bool = False,
    ctx: AuditContext | None = None,
) -> JobOut:
    """Record the outcome the agent reports; a retryable failure with attempts left is queued again."""
    if outcome not in ("succeeded", "failed", "canceled"):
        raise Invalid(f"outcome must be succeeded, failed or canceled, not {outcome}")
    row = _active_job(session, job)
    now = utcnow()
    row.result = result
    row.error = error
    row.lease_expires_at = None
    if outcome == "failed" and retryable and row.attempts < row.max_attempts:
        row.status = "queued"
        row.available_at = now + timedelta(seconds=min(5 * 2 ** (row.attempts - 1), MAX_RETRY_DELAY_SECONDS))
        row.agent_id = None
        row.token_hash = None
        notify_enqueued(session, row.pool_id)
        session.flush()
        _emit(session, row, "retrying")
    else:
        row.status = outcome
        row.finished_at = now
        session.flush()
        _emit(session, row, "finished")
    if ctx is not None:
        audit.record(
            session=session,
            ctx=ctx,
            action="jobs.job.finish",
            resource=f"job/{row.id}",
            details={"outcome": outcome},
        )
    session.flush()
    return _job_out(row, _pool_name(session, row.pool_id))


def cancel_signal(*, session: Session, job: JobIdentity) -> CancelSignal:
    row = session.get_one(Job, job.job_id)
    return CancelSignal(
        cancel_requested=row.cancel_requested_at is not None, requested_at=row.cancel_requested_at
    )


# ---------------------------------------------------------------- people


def _org_job(session: Session, org_id: int, job_id: uuid.UUID, *, lock: bool = False) -> Job:
    stmt = select(Job).where(Job.id == job_id, Job.org_id == org_id)
    job = session.scalars(stmt.with_for_update() if lock else stmt).first()
    if job is None:
        raise NotFound(f"no job {job_id}")
    return job


def request_cancel(*, session: Session, principal: Principal, ctx: AuditContext, job_id: uuid.UUID) -> JobOut:
    """A queued job is canceled at once; a claimed or running one is asked to stop (its agent polls)."""
    iam.require(principal, "writer", action="canceling jobs")
    job = _org_job(session, principal.org_id, job_id, lock=True)
    out = cancel_job(session=session, job_id=job.id, actor=principal.user_name)
    audit.record(session=session, ctx=ctx, action="jobs.job.cancel", resource=f"job/{job.id}")
    return out


def cancel_job(*, session: Session, job_id: uuid.UUID, actor: str) -> JobOut:
    """Cancel for a domain that owns the job (no role check: the caller checked its own)."""
    job = session.scalars(select(Job).where(Job.id == job_id).with_for_update()).first()
    if job is None:
        raise NotFound(f"no job {job_id}")
    if job.status in FINISHED_STATUSES:
        raise Conflict(f"job {job.id} already finished ({job.status})", details={"status": job.status})
    now = utcnow()
    if job.cancel_requested_at is None:
        job.cancel_requested_at = now
        job.cancel_requested_by = actor
    if job.status == "queued":
        job.status = "canceled"
        job.finished_at = now
        job.error = f"canceled by {actor} before an agent claimed it"
        session.flush()
        _emit(session, job, "finished")
    session.flush()
    return _job_out(job, _pool_name(session, job.pool_id))


def job_by_token(*, session: Session, token: str) -> Job | None:
    """The unfinished job a job token belongs to (job tokens also reach the one stack a job names)."""
    job = session.scalars(select(Job).where(Job.token_hash == iam.hash_token(token))).first()
    if job is None or job.status in FINISHED_STATUSES:
        return None
    return job


def reap_expired(*, session: Session, lease_seconds: float) -> list[uuid.UUID]:
    """Jobs whose agent stopped heartbeating become `errored` (never re-run silently); silent agents
    go offline. Returns the jobs errored now."""
    now = utcnow()
    rows = session.execute(
        select(Job, Agent.last_heartbeat_at)
        .outerjoin(Agent, Agent.id == Job.agent_id)
        .where(Job.status.in_(ACTIVE_STATUSES), Job.lease_expires_at < now)
        .with_for_update(of=Job, skip_locked=True)
    ).all()
    for job, last_beat in rows:
        seen = (last_beat or job.claimed_at or now).isoformat(timespec="seconds")
        job.status = "errored"
        job.finished_at = now
        job.lease_expires_at = None
        job.error = (
            f"agent {job.agent_name} stopped heartbeating at {seen}; the job was not retried automatically"
        )
        session.flush()
        _emit(session, job, "finished")
    agents.mark_offline(session=session, offline_after_seconds=lease_seconds)
    session.flush()
    return [job.id for job, _ in rows]


def holder_statuses(*, session: Session, holders: Sequence[str]) -> dict[str, str]:
    """The status of the job behind each `job:<id>` actor (a lock holder), "missing" for none."""
    ids: dict[uuid.UUID, str] = {}
    for holder in holders:
        with contextlib.suppress(ValueError):
            ids[uuid.UUID(holder.removeprefix("job:"))] = holder
    found = {
        job_id: status
        for job_id, status in session.execute(select(Job.id, Job.status).where(Job.id.in_(list(ids))))
    }
    return {holder: found.get(job_id, "missing") for job_id, holder in ids.items()} | {
        h: "missing" for h in holders if h not in ids.values()
    }


def list_jobs(
    *,
    session: Session,
    org_id: int,
    status: str | None = None,
    kind: str | None = None,
    pool: str | None = None,
    cursor: str | None = None,
    limit: int = 100,
) -> JobPage:
    """Newest first."""
    check_limit(limit)
    stmt = (
        select(Job, AgentPool.name).join(AgentPool, AgentPool.id == Job.pool_id).where(Job.org_id == org_id)
    )
    if status:
        if status not in JOB_STATUSES:
            raise Invalid(f"status must be one of {', '.join(JOB_STATUSES)}", details={"field": "status"})
        stmt = stmt.where(Job.status == status)
    if kind:
        stmt = stmt.where(Job.kind == kind)
    if pool:
        stmt = stmt.where(AgentPool.name == pool)
    rows = session.execute(newest_first(stmt, Job.created_at, Job.id, cursor, limit)).all()
    page, next_cursor = page_of(rows, limit, lambda row: newest_cursor(row[0].created_at, row[0].id))
    return JobPage(items=[_job_out(j, p) for j, p in page], next_cursor=next_cursor)


def show_job(*, session: Session, org_id: int, job_id: uuid.UUID) -> JobOut:
    job = _org_job(session, org_id, job_id)
    return _job_out(job, _pool_name(session, job.pool_id))


def read_logs(
    *, session: Session, org_id: int, job_id: uuid.UUID, after: int = 0, limit: int = 500
) -> JobLogPage:
    check_limit(limit)
    job = _org_job(session, org_id, job_id)
    rows = list(
        session.scalars(
            select(JobLog)
            .where(JobLog.job_id == job.id, JobLog.seq > after)
            .order_by(JobLog.seq)
            .limit(limit + 1)
        )
    )
    more = len(rows) > limit
    rows = rows[:limit]
    return JobLogPage(
        items=[JobLogLine(seq=r.seq, at=r.at, text=r.text) for r in rows],
        last_seq=rows[-1].seq if rows else after,
        more=more,
    )


def list_artifacts(*, session: Session, org_id: int, job_id: uuid.UUID) -> list[ArtifactOut]:
    job = _org_job(session, org_id, job_id)
    rows = session.scalars(select(JobArtifact).where(JobArtifact.job_id == job.id).order_by(JobArtifact.name))
    return [ArtifactOut(name=a.name, size=a.size, sha256=a.sha256, created_at=a.created_at) for a in rows]


def read_artifact(*, session: Session, keyring: Keyring, org_id: int, job_id: uuid.UUID, name: str) -> bytes:
    job = _org_job(session, org_id, job_id)
    art = session.get(JobArtifact, (job.id, check_artifact_name(name)))
    if art is None:
        raise NotFound(f"job {job_id} has no artifact {name}")
    return b"".join(
        keys.open_sealed(
            session=session,
            keyring=keyring,
            data_key_id=art.data_key_id,
            aad=_artifact_aad(job.id, name),
            blob=art.content,
        )
    )
