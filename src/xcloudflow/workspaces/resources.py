"""Managed resources: a workspace configured resource by resource instead of by an uploaded archive.

Each resource is one `resource`, `data` or `module` block whose HCL lives in immutable, numbered
versions; one version is current. Snapshots record the current version of every resource; recorded
dependencies become `depends_on` in the generated main.tf, which `generate_main` builds in dependency
order for runs (and for the preview route). Validation parses with python-hcl2 (see `hcl.py`); the
HCL is stored and generated as written, never re-rendered.

Writes take the workspace row FOR UPDATE so that version numbers, dependency checks and snapshots of
one workspace serialize. Callers own the transaction; nothing here commits.
"""

from __future__ import annotations

import difflib
import hashlib
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from typing import Literal

from sqlalchemy import delete, select, tuple_
from sqlalchemy.orm import Session, aliased

from xcloudflow.audit.schemas import AuditContext
from xcloudflow.db.base import utcnow
from xcloudflow.db.pagination import check_limit, decode_cursor, page_of
from xcloudflow.errors import Conflict, Invalid, NotFound, TooLarge
from xcloudflow.workspaces import hcl
from xcloudflow.workspaces.models import (
    ResourceCodeVersion,
    ResourceDependency,
    Workspace,
    WorkspaceResource,
    WorkspaceResourceSnapshot,
)
from xcloudflow.workspaces.resource_schemas import (
    DependencyList,
    DependencyOut,
    ResourceCompare,
    ResourceCreate,
    ResourceDetail,
    ResourceKind,
    ResourceOut,
    ResourcePage,
    ResourceUpdate,
    ResourceVersionDetail,
    ResourceVersionOut,
    ResourceVersionPage,
    RestoredResource,
    SnapshotCreate,
    SnapshotList,
    SnapshotOut,
    SnapshotRestoreOut,
)
from xcloudflow.workspaces.service import first_or_not_found, get_workspace, record_change, resource_name

MAX_HCL_BYTES = 256 * 1024
WRITE_ACTION = "changing managed resources"


def _where(ws: Workspace) -> str:
    return f"{ws.project}/{ws.name}"


def _audit_resource(ws: Workspace, address: str | None = None, tail: str = "") -> str:
    base = resource_name(ws)
    return f"{base}/resources/{address}{tail}" if address else f"{base}{tail}"


def _kind(address: str) -> ResourceKind:
    return (
        "data" if address.startswith("data.") else "module" if address.startswith("module.") else "resource"
    )


def _type_and_name(address: str) -> tuple[str, str]:
    """(resource_type, resource_name) as stored: T.N and data.T.N -> (T, N); module.N -> ("module", N)."""
    parts = address.split(".")
    return (parts[-2], parts[-1])


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# ---------------------------------------------------------------- checks


def check_address(address: str) -> str:
    if len(address) > 255 or not hcl.is_valid_address(address):
        raise Invalid(
            f"address {address!r} is not a resource address: TYPE.NAME, data.TYPE.NAME or module.NAME "
            "(letters, digits, _ and -, not starting with a digit or -), at most 255 characters",
            details={"field": "address"},
        )
    if any(len(p) > 128 for p in address.split(".")):
        raise Invalid(f"address {address!r}: a type or name is longer than 128 characters")
    return address


def check_hcl(address: str, text: str) -> hcl.Block:
    """The block of `text` if it is exactly one block whose address is `address`; else Invalid/TooLarge."""
    size = len(text.encode())
    if size > MAX_HCL_BYTES:
        raise TooLarge(
            f"the HCL of {address} is {size} bytes; the limit is {MAX_HCL_BYTES} (256 KiB)",
            details={"field": "hcl", "limit": MAX_HCL_BYTES},
        )
    if "\x00" in text:
        raise Invalid(f"the HCL of {address} contains a NUL character", details={"field": "hcl"})
    try:
        block = hcl.parse_block(text)
    except hcl.HclProblem as exc:
        raise Invalid(
            f"the HCL of {address} is not valid: {exc}",
            details={"field": "hcl", "address": address, "line": exc.line},
        ) from None
    if block.address != address:
        raise Invalid(
            f"the HCL of {address} declares {block.address} (line {block.line}): the block's address must "
            "be the resource's address",
            details={"field": "hcl", "address": address, "line": block.line},
        )
    return block


