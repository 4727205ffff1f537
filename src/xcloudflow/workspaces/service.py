"""Workspace use cases: workspaces, locks, variables, code versions, hooks, and what a run needs.

A workspace's state is the state-service stack of the same project and name; nothing here creates,
reads or deletes it (a new workspace adopts an existing stack, a deleted one leaves it). Sensitive
variable values and http hook secrets are sealed under the organization's data key with an AAD that
names the row they belong to; they are opened only for `run_inputs`, never returned or audited.
Writes take the workspace row FOR UPDATE so that per-workspace counters and upserts serialize.
Callers own the transaction; nothing here commits.
"""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta
from typing import Any, TypeVar

from sqlalchemy import and_, delete, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, undefer

from xcloudflow.audit import service as audit
from xcloudflow.audit.schemas import AuditContext
from xcloudflow.db.base import utcnow
from xcloudflow.db.pagination import check_limit, decode_cursor, page_of
from xcloudflow.errors import Conflict, Invalid, NotFound
from xcloudflow.iam import service as iam
from xcloudflow.iam.schemas import Principal
from xcloudflow.jobs import agents
from xcloudflow.keys import service as keys
from xcloudflow.keys.keyring import Keyring
from xcloudflow.workspaces import archive, hcl
from xcloudflow.workspaces.archive import DEFAULT_LIMITS, ArchiveLimits
from xcloudflow.workspaces.models import (
    Workspace,
    WorkspaceCodeVersion,
    WorkspaceHook,
    WorkspaceResource,
    WorkspaceVariable,
)
from xcloudflow.workspaces.schemas import (
    CodeCompare,
    CodeFile,
    CodeVersionOut,
    FileChange,
    WorkspaceCreate,
    WorkspaceOut,
    WorkspacePage,
    WorkspaceUpdate,
)

MIN_DRIFT_MINUTES = 5
MAX_DRIFT_MINUTES = 366 * 24 * 60
MAX_TAGS = 50
_TAG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@-]{0,63}$")

WRITE_ACTION = "changing workspaces"

_Row = TypeVar("_Row")


def address(ws: Workspace) -> str:
    return f"{ws.project}/{ws.name}"


def resource_name(ws: Workspace) -> str:
    return f"workspace/{ws.project}/{ws.name}"


def first_or_not_found(
    session: Session, model: type[_Row], missing: str, *, lock: bool = False, **by: Any
) -> _Row:
    """The first `model` row whose columns equal `by` (FOR UPDATE when `lock`); NotFound(`missing`) if none."""
    stmt = select(model).filter_by(**by)
    row = session.scalars(stmt.with_for_update() if lock else stmt).first()
    if row is None:
        raise NotFound(missing)
    return row


def record_change(
    session: Session, ctx: AuditContext, action: str, resource: str, details: dict[str, Any] | None = None
) -> None:
    """Flush the change, then write its audit row."""
    session.flush()
    audit.record(session=session, ctx=ctx, action=action, resource=resource, details=details)


# ---------------------------------------------------------------- checks


def _check_pool(session: Session, org_id: int, pool: str) -> str:
    if pool == agents.EMBEDDED_POOL:
        return pool
    try:
        agents.pool_by_name(session=session, org_id=org_id, name=pool)
    except NotFound:
        raise Invalid(
            f"agent_pool {pool!r} is not an agent pool of this organization; create it with "
            f"POST /api/v1/agent-pools or use {agents.EMBEDDED_POOL!r}",
            details={"field": "agent_pool"},
        ) from None
    return pool


def _check_terraform_bin(path: str | None) -> str | None:
    if path is None:
        return None
    if not path.startswith("/") or "\x00" in path or len(path) > 1024:
        raise Invalid(
            f"terraform_bin must be an absolute path on the agent (e.g. /usr/local/bin/tofu) or null, "
            f"not {path!r}",
            details={"field": "terraform_bin"},
        )
    return path


