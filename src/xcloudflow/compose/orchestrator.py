"""The orchestrator: moves every open ChangeSet one step on, each time `xcf server` ticks.

Planning ends when every node's plan is in; then the policies decide between `blocked` and `planned`.
Applying walks the DAG: a node starts when its dependencies are applied, its approval is given, its
change window is open, no Foundation change of the environment holds the exclusive lock (and, for a
Foundation node, nothing else of the environment runs), its composition's batch budget has room and
the ChangeSet's concurrency limit allows. A failed node stops its dependents (skipped); independent
branches go on. Transient failures are retried with exponential backoff. Everything is read from and
written to the database in the tick's transaction, so several server replicas can tick safely (the
ChangeSets are claimed with SKIP LOCKED on PostgreSQL).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from xcloudflow.compose import checks, events, job_nodes, reconcile, rollback, tf_nodes, windows
from xcloudflow.compose.dsl import format_duration
from xcloudflow.compose.events import ACTOR
from xcloudflow.compose.models import NODE_ACTIVE, NODE_FINAL, ComposeChangeSet, ComposeNode
from xcloudflow.compose.planner import nodes_of
from xcloudflow.compose.tf_nodes import Progress
from xcloudflow.db.base import utcnow
from xcloudflow.errors import DomainError
from xcloudflow.keys.keyring import Keyring

log = logging.getLogger("xcloudflow.compose")
UNSUCCESSFUL = ("failed", "skipped", "rejected", "discarded")


@dataclass(frozen=True)
class Limits:
    max_attempts: int = 3
    retry_base_seconds: float = 10.0


def tick(*, session: Session, keyring: Keyring, limits: Limits, now: datetime | None = None) -> int:
    """Advance open ChangeSets, drift checks and TTL collections; returns how many ChangeSets moved."""
    now = now or utcnow()
    open_sets = list(
        session.scalars(
            select(ComposeChangeSet)
            .where(ComposeChangeSet.status.in_(("planning", "applying")))
            .order_by(ComposeChangeSet.created_at)
            .limit(50)
            .with_for_update(skip_locked=True)
        )
    )
    for cs in open_sets:
        try:
            with session.begin_nested():
                if cs.status == "planning":
                    _advance_planning(session, keyring, cs)
                else:
                    _advance_applying(session, keyring, cs, limits, now)
        except DomainError as exc:
            log.warning("changeset %s: %s", cs.id, exc)
            cs.status, cs.error, cs.finished_at = "failed", str(exc), now
    reconcile.tick(session=session, keyring=keyring, now=now)
    session.flush()
    return len(open_sets)


def _progress(
    session: Session, keyring: Keyring, cs: ComposeChangeSet, node: ComposeNode, planning: bool
) -> Progress:
    if node.run_id is not None and node.status != "backing_up" and node.status != "observing":
        return tf_nodes.poll(session=session, keyring=keyring, org_id=cs.org_id, run_id=node.run_id)
    if node.job_id is not None:
        return job_nodes.poll(session=session, org_id=cs.org_id, job_id=node.job_id, planning=planning)
    return Progress("failed", error="the node has neither a run nor a job")


# ---------------------------------------------------------------- planning


def _advance_planning(session: Session, keyring: Keyring, cs: ComposeChangeSet) -> None:
    nodes = nodes_of(session, cs.id)
    for node in nodes:
        if node.status != "planning":
            continue
        progress = _progress(session, keyring, cs, node, planning=True)
        if progress.state in ("planned", "no_changes"):
            node.status, node.plan = progress.state, progress.plan
        elif progress.state in ("failed", "done"):
            node.status, node.error, node.finished_at = (
                "failed",
                progress.error or "plan ended oddly",
                utcnow(),
            )
    if any(n.status == "planning" for n in nodes):
        return
    failed = [n for n in nodes if n.status == "failed"]
    if failed:
        for node in nodes:
            release(session, cs, node)
        cs.summary = checks.summary(nodes)
        finish(
            session,
            cs,
            "failed",
            error="planning failed: " + "; ".join(f"{n.key}: {n.error}" for n in failed),
        )
        return
    cs.policy_blocking = checks.evaluate(cs, nodes)
    if cs.policy_blocking and cs.override_by is None:
        cs.status = "blocked"
        events.record(session, cs, "compose.changeset.blocked", details={"summary": cs.summary})
        return
    cs.status = "planned"
    events.record(session, cs, "compose.changeset.planned", details={"summary": cs.summary})
    if cs.apply_requested:
        begin_apply(session, cs)


def begin_apply(session: Session, cs: ComposeChangeSet) -> None:
    cs.status = "applying"
    cs.apply_started_at = utcnow()


def release(session: Session, cs: ComposeChangeSet, node: ComposeNode) -> None:
    """Let go of the node's planned run or queued job (the ChangeSet will not apply it)."""
    if node.run_id is not None and node.status in ("planned", "planning", "awaiting_approval", "waiting"):
        tf_nodes.discard(session=session, org_id=cs.org_id, actor=ACTOR, run_id=node.run_id)
    elif node.job_id is not None and node.status in ("planning", "backing_up", "applying", "observing"):
        job_nodes.cancel(session=session, job_id=node.job_id, actor=ACTOR)