def preparse(text: str) -> None:
    """Parse `text` now (the result is cached), outside any transaction; the checks come later."""
    if len(text) <= MAX_HCL_BYTES:
        hcl.parse_result(text)


# ---------------------------------------------------------------- lookups


def _resource(session: Session, ws: Workspace, address: str, *, lock: bool = False) -> WorkspaceResource:
    missing = f"no resource {address} in workspace {_where(ws)}"
    return first_or_not_found(
        session, WorkspaceResource, missing, lock=lock, workspace_id=ws.id, address=address
    )


def _workspace_resource(
    session: Session,
    org_id: int,
    project: str,
    name: str,
    address: str,
    *,
    lock: Literal["workspace", "both"] | None = None,
) -> tuple[Workspace, WorkspaceResource]:
    """The workspace at `project/name` and its resource at `address`; `lock` takes the workspace row
    (and with "both" the resource row too) FOR UPDATE."""
    ws = get_workspace(session=session, org_id=org_id, project=project, name=name, lock=lock is not None)
    return ws, _resource(session, ws, address, lock=lock == "both")


def _version(session: Session, ws: Workspace, res: WorkspaceResource, version: int) -> ResourceCodeVersion:
    missing = (
        f"resource {res.address} of workspace {_where(ws)} has no version {version} "
        f"(versions 1 to {res.version_seq})"
    )
    return first_or_not_found(session, ResourceCodeVersion, missing, resource_id=res.id, version=version)


def _edges(session: Session, workspace_id: int) -> list[tuple[str, str]]:
    """(resource, depends_on) addresses of the workspace's recorded dependencies."""
    target = aliased(WorkspaceResource)
    rows = session.execute(
        select(WorkspaceResource.address, target.address)
        .join(ResourceDependency, ResourceDependency.resource_id == WorkspaceResource.id)
        .join(target, target.id == ResourceDependency.depends_on_id)
        .where(ResourceDependency.workspace_id == workspace_id)
        .order_by(WorkspaceResource.address, target.address)
    ).all()
    return [(a, b) for a, b in rows]


def _out(res: WorkspaceResource, sha256: str, depends_on: list[str]) -> ResourceOut:
    return ResourceOut(
        address=res.address,
        kind=_kind(res.address),
        resource_type=res.resource_type,
        resource_name=res.resource_name,
        description=res.description,
        current_version=res.current_version,
        latest_version=res.version_seq,
        sha256=sha256,
        depends_on=depends_on,
        created_at=res.created_at,
        created_by=res.created_by,
        updated_at=res.updated_at,
    )


def _detail(session: Session, ws: Workspace, res: WorkspaceResource) -> ResourceDetail:
    current = _version(session, ws, res, res.current_version)
    edges = _edges(session, ws.id)
    out = _out(res, current.sha256, [b for a, b in edges if a == res.address])
    return ResourceDetail(
        **out.model_dump(), hcl=current.hcl, dependents=[a for a, b in edges if b == res.address]
    )


def _version_out(v: ResourceCodeVersion, res: WorkspaceResource) -> ResourceVersionOut:
    return ResourceVersionOut(
        version=v.version,
        sha256=v.sha256,
        size=len(v.hcl.encode()),
        message=v.message,
        current=v.version == res.current_version,
        created_at=v.created_at,
        created_by=v.created_by,
    )