def _check_working_directory(path: str) -> str:
    rule = None
    if path.startswith("/"):
        rule = "must be relative to the configuration's root (no leading '/')"
    elif "\x00" in path or "\\" in path:
        rule = "must not contain NUL or backslashes"
    elif ".." in path.split("/"):
        rule = "must not contain '..'"
    elif len(path) > 1024:
        rule = "is longer than 1024 characters"
    if rule:
        raise Invalid(f"working_directory {path!r} {rule}", details={"field": "working_directory"})
    return "/".join(p for p in path.split("/") if p not in ("", "."))


def _check_providers(text: str | None) -> str | None:
    if not text or not text.strip():
        return None
    try:
        hcl.check_providers(text)
    except hcl.HclProblem as exc:
        raise Invalid(f"providers_hcl: {exc}", details={"field": "providers_hcl"}) from exc
    return text


def _check_tags(tags: list[str]) -> list[str]:
    for tag in tags:
        if not _TAG.match(tag):
            raise Invalid(
                f"tag {tag!r} is not valid: letters, digits and . _ : / @ -, at most 64, starting with a "
                "letter or digit",
                details={"field": "tags"},
            )
    unique = sorted(set(tags))
    if len(unique) > MAX_TAGS:
        raise Invalid(f"a workspace may have at most {MAX_TAGS} tags", details={"field": "tags"})
    return unique


def _set_drift(ws: Workspace, minutes: int | None) -> None:
    if minutes is not None and not MIN_DRIFT_MINUTES <= minutes <= MAX_DRIFT_MINUTES:
        raise Invalid(
            f"drift_interval_minutes must be from {MIN_DRIFT_MINUTES} to {MAX_DRIFT_MINUTES} (a year), "
            "or null to turn drift checks off",
            details={"field": "drift_interval_minutes"},
        )
    ws.drift_interval_minutes = minutes
    ws.next_drift_at = utcnow() + timedelta(minutes=minutes) if minutes is not None else None


# ---------------------------------------------------------------- workspaces


def get_workspace(*, session: Session, org_id: int, project: str, name: str, lock: bool = False) -> Workspace:
    """The workspace row at `project/name` (FOR UPDATE when `lock`); NotFound names the address."""
    missing = f"no workspace {project}/{name}"
    return first_or_not_found(
        session, Workspace, missing, lock=lock, org_id=org_id, project=project, name=name
    )


def _outs(session: Session, rows: list[Workspace]) -> list[WorkspaceOut]:
    code_ids = [w.current_code_version_id for w in rows if w.current_code_version_id is not None]
    numbers: dict[int, int] = {}
    if code_ids:
        numbers = {
            i: n
            for i, n in session.execute(
                select(WorkspaceCodeVersion.id, WorkspaceCodeVersion.number).where(
                    WorkspaceCodeVersion.id.in_(code_ids)
                )
            ).all()
        }
    with_resources: set[int] = set()
    if rows:
        with_resources = set(
            session.scalars(
                select(WorkspaceResource.workspace_id)
                .where(WorkspaceResource.workspace_id.in_([w.id for w in rows]))
                .distinct()
            )
        )
    out = []
    for w in rows:
        number = numbers.get(w.current_code_version_id) if w.current_code_version_id is not None else None
        source = "code" if number is not None else "resources" if w.id in with_resources else "empty"
        out.append(
            WorkspaceOut(
                id=w.id,
                project=w.project,
                name=w.name,
                description=w.description,
                agent_pool=w.agent_pool,
                terraform_bin=w.terraform_bin,
                working_directory=w.working_directory,
                providers_hcl=w.providers_hcl,
                auto_apply=w.auto_apply,
                locked=w.locked,
                lock_reason=w.lock_reason,
                locked_by=w.locked_by,
                locked_at=w.locked_at,
                tags=list(w.tags or []),
                current_code_version=number,
                source=source,
                drift_interval_minutes=w.drift_interval_minutes,
                next_drift_at=w.next_drift_at,
                created_at=w.created_at,
                created_by=w.created_by,
                updated_at=w.updated_at,
            )
        )
    return out