def finish(session: Session, cs: ComposeChangeSet, status: str, *, error: str | None = None) -> None:
    cs.status, cs.error, cs.finished_at = status, error, utcnow()
    event = {"applied": "compose.applied", "failed": "compose.failed"}.get(status)
    events.record(
        session,
        cs,
        f"compose.changeset.{status}",
        details={"error": error, "summary": cs.summary},
        notify_event=event,
    )


# ---------------------------------------------------------------- applying


def _advance_applying(
    session: Session, keyring: Keyring, cs: ComposeChangeSet, limits: Limits, now: datetime
) -> None:
    nodes = nodes_of(session, cs.id)
    by_key = {n.key: n for n in nodes}
    for node in nodes:
        if node.status in NODE_FINAL:
            continue
        if node.status in NODE_ACTIVE:
            _poll_active(session, keyring, cs, node, limits, now)
            continue
        _maybe_start(session, keyring, cs, node, by_key, now)
    if all(n.status in NODE_FINAL for n in nodes):
        _complete(session, cs, nodes)


def _complete(session: Session, cs: ComposeChangeSet, nodes: list[ComposeNode]) -> None:
    ok = all(n.status == "applied" for n in nodes)
    if not ok:
        bad = [n for n in nodes if n.status != "applied"]
        finish(
            session,
            cs,
            "failed",
            error="; ".join(f"{n.key}: {n.status}: {n.error or ''}".rstrip(": ") for n in bad),
        )
    else:
        finish(session, cs, "applied")
    if cs.kind == "rollback" and cs.rollback_of is not None and ok:
        source = session.get(ComposeChangeSet, cs.rollback_of)
        if source is not None:
            source.status = "rolled_back"
            events.record(
                session,
                source,
                "compose.changeset.rolled_back",
                details={"rollback": str(cs.id)},
                notify_event="compose.rolled_back",
            )
    automatic = not ok and cs.context.get("rollback_on_failure") and cs.kind == "apply"
    if automatic and any(rollback.was_applied(n) for n in nodes):
        rollback.create_rollback(session=session, cs=cs, actor=ACTOR, reason="observation failed")


def _wait(node: ComposeNode, status: str, why: str) -> None:
    node.status, node.waiting_for = status, why


def _maybe_start(
    session: Session,
    keyring: Keyring,
    cs: ComposeChangeSet,
    node: ComposeNode,
    by_key: dict[str, ComposeNode],
    now: datetime,
) -> None:
    deps = [by_key[d] for d in node.depends_on if d in by_key]
    broken = next((d for d in deps if d.status in UNSUCCESSFUL), None)
    if broken is not None:
        release(session, cs, node)
        node.status, node.finished_at = "skipped", now
        node.error = f"not applied: it depends on {broken.key}, which {broken.status if broken.status != 'skipped' else 'was skipped'}"
        node.waiting_for = None
        return
    pending = [d.key for d in deps if d.status != "applied"]
    if pending:
        node.waiting_for = f"waiting for {', '.join(pending[:5])}" + (" ..." if len(pending) > 5 else "")
        return
    if node.status == "no_changes":
        node.status, node.finished_at, node.waiting_for = "applied", now, None
        node.applied_at = now
        reconcile.record_target(session, cs, node, code_version=None, now=now)
        return
    if node.next_attempt_at is not None and node.next_attempt_at > now:
        _wait(node, "waiting", f"retry {node.attempts + 1} at {node.next_attempt_at.isoformat()}")
        return
    if node.approval_required and node.decision != "approved":
        if node.status != "awaiting_approval":
            _wait(node, "awaiting_approval", "approval")
            events.record(
                session,
                cs,
                "compose.node.approval_requested",
                node=node,
                details={"window": node.change_window},
                notify_event="compose.approval_requested",
            )
        return
    reason = _held(session, cs, node, now)
    if reason is not None:
        _wait(node, "waiting", reason)
        return
    _start(session, keyring, cs, node, now)


