"""Terraform nodes run through the workspaces and runs of the execution engine, never around them.

Each (environment, composition, module) gets a workspace `<project>-<env>/<composition>.<module>`,
created on first use; its code version is cut from the ChangeSet's repository snapshot (the top
directory holding the module, so sibling local modules resolve) plus an `xcf.auto.tfvars.json` of the
node's inputs, and uploaded only when it differs from the current one. A node's plan is a
`plan_and_apply` run that stops at `planned`; applying the node confirms that very run, so what was
approved is what is applied (a stale plan is refused by the runs service). This module never decides
*when* to act: the orchestrator does.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import uuid
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy.orm import Session

from xcloudflow.audit.schemas import AuditContext
from xcloudflow.compose.repo import targz_writer
from xcloudflow.errors import Conflict, DomainError, Invalid, NotFound
from xcloudflow.iam.schemas import Principal
from xcloudflow.keys.keyring import Keyring
from xcloudflow.runs import service as runs
from xcloudflow.runs.schemas import RunCreate, RunKind
from xcloudflow.state import service as state
from xcloudflow.state.documents import StackRef
from xcloudflow.workspaces import service as workspaces
from xcloudflow.workspaces.schemas import WorkspaceCreate

TFVARS = "xcf.auto.tfvars.json"
ProgressState = Literal["running", "planned", "no_changes", "done", "failed"]


@dataclass(frozen=True)
class Progress:
    """Where a node's current run or job is, in the orchestrator's words."""

    state: ProgressState
    plan: dict[str, Any] | None = None
    error: str | None = None
    transient: bool = False
    code_version: int | None = None


def actor_principal(org_id: int, actor: str) -> Principal:
    """The control plane acting on workspaces on behalf of a ChangeSet (writer rights, audited as `actor`)."""
    return Principal(user_id=0, user_name=actor, org_id=org_id, org_name="", role="writer", token_id=0)


def workspace_ref(project: str, environment: str, composition_name: str, module: str) -> tuple[str, str]:
    return f"{project}-{environment}", f"{composition_name}.{module}"


def split(workspace: str) -> tuple[str, str]:
    project, _, name = workspace.partition("/")
    return project, name


def code_archive(bundle: bytes, ref: str, inputs: dict[str, Any]) -> bytes:
    """A deterministic tar.gz of the module's top directory from `bundle`, with the inputs as tfvars."""
    top = ref.strip("/").split("/", 1)[0]
    module_dir = ref.strip("/")
    out = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(bundle), mode="r:gz") as src, targz_writer(out) as dst:
        members = sorted(
            (m for m in src.getmembers() if m.isfile() and _norm(m.name).split("/", 1)[0] == top),
            key=lambda m: _norm(m.name),
        )
        if not any(_norm(m.name).startswith(module_dir + "/") for m in members):
            raise Invalid(f"module {ref} has no files in the repository snapshot", details={"field": "ref"})
        for member in members:
            name = _norm(member.name)
            if name == f"{module_dir}/{TFVARS}":
                continue  # ours wins
            data = src.extractfile(member)
            assert data is not None
            _add(dst, name, data.read())
        _add(dst, f"{module_dir}/{TFVARS}", json.dumps(inputs, sort_keys=True, indent=2).encode())
    return out.getvalue()


def _norm(name: str) -> str:
    return name[2:] if name.startswith("./") else name