def workspace_out(*, session: Session, workspace: Workspace) -> WorkspaceOut:
    return _outs(session, [workspace])[0]


def create_workspace(
    *, session: Session, principal: Principal, ctx: AuditContext, body: WorkspaceCreate
) -> WorkspaceOut:
    iam.require(principal, "writer", action=WRITE_ACTION)
    org_id = principal.org_id
    exists = session.scalars(
        select(Workspace.id).where(
            Workspace.org_id == org_id, Workspace.project == body.project, Workspace.name == body.name
        )
    ).first()
    if exists is not None:
        raise Conflict(f"workspace {body.project}/{body.name} already exists")
    now = utcnow()
    ws = Workspace(
        org_id=org_id,
        project=body.project,
        name=body.name,
        description=body.description,
        agent_pool=_check_pool(session, org_id, body.agent_pool),
        terraform_bin=_check_terraform_bin(body.terraform_bin),
        working_directory=_check_working_directory(body.working_directory),
        providers_hcl=_check_providers(body.providers_hcl),
        auto_apply=body.auto_apply,
        locked=False,
        tags=_check_tags(body.tags),
        run_seq=0,
        code_seq=0,
        created_at=now,
        created_by=principal.user_name,
        updated_at=now,
    )
    _set_drift(ws, body.drift_interval_minutes)
    try:
        with session.begin_nested():  # two creators racing on PostgreSQL: the loser gets a 409
            session.add(ws)
            session.flush()
    except IntegrityError:
        raise Conflict(f"workspace {body.project}/{body.name} already exists") from None
    details = {"agent_pool": ws.agent_pool, "auto_apply": ws.auto_apply, "tags": ws.tags}
    record_change(session, ctx, "workspaces.workspace.create", resource_name(ws), details)
    return workspace_out(session=session, workspace=ws)


def list_workspaces(
    *,
    session: Session,
    org_id: int,
    project: str | None = None,
    tag: str | None = None,
    cursor: str | None = None,
    limit: int = 100,
) -> WorkspacePage:
    """Ordered by project then name. The tag filter runs on the rows (tags are JSON on both databases)."""
    check_limit(limit)
    stmt = select(Workspace).where(Workspace.org_id == org_id)
    if project:
        stmt = stmt.where(Workspace.project == project)
    after = decode_cursor(cursor)
    if after is not None and not (
        isinstance(after, list) and len(after) == 2 and all(isinstance(a, str) for a in after)
    ):
        raise Invalid("cursor is not one this server handed out", details={"field": "cursor"})
    batch = limit + 1 if not tag else max(limit + 1, 200)
    found: list[Workspace] = []
    while len(found) <= limit:
        q = stmt
        if after is not None:
            q = q.where(
                or_(
                    Workspace.project > after[0],
                    and_(Workspace.project == after[0], Workspace.name > after[1]),
                )
            )
        rows = list(session.scalars(q.order_by(Workspace.project, Workspace.name).limit(batch)))
        found.extend(r for r in rows if not tag or tag in (r.tags or []))
        if len(rows) < batch:
            break
        after = [rows[-1].project, rows[-1].name]
    page, next_cursor = page_of(found, limit, lambda w: [w.project, w.name])
    return WorkspacePage(items=_outs(session, page), next_cursor=next_cursor)


def show_workspace(*, session: Session, org_id: int, project: str, name: str) -> WorkspaceOut:
    return workspace_out(
        session=session, workspace=get_workspace(session=session, org_id=org_id, project=project, name=name)
    )


