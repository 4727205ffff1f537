"""Managed resources of a workspace under /api/v1/workspaces/{project}/{name} (thin: parse, authorize,
call `resources`). Reads need any valid token; writes need the writer role.

A resource address (`terraform_data.web`, `data.T.N`, `module.net`) is one path segment: it has dots
but never a slash.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import APIRouter, Depends, Query, Request, Response

from xcloudflow.iam import service as iam
from xcloudflow.iam.schemas import Principal
from xcloudflow.server.deps import app_context, audit_context, principal
from xcloudflow.server.params import INT32_MAX, Number
from xcloudflow.workspaces import resources
from xcloudflow.workspaces.api import call_read
from xcloudflow.workspaces.resource_schemas import (
    DependencyCreate,
    DependencyList,
    DependencyOut,
    ResourceCompare,
    ResourceCreate,
    ResourceDetail,
    ResourcePage,
    ResourceRollback,
    ResourceUpdate,
    ResourceVersionDetail,
    ResourceVersionPage,
    SnapshotCreate,
    SnapshotList,
    SnapshotOut,
    SnapshotRestoreOut,
)

router = APIRouter(prefix="/api/v1/workspaces/{project}/{name}", tags=["workspace resources"])
RES = "/resources/{address}"
T = TypeVar("T")


def _writer(who: Principal) -> None:
    iam.require(who, "writer", action=resources.WRITE_ACTION)


def _write(request: Request, who: Principal, call: Callable[..., T], **kwargs: Any) -> T:
    """`call(session=, ctx=, org_id=, **kwargs)` in a write transaction; the caller checked `_writer`."""
    with app_context(request).db.write() as session:
        return call(session=session, ctx=audit_context(request, who), org_id=who.org_id, **kwargs)


# ---------------------------------------------------------------- resources


@router.get("/resources", response_model=ResourcePage)
def list_resources(
    request: Request,
    project: str,
    name: str,
    cursor: str | None = None,
    limit: int = Query(100),
    who: Principal = Depends(principal),
) -> ResourcePage:
    return call_read(
        request, who, resources.list_resources, project=project, name=name, cursor=cursor, limit=limit
    )


@router.post("/resources", response_model=ResourceDetail, status_code=201)
def create_resource(
    request: Request, project: str, name: str, body: ResourceCreate, who: Principal = Depends(principal)
) -> ResourceDetail:
    """Add a resource: `hcl` is exactly one resource, data or module block whose address is `address`."""
    _writer(who)
    resources.preparse(body.hcl)  # slow: before the write lock
    return _write(request, who, resources.create_resource, project=project, name=name, body=body)


@router.get(RES, response_model=ResourceDetail)
def show_resource(
    request: Request, project: str, name: str, address: str, who: Principal = Depends(principal)
) -> ResourceDetail:
    return call_read(request, who, resources.show_resource, project=project, name=name, address=address)


@router.put(RES, response_model=ResourceDetail)
def update_resource(
    request: Request,
    project: str,
    name: str,
    address: str,
    body: ResourceUpdate,
    who: Principal = Depends(principal),
) -> ResourceDetail:
    """A new version, made current (the same HCL as the current version changes nothing)."""
    _writer(who)
    resources.preparse(body.hcl)  # slow: before the write lock
    return _write(
        request, who, resources.update_resource, project=project, name=name, address=address, body=body
    )


@router.delete(RES, status_code=204, response_class=Response)
def delete_resource(
    request: Request, project: str, name: str, address: str, who: Principal = Depends(principal)
) -> Response:
    """Refused (409) while other resources depend on it."""
    _writer(who)
    _write(request, who, resources.delete_resource, project=project, name=name, address=address)
    return Response(status_code=204)


# ---------------------------------------------------------------- versions


@router.get(RES + "/versions", response_model=ResourceVersionPage)
def list_versions(
    request: Request,
    project: str,
    name: str,
    address: str,
    cursor: str | None = None,
    limit: int = Query(100),
    who: Principal = Depends(principal),
) -> ResourceVersionPage:
    return call_read(
        request,
        who,
        resources.list_versions,
        project=project,
        name=name,
        address=address,
        cursor=cursor,
        limit=limit,
    )


@router.get(RES + "/versions/{version}", response_model=ResourceVersionDetail)
def show_version(
    request: Request,
    project: str,
    name: str,
    address: str,
    version: Number,
    who: Principal = Depends(principal),
) -> ResourceVersionDetail:
    return call_read(
        request, who, resources.show_version, project=project, name=name, address=address, version=version
    )


@router.get(RES + "/compare", response_model=ResourceCompare)
def compare_versions(
    request: Request,
    project: str,
    name: str,
    address: str,
    from_: int = Query(alias="from", ge=1, le=INT32_MAX),
    to: int = Query(ge=1, le=INT32_MAX),
    who: Principal = Depends(principal),
) -> ResourceCompare:
    return call_read(
        request,
        who,
        resources.compare_versions,
        project=project,
        name=name,
        address=address,
        from_version=from_,
        to_version=to,
    )


@router.post(RES + "/rollback", response_model=ResourceDetail)
def rollback(
    request: Request,
    project: str,
    name: str,
    address: str,
    body: ResourceRollback,
    who: Principal = Depends(principal),
) -> ResourceDetail:
    """Make an existing version current again."""
    _writer(who)
    return _write(
        request, who, resources.rollback, project=project, name=name, address=address, version=body.version
    )


# ---------------------------------------------------------------- dependencies


@router.get("/dependencies", response_model=DependencyList)
def list_dependencies(
    request: Request, project: str, name: str, who: Principal = Depends(principal)
) -> DependencyList:
    return call_read(request, who, resources.list_dependencies, project=project, name=name)


@router.post(RES + "/dependencies", response_model=DependencyOut, status_code=201)
def add_dependency(
    request: Request,
    project: str,
    name: str,
    address: str,
    body: DependencyCreate,
    who: Principal = Depends(principal),
) -> DependencyOut:
    """Record that `address` depends on `body.depends_on` (both in the workspace; cycles refused)."""
    _writer(who)
    return _write(
        request,
        who,
        resources.add_dependency,
        project=project,
        name=name,
        address=address,
        depends_on=body.depends_on,
    )


@router.delete(RES + "/dependencies/{depends_on}", status_code=204, response_class=Response)
def remove_dependency(
    request: Request,
    project: str,
    name: str,
    address: str,
    depends_on: str,
    who: Principal = Depends(principal),
) -> Response:
    _writer(who)
    _write(
        request,
        who,
        resources.remove_dependency,
        project=project,
        name=name,
        address=address,
        depends_on=depends_on,
    )
    return Response(status_code=204)


# ---------------------------------------------------------------- snapshots


@router.get("/snapshots", response_model=SnapshotList)
def list_snapshots(
    request: Request, project: str, name: str, who: Principal = Depends(principal)
) -> SnapshotList:
    return call_read(request, who, resources.list_snapshots, project=project, name=name)


@router.post("/snapshots", response_model=SnapshotOut, status_code=201)
def create_snapshot(
    request: Request, project: str, name: str, body: SnapshotCreate, who: Principal = Depends(principal)
) -> SnapshotOut:
    """Record the current version of every managed resource."""
    _writer(who)
    return _write(request, who, resources.create_snapshot, project=project, name=name, body=body)


@router.get("/snapshots/{snapshot}", response_model=SnapshotOut)
def show_snapshot(
    request: Request, project: str, name: str, snapshot: str, who: Principal = Depends(principal)
) -> SnapshotOut:
    return call_read(request, who, resources.show_snapshot, project=project, name=name, snapshot=snapshot)


@router.post("/snapshots/{snapshot}/restore", response_model=SnapshotRestoreOut)
def restore_snapshot(
    request: Request, project: str, name: str, snapshot: str, who: Principal = Depends(principal)
) -> SnapshotRestoreOut:
    """Set each resource back to its version in the snapshot (409 if one no longer exists)."""
    _writer(who)
    return _write(request, who, resources.restore_snapshot, project=project, name=name, snapshot=snapshot)


@router.delete("/snapshots/{snapshot}", status_code=204, response_class=Response)
def delete_snapshot(
    request: Request, project: str, name: str, snapshot: str, who: Principal = Depends(principal)
) -> Response:
    _writer(who)
    _write(request, who, resources.delete_snapshot, project=project, name=name, snapshot=snapshot)
    return Response(status_code=204)


# ---------------------------------------------------------------- generated configuration


@router.get("/resources-main")
def resources_main(
    request: Request, project: str, name: str, who: Principal = Depends(principal)
) -> dict[str, str]:
    """The main.tf that a run in resources mode gets (preview)."""
    return call_read(request, who, resources.preview_main, project=project, name=name)
