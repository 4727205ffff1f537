"""The control plane under /api/v1/compose: ChangeSets (plan, apply, approve, reject, override, discard,
roll back, the Markdown for a pull request) and the environment's reconcile targets; and, for agents,
the repository snapshot of a `compose.*` job."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from xcloudflow.compose import service
from xcloudflow.compose.planner import create_changeset, read_repository
from xcloudflow.compose.render import changeset_markdown
from xcloudflow.compose.repo import RepoLimits
from xcloudflow.compose.schemas import (
    Approval,
    ChangeSetCreate,
    ChangeSetOut,
    ChangeSetPage,
    CheckRequest,
    Reason,
    TargetOut,
)
from xcloudflow.iam.schemas import Principal
from xcloudflow.jobs.agent_api import job_identity
from xcloudflow.jobs.service import JobIdentity
from xcloudflow.server.deps import app_context, audit_context, principal

router = APIRouter(prefix="/api/v1/compose", tags=["compose"])
agent_router = APIRouter(prefix="/api/agent/v1", tags=["agent API"])


@router.post("/changesets", response_model=ChangeSetOut, status_code=201)
async def plan(request: Request, body: ChangeSetCreate, who: Principal = Depends(principal)) -> ChangeSetOut:
    """Read the repository at one commit, validate it, build the environment's DAG and start every plan.

    Older ChangeSets of the environment not yet applying are discarded (superseded)."""
    ctx = app_context(request)
    settings = ctx.settings

    def run() -> ChangeSetOut:
        read = read_repository(
            principal=who,
            body=body,
            local_roots=settings.compose_roots.of(who.org_name),
            max_bytes=settings.compose_bundle_max_bytes,
            git_timeout=settings.compose_git_timeout_seconds,
            repo_limits=RepoLimits(settings.compose_repo_max_bytes, "XCF_COMPOSE_REPO_MAX_BYTES"),
        )
        with ctx.db.write() as session:
            cs = create_changeset(
                session=session,
                keyring=ctx.keyring,
                principal=who,
                ctx=audit_context(request, who),
                body=body,
                read=read,
            )
            service.supersede_older(session=session, cs=cs)
            return service.changeset_out(session, cs)

    return await run_in_threadpool(run)


@router.get("/changesets", response_model=ChangeSetPage)
def list_changesets(
    request: Request,
    environment: str | None = None,
    status: str | None = None,
    limit: int = Query(50),
    cursor: str | None = None,
    who: Principal = Depends(principal),
) -> ChangeSetPage:
    with app_context(request).db.read() as session:
        return service.list_changesets(
            session=session,
            org_id=who.org_id,
            environment=environment,
            status=status,
            limit=limit,
            cursor=cursor,
        )


@router.get("/changesets/{changeset_id}", response_model=ChangeSetOut)
def show(request: Request, changeset_id: uuid.UUID, who: Principal = Depends(principal)) -> ChangeSetOut:
    with app_context(request).db.read() as session:
        return service.show(session=session, org_id=who.org_id, changeset_id=changeset_id)


@router.get("/changesets/{changeset_id}/markdown")
def markdown(request: Request, changeset_id: uuid.UUID, who: Principal = Depends(principal)) -> Response:
    """The ChangeSet rendered for a pull-request comment."""
    with app_context(request).db.read() as session:
        doc = service.document(session=session, org_id=who.org_id, changeset_id=changeset_id)
    return Response(changeset_markdown(doc), media_type="text/markdown; charset=utf-8")


@router.post("/changesets/{changeset_id}/apply", response_model=ChangeSetOut)
def apply(request: Request, changeset_id: uuid.UUID, who: Principal = Depends(principal)) -> ChangeSetOut:
    with app_context(request).db.write() as session:
        return service.apply(
            session=session, principal=who, ctx=audit_context(request, who), changeset_id=changeset_id
        )


@router.post("/changesets/{changeset_id}/approve", response_model=ChangeSetOut)
def approve(
    request: Request, changeset_id: uuid.UUID, body: Approval, who: Principal = Depends(principal)
) -> ChangeSetOut:
    with app_context(request).db.write() as session:
        return service.approve(
            session=session,
            principal=who,
            ctx=audit_context(request, who),
            changeset_id=changeset_id,
            body=body,
        )


@router.post("/changesets/{changeset_id}/reject", response_model=ChangeSetOut)
def reject(
    request: Request, changeset_id: uuid.UUID, body: Reason, who: Principal = Depends(principal)
) -> ChangeSetOut:
    with app_context(request).db.write() as session:
        return service.reject(
            session=session,
            principal=who,
            ctx=audit_context(request, who),
            changeset_id=changeset_id,
            reason=body.reason,
        )


@router.post("/changesets/{changeset_id}/override", response_model=ChangeSetOut)
def override(
    request: Request, changeset_id: uuid.UUID, body: Reason, who: Principal = Depends(principal)
) -> ChangeSetOut:
    """Let a ChangeSet blocked by a mandatory policy go on (admins; the reason is audited)."""
    with app_context(request).db.write() as session:
        return service.override(
            session=session,
            principal=who,
            ctx=audit_context(request, who),
            changeset_id=changeset_id,
            reason=body.reason,
        )


@router.post("/changesets/{changeset_id}/discard", response_model=ChangeSetOut)
def discard(request: Request, changeset_id: uuid.UUID, who: Principal = Depends(principal)) -> ChangeSetOut:
    with app_context(request).db.write() as session:
        return service.discard(
            session=session, principal=who, ctx=audit_context(request, who), changeset_id=changeset_id
        )


@router.post("/changesets/{changeset_id}/rollback", response_model=ChangeSetOut, status_code=201)
def rollback(
    request: Request, changeset_id: uuid.UUID, body: Reason | None = None, who: Principal = Depends(principal)
) -> ChangeSetOut:
    """A new ChangeSet that returns every node the given one changed to its pre-change version."""
    with app_context(request).db.write() as session:
        return service.rollback(
            session=session,
            principal=who,
            ctx=audit_context(request, who),
            changeset_id=changeset_id,
            reason=body.reason if body else None,
        )


@router.get("/targets", response_model=list[TargetOut])
def targets(
    request: Request, environment: str | None = None, who: Principal = Depends(principal)
) -> list[TargetOut]:
    """What applied ChangeSets left running, with its drift schedule, last check and TTL."""
    with app_context(request).db.read() as session:
        return service.list_targets(session=session, org_id=who.org_id, environment=environment)


@router.post("/targets/check", response_model=list[TargetOut])
def check_targets(
    request: Request, body: CheckRequest, who: Principal = Depends(principal)
) -> list[TargetOut]:
    """Check the environment's applied nodes for drift now (then its drift policy acts)."""
    with app_context(request).db.write() as session:
        return service.check_now(
            session=session,
            principal=who,
            ctx=audit_context(request, who),
            environment=body.environment,
            keys=body.keys,
        )


@agent_router.get("/jobs/{job_id}/compose-bundle")
async def compose_bundle(request: Request, job: JobIdentity = Depends(job_identity)) -> Response:
    ctx = app_context(request)

    def read() -> bytes:
        with ctx.db.read() as session:
            return service.bundle_for_job(session=session, job=job)

    return Response(await run_in_threadpool(read), media_type="application/gzip")