def update_workspace(
    *,
    session: Session,
    principal: Principal,
    ctx: AuditContext,
    project: str,
    name: str,
    body: WorkspaceUpdate,
) -> WorkspaceOut:
    iam.require(principal, "writer", action=WRITE_ACTION)
    ws = get_workspace(session=session, org_id=principal.org_id, project=project, name=name, lock=True)
    sent = body.model_fields_set
    for field in ("agent_pool", "working_directory", "auto_apply", "tags"):
        if field in sent and getattr(body, field) is None:
            raise Invalid(f"{field} cannot be null", details={"field": field})
    if "description" in sent:
        ws.description = body.description
    if "agent_pool" in sent and body.agent_pool is not None:
        ws.agent_pool = _check_pool(session, principal.org_id, body.agent_pool)
    if "terraform_bin" in sent:
        ws.terraform_bin = _check_terraform_bin(body.terraform_bin)
    if "working_directory" in sent and body.working_directory is not None:
        ws.working_directory = _check_working_directory(body.working_directory)
    if "providers_hcl" in sent:
        ws.providers_hcl = _check_providers(body.providers_hcl)
    if "auto_apply" in sent and body.auto_apply is not None:
        ws.auto_apply = body.auto_apply
    if "tags" in sent and body.tags is not None:
        ws.tags = _check_tags(body.tags)
    if "drift_interval_minutes" in sent:
        _set_drift(ws, body.drift_interval_minutes)
    ws.updated_at = utcnow()
    record_change(session, ctx, "workspaces.workspace.update", resource_name(ws), {"fields": sorted(sent)})
    return workspace_out(session=session, workspace=ws)


def delete_workspace(
    *, session: Session, principal: Principal, ctx: AuditContext, project: str, name: str
) -> WorkspaceOut:
    """Delete the workspace and (by cascade) its variables, code, resources and hooks; its state stack
    stays in the state service."""
    iam.require(principal, "writer", action=WRITE_ACTION)
    ws = get_workspace(session=session, org_id=principal.org_id, project=project, name=name, lock=True)
    out = workspace_out(session=session, workspace=ws)
    session.execute(delete(Workspace).where(Workspace.id == ws.id))
    session.expunge(ws)
    record_change(session, ctx, "workspaces.workspace.delete", resource_name(ws))
    return out


# ---------------------------------------------------------------- locks


def lock_workspace(*, session: Session, workspace: Workspace, reason: str, actor: str) -> None:
    """Lock for the runs domain (no role check). An already locked workspace keeps its first holder."""
    if workspace.locked:
        return
    workspace.locked = True
    workspace.lock_reason = reason
    workspace.locked_by = actor
    workspace.locked_at = utcnow()
    workspace.updated_at = workspace.locked_at
    session.flush()


def lock(
    *, session: Session, principal: Principal, ctx: AuditContext, project: str, name: str, reason: str
) -> WorkspaceOut:
    """No new runs start while a workspace is locked."""
    iam.require(principal, "writer", action="locking workspaces")
    ws = get_workspace(session=session, org_id=principal.org_id, project=project, name=name, lock=True)
    if ws.locked:
        raise Conflict(
            f"workspace {address(ws)} is already locked by {ws.locked_by}"
            + (f": {ws.lock_reason}" if ws.lock_reason else ""),
            details={"locked_by": ws.locked_by, "lock_reason": ws.lock_reason},
        )
    lock_workspace(session=session, workspace=ws, reason=reason, actor=principal.user_name)
    record_change(session, ctx, "workspaces.workspace.lock", resource_name(ws), {"reason": reason})
    return workspace_out(session=session, workspace=ws)


def unlock(
    *, session: Session, principal: Principal, ctx: AuditContext, project: str, name: str
) -> WorkspaceOut:
    """Unlocking an unlocked workspace changes nothing (and writes no audit row)."""
    iam.require(principal, "writer", action="unlocking workspaces")
    ws = get_workspace(session=session, org_id=principal.org_id, project=project, name=name, lock=True)
    if ws.locked:
        holder = ws.locked_by
        ws.locked = False
        ws.lock_reason = None
        ws.locked_by = None
        ws.locked_at = None
        ws.updated_at = utcnow()
        record_change(
            session, ctx, "workspaces.workspace.unlock", resource_name(ws), {"was_locked_by": holder}
        )
    return workspace_out(session=session, workspace=ws)