def _add(dst: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    info.mtime = 0
    dst.addfile(info, io.BytesIO(data))


def ensure_workspace(
    *, session: Session, org_id: int, actor: str, project: str, name: str, pool: str, working_directory: str
) -> None:
    try:
        workspaces.get_workspace(session=session, org_id=org_id, project=project, name=name)
        return
    except NotFound:
        pass
    workspaces.create_workspace(
        session=session,
        principal=actor_principal(org_id, actor),
        ctx=AuditContext(actor=actor, org_id=org_id),
        body=WorkspaceCreate(
            project=project,
            name=name,
            description="managed by the XCloudFlow control plane (xcf compose)",
            agent_pool=pool,
            working_directory=working_directory,
            tags=["compose"],
        ),
    )


def upload_if_changed(
    *, session: Session, keyring: Keyring, org_id: int, actor: str, workspace: str, data: bytes, message: str
) -> int:
    """Make `data` the workspace's current code version (uploading only new content); its number."""
    project, name = split(workspace)
    digest = hashlib.sha256(data).hexdigest()
    versions = workspaces.list_code_versions(session=session, org_id=org_id, project=project, name=name)
    current = next((v for v in versions if v.current), None)
    if current is not None and current.sha256 == digest:
        return current.number
    same = next((v for v in versions if v.sha256 == digest), None)
    principal = actor_principal(org_id, actor)
    ctx = AuditContext(actor=actor, org_id=org_id)
    if same is not None:
        workspaces.rollback_code_version(
            session=session, principal=principal, ctx=ctx, project=project, name=name, number=same.number
        )
        return same.number
    out = workspaces.upload_code_version(
        session=session,
        keyring=keyring,
        principal=principal,
        ctx=ctx,
        project=project,
        name=name,
        data=data,
        message=message,
    )
    return out.number


def restore_code(*, session: Session, org_id: int, actor: str, workspace: str, number: int) -> None:
    project, name = split(workspace)
    workspaces.rollback_code_version(
        session=session,
        principal=actor_principal(org_id, actor),
        ctx=AuditContext(actor=actor, org_id=org_id),
        project=project,
        name=name,
        number=number,
    )


def start_run(
    *,
    session: Session,
    keyring: Keyring,
    org_id: int,
    actor: str,
    workspace: str,
    kind: RunKind,
    auto_apply: bool,
    message: str,
    source: str = "compose",
) -> uuid.UUID:
    project, name = split(workspace)
    out = runs.create_run(
        session=session,
        keyring=keyring,
        principal=None,
        ctx=AuditContext(actor=actor, org_id=org_id),
        project=project,
        name=name,
        body=RunCreate(kind=kind, auto_apply=auto_apply, message=message[:2000]),
        source=source,
    )
    return out.id


def confirm(*, session: Session, org_id: int, actor: str, run_id: uuid.UUID) -> str | None:
    """Confirm the node's planned run; the reason when it cannot be (stale plan, run gone)."""
    try:
        runs.confirm(
            session=session,
            principal=actor_principal(org_id, actor),
            ctx=AuditContext(actor=actor, org_id=org_id),
            run_id=run_id,
        )
    except (Conflict, Invalid, NotFound) as exc:
        return str(exc)
    return None


def discard(*, session: Session, org_id: int, actor: str, run_id: uuid.UUID) -> None:
    """Let go of a planned run nobody will apply (rejected or discarded ChangeSet)."""
    principal = actor_principal(org_id, actor)
    ctx = AuditContext(actor=actor, org_id=org_id)
    try:
        out = runs.show_run(session=session, org_id=org_id, run_id=run_id)
        if out.stage == "planned":
            runs.discard(session=session, principal=principal, ctx=ctx, run_id=run_id)
        elif out.stage in ("pending", "planning"):
            runs.cancel(session=session, principal=principal, ctx=ctx, run_id=run_id)
    except DomainError:
        pass  # it finished or went away meanwhile: nothing left to let go of


def head_version(*, session: Session, org_id: int, workspace: str) -> int | None:
    project, name = split(workspace)
    try:
        stack = state.show_stack(
            session=session, org_id=org_id, ref=StackRef(tool="terraform", project=project, stack=name)
        )
    except NotFound:
        return None
    return stack.head_version


def current_code_version(*, session: Session, org_id: int, workspace: str) -> int | None:
    project, name = split(workspace)
    try:
        out = workspaces.show_workspace(session=session, org_id=org_id, project=project, name=name)
    except NotFound:
        return None
    return out.current_code_version


def poll(*, session: Session, keyring: Keyring, org_id: int, run_id: uuid.UUID) -> Progress:
    run = runs.show_run(session=session, org_id=org_id, run_id=run_id)
    if run.stage == "planned":
        return Progress("planned", plan=_node_plan(session, keyring, org_id, run_id, run.summary))
    if run.stage == "planned_and_finished":
        if run.has_changes and run.source == "drift":
            return Progress("planned", plan=_node_plan(session, keyring, org_id, run_id, run.summary))
        return Progress("no_changes", plan=_empty_plan())
    if run.stage == "applied":
        return Progress("done", plan=_summary_plan(run.summary), code_version=run.code_version)
    if run.stage in ("errored", "canceled", "discarded"):
        reason = run.error or f"run #{run.number} was {run.stage}"
        return Progress("failed", error=reason, transient=run.error_class == "transient")
    return Progress("running")


def _empty_plan() -> dict[str, Any]:
    return {
        "engine": "terraform",
        "has_changes": False,
        "summary": {"add": 0, "change": 0, "destroy": 0},
        "resource_changes": [],
    }


def _summary_plan(summary: dict[str, int] | None) -> dict[str, Any]:
    counts = {k: int((summary or {}).get(k, 0)) for k in ("add", "change", "destroy")}
    return {
        "engine": "terraform",
        "has_changes": any(counts.values()),
        "summary": counts,
        "resource_changes": [],
    }


def _node_plan(
    session: Session, keyring: Keyring, org_id: int, run_id: uuid.UUID, summary: dict[str, int] | None
) -> dict[str, Any]:
    plan = _summary_plan(summary)
    plan["has_changes"] = True
    try:
        doc = json.loads(runs.plan_document(session=session, keyring=keyring, org_id=org_id, run_id=run_id))
    except (NotFound, ValueError):
        return plan
    changes = []
    for rc in doc.get("resource_changes") or []:
        actions = list((rc.get("change") or {}).get("actions") or [])
        if actions in (["no-op"], ["read"]):
            continue
        changes.append({"address": rc.get("address"), "type": rc.get("type"), "actions": actions})
    for name, oc in (doc.get("output_changes") or {}).items():
        actions = list((oc or {}).get("actions") or [])
        if actions and actions != ["no-op"]:
            changes.append({"address": f"output.{name}", "type": "output", "actions": actions})
    plan["resource_changes"] = changes
    return plan
