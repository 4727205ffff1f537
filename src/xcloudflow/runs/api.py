"""Runs under /api/v1 for people: start, list, show, confirm, discard, cancel, logs (live over SSE), plan."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from xcloudflow.errors import Conflict, Invalid
from xcloudflow.iam.schemas import Principal
from xcloudflow.runs import logs, service
from xcloudflow.runs.drift import list_findings
from xcloudflow.runs.schemas import DriftFindingOut, RunCreate, RunLogPage, RunOut, RunPage
from xcloudflow.server.deps import AppContext, app_context, audit_context, principal

router = APIRouter(prefix="/api/v1", tags=["runs"])
FOLLOW_POLL_SECONDS = 0.25
KEEPALIVE_SECONDS = 15.0


def _start(request: Request, project: str, name: str, body: RunCreate, who: Principal, source: str) -> RunOut:
    ctx = app_context(request)
    with ctx.db.write() as session:
        return service.create_run(
            session=session,
            keyring=ctx.keyring,
            principal=who,
            ctx=audit_context(request, who),
            project=project,
            name=name,
            body=body,
            source=source,
        )


@router.post("/workspaces/{project}/{name}/runs", response_model=RunOut, status_code=201)
def create_run(
    request: Request, project: str, name: str, body: RunCreate, who: Principal = Depends(principal)
) -> RunOut:
    """Start a run; it waits behind the run holding the workspace, if any (see queue_position)."""
    return _start(request, project, name, body, who, "api")


@router.get("/workspaces/{project}/{name}/runs", response_model=RunPage)
def list_workspace_runs(
    request: Request,
    project: str,
    name: str,
    stage: str | None = None,
    cursor: str | None = None,
    limit: int = Query(50, ge=1, le=500),
    who: Principal = Depends(principal),
) -> RunPage:
    with app_context(request).db.read() as session:
        return service.list_runs(
            session=session,
            org_id=who.org_id,
            project=project,
            name=name,
            stage=stage,
            cursor=cursor,
            limit=limit,
        )


@router.get("/workspaces/{project}/{name}/drift", response_model=list[DriftFindingOut])
def drift_findings(
    request: Request,
    project: str,
    name: str,
    limit: int = Query(50, ge=1, le=500),
    who: Principal = Depends(principal),
) -> list[DriftFindingOut]:
    with app_context(request).db.read() as session:
        return list_findings(session=session, org_id=who.org_id, project=project, name=name, limit=limit)


@router.post("/workspaces/{project}/{name}/drift/check", response_model=RunOut, status_code=201)
def drift_check(request: Request, project: str, name: str, who: Principal = Depends(principal)) -> RunOut:
    """Run a drift check now: a refresh-only plan that never applies and records what changed outside."""
    return _start(request, project, name, RunCreate(kind="refresh_only", message="drift check"), who, "drift")


@router.get("/runs", response_model=RunPage)
def list_runs(
    request: Request,
    workspace: str | None = Query(None, description='"project/name": the runs of one workspace'),
    project: str | None = None,
    stage: str | None = None,
    cursor: str | None = None,
    limit: int = Query(50, ge=1, le=500),
    who: Principal = Depends(principal),
) -> RunPage:
    name: str | None = None
    if workspace is not None:
        project, sep, name = workspace.partition("/")
        if not sep or not project or not name:
            raise Invalid(
                f"workspace must be project/name, not {workspace!r}", details={"field": "workspace"}
            )
    with app_context(request).db.read() as session:
        return service.list_runs(
            session=session,
            org_id=who.org_id,
            project=project,
            name=name,
            stage=stage,
            cursor=cursor,
            limit=limit,
        )


@router.get("/runs/{run_id}", response_model=RunOut)
def show_run(request: Request, run_id: uuid.UUID, who: Principal = Depends(principal)) -> RunOut:
    with app_context(request).db.read() as session:
        return service.show_run(session=session, org_id=who.org_id, run_id=run_id)


@router.post("/runs/{run_id}/confirm", response_model=RunOut)
def confirm(request: Request, run_id: uuid.UUID, who: Principal = Depends(principal)) -> RunOut:
    """Apply the saved plan. 409 when the state changed since the plan (the run then errors as stale)."""
    with app_context(request).db.write() as session:
        out = service.confirm(session=session, principal=who, ctx=audit_context(request, who), run_id=run_id)
    if out.stage == "errored" and out.error_class == "stale":
        raise Conflict(out.error or "the plan is stale", details={"run": str(out.id), "stage": out.stage})
    return out


@router.post("/runs/{run_id}/discard", response_model=RunOut)
def discard(request: Request, run_id: uuid.UUID, who: Principal = Depends(principal)) -> RunOut:
    with app_context(request).db.write() as session:
        return service.discard(session=session, principal=who, ctx=audit_context(request, who), run_id=run_id)


@router.post("/runs/{run_id}/cancel", response_model=RunOut)
def cancel(request: Request, run_id: uuid.UUID, who: Principal = Depends(principal)) -> RunOut:
    with app_context(request).db.write() as session:
        return service.cancel(session=session, principal=who, ctx=audit_context(request, who), run_id=run_id)


@router.get("/runs/{run_id}/plan")
def plan_json(request: Request, run_id: uuid.UUID, who: Principal = Depends(principal)) -> Response:
    """The plan as `terraform show -json` printed it, with sensitive values masked by the agent."""
    ctx = app_context(request)
    with ctx.db.read() as session:
        data = service.plan_document(session=session, keyring=ctx.keyring, org_id=who.org_id, run_id=run_id)
    return Response(data, media_type="application/json")


def _read(ctx: AppContext, org_id: int, run_id: uuid.UUID, after: str | None) -> RunLogPage:
    with ctx.db.read() as session:
        return logs.read(session=session, org_id=org_id, run_id=run_id, after=after)


def _sse(event: str, data: object, event_id: str | None = None) -> str:
    head = f"id: {event_id}\n" if event_id else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, default=str)}\n\n"


async def _follow(
    request: Request, ctx: AppContext, org_id: int, run_id: uuid.UUID, after: str | None
) -> AsyncIterator[str]:
    stage: str | None = None
    idle = 0.0
    while True:
        page = await run_in_threadpool(_read, ctx, org_id, run_id, after)
        if page.stage != stage:
            stage = page.stage
            yield _sse("stage", {"stage": stage})
        for line in page.items:
            yield _sse("log", line.model_dump(mode="json"), line.cursor)
        after = page.last_cursor
        if page.done:
            yield _sse("end", {"stage": page.stage})
            return
        if page.items or page.more:
            idle = 0.0
            continue
        if await request.is_disconnected():
            return
        await asyncio.sleep(FOLLOW_POLL_SECONDS)
        idle += FOLLOW_POLL_SECONDS
        if idle >= KEEPALIVE_SECONDS:
            idle = 0.0
            yield ": keep-alive\n\n"


@router.get("/runs/{run_id}/logs", response_model=RunLogPage)
async def run_logs(
    request: Request,
    run_id: uuid.UUID,
    after: str | None = None,
    limit: int = Query(500, ge=1, le=5000),
    follow: bool = False,
    last_event_id: str | None = Header(default=None),
    who: Principal = Depends(principal),
) -> Response | RunLogPage:
    """The run's log lines (masked); `follow=true` streams them as Server-Sent Events until the run is final
    or waits for confirmation (`event: end`)."""
    ctx = app_context(request)
    start = after or last_event_id
    if not follow:

        def page() -> RunLogPage:
            with ctx.db.read() as session:
                return logs.read(session=session, org_id=who.org_id, run_id=run_id, after=start, limit=limit)

        return await run_in_threadpool(page)
    await run_in_threadpool(_read, ctx, who.org_id, run_id, start)  # 404 / bad cursor before streaming
    return StreamingResponse(
        _follow(request, ctx, who.org_id, run_id, start),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