# ---------------------------------------------------------------- sealed values


def variable_aad(workspace_id: int, category: str, key: str) -> bytes:
    return f"xcf:workspace-variable:{workspace_id}:{category}:{key}".encode()


def hook_aad(workspace_id: int, hook_id: int) -> bytes:
    return f"xcf:workspace-hook:{workspace_id}:{hook_id}".encode()


def _code_aad(workspace_id: int, number: int) -> bytes:
    return f"xcf:workspace-code:{workspace_id}:{number}".encode()


def seal(session: Session, keyring: Keyring, ws: Workspace, aad: bytes, data: bytes) -> tuple[int, bytes]:
    """(data key id, sealed blob) of `data` under the organization's data key, bound to `aad`."""
    return keys.seal(session=session, keyring=keyring, org_id=ws.org_id, aad=aad, chunks=[data])


def _open(session: Session, keyring: Keyring, data_key_id: int, aad: bytes, blob: bytes) -> bytes:
    return b"".join(
        keys.open_sealed(session=session, keyring=keyring, data_key_id=data_key_id, aad=aad, blob=blob)
    )


def variable_value(*, session: Session, keyring: Keyring, variable: WorkspaceVariable) -> str:
    """The value of a variable, opened when it is sensitive (for runs and re-validation only)."""
    if not variable.sensitive:
        return variable.value or ""
    if variable.sealed_value is None or variable.data_key_id is None:
        return ""
    aad = variable_aad(variable.workspace_id, variable.category, variable.key)
    return _open(session, keyring, variable.data_key_id, aad, variable.sealed_value).decode()


def hook_secret(*, session: Session, keyring: Keyring, hook: WorkspaceHook) -> str | None:
    if hook.sealed_secret is None or hook.data_key_id is None:
        return None
    aad = hook_aad(hook.workspace_id, hook.id)
    return _open(session, keyring, hook.data_key_id, aad, hook.sealed_secret).decode()


# ---------------------------------------------------------------- code versions


def _code_out(v: WorkspaceCodeVersion, ws: Workspace) -> CodeVersionOut:
    return CodeVersionOut(
        number=v.number,
        sha256=v.sha256,
        size=v.size,
        files=[CodeFile(**f) for f in v.files],
        message=v.message,
        created_at=v.created_at,
        created_by=v.created_by,
        current=ws.current_code_version_id == v.id,
    )


def _code_resource(ws: Workspace, number: int) -> str:
    return f"{resource_name(ws)}/code-versions/{number}"


def _code_version(session: Session, ws: Workspace, number: int) -> WorkspaceCodeVersion:
    missing = f"workspace {address(ws)} has no code version {number}"
    return first_or_not_found(session, WorkspaceCodeVersion, missing, workspace_id=ws.id, number=number)


def upload_code_version(
    *,
    session: Session,
    keyring: Keyring,
    principal: Principal,
    ctx: AuditContext,
    project: str,
    name: str,
    data: bytes,
    message: str | None = None,
    limits: ArchiveLimits = DEFAULT_LIMITS,
) -> CodeVersionOut:
    """Store a validated .tar.gz as the next code version, sealed, and make it current."""
    iam.require(principal, "writer", action="uploading workspace code")
    if message is not None and len(message) > 4096:
        raise Invalid("message is longer than 4096 characters", details={"field": "message"})
    ws = get_workspace(session=session, org_id=principal.org_id, project=project, name=name)
    files = archive.inspect(data, limits)  # before the row lock: reading a big archive takes a while
    session.refresh(ws, with_for_update=True)
    number = ws.code_seq + 1
    key_id, blob = seal(session, keyring, ws, _code_aad(ws.id, number), data)
    row = WorkspaceCodeVersion(
        workspace_id=ws.id,
        number=number,
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
        files=files,
        message=message,
        created_at=utcnow(),
        created_by=principal.user_name,
        data_key_id=key_id,
        content=blob,
    )
    session.add(row)
    session.flush()
    ws.code_seq = number
    ws.current_code_version_id = row.id
    ws.updated_at = row.created_at
    details = {"number": number, "sha256": row.sha256, "size": row.size, "files": len(files)}
    record_change(session, ctx, "workspaces.code_version.upload", _code_resource(ws, number), details)
    return _code_out(row, ws)


