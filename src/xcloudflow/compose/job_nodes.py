"""Nodes of the other engines (Ansible, Kubernetes, Pulumi) and the backup/observation commands, as jobs.

The agent's `compose.*` handlers fetch the ChangeSet's repository snapshot with their job token and
run the engine there; this module only queues those jobs and reads their outcome. It never runs an
engine itself: work that touches infrastructure does not run in the server.
"""

from __future__ import annotations

import contextlib
import uuid
from typing import Any

from sqlalchemy.orm import Session

from xcloudflow.compose.tf_nodes import Progress
from xcloudflow.errors import DomainError, NotFound
from xcloudflow.jobs import service as jobs

PLAN_KIND = "compose.plan"
APPLY_KIND = "compose.apply"
EXEC_KIND = "compose.exec"
NODE_TIMEOUT_SECONDS = 1800


def start(
    *,
    session: Session,
    org_id: int,
    kind: str,
    pool: str,
    changeset: uuid.UUID,
    node: str,
    payload: dict[str, Any],
    max_attempts: int = 1,
) -> uuid.UUID:
    body = {"changeset": str(changeset), "node": node, **payload}
    body.setdefault("timeout_seconds", NODE_TIMEOUT_SECONDS)
    job = jobs.enqueue(
        session=session, org_id=org_id, kind=kind, payload=body, pool=pool, max_attempts=max_attempts
    )
    return job.id


def engine_payload(*, engine: str, ref: str, inputs: dict[str, Any]) -> dict[str, Any]:
    return {"engine": engine, "ref": ref, "inputs": inputs}


def poll(*, session: Session, org_id: int, job_id: uuid.UUID, planning: bool) -> Progress:
    try:
        job = jobs.show_job(session=session, org_id=org_id, job_id=job_id)
    except NotFound:
        return Progress("failed", error=f"job {job_id} is gone")
    if job.status in ("queued", "claimed", "running"):
        return Progress("running")
    result = job.result or {}
    if job.status == "succeeded":
        plan = result.get("plan")
        if planning:
            if isinstance(plan, dict) and plan.get("has_changes"):
                return Progress("planned", plan=plan)
            return Progress("no_changes", plan=plan if isinstance(plan, dict) else None)
        return Progress("done", plan=plan if isinstance(plan, dict) else None)
    error = job.error or f"job {job.kind} {job.status}"
    # Transient: the agent was lost (errored), or it said so (the server briefly unreachable...).
    transient = job.status == "errored" or result.get("error_class") == "transient"
    return Progress("failed", error=error, transient=transient)


def cancel(*, session: Session, job_id: uuid.UUID, actor: str) -> None:
    with contextlib.suppress(DomainError):  # it finished meanwhile: nothing to cancel
        jobs.cancel_job(session=session, job_id=job_id, actor=actor)