def _add_version(
    session: Session,
    res: WorkspaceResource,
    version: int,
    body: ResourceCreate | ResourceUpdate,
    now: datetime,
    actor: str | None,
) -> str:
    """Add version `version` of `res` with the HCL and message of `body`; returns its sha256."""
    sha256 = _sha256(body.hcl)
    session.add(
        ResourceCodeVersion(
            resource_id=res.id,
            version=version,
            hcl=body.hcl,
            sha256=sha256,
            message=body.message,
            created_at=now,
            created_by=actor,
        )
    )
    return sha256


# ---------------------------------------------------------------- resources


def list_resources(
    *, session: Session, org_id: int, project: str, name: str, cursor: str | None = None, limit: int = 100
) -> ResourcePage:
    """By address."""
    check_limit(limit)
    ws = get_workspace(session=session, org_id=org_id, project=project, name=name)
    stmt = (
        select(WorkspaceResource, ResourceCodeVersion.sha256)
        .join(
            ResourceCodeVersion,
            (ResourceCodeVersion.resource_id == WorkspaceResource.id)
            & (ResourceCodeVersion.version == WorkspaceResource.current_version),
        )
        .where(WorkspaceResource.workspace_id == ws.id)
    )
    after = decode_cursor(cursor)
    if after is not None:
        if not isinstance(after, str):
            raise Invalid("cursor is not one this server handed out", details={"field": "cursor"})
        stmt = stmt.where(WorkspaceResource.address > after)
    rows = session.execute(stmt.order_by(WorkspaceResource.address).limit(limit + 1)).all()
    page, next_cursor = page_of(rows, limit, lambda r: r[0].address)
    deps: dict[str, list[str]] = defaultdict(list)
    for a, b in _edges(session, ws.id):
        deps[a].append(b)
    return ResourcePage(
        items=[_out(res, sha, deps[res.address]) for res, sha in page], next_cursor=next_cursor
    )


def show_resource(*, session: Session, org_id: int, project: str, name: str, address: str) -> ResourceDetail:
    ws, res = _workspace_resource(session, org_id, project, name, address)
    return _detail(session, ws, res)


def create_resource(
    *, session: Session, ctx: AuditContext, org_id: int, project: str, name: str, body: ResourceCreate
) -> ResourceDetail:
    ws = get_workspace(session=session, org_id=org_id, project=project, name=name, lock=True)
    address = check_address(body.address)
    check_hcl(address, body.hcl)
    exists = session.scalars(
        select(WorkspaceResource.id).where(
            WorkspaceResource.workspace_id == ws.id, WorkspaceResource.address == address
        )
    ).first()
    if exists is not None:
        raise Conflict(
            f"workspace {_where(ws)} already has a resource {address}: "
            f"PUT /api/v1/workspaces/{_where(ws)}/resources/{address} makes a new version"
        )
    rtype, rname = _type_and_name(address)
    now = utcnow()
    res = WorkspaceResource(
        workspace_id=ws.id,
        address=address,
        resource_type=rtype,
        resource_name=rname,
        description=body.description,
        current_version=1,
        version_seq=1,
        created_at=now,
        created_by=ctx.actor,
        updated_at=now,
    )
    session.add(res)
    session.flush()
    details = {"version": 1, "sha256": _add_version(session, res, 1, body, now, ctx.actor)}
    record_change(session, ctx, "workspaces.resource.create", _audit_resource(ws, address), details)
    return _detail(session, ws, res)


def update_resource(
    *,
    session: Session,
    ctx: AuditContext,
    org_id: int,
    project: str,
    name: str,
    address: str,
    body: ResourceUpdate,
) -> ResourceDetail:
    """A new version, made current; the same HCL as the current version changes nothing."""
    ws, res = _workspace_resource(session, org_id, project, name, address, lock="both")
    check_hcl(address, body.hcl)
    current = _version(session, ws, res, res.current_version)
    description_changes = "description" in body.model_fields_set and body.description != res.description
    if current.hcl == body.hcl and not description_changes:
        return _detail(session, ws, res)
    now = utcnow()
    details: dict[str, object] = {}
    if current.hcl != body.hcl:
        res.version_seq += 1
        details = {
            "from_version": res.current_version,
            "version": res.version_seq,
            "sha256": _add_version(session, res, res.version_seq, body, now, ctx.actor),
        }
        res.current_version = res.version_seq
    if description_changes:
        res.description = body.description
        details["description"] = True
    res.updated_at = now
    record_change(session, ctx, "workspaces.resource.update", _audit_resource(ws, address), details)
    return _detail(session, ws, res)