def _held(session: Session, cs: ComposeChangeSet, node: ComposeNode, now: datetime) -> str | None:
    """Why the node may not start now (window, exclusive lock, budget, concurrency), or None."""
    if node.change_window:
        window = (cs.context.get("change_windows") or {}).get(node.change_window)
        if window is None:
            return f"change window {node.change_window} is not defined in .xcf.yaml"
        if not windows.is_open(window, now, name=node.change_window):
            opens = windows.next_open(window, now, name=node.change_window)
            return f"change window {node.change_window} is closed; it opens at {opens.isoformat()}"
    active = select(ComposeNode).where(
        ComposeNode.org_id == cs.org_id,
        ComposeNode.environment == cs.environment,
        ComposeNode.status.in_(NODE_ACTIVE),
        ComposeNode.id != node.id,
    )
    if node.layer == "Foundation":
        busy = session.scalars(active.limit(1)).first()
        if busy is not None:
            return f"a Foundation change needs the environment to itself; {busy.key} is {busy.status}"
    else:
        holder = session.scalars(active.where(ComposeNode.layer == "Foundation").limit(1)).first()
        if holder is not None:
            return (
                f"the Foundation change {holder.key} (changeset {holder.changeset_id}) holds the environment "
                "until it is verified"
            )
    budget = ((cs.context.get("compositions") or {}).get(node.composition) or {}).get("budget")
    if budget:
        per = reconcile.seconds(budget.get("per") or "30m")
        since = now - timedelta(seconds=per)
        recent = list(
            session.scalars(
                select(ComposeNode.started_at).where(
                    ComposeNode.org_id == cs.org_id,
                    ComposeNode.environment == cs.environment,
                    ComposeNode.composition == node.composition,
                    ComposeNode.started_at >= since,
                    ComposeNode.attempts > 0,
                    ComposeNode.id != node.id,
                )
            )
        )
        if len(recent) >= int(budget.get("max") or 1):
            slot = min(t for t in recent if t is not None) + timedelta(seconds=per)
            return (
                f"batch budget of {node.composition}: at most {budget.get('max')} per {format_duration(per)}; "
                f"next slot at {slot.isoformat()}"
            )
    running = session.scalar(
        select(func.count()).where(ComposeNode.changeset_id == cs.id, ComposeNode.status.in_(NODE_ACTIVE))
    )
    limit = int(cs.context.get("concurrency") or 4)
    if (running or 0) >= limit:
        return f"concurrency limit of {limit} nodes at once"
    return None


def _start(
    session: Session, keyring: Keyring, cs: ComposeChangeSet, node: ComposeNode, now: datetime
) -> None:
    node.attempts += 1
    node.started_at, node.waiting_for, node.next_attempt_at = now, None, None
    if node.snapshot is None:
        node.snapshot = reconcile.snapshot(session, cs, node)
        if node.route.get("backup") == "pre-change" and node.snapshot.get("state_version") is not None:
            events.record(
                session, cs, "compose.node.snapshot", node=node, details={"snapshot": node.snapshot}
            )
    command = ((cs.context.get("compositions") or {}).get(node.composition) or {}).get("backupCommand")
    if (
        node.action == "apply"
        and node.route.get("backup") == "pre-change"
        and command
        and "backup_job" not in node.snapshot
    ):
        job = _exec_job(
            session, cs, node, purpose="backup", command=command, url=None, window=0, interval=1, timeout=3600
        )
        node.snapshot = {**node.snapshot, "backup_job": str(job)}
        node.job_id, node.status = job, "backing_up"
        return
    _launch(session, keyring, cs, node)


