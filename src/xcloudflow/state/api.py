"""JSON API for stacks and versions under /api/v1/stacks (thin: parse, authorize, call service)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import StreamingResponse

from xcloudflow.iam.schemas import Permission, Principal
from xcloudflow.iam.service import require, require_permission
from xcloudflow.metrics import STATE_WRITES
from xcloudflow.server.deps import app_context, audit_context, principal
from xcloudflow.server.params import INT32_MAX, Number
from xcloudflow.state import locking, service
from xcloudflow.state.backend_api import stream_state
from xcloudflow.state.documents import StackRef
from xcloudflow.state.schemas import (
    OutputsOut,
    RollbackRequest,
    StackLockOut,
    StackOut,
    StackPage,
    StateDiff,
    StateVersionOut,
    VersionPage,
)

router = APIRouter(prefix="/api/v1/stacks", tags=["stacks"])
STACK = "/{tool}/{project}/{stack}"


@router.get("", response_model=StackPage)
def list_stacks(
    request: Request,
    tool: str | None = None,
    project: str | None = None,
    include_deleted: bool = False,
    cursor: str | None = None,
    limit: int = Query(100),
    who: Principal = Depends(principal),
) -> StackPage:
    ctx = app_context(request)
    with ctx.db.read() as session:
        return service.list_stacks(
            session=session,
            org_id=who.org_id,
            tool=tool,
            project=project,
            include_deleted=include_deleted,
            cursor=cursor,
            limit=limit,
        )


@router.get("/locks", response_model=list[StackLockOut])
def list_locks(request: Request, who: Principal = Depends(principal)) -> list[StackLockOut]:
    """Every lock held in the organization, oldest first, with its age (a stale one is the oldest)."""
    with app_context(request).db.read() as session:
        return [
            StackLockOut(**lock.model_dump(), tool=ref.tool, project=ref.project, stack=ref.stack)
            for ref, lock in locking.list_locks(session=session, org_id=who.org_id)
        ]


@router.get(STACK, response_model=StackOut)
def show_stack(
    request: Request, tool: str, project: str, stack: str, who: Principal = Depends(principal)
) -> StackOut:
    ctx = app_context(request)
    with ctx.db.read() as session:
        return service.show_stack(
            session=session, org_id=who.org_id, ref=StackRef.parse(tool, project, stack)
        )


@router.get(STACK + "/versions", response_model=VersionPage)
def list_versions(
    request: Request,
    tool: str,
    project: str,
    stack: str,
    cursor: str | None = None,
    limit: int = Query(100),
    who: Principal = Depends(principal),
) -> VersionPage:
    ctx = app_context(request)
    with ctx.db.read() as session:
        return service.list_versions(
            session=session,
            org_id=who.org_id,
            ref=StackRef.parse(tool, project, stack),
            cursor=cursor,
            limit=limit,
        )


@router.get(STACK + "/versions/{version}", response_model=StateVersionOut)
def show_version(
    request: Request,
    tool: str,
    project: str,
    stack: str,
    version: Number,
    who: Principal = Depends(principal),
) -> StateVersionOut:
    ctx = app_context(request)
    with ctx.db.read() as session:
        return service.show_version(
            session=session, org_id=who.org_id, ref=StackRef.parse(tool, project, stack), version=version
        )


@router.get(
    STACK + "/versions/{version}/content",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/json": {}}}},
)
def version_content(
    request: Request,
    tool: str,
    project: str,
    stack: str,
    version: Number,
    who: Principal = Depends(principal),
) -> Response:
    """The stored bytes of a version (`state:read`: writers and admins)."""
    require_permission(who, Permission.STATE_READ, action="reading a raw state version")
    ctx = app_context(request)
    with ctx.db.read() as session:
        content = service.read_content(
            session=session,
            keyring=ctx.keyring,
            org_id=who.org_id,
            ref=StackRef.parse(tool, project, stack),
            version=version,
        )
    assert content is not None
    return stream_state(content)


@router.get(STACK + "/diff", response_model=StateDiff)
def diff(
    request: Request,
    tool: str,
    project: str,
    stack: str,
    from_: int = Query(alias="from", ge=1, le=INT32_MAX),
    to: int = Query(ge=1, le=INT32_MAX),
    who: Principal = Depends(principal),
) -> StateDiff:
    ctx = app_context(request)
    with ctx.db.read() as session:
        return service.diff_versions(
            session=session,
            keyring=ctx.keyring,
            org_id=who.org_id,
            ref=StackRef.parse(tool, project, stack),
            from_version=from_,
            to_version=to,
        )


@router.post(STACK + "/rollback", response_model=StateVersionOut, status_code=201)
def rollback(
    request: Request,
    tool: str,
    project: str,
    stack: str,
    body: RollbackRequest,
    who: Principal = Depends(principal),
) -> StateVersionOut:
    require(who, "writer", action="rolling back state")
    ctx = app_context(request)
    ref = StackRef.parse(tool, project, stack)
    with ctx.db.write() as session:
        out = service.rollback(
            session=session,
            keyring=ctx.keyring,
            ctx=audit_context(request, who),
            org_id=who.org_id,
            ref=ref,
            version=body.version,
            lock_id=body.lock_id,
            max_bytes=ctx.settings.state_max_bytes,
        )
    STATE_WRITES.labels(tool, "rollback").inc()
    return out


@router.get(STACK + "/outputs", response_model=OutputsOut)
def outputs(
    request: Request, tool: str, project: str, stack: str, who: Principal = Depends(principal)
) -> OutputsOut:
    ctx = app_context(request)
    with ctx.db.read() as session:
        return service.outputs(
            session=session,
            keyring=ctx.keyring,
            org_id=who.org_id,
            ref=StackRef.parse(tool, project, stack),
            reveal_sensitive=who.can(Permission.STATE_READ),
        )


@router.delete(STACK, response_model=StackOut)
def delete_stack(
    request: Request, tool: str, project: str, stack: str, who: Principal = Depends(principal)
) -> StackOut:
    require(who, "writer", action="deleting a stack")
    ctx = app_context(request)
    with ctx.db.write() as session:
        return service.delete_stack(
            session=session,
            ctx=audit_context(request, who),
            org_id=who.org_id,
            ref=StackRef.parse(tool, project, stack),
        )


@router.post(STACK + "/restore", response_model=StackOut)
def restore_stack(
    request: Request, tool: str, project: str, stack: str, who: Principal = Depends(principal)
) -> StackOut:
    require(who, "writer", action="restoring a stack")
    ctx = app_context(request)
    with ctx.db.write() as session:
        return service.restore_stack(
            session=session,
            ctx=audit_context(request, who),
            org_id=who.org_id,
            ref=StackRef.parse(tool, project, stack),
        )


@router.delete(STACK + "/versions/{version}", response_model=StateVersionOut)
def purge_version(
    request: Request,
    tool: str,
    project: str,
    stack: str,
    version: Number,
    who: Principal = Depends(principal),
) -> StateVersionOut:
    require(who, "admin", action="purging a state version")
    ctx = app_context(request)
    with ctx.db.write() as session:
        return service.purge_version(
            session=session,
            ctx=audit_context(request, who),
            org_id=who.org_id,
            ref=StackRef.parse(tool, project, stack),
            version=version,
        )