def delete_resource(
    *, session: Session, ctx: AuditContext, org_id: int, project: str, name: str, address: str
) -> None:
    """Refused while other resources depend on it; its versions and its own dependencies go with it."""
    ws, res = _workspace_resource(session, org_id, project, name, address, lock="both")
    dependents = sorted(a for a, b in _edges(session, ws.id) if b == address)
    if dependents:
        raise Conflict(
            f"cannot delete {address} from workspace {_where(ws)}: {', '.join(dependents)} depend on it; "
            "remove those dependencies first",
            details={"dependents": dependents},
        )
    session.execute(delete(ResourceDependency).where(ResourceDependency.resource_id == res.id))
    session.execute(delete(ResourceCodeVersion).where(ResourceCodeVersion.resource_id == res.id))
    versions = res.version_seq
    session.delete(res)
    details = {"current_version": res.current_version, "versions": versions}
    record_change(session, ctx, "workspaces.resource.delete", _audit_resource(ws, address), details)


# ---------------------------------------------------------------- versions


def list_versions(
    *,
    session: Session,
    org_id: int,
    project: str,
    name: str,
    address: str,
    cursor: str | None = None,
    limit: int = 100,
) -> ResourceVersionPage:
    """Newest first."""
    check_limit(limit)
    _, res = _workspace_resource(session, org_id, project, name, address)
    stmt = select(ResourceCodeVersion).where(ResourceCodeVersion.resource_id == res.id)
    after = decode_cursor(cursor)
    if after is not None:
        if not isinstance(after, int) or isinstance(after, bool):
            raise Invalid("cursor is not one this server handed out", details={"field": "cursor"})
        stmt = stmt.where(ResourceCodeVersion.version < after)
    rows = session.scalars(stmt.order_by(ResourceCodeVersion.version.desc()).limit(limit + 1)).all()
    page, next_cursor = page_of(rows, limit, lambda v: v.version)
    return ResourceVersionPage(items=[_version_out(v, res) for v in page], next_cursor=next_cursor)


def show_version(
    *, session: Session, org_id: int, project: str, name: str, address: str, version: int
) -> ResourceVersionDetail:
    ws, res = _workspace_resource(session, org_id, project, name, address)
    v = _version(session, ws, res, version)
    return ResourceVersionDetail(**_version_out(v, res).model_dump(), address=address, hcl=v.hcl)


def compare_versions(
    *,
    session: Session,
    org_id: int,
    project: str,
    name: str,
    address: str,
    from_version: int,
    to_version: int,
) -> ResourceCompare:
    ws, res = _workspace_resource(session, org_id, project, name, address)
    old = _version(session, ws, res, from_version)
    new = _version(session, ws, res, to_version)
    diff = difflib.unified_diff(
        old.hcl.splitlines(keepends=True),
        new.hcl.splitlines(keepends=True),
        fromfile=f"{address} v{from_version}",
        tofile=f"{address} v{to_version}",
    )
    text = "".join(
        line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in diff
    )
    return ResourceCompare(from_=from_version, to=to_version, diff=text)


def rollback(
    *, session: Session, ctx: AuditContext, org_id: int, project: str, name: str, address: str, version: int
) -> ResourceDetail:
    """Make an existing version current again (no new version: versions are immutable)."""
    ws, res = _workspace_resource(session, org_id, project, name, address, lock="both")
    _version(session, ws, res, version)
    if version == res.current_version:
        return _detail(session, ws, res)
    previous = res.current_version
    res.current_version = version
    res.updated_at = utcnow()
    details = {"from_version": previous, "to_version": version}
    record_change(session, ctx, "workspaces.resource.rollback", _audit_resource(ws, address), details)
    return _detail(session, ws, res)