def _launch(session: Session, keyring: Keyring, cs: ComposeChangeSet, node: ComposeNode) -> None:
    node.status = "applying"
    pool = cs.context.get("pool") or "embedded"
    message = f"xcf compose: {cs.kind} changeset {cs.id} node {node.key}"
    if node.engine == "terraform":
        assert node.workspace is not None
        if node.action == "apply" and node.attempts == 1 and node.run_id is not None:
            reason = tf_nodes.confirm(session=session, org_id=cs.org_id, actor=ACTOR, run_id=node.run_id)
            if reason is not None:
                node.status, node.error, node.finished_at = (
                    "failed",
                    f"cannot apply the approved plan: {reason}",
                    utcnow(),
                )
            return
        kind: Any = "plan_and_apply"
        if node.action == "destroy":
            kind = "destroy"
        elif node.action in ("restore", "correct"):
            number = (node.snapshot or {}).get("restore_code_version")
            if number is not None:
                tf_nodes.restore_code(
                    session=session, org_id=cs.org_id, actor=ACTOR, workspace=node.workspace, number=number
                )
        node.run_id = tf_nodes.start_run(
            session=session,
            keyring=keyring,
            org_id=cs.org_id,
            actor=ACTOR,
            workspace=node.workspace,
            kind=kind,
            auto_apply=True,
            message=message,
        )
        return
    source = uuid.UUID(str((node.snapshot or {}).get("bundle_changeset") or cs.id))
    node.job_id = job_nodes.start(
        session=session,
        org_id=cs.org_id,
        kind=job_nodes.APPLY_KIND,
        pool=pool,
        changeset=source,
        node=node.key,
        payload=job_nodes.engine_payload(engine=node.engine, ref=node.ref, inputs=node.inputs),
    )


def _poll_active(
    session: Session, keyring: Keyring, cs: ComposeChangeSet, node: ComposeNode, limits: Limits, now: datetime
) -> None:
    progress = _progress(session, keyring, cs, node, planning=False)
    if progress.state == "running":
        return
    ok = progress.state in ("done", "no_changes", "planned")
    if node.status == "backing_up":
        if ok:
            _launch(session, keyring, cs, node)
        else:
            node.status, node.error, node.finished_at = (
                "failed",
                f"pre-change backup failed: {progress.error}",
                now,
            )
        return
    if node.status == "observing":
        if ok:
            node.status, node.finished_at = "applied", now
            events.record(session, cs, "compose.node.verified", node=node)
        else:
            node.status, node.error, node.finished_at = "failed", f"observation failed: {progress.error}", now
            observation = ((cs.context.get("compositions") or {}).get(node.composition) or {}).get(
                "observation"
            ) or {}
            if observation.get("rollbackOnFailure"):
                cs.context = {**cs.context, "rollback_on_failure": True}
            events.record(
                session,
                cs,
                "compose.node.failed",
                node=node,
                details={"error": node.error},
                notify_event="compose.failed",
            )
        return
    if ok:
        _applied(session, cs, node, progress, now)
        return
    if progress.transient and node.attempts < limits.max_attempts:
        delay = limits.retry_base_seconds * (2 ** (node.attempts - 1))
        node.status, node.next_attempt_at = "waiting", now + timedelta(seconds=delay)
        node.error = f"attempt {node.attempts} failed ({progress.error}); retrying"
        node.waiting_for = f"retry {node.attempts + 1} at {node.next_attempt_at.isoformat()}"
        return
    node.status, node.error, node.finished_at = "failed", progress.error, now
    events.record(
        session,
        cs,
        "compose.node.failed",
        node=node,
        details={"error": node.error},
        notify_event="compose.failed",
    )


def _applied(
    session: Session, cs: ComposeChangeSet, node: ComposeNode, progress: Progress, now: datetime
) -> None:
    node.applied_at = now
    if node.action != "apply" and progress.plan is not None:
        node.plan = progress.plan
    reconcile.record_target(session, cs, node, code_version=progress.code_version, now=now)
    events.record(
        session, cs, "compose.node.applied", node=node, details={"summary": (node.plan or {}).get("summary")}
    )
    observation = ((cs.context.get("compositions") or {}).get(node.composition) or {}).get("observation")
    if observation and node.action == "apply":
        window = reconcile.seconds(observation.get("window") or "5m")
        node.job_id = _exec_job(
            session,
            cs,
            node,
            purpose="observe",
            command=observation.get("command"),
            url=observation.get("url"),
            window=window,
            interval=reconcile.seconds(observation.get("interval") or "10s"),
            timeout=window + 120,
        )
        node.status = "observing"
        return
    node.status, node.finished_at = "applied", now


def _exec_job(
    session: Session,
    cs: ComposeChangeSet,
    node: ComposeNode,
    *,
    purpose: str,
    command: str | None,
    url: str | None,
    window: int,
    interval: int,
    timeout: int,
) -> uuid.UUID:
    """A `compose.exec` job: the pre-change backup command, or the observation check after apply."""
    return job_nodes.start(
        session=session,
        org_id=cs.org_id,
        kind=job_nodes.EXEC_KIND,
        pool=cs.context.get("pool") or "embedded",
        changeset=cs.id,
        node=node.key,
        payload={
            "purpose": purpose,
            "command": command,
            "url": url,
            "window_seconds": window,
            "interval_seconds": interval,
            "timeout_seconds": timeout,
        },
    )
