"""The agent-facing API under /api/agent/v1, with its own credentials.

- `register` takes an agent pool token and hands out an agent token;
- `heartbeat` and `jobs/next` take the agent token;
- every `jobs/{id}/...` route takes that job's own token, minted when the job was claimed, and
  refuses any other job (403), an unknown one (404) and a finished one (409).

`jobs/next` is a long poll that holds no thread while it waits: it subscribes to wake-ups for the
agent's pool, then looks at the queue, and sleeps until a wake-up or the poll fallback.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid

from fastapi import APIRouter, Depends, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from xcloudflow.errors import Invalid, TooLarge, Unauthorized
from xcloudflow.jobs import agents, service
from xcloudflow.jobs.agents import AgentIdentity
from xcloudflow.jobs.runtime import JobsRuntime
from xcloudflow.jobs.schemas import (
    AgentRegister,
    AgentRegistered,
    ArtifactOut,
    CancelSignal,
    Heartbeat,
    HeartbeatAck,
    JobAssignment,
    JobFinish,
    JobOut,
    LogAppend,
    LogAppended,
)
from xcloudflow.jobs.service import JobIdentity
from xcloudflow.server.deps import AppContext, app_context

router = APIRouter(prefix="/api/agent/v1", tags=["agent API"])
MAX_WAIT_SECONDS = 60.0


def jobs_runtime(request: Request) -> JobsRuntime:
    runtime: JobsRuntime = request.app.state.jobs
    return runtime


def _bearer(request: Request) -> str:
    scheme, _, value = (request.headers.get("authorization") or "").partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise Unauthorized("authentication required: send the agent, pool or job token as a Bearer token")
    return value.strip()


def agent_identity(request: Request) -> AgentIdentity:
    token = _bearer(request)
    with app_context(request).db.read() as session:
        return agents.authenticate_agent(session=session, token=token)


def job_identity(request: Request, job_id: uuid.UUID) -> JobIdentity:
    token = _bearer(request)
    with app_context(request).db.read() as session:
        return service.authenticate_job(session=session, token=token, job_id=job_id)


def pool_credential(request: Request) -> str:
    token = _bearer(request)
    with app_context(request).db.read() as session:
        agents.authenticate_pool_token(session=session, token=token)
    return token


@router.post("/register", response_model=AgentRegistered, status_code=201)
def register(request: Request, body: AgentRegister, token: str = Depends(pool_credential)) -> AgentRegistered:
    """Register with an agent pool token (Bearer); the answer carries the agent's own token."""
    with app_context(request).db.write() as session:
        return agents.register_agent(
            session=session,
            pool_token=token,
            body=body,
            lease_seconds=jobs_runtime(request).settings.job_lease_seconds,
        )


@router.post("/heartbeat", response_model=HeartbeatAck)
def heartbeat(
    request: Request, body: Heartbeat, agent: AgentIdentity = Depends(agent_identity)
) -> HeartbeatAck:
    """I am alive, and these are the jobs I am running: their leases are extended."""
    with app_context(request).db.write() as session:
        return agents.heartbeat(
            session=session,
            agent=agent,
            running=body.running,
            lease_seconds=jobs_runtime(request).settings.job_lease_seconds,
        )


def _try_claim(ctx: AppContext, agent: AgentIdentity, lease_seconds: float) -> JobAssignment | None:
    with ctx.db.read() as session:
        if not service.has_queued(session=session, agent=agent):
            return None
    with ctx.db.write() as session:
        return service.claim_next(session=session, agent=agent, lease_seconds=lease_seconds)


@router.get(
    "/jobs/next",
    response_model=JobAssignment,
    responses={204: {"description": "no job became available before the wait ran out"}},
)
async def next_job(
    request: Request,
    wait: float = Query(0.0, ge=0, le=MAX_WAIT_SECONDS, description="seconds to wait for a job (long poll)"),
    agent: AgentIdentity = Depends(agent_identity),
) -> Response | JobAssignment:
    """Claim the next job of the agent's pool, waiting up to `wait` seconds for one to be queued."""
    ctx = app_context(request)
    runtime = jobs_runtime(request)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    with runtime.waker.subscription(agent.pool_id) as woken:
        while True:
            woken.clear()
            if await request.is_disconnected():
                # Claiming now would hand the job to nobody; it stays queued.
                return Response(status_code=204)
            job = await run_in_threadpool(_try_claim, ctx, agent, runtime.settings.job_lease_seconds)
            if job is not None:
                return job
            remaining = deadline - loop.time()
            if remaining <= 0:
                return Response(status_code=204)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    woken.wait(), timeout=min(remaining, runtime.settings.job_poll_seconds)
                )


@router.post("/jobs/{job_id}/start", response_model=JobOut)
def start(request: Request, job: JobIdentity = Depends(job_identity)) -> JobOut:
    with app_context(request).db.write() as session:
        return service.start(
            session=session, job=job, lease_seconds=jobs_runtime(request).settings.job_lease_seconds
        )


@router.post("/jobs/{job_id}/logs", response_model=LogAppended)
def append_logs(request: Request, body: LogAppend, job: JobIdentity = Depends(job_identity)) -> LogAppended:
    """Append log chunks in order (each at most job_log_chunk_max_bytes)."""
    with app_context(request).db.write() as session:
        seq = service.append_log(
            session=session,
            job=job,
            chunks=body.chunks,
            max_chunk_bytes=jobs_runtime(request).settings.job_log_chunk_max_bytes,
        )
    return LogAppended(last_seq=seq)


async def _read_body(request: Request, limit: int, name: str) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise Invalid("Content-Length is not a number")
        if int(declared) > limit:
            raise TooLarge(f"artifact {name} is {declared} bytes; the limit is {limit}")
    parts: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"artifact {name} is over the limit of {limit} bytes")
        parts.append(chunk)
    return b"".join(parts)


@router.put("/jobs/{job_id}/artifacts/{name}", response_model=ArtifactOut, status_code=201)
async def upload_artifact(
    request: Request, name: str, job: JobIdentity = Depends(job_identity)
) -> ArtifactOut:
    """Store the raw request body as an artifact of the job, encrypted at rest."""
    service.check_artifact_name(name)
    runtime = jobs_runtime(request)
    limit = runtime.settings.job_artifact_max_bytes
    data = await _read_body(request, limit, name)
    ctx = app_context(request)

    def store() -> ArtifactOut:
        with ctx.db.write() as session:
            return service.upload_artifact(
                session=session, keyring=ctx.keyring, job=job, name=name, data=data, max_bytes=limit
            )

    return await run_in_threadpool(store)


@router.post("/jobs/{job_id}/finish", response_model=JobOut)
def finish(request: Request, body: JobFinish, job: JobIdentity = Depends(job_identity)) -> JobOut:
    with app_context(request).db.write() as session:
        return service.finish(
            session=session,
            job=job,
            outcome=body.outcome,
            result=body.result,
            error=body.error,
            retryable=body.retryable,
        )


@router.get("/jobs/{job_id}/cancel", response_model=CancelSignal)
def cancel_signal(request: Request, job: JobIdentity = Depends(job_identity)) -> CancelSignal:
    """Has someone asked for this job to stop? Agents poll this while the job runs."""
    with app_context(request).db.read() as session:
        return service.cancel_signal(session=session, job=job)