# ---------------------------------------------------------------- dependencies


def list_dependencies(*, session: Session, org_id: int, project: str, name: str) -> DependencyList:
    ws = get_workspace(session=session, org_id=org_id, project=project, name=name)
    target = aliased(WorkspaceResource)
    rows = session.execute(
        select(WorkspaceResource.address, target.address, ResourceDependency.created_at)
        .join(ResourceDependency, ResourceDependency.resource_id == WorkspaceResource.id)
        .join(target, target.id == ResourceDependency.depends_on_id)
        .where(ResourceDependency.workspace_id == ws.id)
        .order_by(WorkspaceResource.address, target.address)
    ).all()
    return DependencyList(items=[DependencyOut(resource=a, depends_on=b, created_at=at) for a, b, at in rows])


def _path(edges: Iterable[tuple[str, str]], start: str, goal: str) -> list[str] | None:
    """A dependency path start -> ... -> goal (depth-first, neighbours by address), or None."""
    graph: dict[str, list[str]] = defaultdict(list)
    for a, b in edges:
        graph[a].append(b)
    stack: list[tuple[str, list[str]]] = [(start, [start])]
    seen: set[str] = set()
    while stack:
        node, path = stack.pop()
        if node == goal:
            return path
        if node in seen:
            continue
        seen.add(node)
        for nxt in sorted(graph[node], reverse=True):
            if nxt not in seen:
                stack.append((nxt, [*path, nxt]))
    return None


def add_dependency(
    *,
    session: Session,
    ctx: AuditContext,
    org_id: int,
    project: str,
    name: str,
    address: str,
    depends_on: str,
) -> DependencyOut:
    ws, res = _workspace_resource(session, org_id, project, name, address, lock="workspace")
    if depends_on == address:
        raise Invalid(f"{address} cannot depend on itself", details={"field": "depends_on"})
    try:
        target = _resource(session, ws, depends_on)
    except NotFound:
        raise Invalid(
            f"{address} cannot depend on {depends_on}: workspace {_where(ws)} has no such resource",
            details={"field": "depends_on"},
        ) from None
    edges = _edges(session, ws.id)
    if (address, depends_on) in edges:
        raise Conflict(f"{address} already depends on {depends_on}")
    cycle = _path(edges, depends_on, address)
    if cycle is not None:
        loop = " -> ".join([address, *cycle])
        raise Conflict(
            f"{address} cannot depend on {depends_on}: that would make a cycle {loop}",
            details={"cycle": [address, *cycle]},
        )
    row = ResourceDependency(
        workspace_id=ws.id, resource_id=res.id, depends_on_id=target.id, created_at=utcnow()
    )
    session.add(row)
    details = {"depends_on": depends_on}
    record_change(session, ctx, "workspaces.resource.dependency.add", _audit_resource(ws, address), details)
    return DependencyOut(resource=address, depends_on=depends_on, created_at=row.created_at)


def remove_dependency(
    *,
    session: Session,
    ctx: AuditContext,
    org_id: int,
    project: str,
    name: str,
    address: str,
    depends_on: str,
) -> None:
    ws, res = _workspace_resource(session, org_id, project, name, address, lock="workspace")
    target = session.scalars(
        select(WorkspaceResource).where(
            WorkspaceResource.workspace_id == ws.id, WorkspaceResource.address == depends_on
        )
    ).first()
    row = (
        session.scalars(
            select(ResourceDependency).where(
                ResourceDependency.resource_id == res.id, ResourceDependency.depends_on_id == target.id
            )
        ).first()
        if target is not None
        else None
    )
    if row is None:
        raise NotFound(f"{address} does not depend on {depends_on} in workspace {_where(ws)}")
    session.delete(row)
    details = {"depends_on": depends_on}
    record_change(
        session, ctx, "workspaces.resource.dependency.remove", _audit_resource(ws, address), details
    )


