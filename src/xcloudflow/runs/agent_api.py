"""The agent's side of runs under /api/agent/v1, with the job's own token: the run bundle, the code
archive and (for an apply) the saved plan."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response
from starlette.concurrency import run_in_threadpool

from xcloudflow.jobs.agent_api import job_identity
from xcloudflow.jobs.service import JobIdentity
from xcloudflow.runs import bundle
from xcloudflow.server.deps import app_context

router = APIRouter(prefix="/api/agent/v1", tags=["agent API"])


@router.get("/jobs/{job_id}/run")
def run_bundle(request: Request, job: JobIdentity = Depends(job_identity)) -> dict[str, object]:
    """Everything the agent needs to run the job's run: secrets included, for this job's token only."""
    ctx = app_context(request)
    with ctx.db.read() as session:
        return bundle.run_bundle(session=session, keyring=ctx.keyring, job=job)


@router.get("/jobs/{job_id}/code")
async def code(request: Request, job: JobIdentity = Depends(job_identity)) -> Response:
    ctx = app_context(request)

    def read() -> bytes:
        with ctx.db.read() as session:
            return bundle.code_archive(session=session, keyring=ctx.keyring, job=job)

    return Response(await run_in_threadpool(read), media_type="application/gzip")


@router.get("/jobs/{job_id}/plan")
async def plan(request: Request, job: JobIdentity = Depends(job_identity)) -> Response:
    ctx = app_context(request)

    def read() -> bytes:
        with ctx.db.read() as session:
            return bundle.plan_file(session=session, keyring=ctx.keyring, job=job)

    return Response(await run_in_threadpool(read), media_type="application/octet-stream")
