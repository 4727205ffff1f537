"""Workspaces, their variables, code versions and hooks under /api/v1 (thin: parse, authorize, call).

A workspace is addressed as `{project}/{name}`. Code versions are uploaded as the raw request body
(a .tar.gz), read in a stream that stops at the configured limit before the archive is inspected.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import APIRouter, Depends, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from xcloudflow.errors import Invalid, TooLarge
from xcloudflow.iam import service as iam
from xcloudflow.iam.schemas import Principal
from xcloudflow.server.deps import app_context, audit_context, principal
from xcloudflow.server.params import INT32_MAX, Number, RowId
from xcloudflow.workspaces import inputs, service
from xcloudflow.workspaces.schemas import (
    CodeCompare,
    CodeVersionOut,
    HookCreate,
    HookOut,
    LockRequest,
    VariableOut,
    VariableSet,
    WorkspaceCreate,
    WorkspaceOut,
    WorkspacePage,
    WorkspaceSettings,
    WorkspaceUpdate,
)

router = APIRouter(prefix="/api/v1", tags=["workspaces"])
WS = "/workspaces/{project}/{name}"
T = TypeVar("T")


def workspace_settings(request: Request) -> WorkspaceSettings:
    """`app.state.workspaces` when the app was given one, else read from XCF_* once."""
    current = getattr(request.app.state, "workspaces", None)
    if not isinstance(current, WorkspaceSettings):
        current = WorkspaceSettings()
        request.app.state.workspaces = current
    return current


def call_read(request: Request, who: Principal, call: Callable[..., T], **kwargs: Any) -> T:
    """`call(session=, org_id=, **kwargs)` in a read transaction (workspace and resource reads)."""
    with app_context(request).db.read() as session:
        return call(session=session, org_id=who.org_id, **kwargs)


def _write(request: Request, who: Principal, call: Callable[..., T], **kwargs: Any) -> T:
    """`call(session=, principal=, ctx=, **kwargs)` in a write transaction (the service checks the role)."""
    with app_context(request).db.write() as session:
        return call(session=session, principal=who, ctx=audit_context(request, who), **kwargs)


# ---------------------------------------------------------------- workspaces


@router.post("/workspaces", response_model=WorkspaceOut, status_code=201)
def create_workspace(
    request: Request, body: WorkspaceCreate, who: Principal = Depends(principal)
) -> WorkspaceOut:
    """Create a workspace; its state is the stack `project/name` (an existing stack is adopted)."""
    return _write(request, who, service.create_workspace, body=body)


@router.get("/workspaces", response_model=WorkspacePage)
def list_workspaces(
    request: Request,
    project: str | None = None,
    tag: str | None = None,
    cursor: str | None = None,
    limit: int = Query(100),
    who: Principal = Depends(principal),
) -> WorkspacePage:
    return call_read(
        request, who, service.list_workspaces, project=project, tag=tag, cursor=cursor, limit=limit
    )


@router.get(WS, response_model=WorkspaceOut)
def show_workspace(
    request: Request, project: str, name: str, who: Principal = Depends(principal)
) -> WorkspaceOut:
    return call_read(request, who, service.show_workspace, project=project, name=name)


@router.patch(WS, response_model=WorkspaceOut)
def update_workspace(
    request: Request, project: str, name: str, body: WorkspaceUpdate, who: Principal = Depends(principal)
) -> WorkspaceOut:
    return _write(request, who, service.update_workspace, project=project, name=name, body=body)


@router.delete(WS, response_model=WorkspaceOut)
def delete_workspace(
    request: Request, project: str, name: str, who: Principal = Depends(principal)
) -> WorkspaceOut:
    """Delete the workspace with its variables, code versions, resources and hooks; the state stack stays."""
    return _write(request, who, service.delete_workspace, project=project, name=name)


@router.post(WS + "/lock", response_model=WorkspaceOut)
def lock_workspace(
    request: Request, project: str, name: str, body: LockRequest, who: Principal = Depends(principal)
) -> WorkspaceOut:
    """No new run starts while a workspace is locked."""
    return _write(request, who, service.lock, project=project, name=name, reason=body.reason)


@router.post(WS + "/unlock", response_model=WorkspaceOut)
def unlock_workspace(
    request: Request, project: str, name: str, who: Principal = Depends(principal)
) -> WorkspaceOut:
    return _write(request, who, service.unlock, project=project, name=name)


# ---------------------------------------------------------------- variables


@router.get(WS + "/vars", response_model=list[VariableOut])
def list_variables(
    request: Request, project: str, name: str, who: Principal = Depends(principal)
) -> list[VariableOut]:
    """Terraform and env variables; a sensitive one shows `"value": null`."""
    return call_read(request, who, inputs.list_variables, project=project, name=name)


@router.put(
    WS + "/vars/{category}/{key}",
    response_model=VariableOut,
    responses={201: {"model": VariableOut, "description": "created"}},
)
def set_variable(
    request: Request,
    response: Response,
    project: str,
    name: str,
    category: str,
    key: str,
    body: VariableSet,
    who: Principal = Depends(principal),
) -> VariableOut:
    """Create (201) or replace (200) a variable; a sensitive value is stored sealed and never returned."""
    out, created = _write(
        request,
        who,
        inputs.set_variable,
        keyring=app_context(request).keyring,
        project=project,
        name=name,
        category=category,
        key=key,
        body=body,
    )
    response.status_code = 201 if created else 200
    return out


@router.delete(WS + "/vars/{category}/{key}", response_model=VariableOut)
def delete_variable(
    request: Request, project: str, name: str, category: str, key: str, who: Principal = Depends(principal)
) -> VariableOut:
    return _write(
        request, who, inputs.delete_variable, project=project, name=name, category=category, key=key
    )


# ---------------------------------------------------------------- code versions


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise Invalid("Content-Length is not a number")
        if int(declared) > limit:
            raise TooLarge(f"the archive is {declared} bytes; the limit is {limit} bytes compressed")
    parts: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"the archive is over the limit of {limit} bytes compressed")
        parts.append(chunk)
    return b"".join(parts)


@router.post(
    WS + "/code-versions",
    response_model=CodeVersionOut,
    status_code=201,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/gzip": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
async def upload_code_version(
    request: Request,
    project: str,
    name: str,
    message: str | None = Query(None, max_length=4096),
    who: Principal = Depends(principal),
) -> CodeVersionOut:
    """Upload a configuration as the raw body (.tar.gz); it becomes the current code version."""
    iam.require(who, "writer", action="uploading workspace code")  # before reading a large body
    limits = workspace_settings(request).archive_limits
    data = await _read_body(request, limits.max_bytes)
    keyring = app_context(request).keyring

    def store() -> CodeVersionOut:
        return _write(
            request,
            who,
            service.upload_code_version,
            keyring=keyring,
            project=project,
            name=name,
            data=data,
            message=message,
            limits=limits,
        )

    return await run_in_threadpool(store)


@router.get(WS + "/code-versions", response_model=list[CodeVersionOut])
def list_code_versions(
    request: Request, project: str, name: str, who: Principal = Depends(principal)
) -> list[CodeVersionOut]:
    """Newest first."""
    return call_read(request, who, service.list_code_versions, project=project, name=name)


@router.get(WS + "/code-versions/compare", response_model=CodeCompare)
def compare_code_versions(
    request: Request,
    project: str,
    name: str,
    from_number: int = Query(alias="from", ge=1, le=INT32_MAX),
    to: int = Query(ge=1, le=INT32_MAX),
    who: Principal = Depends(principal),
) -> CodeCompare:
    """Files added, removed and changed (with a unified diff; binary files say so) from one version to another."""
    return call_read(
        request,
        who,
        service.compare_code_versions,
        keyring=app_context(request).keyring,
        project=project,
        name=name,
        from_number=from_number,
        to_number=to,
    )


@router.get(WS + "/code-versions/{number}", response_model=CodeVersionOut)
def show_code_version(
    request: Request, project: str, name: str, number: Number, who: Principal = Depends(principal)
) -> CodeVersionOut:
    return call_read(request, who, service.show_code_version, project=project, name=name, number=number)


@router.get(
    WS + "/code-versions/{number}/archive",
    response_class=Response,
    responses={200: {"content": {"application/gzip": {}}}},
)
def code_version_archive(
    request: Request, project: str, name: str, number: Number, who: Principal = Depends(principal)
) -> Response:
    """The .tar.gz as uploaded."""
    keyring = app_context(request).keyring
    data = call_read(
        request, who, service.read_code_archive, keyring=keyring, project=project, name=name, number=number
    )
    return Response(
        data,
        media_type="application/gzip",
        headers={"Content-Disposition": f'attachment; filename="{name}-v{number}.tar.gz"'},
    )


@router.post(WS + "/code-versions/{number}/rollback", response_model=CodeVersionOut)
def rollback_code_version(
    request: Request, project: str, name: str, number: Number, who: Principal = Depends(principal)
) -> CodeVersionOut:
    """Make this code version current again: runs queued from now on use it."""
    return _write(request, who, service.rollback_code_version, project=project, name=name, number=number)


# ---------------------------------------------------------------- hooks


@router.get(WS + "/hooks", response_model=list[HookOut])
def list_hooks(
    request: Request, project: str, name: str, who: Principal = Depends(principal)
) -> list[HookOut]:
    return call_read(request, who, inputs.list_hooks, project=project, name=name)


@router.post(WS + "/hooks", response_model=HookOut, status_code=201)
def create_hook(
    request: Request, project: str, name: str, body: HookCreate, who: Principal = Depends(principal)
) -> HookOut:
    """Add a hook run by the agent at a stage of every run (an http hook's secret is write-only)."""
    keyring = app_context(request).keyring
    return _write(request, who, inputs.create_hook, keyring=keyring, project=project, name=name, body=body)


@router.get(WS + "/hooks/{hook_id}", response_model=HookOut)
def show_hook(
    request: Request, project: str, name: str, hook_id: RowId, who: Principal = Depends(principal)
) -> HookOut:
    return call_read(request, who, inputs.show_hook, project=project, name=name, hook_id=hook_id)


@router.delete(WS + "/hooks/{hook_id}", response_model=HookOut)
def delete_hook(
    request: Request, project: str, name: str, hook_id: RowId, who: Principal = Depends(principal)
) -> HookOut:
    return _write(request, who, inputs.delete_hook, project=project, name=name, hook_id=hook_id)