def list_code_versions(*, session: Session, org_id: int, project: str, name: str) -> list[CodeVersionOut]:
    """Newest first."""
    ws = get_workspace(session=session, org_id=org_id, project=project, name=name)
    rows = session.scalars(
        select(WorkspaceCodeVersion)
        .where(WorkspaceCodeVersion.workspace_id == ws.id)
        .order_by(WorkspaceCodeVersion.number.desc())
    )
    return [_code_out(v, ws) for v in rows]


def show_code_version(
    *, session: Session, org_id: int, project: str, name: str, number: int
) -> CodeVersionOut:
    ws = get_workspace(session=session, org_id=org_id, project=project, name=name)
    return _code_out(_code_version(session, ws, number), ws)


def code_archive(*, session: Session, keyring: Keyring, code_version_id: int) -> bytes:
    """The .tar.gz of a code version, as uploaded."""
    row = session.scalars(
        select(WorkspaceCodeVersion)
        .where(WorkspaceCodeVersion.id == code_version_id)
        .options(undefer(WorkspaceCodeVersion.content))
    ).first()
    if row is None:
        raise NotFound(f"no code version with id {code_version_id}")
    return _open(session, keyring, row.data_key_id, _code_aad(row.workspace_id, row.number), row.content)


def read_code_archive(
    *, session: Session, keyring: Keyring, org_id: int, project: str, name: str, number: int
) -> bytes:
    ws = get_workspace(session=session, org_id=org_id, project=project, name=name)
    return code_archive(
        session=session, keyring=keyring, code_version_id=_code_version(session, ws, number).id
    )


def compare_code_versions(
    *,
    session: Session,
    keyring: Keyring,
    org_id: int,
    project: str,
    name: str,
    from_number: int,
    to_number: int,
) -> CodeCompare:
    ws = get_workspace(session=session, org_id=org_id, project=project, name=name)
    old, new = _code_version(session, ws, from_number), _code_version(session, ws, to_number)
    changes = archive.compare(
        code_archive(session=session, keyring=keyring, code_version_id=old.id),
        code_archive(session=session, keyring=keyring, code_version_id=new.id),
        archive.STORED_LIMITS,  # both were checked against the limits in force when they were uploaded
    )
    return CodeCompare(
        from_=from_number,
        to=to_number,
        added=changes["added"],
        removed=changes["removed"],
        changed=[FileChange(**c) for c in changes["changed"]],
    )


def rollback_code_version(
    *, session: Session, principal: Principal, ctx: AuditContext, project: str, name: str, number: int
) -> CodeVersionOut:
    """Make an earlier (or any) code version current again; runs queued from now on use it."""
    iam.require(principal, "writer", action="rolling back workspace code")
    ws = get_workspace(session=session, org_id=principal.org_id, project=project, name=name, lock=True)
    row = _code_version(session, ws, number)
    current = (
        session.get(WorkspaceCodeVersion, ws.current_code_version_id) if ws.current_code_version_id else None
    )
    previous = current.number if current is not None else None
    ws.current_code_version_id = row.id
    ws.updated_at = utcnow()
    details = {"number": number, "previous": previous}
    record_change(session, ctx, "workspaces.code_version.rollback", _code_resource(ws, number), details)
    return _code_out(row, ws)
