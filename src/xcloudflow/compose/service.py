"""ChangeSets for people: read them, apply, approve, reject, override a policy, discard, roll back.

Decisions are checked here (roles, approvers, four eyes, states) and recorded with who and why; the
orchestrator acts on them at its next tick. Nothing here runs an engine.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from xcloudflow.audit import service as audit
from xcloudflow.audit.schemas import AuditContext
from xcloudflow.compose import events, orchestrator
from xcloudflow.compose.models import (
    CHANGESET_FINAL,
    NODE_FINAL,
    ComposeChangeSet,
    ComposeNode,
    ComposeTarget,
)
from xcloudflow.compose.planner import nodes_of
from xcloudflow.compose.rollback import create_rollback
from xcloudflow.compose.schemas import (
    Approval,
    ChangeSetOut,
    ChangeSetPage,
    ChangeSetSummary,
    NodeOut,
    TargetOut,
)
from xcloudflow.db.base import utcnow
from xcloudflow.db.pagination import check_limit, newest_cursor, newest_first, page_of
from xcloudflow.errors import Conflict, Forbidden, Invalid, NotFound
from xcloudflow.iam import service as iam
from xcloudflow.iam.schemas import Principal
from xcloudflow.jobs import service as jobs
from xcloudflow.jobs.service import JobIdentity

UNDECIDED = ("planned", "awaiting_approval", "waiting")


def get_changeset(
    session: Session, org_id: int, changeset_id: uuid.UUID, *, lock: bool = False
) -> ComposeChangeSet:
    query = select(ComposeChangeSet).where(
        ComposeChangeSet.id == changeset_id, ComposeChangeSet.org_id == org_id
    )
    if lock:
        query = query.with_for_update()
    cs = session.scalars(query).first()
    if cs is None:
        raise NotFound(f"no changeset {changeset_id}")
    return cs


def _approval(node: ComposeNode) -> dict[str, Any] | None:
    if not node.approval_required and node.decision is None:
        return None
    return {
        "required": node.approval_required,
        "window": node.change_window,
        "decision": node.decision,
        "by": node.decided_by,
        "reason": node.decision_reason,
        "at": node.decided_at.isoformat() if node.decided_at else None,
    }


def _node_out(node: ComposeNode) -> NodeOut:
    return NodeOut(
        key=node.key,
        composition=node.composition,
        module=node.module,
        ref=node.ref,
        engine=node.engine,
        layer=node.layer,
        action=node.action,
        depends_on=list(node.depends_on),
        route=node.route,
        inputs=node.inputs,
        status=node.status,
        waiting_for=node.waiting_for,
        plan=node.plan,
        policy=node.policy,
        approval=_approval(node),
        snapshot=node.snapshot,
        workspace=node.workspace,
        run=node.run_id,
        job=node.job_id,
        attempts=node.attempts,
        error=node.error,
        started_at=node.started_at,
        applied_at=node.applied_at,
        finished_at=node.finished_at,
    )


def changeset_out(session: Session, cs: ComposeChangeSet) -> ChangeSetOut:
    override = None
    if cs.override_by is not None:
        at = cs.override_at.isoformat() if cs.override_at else None
        override = {"by": cs.override_by, "reason": cs.override_reason, "at": at}
    return ChangeSetOut(
        id=cs.id,
        environment=cs.environment,
        kind=cs.kind,
        status=cs.status,
        repo=cs.repo,
        ref=cs.ref,
        commit=cs.commit,
        apply_requested=cs.apply_requested,
        rollback_of=cs.rollback_of,
        summary=cs.summary,
        policy={"blocking": cs.policy_blocking, "override": override},
        error=cs.error,
        created_at=cs.created_at,
        created_by=cs.created_by,
        apply_started_at=cs.apply_started_at,
        finished_at=cs.finished_at,
        nodes=[_node_out(n) for n in nodes_of(session, cs.id)],
    )


def show(*, session: Session, org_id: int, changeset_id: uuid.UUID) -> ChangeSetOut:
    return changeset_out(session, get_changeset(session, org_id, changeset_id))


def document(*, session: Session, org_id: int, changeset_id: uuid.UUID) -> dict[str, Any]:
    """The normalized ChangeSet document (the JSON `xcf compose plan --format json` prints)."""
    out = show(session=session, org_id=org_id, changeset_id=changeset_id)
    data: dict[str, Any] = out.model_dump(mode="json")
    return data


def list_changesets(
    *,
    session: Session,
    org_id: int,
    environment: str | None,
    status: str | None,
    limit: int = 50,
    cursor: str | None = None,
) -> ChangeSetPage:
    check_limit(limit)
    query = select(ComposeChangeSet).where(ComposeChangeSet.org_id == org_id)
    if environment:
        query = query.where(ComposeChangeSet.environment == environment)
    if status:
        query = query.where(ComposeChangeSet.status == status)
    rows = list(
        session.scalars(newest_first(query, ComposeChangeSet.created_at, ComposeChangeSet.id, cursor, limit))
    )
    items, next_cursor = page_of(rows, limit, lambda r: newest_cursor(r.created_at, r.id))
    return ChangeSetPage(
        items=[
            ChangeSetSummary(
                id=r.id,
                environment=r.environment,
                kind=r.kind,
                status=r.status,
                commit=r.commit,
                summary=r.summary,
                created_at=r.created_at,
                created_by=r.created_by,
                finished_at=r.finished_at,
            )
            for r in items
        ],
        next_cursor=next_cursor,
    )


def apply(
    *, session: Session, principal: Principal, ctx: AuditContext, changeset_id: uuid.UUID
) -> ChangeSetOut:
    iam.require(principal, "writer", action="applying a ChangeSet")
    cs = get_changeset(session, principal.org_id, changeset_id, lock=True)
    if cs.status == "planning":
        cs.apply_requested = True  # it applies as soon as planning ends and policy passes
    elif cs.status == "blocked":
        raise Conflict(
            "a mandatory policy blocks this ChangeSet: fix the change, or have an admin override it with a reason",
            details={"status": cs.status},
        )
    elif cs.status != "planned":
        raise Conflict(f"changeset {cs.id} is {cs.status}: only a planned ChangeSet can be applied")
    else:
        cs.apply_requested = True
        orchestrator.begin_apply(session, cs)
    events.record(session, cs, "compose.changeset.apply", actor=ctx.actor or principal.user_name)
    return changeset_out(session, cs)


def _may_approve(principal: Principal, cs: ComposeChangeSet) -> None:
    approvers = cs.context.get("approvers") or []
    if not principal.has("admin") and principal.user_name not in approvers:
        raise Forbidden(
            f"{principal.user_name} may not approve: approvers are admins"
            + (f" and {', '.join(approvers)}" if approvers else "")
            + " (.xcf.yaml approvers)"
        )
    if principal.user_name == cs.created_by and not cs.context.get("allow_self_approval"):
        raise Forbidden(
            f"{principal.user_name} created this ChangeSet and may not approve it too "
            "(four eyes; .xcf.yaml allowSelfApproval: true turns this off)"
        )


def approve(
    *, session: Session, principal: Principal, ctx: AuditContext, changeset_id: uuid.UUID, body: Approval
) -> ChangeSetOut:
    iam.require(principal, "writer", action="approving a ChangeSet")
    cs = get_changeset(session, principal.org_id, changeset_id, lock=True)
    if cs.status in CHANGESET_FINAL or cs.status == "planning":
        raise Conflict(f"changeset {cs.id} is {cs.status}: there is nothing to approve")
    _may_approve(principal, cs)
    nodes = {n.key: n for n in nodes_of(session, cs.id)}
    wanted = (
        body.nodes
        if body.nodes is not None
        else [
            k
            for k, n in nodes.items()
            if n.approval_required and n.decision is None and n.status in (*UNDECIDED, "no_changes")
        ]
    )
    unknown = [k for k in wanted if k not in nodes]
    if unknown:
        raise Invalid(
            f"changeset {cs.id} has no node {unknown[0]!r}",
            details={"field": "nodes", "known": sorted(nodes)},
        )
    if not wanted:
        raise Conflict(f"changeset {cs.id} has no node awaiting approval")
    for key in wanted:
        node = nodes[key]
        if not node.approval_required:
            raise Conflict(f"node {key} does not need approval (its route says {node.route.get('approval')})")
        if node.decision is not None or node.status not in (*UNDECIDED, "no_changes"):
            raise Conflict(
                f"node {key} is {node.status} ({node.decision or 'undecided'}): it cannot be approved now"
            )
        node.decision, node.decided_by, node.decided_at = "approved", principal.user_name, utcnow()
        node.decision_reason = body.reason
        events.record(
            session,
            cs,
            "compose.node.approve",
            node=node,
            actor=principal.user_name,
            details={"reason": body.reason},
        )
    session.flush()
    return changeset_out(session, cs)


def reject(
    *, session: Session, principal: Principal, ctx: AuditContext, changeset_id: uuid.UUID, reason: str
) -> ChangeSetOut:
    iam.require(principal, "writer", action="rejecting a ChangeSet")
    cs = get_changeset(session, principal.org_id, changeset_id, lock=True)
    if cs.status in CHANGESET_FINAL or cs.status == "planning":
        raise Conflict(f"changeset {cs.id} is {cs.status}: there is nothing to reject")
    _may_approve(principal, cs)
    _close(session, cs, "rejected", principal.user_name, reason)
    events.record(
        session, cs, "compose.changeset.reject", actor=principal.user_name, details={"reason": reason}
    )
    return changeset_out(session, cs)


def discard(
    *, session: Session, principal: Principal, ctx: AuditContext, changeset_id: uuid.UUID
) -> ChangeSetOut:
    iam.require(principal, "writer", action="discarding a ChangeSet")
    cs = get_changeset(session, principal.org_id, changeset_id, lock=True)
    if cs.status not in ("planning", "planned", "blocked"):
        raise Conflict(f"changeset {cs.id} is {cs.status}: only one not yet applying can be discarded")
    _close(session, cs, "discarded", principal.user_name, None)
    events.record(session, cs, "compose.changeset.discard", actor=principal.user_name)
    return changeset_out(session, cs)


def _close(session: Session, cs: ComposeChangeSet, status: str, actor: str, reason: str | None) -> None:
    active = []
    for node in nodes_of(session, cs.id):
        if node.status in NODE_FINAL:
            continue
        if node.status in ("backing_up", "applying", "observing"):
            active.append(node.key)
            continue
        orchestrator.release(session, cs, node)
        node.status, node.finished_at = ("rejected" if status == "rejected" else "discarded"), utcnow()
        node.decision_reason = reason
        if status == "rejected":
            node.decision, node.decided_by, node.decided_at = "rejected", actor, utcnow()
    if active:
        # What already runs finishes; the ChangeSet ends when it does (the orchestrator sees no node left).
        cs.error = f"{status} by {actor} while {', '.join(active)} were running"
        return
    cs.status, cs.finished_at = status, utcnow()
    cs.error = f"{status} by {actor}" + (f": {reason}" if reason else "")


def supersede_older(*, session: Session, cs: ComposeChangeSet) -> list[uuid.UUID]:
    """Discard the environment's older ChangeSets that are not applying yet: their planned runs hold
    the workspaces, and their plans are stale next to this one (one pending ChangeSet per environment)."""
    older = session.scalars(
        select(ComposeChangeSet)
        .where(
            ComposeChangeSet.org_id == cs.org_id,
            ComposeChangeSet.environment == cs.environment,
            ComposeChangeSet.kind == "apply",
            ComposeChangeSet.status.in_(("planning", "planned", "blocked")),
            ComposeChangeSet.id != cs.id,
        )
        .with_for_update()
    )
    gone = []
    for old in older:
        _close(session, old, "discarded", cs.created_by or "xcf-compose", f"superseded by changeset {cs.id}")
        events.record(session, old, "compose.changeset.superseded", details={"by": str(cs.id)})
        gone.append(old.id)
    return gone


def override(
    *, session: Session, principal: Principal, ctx: AuditContext, changeset_id: uuid.UUID, reason: str
) -> ChangeSetOut:
    iam.require(principal, "admin", action="overriding a mandatory policy")
    cs = get_changeset(session, principal.org_id, changeset_id, lock=True)
    if cs.status != "blocked":
        raise Conflict(
            f"changeset {cs.id} is {cs.status}: only a ChangeSet blocked by policy can be overridden"
        )
    cs.override_by, cs.override_reason, cs.override_at = principal.user_name, reason, utcnow()
    cs.status = "planned"
    denied = [
        {"node": n.key, "deny": o.get("deny"), "set": o.get("set")}
        for n in nodes_of(session, cs.id)
        for o in n.policy or []
        if o.get("enforcement") == "mandatory" and o.get("deny")
    ]
    events.record(
        session,
        cs,
        "compose.changeset.override",
        actor=principal.user_name,
        details={"reason": reason, "denied": denied},
    )
    if cs.apply_requested:
        orchestrator.begin_apply(session, cs)
    return changeset_out(session, cs)


def rollback(
    *, session: Session, principal: Principal, ctx: AuditContext, changeset_id: uuid.UUID, reason: str | None
) -> ChangeSetOut:
    iam.require(principal, "writer", action="rolling back a ChangeSet")
    cs = get_changeset(session, principal.org_id, changeset_id, lock=True)
    rb = create_rollback(session=session, cs=cs, actor=principal.user_name, reason=reason)
    return changeset_out(session, rb)


def list_targets(*, session: Session, org_id: int, environment: str | None) -> list[TargetOut]:
    query = select(ComposeTarget).where(ComposeTarget.org_id == org_id)
    if environment:
        query = query.where(ComposeTarget.environment == environment)
    rows = session.scalars(query.order_by(ComposeTarget.environment, ComposeTarget.key))
    return [
        TargetOut(
            environment=t.environment,
            key=t.key,
            composition=t.composition,
            engine=t.engine,
            layer=t.layer,
            route=t.route,
            workspace=t.workspace,
            code_version=t.code_version,
            changeset=t.changeset_id,
            commit=t.commit,
            status=t.status,
            applied_at=t.applied_at,
            next_check_at=t.next_check_at,
            expires_at=t.expires_at,
            last_checked_at=t.last_checked_at,
            drifted_at=t.drifted_at,
            drift_summary=t.drift_summary,
        )
        for t in rows
    ]


def check_now(
    *, session: Session, principal: Principal, ctx: AuditContext, environment: str, keys: list[str] | None
) -> list[TargetOut]:
    """Make the environment's targets (or the named ones) due for a drift check at the next tick."""
    iam.require(principal, "writer", action="starting drift checks")
    query = select(ComposeTarget).where(
        ComposeTarget.org_id == principal.org_id,
        ComposeTarget.environment == environment,
        ComposeTarget.status == "active",
    )
    rows = list(session.scalars(query.with_for_update()))
    known = {t.key for t in rows}
    missing = [k for k in keys or [] if k not in known]
    if missing:
        raise NotFound(
            f"environment {environment} has no applied node {missing[0]!r}", details={"known": sorted(known)}
        )
    now = utcnow()
    chosen = [t for t in rows if keys is None or t.key in keys]
    for target in chosen:
        target.next_check_at = now
    audit.record(
        session=session,
        ctx=ctx,
        action="compose.targets.check",
        resource=f"environment/{environment}",
        details={"keys": [t.key for t in chosen]},
    )
    session.flush()
    return [
        t
        for t in list_targets(session=session, org_id=principal.org_id, environment=environment)
        if t.key in {c.key for c in chosen}
    ]


def bundle_for_job(*, session: Session, job: JobIdentity) -> bytes:
    """The repository snapshot a `compose.*` job runs in (its payload names the ChangeSet)."""
    out = jobs.show_job(session=session, org_id=job.org_id, job_id=job.job_id)
    if not out.kind.startswith("compose."):
        raise NotFound(f"job {job.job_id} is a {out.kind} job: it has no repository snapshot")
    try:
        changeset_id = uuid.UUID(str(out.payload.get("changeset")))
    except ValueError:
        raise NotFound(f"job {job.job_id} names no changeset") from None
    cs = get_changeset(session, job.org_id, changeset_id)
    if cs.bundle is None:
        raise NotFound(f"changeset {cs.id} keeps no repository snapshot")
    return cs.bundle
