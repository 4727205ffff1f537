"""Runs: create, queue, confirm, discard, cancel, and follow the jobs that execute them.

A run moves through explicit stages (TRANSITIONS); anything else is refused with the stages that
would be allowed, never silently overwritten. One run per workspace holds it at a time (from its plan
job being queued until it is final; a planned run waiting for confirmation holds it too); the others
wait as `pending` in creation order and are dispatched when the holder finishes. The work itself runs
as jobs (`terraform.plan`, `terraform.apply`) on the workspace's agent pool; `on_job_event` follows
them in the job's own transaction. Callers own the transaction; nothing here commits.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from xcloudflow.audit import service as audit
from xcloudflow.audit.schemas import AuditContext
from xcloudflow.db.base import utcnow
from xcloudflow.db.pagination import check_limit, newest_cursor, newest_first, page_of
from xcloudflow.errors import Conflict, DomainError, Invalid, NotFound
from xcloudflow.iam import service as iam
from xcloudflow.iam.schemas import Principal
from xcloudflow.inventory import drift as inventory_drift
from xcloudflow.jobs import agents as job_agents
from xcloudflow.jobs import service as jobs
from xcloudflow.jobs.models import Job
from xcloudflow.keys.keyring import Keyring
from xcloudflow.notify import service as notify
from xcloudflow.runs import metrics
from xcloudflow.runs.models import FINAL_STAGES, RUN_STAGES, DriftFinding, Run, RunTransition
from xcloudflow.runs.schemas import RunCreate, RunOut, RunPage, TransitionOut
from xcloudflow.state import service as state
from xcloudflow.workspaces import run_inputs as workspace_inputs
from xcloudflow.workspaces import service as workspaces
from xcloudflow.workspaces.models import Workspace, WorkspaceCodeVersion

PLAN_JOB = "terraform.plan"
APPLY_JOB = "terraform.apply"
TRANSITIONS: dict[str, frozenset[str]] = {
    "pending": frozenset({"planning", "errored", "canceled"}),
    "planning": frozenset({"planned", "planned_and_finished", "errored", "canceled"}),
    "planned": frozenset({"confirmed", "discarded", "canceled", "errored"}),
    "confirmed": frozenset({"applying", "errored", "canceled"}),
    "applying": frozenset({"applied", "errored", "canceled"}),
}
HOLDING_STAGES = ("planning", "planned", "confirmed", "applying")
PLAN_MAX_ATTEMPTS = 3
APPLY_MAX_ATTEMPTS = 2  # the agent calls an apply failure retryable only before Terraform touched anything
_TARGET = re.compile(r'^[A-Za-z0-9_.\-\[\]"]{1,512}$')
SYSTEM = "system"


# ---------------------------------------------------------------- reading


def workspace_label(ws: Workspace) -> str:
    return f"{ws.project}/{ws.name}"


def _queue_position(session: Session, run: Run) -> int | None:
    if run.stage != "pending" or run.plan_job_id is not None:
        return None
    # Only runs still waiting count: a pending run whose plan job is queued already holds the workspace.
    ahead = session.scalar(
        select(func.count())
        .select_from(Run)
        .where(
            Run.workspace_id == run.workspace_id,
            Run.stage == "pending",
            Run.plan_job_id.is_(None),
            Run.number < run.number,
        )
    )
    return int(ahead or 0) + 1


def _waiting_for(session: Session, run: Run, ws: Workspace) -> str | None:
    """For a run whose job waits in the queue: which pool it waits for and how many agents it has."""
    job_id = (
        run.plan_job_id if run.stage == "pending" else run.apply_job_id if run.stage == "confirmed" else None
    )
    if job_id is None:
        return None
    job = session.get(Job, job_id)
    if job is None or job.status != "queued":
        return None
    online = job_agents.online_agents(session=session, pool_id=job.pool_id)
    if online == 0:
        return f"an agent of pool {ws.agent_pool}: none is online"
    return f"a free agent of pool {ws.agent_pool} ({online} online)"


def _transitions(session: Session, run: Run) -> list[TransitionOut]:
    rows = session.scalars(
        select(RunTransition).where(RunTransition.run_id == run.id).order_by(RunTransition.seq)
    )
    return [
        TransitionOut(from_stage=t.from_stage, to_stage=t.to_stage, at=t.at, actor=t.actor, reason=t.reason)
        for t in rows
    ]


def _code_number(session: Session, run: Run) -> int | None:
    if run.code_version_id is None:
        return None
    return session.scalar(
        select(WorkspaceCodeVersion.number).where(WorkspaceCodeVersion.id == run.code_version_id)
    )


def run_out(session: Session, run: Run, ws: Workspace, *, detail: bool = True) -> RunOut:
    return RunOut(
        id=run.id,
        number=run.number,
        workspace=workspace_label(ws),
        kind=run.kind,
        source=run.source,
        stage=run.stage,
        message=run.message,
        targets=list(run.targets or []),
        auto_apply=run.auto_apply,
        code_version=_code_number(session, run),
        resource_versions=run.resource_versions,
        has_changes=run.has_changes,
        summary=run.summary,
        output_changes=run.output_changes,
        outputs=run.outputs,
        error=run.error,
        error_class=run.error_class,
        created_at=run.created_at,
        created_by=run.created_by,
        started_at=run.started_at,
        planned_at=run.planned_at,
        confirmed_at=run.confirmed_at,
        confirmed_by=run.confirmed_by,
        finished_at=run.finished_at,
        cancel_requested_at=run.cancel_requested_at,
        queue_position=_queue_position(session, run),
        waiting_for=_waiting_for(session, run, ws),
        plan_job=run.plan_job_id,
        apply_job=run.apply_job_id,
        transitions=_transitions(session, run) if detail else [],
    )


def get_run(session: Session, org_id: int, run_id: uuid.UUID, *, lock: bool = False) -> tuple[Run, Workspace]:
    stmt = select(Run).where(Run.id == run_id, Run.org_id == org_id)
    run = session.scalars(stmt.with_for_update() if lock else stmt).first()
    if run is None:
        raise NotFound(f"no run {run_id}")
    return run, session.get_one(Workspace, run.workspace_id)


def show_run(*, session: Session, org_id: int, run_id: uuid.UUID) -> RunOut:
    run, ws = get_run(session, org_id, run_id)
    return run_out(session, run, ws)


def plan_document(*, session: Session, keyring: Keyring, org_id: int, run_id: uuid.UUID) -> bytes:
    """The plan as `terraform show -json` printed it, with sensitive values masked by the agent."""
    run, _ws = get_run(session, org_id, run_id)
    if run.plan_job_id is None or run.planned_at is None:
        raise NotFound(f"run #{run.number} has no plan yet (it is {run.stage})")
    if not run.has_changes:
        raise NotFound(f"run #{run.number} planned no changes: no plan is kept for it")
    return jobs.read_artifact(
        session=session, keyring=keyring, org_id=org_id, job_id=run.plan_job_id, name="plan.json"
    )


def list_runs(
    *,
    session: Session,
    org_id: int,
    project: str | None = None,
    name: str | None = None,
    stage: str | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> RunPage:
    """Newest first; a workspace (`project` and `name`) or the whole organization."""
    check_limit(limit)
    stmt = (
        select(Run, Workspace).join(Workspace, Workspace.id == Run.workspace_id).where(Run.org_id == org_id)
    )
    if name is not None and project is not None:
        ws = workspaces.get_workspace(session=session, org_id=org_id, project=project, name=name)
        stmt = stmt.where(Run.workspace_id == ws.id)
    elif project is not None:
        stmt = stmt.where(Workspace.project == project)
    if stage:
        if stage not in RUN_STAGES:
            raise Invalid(f"stage must be one of {', '.join(RUN_STAGES)}", details={"field": "stage"})
        stmt = stmt.where(Run.stage == stage)
    rows = session.execute(newest_first(stmt, Run.created_at, Run.id, cursor, limit)).all()
    page, next_cursor = page_of(rows, limit, lambda row: newest_cursor(row[0].created_at, row[0].id))
    return RunPage(items=[run_out(session, r, w, detail=False) for r, w in page], next_cursor=next_cursor)


# ---------------------------------------------------------------- stage changes


def _transition(session: Session, run: Run, to: str, *, actor: str | None, reason: str | None = None) -> None:
    allowed = TRANSITIONS.get(run.stage, frozenset())
    if to not in allowed:
        raise Conflict(
            f"run #{run.number} is {run.stage}; it cannot become {to}"
            + (
                f" (from {run.stage} it can become {', '.join(sorted(allowed))})"
                if allowed
                else " (it is final)"
            ),
            details={"stage": run.stage, "allowed": sorted(allowed)},
        )
    _record(session, run, to, actor=actor, reason=reason)


def _record(session: Session, run: Run, to: str, *, actor: str | None, reason: str | None) -> None:
    now = utcnow()
    seq = session.scalar(select(func.max(RunTransition.seq)).where(RunTransition.run_id == run.id)) or 0
    session.add(
        RunTransition(
            run_id=run.id, seq=seq + 1, from_stage=run.stage, to_stage=to, at=now, actor=actor, reason=reason
        )
    )
    metrics.stage_changed(run.kind, run.stage, to, since=_stage_since(session, run), now=now)
    run.stage = to
    if to == "planning":
        run.started_at = now
    elif to in ("planned", "planned_and_finished"):
        run.planned_at = now
    elif to == "confirmed":
        run.confirmed_at = now
    if to in FINAL_STAGES:
        run.finished_at = now
    session.flush()
    if to in FINAL_STAGES:
        dispatch_next(session=session, workspace_id=run.workspace_id)


def _stage_since(session: Session, run: Run) -> datetime | None:
    return session.scalar(
        select(func.max(RunTransition.at)).where(
            RunTransition.run_id == run.id, RunTransition.to_stage == run.stage
        )
    )


def _fail(session: Session, run: Run, message: str, *, actor: str | None, error_class: str | None) -> None:
    run.error = message
    run.error_class = error_class
    _transition(session, run, "errored", actor=actor, reason=message[:2000])
    _emit(session, run, "run.errored")


def _emit(session: Session, run: Run, event: str, extra: dict[str, Any] | None = None) -> None:
    ws = session.get_one(Workspace, run.workspace_id)
    payload: dict[str, Any] = {
        "run_id": str(run.id),
        "run_number": run.number,
        "workspace": workspace_label(ws),
        "kind": run.kind,
        "stage": run.stage,
        "source": run.source,
        "summary": run.summary,
        "error": run.error,
        "created_by": run.created_by,
        **(extra or {}),
    }
    notify.emit(
        session=session, org_id=run.org_id, workspace_id=run.workspace_id, event=event, payload=payload
    )


# ---------------------------------------------------------------- queueing


def _state_scope(ws: Workspace) -> dict[str, str]:
    return {"project": ws.project, "stack": ws.name}


def dispatch_next(*, session: Session, workspace_id: int) -> Run | None:
    """Queue the plan job of the oldest pending run if no run holds the workspace."""
    ws = session.scalars(select(Workspace).where(Workspace.id == workspace_id).with_for_update()).first()
    if ws is None or ws.locked:
        return None  # a locked workspace starts nothing; dispatch_waiting picks it up once unlocked
    holder = session.scalars(
        select(Run.id)
        .where(
            Run.workspace_id == workspace_id,
            or_(Run.stage.in_(HOLDING_STAGES), and_(Run.stage == "pending", Run.plan_job_id.is_not(None))),
        )
        .limit(1)
    ).first()
    if holder is not None:
        return None
    run = session.scalars(
        select(Run)
        .where(Run.workspace_id == workspace_id, Run.stage == "pending")
        .order_by(Run.created_at, Run.number)
        .limit(1)
        .with_for_update()
    ).first()
    if run is None:
        return None
    try:
        job = jobs.enqueue(
            session=session,
            org_id=run.org_id,
            kind=PLAN_JOB,
            payload={"run_id": str(run.id), "state": _state_scope(ws)},
            pool=ws.agent_pool,
            max_attempts=PLAN_MAX_ATTEMPTS,
        )
    except DomainError as exc:
        _fail(session, run, f"cannot queue the plan: {exc}", actor=SYSTEM, error_class="permanent")
        return None
    run.plan_job_id = job.id
    metrics.queued(run.kind)
    session.flush()
    return run


def dispatch_waiting(*, session: Session, limit: int = 100) -> int:
    """Dispatch workspaces whose pending runs wait with nothing holding them (e.g. after an unlock)."""
    waiting = session.scalars(
        select(Run.workspace_id)
        .join(Workspace, Workspace.id == Run.workspace_id)
        .where(Run.stage == "pending", Run.plan_job_id.is_(None), Workspace.locked.is_(False))
        .distinct()
        .limit(limit)
    ).all()
    return sum(dispatch_next(session=session, workspace_id=ws_id) is not None for ws_id in waiting)


def expire_unclaimed(*, session: Session, timeout_seconds: float, now: datetime | None = None) -> int:
    """Runs whose job waited longer than `timeout_seconds` for a pool with no agent online end errored,
    saying so (a busy pool's queue just waits). Returns how many runs were ended."""
    now = now or utcnow()
    cutoff = now - timedelta(seconds=timeout_seconds)
    rows = session.execute(
        select(Run, Job)
        .join(Job, or_(Job.id == Run.plan_job_id, Job.id == Run.apply_job_id))
        .where(Run.stage.in_(("pending", "confirmed")), Job.status == "queued", Job.created_at < cutoff)
        .with_for_update(of=Run, skip_locked=True)
    ).all()
    ended = 0
    for run, job in rows:
        if job_agents.online_agents(session=session, pool_id=job.pool_id):
            continue
        ws = session.get_one(Workspace, run.workspace_id)
        waited = int((now - job.created_at).total_seconds())
        _fail(
            session,
            run,
            f"no agent of pool {ws.agent_pool} came online to take the run's {job.kind.split('.')[-1]} job "
            f"within {waited}s; start an agent for the pool (xcf agent --pool {ws.agent_pool}) and run again",
            actor=SYSTEM,
            error_class="transient",
        )
        jobs.cancel_job(session=session, job_id=job.id, actor=SYSTEM)
        ended += 1
    return ended


def create_run(
    *,
    session: Session,
    keyring: Keyring,
    principal: Principal | None,
    ctx: AuditContext,
    project: str,
    name: str,
    body: RunCreate,
    source: str = "api",
) -> RunOut:
    """A new run of the workspace; it is queued behind the run holding the workspace, if any.

    A run whose pre-execution checks fail (no configuration, a variable without value) is still
    recorded, errored with the reason, so the history says what was attempted and why it stopped.
    """
    org_id = principal.org_id if principal else ctx.org_id
    if principal is not None:
        iam.require(principal, "writer", action="starting runs")
    if org_id is None:
        raise Invalid("no organization for the run")
    for target in body.targets:
        if not _TARGET.match(target):
            raise Invalid(f"target {target!r} is not a resource address", details={"field": "targets"})
    ws = workspaces.get_workspace(session=session, org_id=org_id, project=project, name=name, lock=True)
    if ws.locked:
        raise Conflict(
            f"workspace {workspace_label(ws)} is locked by {ws.locked_by or 'someone'}: "
            f"{ws.lock_reason or 'no reason given'}; unlock it to start runs",
            details={"locked_by": ws.locked_by, "lock_reason": ws.lock_reason},
        )
    ws.run_seq = (ws.run_seq or 0) + 1
    run = Run(
        id=uuid.uuid4(),
        org_id=org_id,
        workspace_id=ws.id,
        number=ws.run_seq,
        kind=body.kind,
        source=source,
        stage="pending",
        message=body.message,
        targets=list(body.targets),
        auto_apply=ws.auto_apply if body.auto_apply is None else body.auto_apply,
        created_at=utcnow(),
        created_by=ctx.actor,
    )
    session.add(run)
    session.flush()
    session.add(
        RunTransition(
            run_id=run.id, seq=1, from_stage=None, to_stage="pending", at=run.created_at, actor=ctx.actor
        )
    )
    audit.record(
        session=session,
        ctx=ctx,
        action="runs.run.create",
        resource=f"run/{run.id}",
        details={"workspace": workspace_label(ws), "number": run.number, "kind": run.kind, "source": source},
    )
    metrics.created(run.kind)
    _emit(session, run, "run.created")
    try:
        inputs = workspace_inputs.run_inputs(session=session, keyring=keyring, workspace=ws)
    except Invalid as exc:
        _fail(session, run, f"pre-execution check failed: {exc}", actor=SYSTEM, error_class="permanent")
        return run_out(session, run, ws)
    run.code_version_id = inputs.code_version_id
    run.resource_versions = inputs.resource_versions
    session.flush()
    dispatch_next(session=session, workspace_id=ws.id)
    return run_out(session, run, ws)


# ---------------------------------------------------------------- people acting on runs


def _stale_reason(session: Session, run: Run, ws: Workspace) -> str | None:
    serial, lineage = state.head_serial(session=session, org_id=run.org_id, project=ws.project, stack=ws.name)
    planned = run.plan_state_serial
    if serial is None:
        if planned:
            return f"the plan was made against state serial {planned}, but the workspace has no state now"
        return None
    if planned is None or serial != planned or (run.plan_state_lineage and lineage != run.plan_state_lineage):
        return (
            f"the plan is stale: it was made against state serial {planned} "
            f"(lineage {run.plan_state_lineage}), the state is now at serial {serial} (lineage {lineage}); "
            f"start a new run"
        )
    return None


def _confirm(session: Session, run: Run, ws: Workspace, *, actor: str | None) -> None:
    stale = _stale_reason(session, run, ws)
    if stale is not None:
        _fail(session, run, stale, actor=actor, error_class="stale")
        return
    _transition(session, run, "confirmed", actor=actor)
    run.confirmed_by = actor
    job = jobs.enqueue(
        session=session,
        org_id=run.org_id,
        kind=APPLY_JOB,
        payload={"run_id": str(run.id), "state": _state_scope(ws), "plan_job_id": str(run.plan_job_id)},
        pool=ws.agent_pool,
        max_attempts=APPLY_MAX_ATTEMPTS,
    )
    run.apply_job_id = job.id
    session.flush()


def confirm(*, session: Session, principal: Principal, ctx: AuditContext, run_id: uuid.UUID) -> RunOut:
    """Apply exactly the saved plan; refused (the run errors as stale) if the state moved since the plan."""
    iam.require(principal, "writer", action="confirming runs")
    run, ws = get_run(session, principal.org_id, run_id, lock=True)
    if ws.locked:
        raise Conflict(
            f"workspace {workspace_label(ws)} is locked by {ws.locked_by or 'someone'}: "
            f"{ws.lock_reason or 'no reason given'}; unlock it to apply",
            details={"locked_by": ws.locked_by, "lock_reason": ws.lock_reason},
        )
    if run.stage == "planned" and not run.has_changes:
        raise Conflict(f"run #{run.number} has no changes to apply")
    if run.stage != "planned":
        _transition(session, run, "confirmed", actor=ctx.actor)  # raises with the allowed stages
    _confirm(session, run, ws, actor=ctx.actor)
    audit.record(
        session=session,
        ctx=ctx,
        action="runs.run.confirm",
        resource=f"run/{run.id}",
        result="success" if run.stage == "confirmed" else "refused",
        details={"workspace": workspace_label(ws), "number": run.number, "error": run.error},
    )
    return run_out(session, run, ws)


def discard(*, session: Session, principal: Principal, ctx: AuditContext, run_id: uuid.UUID) -> RunOut:
    iam.require(principal, "writer", action="discarding runs")
    run, ws = get_run(session, principal.org_id, run_id, lock=True)
    _transition(session, run, "discarded", actor=ctx.actor)
    audit.record(session=session, ctx=ctx, action="runs.run.discard", resource=f"run/{run.id}")
    return run_out(session, run, ws)


def cancel(*, session: Session, principal: Principal, ctx: AuditContext, run_id: uuid.UUID) -> RunOut:
    """Pending or planned: canceled now. Planning or applying: Terraform is interrupted on the agent
    (gracefully, then killed after the grace period) and the run is canceled when the agent reports."""
    iam.require(principal, "writer", action="canceling runs")
    run, ws = get_run(session, principal.org_id, run_id, lock=True)
    actor = ctx.actor or principal.user_name
    if run.stage in FINAL_STAGES:
        raise Conflict(f"run #{run.number} is already {run.stage}", details={"stage": run.stage})
    job_id = run.apply_job_id if run.stage in ("confirmed", "applying") else run.plan_job_id
    if run.stage == "planned" or job_id is None:
        _transition(session, run, "canceled", actor=actor, reason=f"canceled by {actor}")
    else:
        run.cancel_requested_at = utcnow()
        run.cancel_requested_by = actor
        with contextlib.suppress(Conflict):  # its job finished meanwhile: the job's event moves the run
            jobs.cancel_job(session=session, job_id=job_id, actor=actor)
    audit.record(session=session, ctx=ctx, action="runs.run.cancel", resource=f"run/{run.id}")
    session.flush()
    return run_out(session, run, ws)


# ---------------------------------------------------------------- following the jobs


def _release_state_lock(session: Session, run: Run, ws: Workspace, job: Job) -> str | None:
    released = state.release_lock_held_by(
        session=session,
        ctx=AuditContext(actor=SYSTEM, org_id=run.org_id),
        org_id=run.org_id,
        project=ws.project,
        stack=ws.name,
        actor=f"job:{job.id}",
    )
    return None if released is None else released.ID


def on_job_event(session: Session, job: Job, event: str) -> None:
    """Registered with jobs for `terraform.*`: moves the run of the job along."""
    try:
        run_id = uuid.UUID(str(job.payload.get("run_id")))
    except ValueError:
        return
    run = session.scalars(select(Run).where(Run.id == run_id).with_for_update()).first()
    if run is None or run.stage in FINAL_STAGES:
        return
    ws = session.get_one(Workspace, run.workspace_id)
    if event == "started":
        if job.kind == PLAN_JOB and run.stage == "pending":
            _transition(session, run, "planning", actor=job.agent_name)
            metrics.waited(run.kind, (utcnow() - job.created_at).total_seconds())
        elif job.kind == APPLY_JOB and run.stage == "confirmed":
            _transition(session, run, "applying", actor=job.agent_name)
        return
    if event != "finished":
        return
    result = job.result or {}
    if job.kind == PLAN_JOB and job.id == run.plan_job_id:
        _plan_finished(session, run, ws, job, result)
    elif job.kind == APPLY_JOB and job.id == run.apply_job_id:
        _apply_finished(session, run, ws, job, result)


def _failure_message(job: Job, what: str) -> str:
    if job.status == "errored":
        return f"the {what} was interrupted: {job.error}"
    return job.error or f"the {what} failed without a message"


def _plan_finished(session: Session, run: Run, ws: Workspace, job: Job, result: dict[str, Any]) -> None:
    if job.status == "canceled":
        _release_state_lock(session, run, ws, job)
        _transition(session, run, "canceled", actor=run.cancel_requested_by or SYSTEM, reason=job.error)
        return
    if job.status != "succeeded":
        held = _release_state_lock(session, run, ws, job)
        message = _failure_message(job, "plan")
        if held:
            message += f" (the state lock {held} it held was released)"
        _fail(
            session, run, message, actor=job.agent_name, error_class=result.get("error_class") or "permanent"
        )
        return
    run.has_changes = bool(result.get("has_changes"))
    run.summary = result.get("summary")
    run.output_changes = result.get("output_changes")
    run.plan_state_serial = result.get("state_serial")
    run.plan_state_lineage = result.get("state_lineage")
    if run.kind == "refresh_only" and run.has_changes:
        # What the refresh found changed outside Terraform, and the outputs that no longer match it.
        drift = list(result.get("resource_drift") or []) + [
            {"address": f"output.{o.get('name')}", "actions": o.get("actions", [])}
            for o in run.output_changes or []
        ]
        _record_drift(session, run, ws, drift)
    if not run.has_changes or run.source == "drift":
        _transition(session, run, "planned_and_finished", actor=job.agent_name)
        return
    _transition(session, run, "planned", actor=job.agent_name)
    if run.auto_apply and run.kind in ("plan_and_apply", "destroy"):
        _confirm(session, run, ws, actor="auto-apply")
    else:
        _emit(session, run, "run.needs_confirmation")


def _apply_finished(session: Session, run: Run, ws: Workspace, job: Job, result: dict[str, Any]) -> None:
    if job.status == "succeeded":
        run.outputs = result.get("outputs")
        missing = _state_not_written(session, run, ws)
        if missing is not None:
            _fail(session, run, missing, actor=job.agent_name, error_class="permanent")
            return
        _transition(session, run, "applied", actor=job.agent_name)
        _emit(session, run, "run.applied")
        return
    held = _release_state_lock(session, run, ws, job)
    if job.status == "canceled":
        _transition(session, run, "canceled", actor=run.cancel_requested_by or SYSTEM, reason=job.error)
        return
    message = _failure_message(job, "apply")
    backup = result.get("state_backup")
    if backup or job.status == "errored":
        why = (
            f"the new state could not be saved; the agent kept it at {backup}"
            if backup
            else f"the apply of run #{run.number} was interrupted and the state may be partial"
        )
        workspaces.lock_workspace(
            session=session,
            workspace=ws,
            reason=f"{why}: check the state, then unlock the workspace",
            actor=SYSTEM,
        )
        message += f"; workspace {workspace_label(ws)} is locked until someone checks it ({why})"
    if held:
        message += f" (the state lock {held} it held was released)"
    _fail(session, run, message, actor=job.agent_name, error_class=result.get("error_class") or "permanent")


def _state_not_written(session: Session, run: Run, ws: Workspace) -> str | None:
    """Post-execution check: an apply with changes must have left a newer state version behind."""
    if not run.has_changes:
        return None
    serial, _lineage = state.head_serial(
        session=session, org_id=run.org_id, project=ws.project, stack=ws.name
    )
    if serial is not None and (run.plan_state_serial is None or serial > run.plan_state_serial):
        return None
    return (
        f"Terraform reported the apply as done, but no new state version of {workspace_label(ws)} reached "
        f"the state service (serial {serial}, planned against {run.plan_state_serial}); check the agent's log"
    )


def _record_drift(session: Session, run: Run, ws: Workspace, drift: list[dict[str, Any]]) -> None:
    now = utcnow()
    session.add(
        DriftFinding(
            org_id=run.org_id,
            workspace_id=run.workspace_id,
            run_id=run.id,
            detected_at=now,
            resources=drift,
            count=len(drift),
        )
    )
    inventory_drift.record_drift(
        session=session,
        org_id=run.org_id,
        project=ws.project,
        stack=ws.name,
        run_id=run.id,
        at=now,
        drifted=drift,
    )
    session.flush()
    metrics.drift_found()
    _emit(session, run, "run.drift_detected", {"drifted": drift[:50], "count": len(drift)})


def run_for_job(*, session: Session, job_id: uuid.UUID, org_id: int) -> tuple[Run, Workspace, Job]:
    job = session.get(Job, job_id)
    if job is None or job.org_id != org_id:
        raise NotFound(f"no job {job_id}")
    try:
        run_id = uuid.UUID(str(job.payload.get("run_id")))
    except ValueError as exc:
        raise NotFound(f"job {job_id} runs no workspace") from exc
    run, ws = get_run(session, org_id, run_id)
    return run, ws, job