# ---------------------------------------------------------------- snapshots


def _snapshot_out(s: WorkspaceResourceSnapshot) -> SnapshotOut:
    return SnapshotOut(
        name=s.name,
        description=s.description,
        items=dict(sorted(s.items.items())),
        created_at=s.created_at,
        created_by=s.created_by,
    )


def _snapshot(session: Session, ws: Workspace, snapshot: str) -> WorkspaceResourceSnapshot:
    missing = f"no snapshot {snapshot!r} in workspace {_where(ws)}"
    return first_or_not_found(session, WorkspaceResourceSnapshot, missing, workspace_id=ws.id, name=snapshot)


def list_snapshots(*, session: Session, org_id: int, project: str, name: str) -> SnapshotList:
    ws = get_workspace(session=session, org_id=org_id, project=project, name=name)
    rows = session.scalars(
        select(WorkspaceResourceSnapshot)
        .where(WorkspaceResourceSnapshot.workspace_id == ws.id)
        .order_by(WorkspaceResourceSnapshot.created_at.desc(), WorkspaceResourceSnapshot.id.desc())
    ).all()
    return SnapshotList(items=[_snapshot_out(s) for s in rows])


def show_snapshot(*, session: Session, org_id: int, project: str, name: str, snapshot: str) -> SnapshotOut:
    ws = get_workspace(session=session, org_id=org_id, project=project, name=name)
    return _snapshot_out(_snapshot(session, ws, snapshot))


def create_snapshot(
    *, session: Session, ctx: AuditContext, org_id: int, project: str, name: str, body: SnapshotCreate
) -> SnapshotOut:
    ws = get_workspace(session=session, org_id=org_id, project=project, name=name, lock=True)
    exists = session.scalars(
        select(WorkspaceResourceSnapshot.id).where(
            WorkspaceResourceSnapshot.workspace_id == ws.id, WorkspaceResourceSnapshot.name == body.name
        )
    ).first()
    if exists is not None:
        raise Conflict(f"workspace {_where(ws)} already has a snapshot {body.name!r}")
    items = {
        a: v
        for a, v in session.execute(
            select(WorkspaceResource.address, WorkspaceResource.current_version)
            .where(WorkspaceResource.workspace_id == ws.id)
            .order_by(WorkspaceResource.address)
        ).all()
    }
    if not items:
        raise Invalid(f"workspace {_where(ws)} has no managed resources to snapshot")
    row = WorkspaceResourceSnapshot(
        workspace_id=ws.id,
        name=body.name,
        description=body.description,
        items=items,
        created_at=utcnow(),
        created_by=ctx.actor,
    )
    session.add(row)
    audited = _audit_resource(ws, tail=f"/snapshots/{body.name}")
    record_change(session, ctx, "workspaces.snapshot.create", audited, {"items": items})
    return _snapshot_out(row)


