"""Agent pools, pool tokens, agents and jobs under /api/v1, for people (thin: parse, authorize, call)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends, Query, Request, Response

from xcloudflow.iam.schemas import Principal
from xcloudflow.jobs import agents, service
from xcloudflow.jobs.schemas import (
    AgentOut,
    ArtifactOut,
    JobCreate,
    JobLogPage,
    JobOut,
    JobPage,
    PoolCreate,
    PoolOut,
    PoolTokenCreate,
    PoolTokenCreated,
    PoolTokenOut,
)
from xcloudflow.server.deps import app_context, audit_context, principal
from xcloudflow.server.params import INT64_MAX, RowId

router = APIRouter(prefix="/api/v1", tags=["jobs"])


@router.get("/agent-pools", response_model=list[PoolOut])
def list_pools(request: Request, who: Principal = Depends(principal)) -> list[PoolOut]:
    with app_context(request).db.read() as session:
        return agents.list_pools(session=session, org_id=who.org_id)


@router.post("/agent-pools", response_model=PoolOut, status_code=201)
def create_pool(request: Request, body: PoolCreate, who: Principal = Depends(principal)) -> PoolOut:
    with app_context(request).db.write() as session:
        return agents.create_pool(
            session=session, principal=who, ctx=audit_context(request, who), name=body.name
        )


@router.get("/agent-pools/{pool}/tokens", response_model=list[PoolTokenOut])
def list_pool_tokens(request: Request, pool: str, who: Principal = Depends(principal)) -> list[PoolTokenOut]:
    with app_context(request).db.read() as session:
        return agents.list_pool_tokens(session=session, principal=who, pool=pool)


@router.post("/agent-pools/{pool}/tokens", response_model=PoolTokenCreated, status_code=201)
def create_pool_token(
    request: Request, pool: str, body: PoolTokenCreate, who: Principal = Depends(principal)
) -> PoolTokenCreated:
    """Create a token agents register with; the secret is in this answer only."""
    with app_context(request).db.write() as session:
        return agents.create_pool_token(
            session=session, principal=who, ctx=audit_context(request, who), pool=pool, name=body.name
        )


@router.delete("/agent-pools/{pool}/tokens/{token_id}", response_model=PoolTokenOut)
def revoke_pool_token(
    request: Request, pool: str, token_id: RowId, who: Principal = Depends(principal)
) -> PoolTokenOut:
    """Revoke a pool token; agents registered with it are cut off too."""
    with app_context(request).db.write() as session:
        return agents.revoke_pool_token(
            session=session, principal=who, ctx=audit_context(request, who), pool=pool, token_id=token_id
        )


@router.get("/agents", response_model=list[AgentOut])
def list_agents(
    request: Request, pool: str | None = None, who: Principal = Depends(principal)
) -> list[AgentOut]:
    with app_context(request).db.read() as session:
        return agents.list_agents(session=session, org_id=who.org_id, pool=pool)


@router.get("/jobs", response_model=JobPage)
def list_jobs(
    request: Request,
    status: str | None = None,
    kind: str | None = None,
    pool: str | None = None,
    cursor: str | None = None,
    limit: int = Query(100),
    who: Principal = Depends(principal),
) -> JobPage:
    with app_context(request).db.read() as session:
        return service.list_jobs(
            session=session,
            org_id=who.org_id,
            status=status,
            kind=kind,
            pool=pool,
            cursor=cursor,
            limit=limit,
        )


@router.post("/jobs", response_model=JobOut, status_code=201)
def enqueue_job(request: Request, body: JobCreate, who: Principal = Depends(principal)) -> JobOut:
    """Operator/diagnostic endpoint (admins): queue a check of the agents (`agent.diagnose`,
    `agent.sleep`). Real work is enqueued by the domains that own it (runs, deployments...)."""
    with app_context(request).db.write() as session:
        return service.enqueue_diagnostic(
            session=session,
            principal=who,
            ctx=audit_context(request, who),
            kind=body.kind,
            payload=body.payload,
            pool=body.pool,
            max_attempts=body.max_attempts,
        )


@router.get("/jobs/{job_id}", response_model=JobOut)
def show_job(request: Request, job_id: uuid.UUID, who: Principal = Depends(principal)) -> JobOut:
    with app_context(request).db.read() as session:
        return service.show_job(session=session, org_id=who.org_id, job_id=job_id)


@router.get("/jobs/{job_id}/logs", response_model=JobLogPage)
def job_logs(
    request: Request,
    job_id: uuid.UUID,
    after: int = Query(0, ge=0, le=INT64_MAX, description="return chunks with a greater seq"),
    limit: int = Query(500),
    who: Principal = Depends(principal),
) -> JobLogPage:
    with app_context(request).db.read() as session:
        return service.read_logs(session=session, org_id=who.org_id, job_id=job_id, after=after, limit=limit)


@router.get("/jobs/{job_id}/artifacts", response_model=list[ArtifactOut])
def list_artifacts(
    request: Request, job_id: uuid.UUID, who: Principal = Depends(principal)
) -> list[ArtifactOut]:
    with app_context(request).db.read() as session:
        return service.list_artifacts(session=session, org_id=who.org_id, job_id=job_id)


@router.get(
    "/jobs/{job_id}/artifacts/{name}",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
def read_artifact(
    request: Request, job_id: uuid.UUID, name: str, who: Principal = Depends(principal)
) -> Response:
    ctx = app_context(request)
    with ctx.db.read() as session:
        data = service.read_artifact(
            session=session, keyring=ctx.keyring, org_id=who.org_id, job_id=job_id, name=name
        )
    return Response(data, media_type="application/octet-stream")


@router.post("/jobs/{job_id}/cancel", response_model=JobOut)
def cancel_job(request: Request, job_id: uuid.UUID, who: Principal = Depends(principal)) -> JobOut:
    """Cancel a queued job now, or ask the agent running it to stop (writers)."""
    with app_context(request).db.write() as session:
        return service.request_cancel(
            session=session, principal=who, ctx=audit_context(request, who), job_id=job_id
        )
