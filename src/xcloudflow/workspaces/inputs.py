"""Variables and hooks: the inputs of runs that people set on a workspace.

A sensitive variable's value and an http hook's secret are sealed (AAD naming the workspace and the
row) and are write-only: no answer and no audit row carries them; `run_inputs.run_inputs` opens them for
runs. An HCL variable's value must parse as one HCL expression, so it cannot smuggle other
assignments or blocks into the generated `xcf.auto.tfvars`. Callers own the transaction.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from xcloudflow.audit.schemas import AuditContext
from xcloudflow.db.base import utcnow
from xcloudflow.errors import Invalid, NotFound, TooLarge
from xcloudflow.iam import service as iam
from xcloudflow.iam.schemas import Principal
from xcloudflow.keys.keyring import Keyring
from xcloudflow.workspaces import service
from xcloudflow.workspaces.models import HOOK_STAGES, Workspace, WorkspaceHook, WorkspaceVariable
from xcloudflow.workspaces.schemas import HookCreate, HookOut, VariableOut, VariableSet

MAX_VARIABLE_BYTES = 256 * 1024
MAX_HOOK_TIMEOUT = 3600
MAX_HOOK_TARGET = 64 * 1024
_KEY = {
    "terraform": re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$"),
    "env": re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$"),
}
# The run sets these itself (the state backend and its job-token password, the agent's own config).
_RESERVED_ENV = ("TF_HTTP_", "XCF_")
_PYTHON_TARGET = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$")
_HCL_PROBE = "xcf_value"


def _locked_workspace(session: Session, principal: Principal, project: str, name: str) -> Workspace:
    """The workspace to change, FOR UPDATE (the caller checked the role and its input first)."""
    return service.get_workspace(
        session=session, org_id=principal.org_id, project=project, name=name, lock=True
    )


def _check_category(category: str) -> str:
    if category not in _KEY:
        raise Invalid(
            f"variable category must be terraform or env, not {category!r}", details={"field": "category"}
        )
    return category


def _check_key(category: str, key: str) -> str:
    if len(key) > 128 or not _KEY[category].match(key):
        rule = (
            "an HCL identifier (letters, digits, '_' and '-', not starting with a digit or '-')"
            if category == "terraform"
            else "an environment variable name (letters, digits and '_', not starting with a digit)"
        )
        raise Invalid(
            f"{category} variable key {key!r} is not valid: it must be {rule}, at most 128 characters",
            details={"field": "key"},
        )
    if category == "env" and key.upper().startswith(_RESERVED_ENV):
        raise Invalid(
            f"env variable {key} is reserved: runs set TF_HTTP_* (the state backend) and XCF_* themselves",
            details={"field": "key"},
        )
    return key


def check_hcl_expression(key: str, value: str) -> None:
    """`value` must be one HCL expression (checked when python-hcl2 is installed)."""
    try:
        import hcl2
    except ImportError:  # pragma: no cover - python-hcl2 is a dependency; stay usable without it
        return
    prefix = f"{_HCL_PROBE} = "
    try:
        parsed = hcl2.loads(f"{prefix}{value}\n")
    except Exception as exc:  # lark raises several unrelated classes
        # Only the position: the parser's own message quotes the text, which may be a secret.
        line, column = getattr(exc, "line", None), getattr(exc, "column", None)
        where = ""
        if isinstance(line, int) and isinstance(column, int) and line > 0:
            where = f" at line {line}, column {column - len(prefix) if line == 1 else column}"
        raise Invalid(
            f"terraform variable {key}: the value is not a valid HCL expression (syntax error{where})",
            details={"field": "value"},
        ) from None
    if {k for k in parsed if not k.startswith("__")} != {_HCL_PROBE}:
        raise Invalid(
            f"terraform variable {key}: the value must be a single HCL expression, not several lines "
            "of assignments or blocks",
            details={"field": "value"},
        )


def _var_out(v: WorkspaceVariable) -> VariableOut:
    return VariableOut(
        key=v.key,
        category=v.category,
        value=None if v.sensitive else v.value,
        hcl=v.hcl,
        sensitive=v.sensitive,
        description=v.description,
        created_at=v.created_at,
        updated_at=v.updated_at,
    )


def _variable(session: Session, ws: Workspace, category: str, key: str) -> WorkspaceVariable | None:
    return session.scalars(
        select(WorkspaceVariable).where(
            WorkspaceVariable.workspace_id == ws.id,
            WorkspaceVariable.category == category,
            WorkspaceVariable.key == key,
        )
    ).first()


def _variable_resource(ws: Workspace, category: str, key: str) -> str:
    return f"{service.resource_name(ws)}/vars/{category}/{key}"


def list_variables(*, session: Session, org_id: int, project: str, name: str) -> list[VariableOut]:
    ws = service.get_workspace(session=session, org_id=org_id, project=project, name=name)
    rows = session.scalars(
        select(WorkspaceVariable)
        .where(WorkspaceVariable.workspace_id == ws.id)
        .order_by(WorkspaceVariable.category, WorkspaceVariable.key)
    )
    return [_var_out(v) for v in rows]


def set_variable(
    *,
    session: Session,
    keyring: Keyring,
    principal: Principal,
    ctx: AuditContext,
    project: str,
    name: str,
    category: str,
    key: str,
    body: VariableSet,
) -> tuple[VariableOut, bool]:
    """Create or replace a variable; returns it and whether it was created."""
    iam.require(principal, "writer", action="setting workspace variables")
    _check_key(_check_category(category), key)
    ws = _locked_workspace(session, principal, project, name)
    row = _variable(session, ws, category, key)
    value = body.value
    if value is None:
        if row is None:
            raise Invalid(
                f"{category} variable {key} does not exist yet: send its value", details={"field": "value"}
            )
        if row.sensitive and not body.sensitive:
            raise Invalid(
                f"{category} variable {key} is sensitive: making it non-sensitive needs a new value "
                "(the stored one is never revealed)",
                details={"field": "value"},
            )
        value = service.variable_value(session=session, keyring=keyring, variable=row)
    if len(value.encode()) > MAX_VARIABLE_BYTES:
        raise TooLarge(
            f"{category} variable {key} is {len(value.encode())} bytes; the limit is {MAX_VARIABLE_BYTES}",
            details={"field": "value"},
        )
    if category == "env":
        if body.hcl:
            raise Invalid("hcl applies to terraform variables only, not env", details={"field": "hcl"})
        if "\x00" in value:
            raise Invalid(f"env variable {key} cannot contain a NUL character", details={"field": "value"})
    if body.hcl:
        check_hcl_expression(key, value)
    created = row is None
    now = utcnow()
    if row is None:
        row = WorkspaceVariable(workspace_id=ws.id, category=category, key=key, created_at=now)
        session.add(row)
    row.hcl = body.hcl
    row.sensitive = body.sensitive
    row.description = body.description if "description" in body.model_fields_set else row.description
    if body.sensitive:
        aad = service.variable_aad(ws.id, category, key)
        row.data_key_id, row.sealed_value = service.seal(session, keyring, ws, aad, value.encode())
        row.value = None
    else:
        row.value, row.data_key_id, row.sealed_value = value, None, None
    row.updated_at = now
    details = {"created": created, "hcl": row.hcl, "sensitive": row.sensitive}
    service.record_change(
        session, ctx, "workspaces.variable.set", _variable_resource(ws, category, key), details
    )
    return _var_out(row), created


def delete_variable(
    *,
    session: Session,
    principal: Principal,
    ctx: AuditContext,
    project: str,
    name: str,
    category: str,
    key: str,
) -> VariableOut:
    iam.require(principal, "writer", action="deleting workspace variables")
    _check_category(category)
    ws = _locked_workspace(session, principal, project, name)
    row = _variable(session, ws, category, key)
    if row is None:
        raise NotFound(f"workspace {service.address(ws)} has no {category} variable {key}")
    out = _var_out(row)
    session.delete(row)
    service.record_change(session, ctx, "workspaces.variable.delete", _variable_resource(ws, category, key))
    return out


# ---------------------------------------------------------------- hooks


def _check_hook(body: HookCreate) -> None:
    target = body.target
    if not target.strip() or "\x00" in target or len(target) > MAX_HOOK_TARGET:
        raise Invalid(
            f"hook target must be non-empty text without NUL, at most {MAX_HOOK_TARGET} characters",
            details={"field": "target"},
        )
    if body.kind == "python" and not _PYTHON_TARGET.match(target):
        raise Invalid(
            f"python hook target {target!r} must look like package.module:function",
            details={"field": "target"},
        )
    if body.kind == "http":
        parts = urlsplit(target)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise Invalid(
                f"http hook target {target!r} must be an http:// or https:// URL with a host",
                details={"field": "target"},
            )
    if body.secret is not None and body.kind != "http":
        raise Invalid("only http hooks take a secret (their HMAC key)", details={"field": "secret"})
    if body.secret is not None and not body.secret:
        raise Invalid("an http hook's secret cannot be empty", details={"field": "secret"})
    if not 1 <= body.timeout_seconds <= MAX_HOOK_TIMEOUT:
        raise Invalid(
            f"timeout_seconds must be between 1 and {MAX_HOOK_TIMEOUT}", details={"field": "timeout_seconds"}
        )


def _hook_out(h: WorkspaceHook) -> HookOut:
    return HookOut(
        id=h.id,
        stage=h.stage,
        kind=h.kind,
        target=h.target,
        mandatory=h.mandatory,
        timeout_seconds=h.timeout_seconds,
        position=h.position,
        has_secret=h.sealed_secret is not None,
        created_at=h.created_at,
        created_by=h.created_by,
    )


def list_hooks(*, session: Session, org_id: int, project: str, name: str) -> list[HookOut]:
    """In the order runs call them: by stage, then by the order they were added."""
    ws = service.get_workspace(session=session, org_id=org_id, project=project, name=name)
    rows = session.scalars(select(WorkspaceHook).where(WorkspaceHook.workspace_id == ws.id))
    return [_hook_out(h) for h in sorted(rows, key=lambda h: (HOOK_STAGES.index(h.stage), h.position, h.id))]


def _hook_resource(ws: Workspace, hook_id: int) -> str:
    return f"{service.resource_name(ws)}/hooks/{hook_id}"


def _hook(session: Session, workspace_id: int, address: str, hook_id: int) -> WorkspaceHook:
    row = session.get(WorkspaceHook, hook_id)
    if row is None or row.workspace_id != workspace_id:
        raise NotFound(f"workspace {address} has no hook {hook_id}")
    return row


def show_hook(*, session: Session, org_id: int, project: str, name: str, hook_id: int) -> HookOut:
    ws = service.get_workspace(session=session, org_id=org_id, project=project, name=name)
    return _hook_out(_hook(session, ws.id, service.address(ws), hook_id))


def create_hook(
    *,
    session: Session,
    keyring: Keyring,
    principal: Principal,
    ctx: AuditContext,
    project: str,
    name: str,
    body: HookCreate,
) -> HookOut:
    iam.require(principal, "writer", action="adding workspace hooks")
    _check_hook(body)
    ws = _locked_workspace(session, principal, project, name)
    last = session.scalar(select(func.max(WorkspaceHook.position)).where(WorkspaceHook.workspace_id == ws.id))
    row = WorkspaceHook(
        workspace_id=ws.id,
        stage=body.stage,
        kind=body.kind,
        target=body.target,
        mandatory=body.mandatory,
        timeout_seconds=body.timeout_seconds,
        position=(last or 0) + 1,
        created_at=utcnow(),
        created_by=principal.user_name,
    )
    session.add(row)
    session.flush()
    if body.secret is not None:
        aad = service.hook_aad(ws.id, row.id)
        row.data_key_id, row.sealed_secret = service.seal(session, keyring, ws, aad, body.secret.encode())
    details = {
        "stage": row.stage,
        "kind": row.kind,
        "mandatory": row.mandatory,
        "secret": body.secret is not None,
    }
    service.record_change(session, ctx, "workspaces.hook.create", _hook_resource(ws, row.id), details)
    return _hook_out(row)


def delete_hook(
    *, session: Session, principal: Principal, ctx: AuditContext, project: str, name: str, hook_id: int
) -> HookOut:
    iam.require(principal, "writer", action="deleting workspace hooks")
    ws = _locked_workspace(session, principal, project, name)
    row = _hook(session, ws.id, service.address(ws), hook_id)
    out = _hook_out(row)
    session.delete(row)
    details = {"stage": out.stage, "kind": out.kind}
    service.record_change(session, ctx, "workspaces.hook.delete", _hook_resource(ws, hook_id), details)
    return out