def restore_snapshot(
    *, session: Session, ctx: AuditContext, org_id: int, project: str, name: str, snapshot: str
) -> SnapshotRestoreOut:
    """Set each resource named by the snapshot back to its version there; resources created since are
    left alone. Refused (nothing changes) when a named resource or version no longer exists."""
    ws = get_workspace(session=session, org_id=org_id, project=project, name=name, lock=True)
    snap = _snapshot(session, ws, snapshot)
    resources = {
        r.address: r
        for r in session.scalars(
            select(WorkspaceResource).where(WorkspaceResource.workspace_id == ws.id).with_for_update()
        )
    }
    missing = sorted(a for a in snap.items if a not in resources)
    if missing:
        raise Conflict(
            f"snapshot {snapshot!r} of workspace {_where(ws)} names resources that no longer exist: "
            f"{', '.join(missing)}",
            details={"missing": missing},
        )
    present = {
        (rid, v)
        for rid, v in session.execute(
            select(ResourceCodeVersion.resource_id, ResourceCodeVersion.version).where(
                ResourceCodeVersion.resource_id.in_([r.id for r in resources.values()])
            )
        ).all()
    }
    gone = sorted(f"{a} v{v}" for a, v in snap.items.items() if (resources[a].id, v) not in present)
    if gone:
        raise Conflict(
            f"snapshot {snapshot!r} of workspace {_where(ws)} names versions that no longer exist "
            f"(the resources were deleted and created again): {', '.join(gone)}",
            details={"missing": gone},
        )
    changed: list[RestoredResource] = []
    unchanged: list[str] = []
    now = utcnow()
    for address, version in sorted(snap.items.items()):
        res = resources[address]
        if res.current_version == version:
            unchanged.append(address)
            continue
        changed.append(
            RestoredResource(address=address, from_version=res.current_version, to_version=version)
        )
        res.current_version = version
        res.updated_at = now
    details = {"changed": {c.address: [c.from_version, c.to_version] for c in changed}}
    audited = _audit_resource(ws, tail=f"/snapshots/{snapshot}")
    record_change(session, ctx, "workspaces.snapshot.restore", audited, details)
    return SnapshotRestoreOut(
        snapshot=snapshot,
        changed=changed,
        unchanged=unchanged,
        not_in_snapshot=sorted(a for a in resources if a not in snap.items),
    )


def delete_snapshot(
    *, session: Session, ctx: AuditContext, org_id: int, project: str, name: str, snapshot: str
) -> None:
    ws = get_workspace(session=session, org_id=org_id, project=project, name=name, lock=True)
    row = _snapshot(session, ws, snapshot)
    session.delete(row)
    record_change(
        session, ctx, "workspaces.snapshot.delete", _audit_resource(ws, tail=f"/snapshots/{snapshot}")
    )


# ---------------------------------------------------------------- main.tf


def generate_main(
    *, session: Session, workspace_id: int, versions: dict[str, int] | None = None
) -> dict[str, str]:
    """{"main.tf": text}: the current version of every resource (or the given {address: version}),
    dependencies first (ties by address), each block after a `# xcf: <address> v<version>` line, with
    recorded dependencies merged into its `depends_on`. {} when the workspace has no managed resources."""
    wanted = WorkspaceResource.current_version if versions is None else ResourceCodeVersion.version
    stmt = (
        select(WorkspaceResource.address, ResourceCodeVersion.version, ResourceCodeVersion.hcl)
        .join(ResourceCodeVersion, ResourceCodeVersion.resource_id == WorkspaceResource.id)
        .where(WorkspaceResource.workspace_id == workspace_id, ResourceCodeVersion.version == wanted)
    )
    if versions is not None:
        stmt = stmt.where(
            tuple_(WorkspaceResource.address, ResourceCodeVersion.version).in_(list(versions.items()))
        )
    rows = session.execute(stmt).all()
    blocks = {address: (version, text) for address, version, text in rows}
    missing = sorted(set(versions or {}) - set(blocks))
    if missing:
        raise Invalid(
            "the managed resources the run was created with are gone: "
            + ", ".join(f"{a} v{versions[a]}" for a in missing if versions),
            details={"missing": missing},
        )
    if not blocks:
        return {}
    edges = [(a, b) for a, b in _edges(session, workspace_id) if a in blocks and b in blocks]
    try:
        return {"main.tf": hcl.assemble_main(blocks, edges)}
    except hcl.HclProblem as exc:  # stored versions were checked on write, and cycles refused
        raise Invalid(f"the managed resources of the workspace cannot be generated: {exc}") from None


def preview_main(*, session: Session, org_id: int, project: str, name: str) -> dict[str, str]:
    ws = get_workspace(session=session, org_id=org_id, project=project, name=name)
    return generate_main(session=session, workspace_id=ws.id) or {"main.tf": ""}
