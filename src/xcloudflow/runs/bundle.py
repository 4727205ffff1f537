"""What an agent gets for a run's job: the configuration, variables, hooks and backend settings.

Secrets (sensitive variables, hook keys) leave the server only here, to the holder of the job's own
token, and come with the list of values the agent must mask in everything it sends back.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.orm import Session

from xcloudflow.errors import Conflict, NotFound
from xcloudflow.jobs import service as jobs
from xcloudflow.jobs.service import JobIdentity
from xcloudflow.keys.keyring import Keyring
from xcloudflow.runs.models import Run
from xcloudflow.runs.service import APPLY_JOB, PLAN_JOB, run_for_job
from xcloudflow.workspaces import run_inputs as workspace_inputs
from xcloudflow.workspaces import service as workspaces
from xcloudflow.workspaces.models import Workspace, WorkspaceCodeVersion

PLAN_MODES = {"destroy": "destroy", "refresh_only": "refresh-only"}
CANCEL_GRACE_SECONDS = 20
STATE_SAVE_RETRIES = 5


def _backend(ws: Workspace) -> dict[str, Any]:
    address = f"/terraform/state/{ws.project}/{ws.name}"
    return {
        "address": address,
        "lock_address": address,
        "unlock_address": address,
        "lock_method": "LOCK",
        "unlock_method": "UNLOCK",
        "username": "job",
        "retry_max": STATE_SAVE_RETRIES,
    }


def _code_version(session: Session, run: Run) -> dict[str, Any] | None:
    if run.code_version_id is None:
        return None
    info = session.get_one(WorkspaceCodeVersion, run.code_version_id)
    return {"number": info.number, "sha256": info.sha256}


def run_bundle(*, session: Session, keyring: Keyring, job: JobIdentity) -> dict[str, Any]:
    run, ws, row = run_for_job(session=session, job_id=job.job_id, org_id=job.org_id)
    if row.kind not in (PLAN_JOB, APPLY_JOB):
        raise NotFound(f"job {job.job_id} is not a run's job")
    inputs = workspace_inputs.run_inputs(
        session=session, keyring=keyring, workspace=ws, checks=False, pinned_resources=run.resource_versions
    )
    apply = row.kind == APPLY_JOB
    if apply and run.stage not in ("confirmed", "applying"):
        raise Conflict(f"run #{run.number} is {run.stage}, not confirmed: nothing to apply")
    return {
        "run": {
            "id": str(run.id),
            "number": run.number,
            "kind": run.kind,
            "operation": "apply" if apply else "plan",
            "plan_mode": PLAN_MODES.get(run.kind, "normal"),
            "targets": list(run.targets or []),
            "detailed_exitcode": True,
            "cancel_grace_seconds": CANCEL_GRACE_SECONDS,
        },
        "workspace": {
            "project": ws.project,
            "name": ws.name,
            "working_directory": ws.working_directory or "",
            "terraform_bin": ws.terraform_bin,
        },
        "backend": _backend(ws),
        # Code mode uses the code version the run was created with, even if another became current.
        "code": _code_version(session, run),
        "files": inputs.files,
        "tfvars": inputs.tfvars,
        "hcl_vars": inputs.hcl_vars,
        "env": inputs.env,
        "sensitive": inputs.sensitive,
        "hooks": inputs.hooks,
        "plan": {
            "job_id": str(run.plan_job_id),
            "state_serial": run.plan_state_serial,
            "state_lineage": run.plan_state_lineage,
        }
        if apply
        else None,
    }


def code_archive(*, session: Session, keyring: Keyring, job: JobIdentity) -> bytes:
    run, _ws, _row = run_for_job(session=session, job_id=job.job_id, org_id=job.org_id)
    if run.code_version_id is None:
        raise NotFound(f"run #{run.number} has no uploaded code version (its workspace is resource-level)")
    return workspaces.code_archive(session=session, keyring=keyring, code_version_id=run.code_version_id)


def plan_file(*, session: Session, keyring: Keyring, job: JobIdentity) -> bytes:
    run, _ws, row = run_for_job(session=session, job_id=job.job_id, org_id=job.org_id)
    if row.kind != APPLY_JOB or run.plan_job_id is None:
        raise NotFound(f"job {job.job_id} is not an apply: it has no plan to fetch")
    return jobs.read_artifact(
        session=session,
        keyring=keyring,
        org_id=job.org_id,
        job_id=uuid.UUID(str(run.plan_job_id)),
        name="plan.bin",
    )
