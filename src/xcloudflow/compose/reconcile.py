"""Reconcile: what an applied node leaves to look after, per its route.

Every applied node becomes (or refreshes) a target. A target whose route reconciles `periodic`,
`continuous` or `on_drift` gets a drift check every interval: a refresh-only Terraform run, or an
Ansible check-mode run of the applied commit. Drift is then handled by the route's drift policy:
`alert` records it and notifies (the Foundation default: nothing is changed automatically), `correct`
(and `gc`) start a reconcile ChangeSet that re-applies the applied code. `on_change` targets are only
applied by new ChangeSets. An Ephemeral target with a TTL is destroyed by a `gc` ChangeSet when it
expires.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from xcloudflow.compose import events, job_nodes, tf_nodes
from xcloudflow.compose.dsl import parse_duration
from xcloudflow.compose.events import ACTOR
from xcloudflow.compose.models import CHANGESET_FINAL, ComposeChangeSet, ComposeNode, ComposeTarget
from xcloudflow.compose.rollback import derived_changeset, derived_node
from xcloudflow.errors import DomainError, Invalid
from xcloudflow.keys.keyring import Keyring

log = logging.getLogger("xcloudflow.compose")
CHECKED = ("periodic", "continuous", "on_drift")


def seconds(value: str | int) -> int:
    """A duration from the DSL (already seconds once validated, or text like 15m) in seconds."""
    if isinstance(value, int):
        return value
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise Invalid(str(exc)) from None


def _target(session: Session, org_id: int, environment: str, key: str) -> ComposeTarget | None:
    return session.scalars(
        select(ComposeTarget).where(
            ComposeTarget.org_id == org_id, ComposeTarget.environment == environment, ComposeTarget.key == key
        )
    ).first()


def snapshot(session: Session, cs: ComposeChangeSet, node: ComposeNode) -> dict[str, Any]:
    """The pre-change point of a node: state version, applied code version, applied ChangeSet, inputs."""
    target = _target(session, cs.org_id, cs.environment, node.key)
    snap: dict[str, Any] = {
        "state_version": None,
        "code_version": target.code_version if target is not None and target.status == "active" else None,
        "changeset": str(target.changeset_id) if target is not None and target.status == "active" else None,
        "inputs": dict(target.inputs) if target is not None else None,
        "backup": node.route.get("backup"),
    }
    if node.workspace is not None:
        snap["state_version"] = tf_nodes.head_version(
            session=session, org_id=cs.org_id, workspace=node.workspace
        )
    return snap


def record_target(
    session: Session, cs: ComposeChangeSet, node: ComposeNode, *, code_version: int | None, now: datetime
) -> None:
    target = _target(session, cs.org_id, cs.environment, node.key)
    if node.action == "destroy":
        if target is not None:
            target.status, target.next_check_at, target.expires_at = "gone", None, None
        return
    if node.engine == "terraform" and code_version is None and node.workspace is not None:
        code_version = tf_nodes.current_code_version(
            session=session, org_id=cs.org_id, workspace=node.workspace
        )
    if target is None:
        target = ComposeTarget(org_id=cs.org_id, environment=cs.environment, key=node.key)
        session.add(target)
    bundle_source = (node.snapshot or {}).get("bundle_changeset") if node.action != "apply" else None
    target.composition, target.engine, target.layer = node.composition, node.engine, node.layer
    target.route, target.inputs, target.ref, target.workspace = (
        dict(node.route),
        dict(node.inputs),
        node.ref,
        node.workspace,
    )
    target.code_version = code_version
    target.changeset_id = uuid.UUID(str(bundle_source)) if bundle_source else cs.id
    target.commit = cs.commit
    target.status, target.applied_at = "active", now
    target.check_run_id = target.check_job_id = None
    interval = node.route.get("interval_seconds")
    strategy = node.route.get("reconcile")
    target.next_check_at = (
        now + timedelta(seconds=int(interval)) if strategy in CHECKED and interval else None
    )
    ttl = ((cs.context.get("compositions") or {}).get(node.composition) or {}).get("ttl")
    if node.action == "apply":
        target.expires_at = (
            now + timedelta(seconds=seconds(ttl)) if ttl and node.layer == "Ephemeral" else None
        )
    session.flush()


def tick(*, session: Session, keyring: Keyring, now: datetime) -> None:
    _poll_checks(session, keyring, now)
    _start_checks(session, keyring, now)
    _collect_expired(session, now)


def _busy(session: Session, target: ComposeTarget) -> bool:
    """A ChangeSet of the environment is applying this node: checking it now would race the apply."""
    return (
        session.scalars(
            select(ComposeNode.id)
            .join(ComposeChangeSet, ComposeChangeSet.id == ComposeNode.changeset_id)
            .where(
                ComposeNode.org_id == target.org_id,
                ComposeNode.environment == target.environment,
                ComposeNode.key == target.key,
                ComposeChangeSet.status.not_in(CHANGESET_FINAL),
            )
            .limit(1)
        ).first()
        is not None
    )


def _start_checks(session: Session, keyring: Keyring, now: datetime) -> None:
    due = list(
        session.scalars(
            select(ComposeTarget)
            .where(
                ComposeTarget.status == "active",
                ComposeTarget.next_check_at.is_not(None),
                ComposeTarget.next_check_at <= now,
                ComposeTarget.check_run_id.is_(None),
                ComposeTarget.check_job_id.is_(None),
            )
            .order_by(ComposeTarget.next_check_at)
            .limit(20)
            .with_for_update(skip_locked=True)
        )
    )
    for target in due:
        interval = int(target.route.get("interval_seconds") or 3600)
        target.next_check_at = now + timedelta(seconds=interval)
        if _busy(session, target):
            continue
        try:
            with session.begin_nested():
                if target.engine == "terraform" and target.workspace:
                    target.check_run_id = tf_nodes.start_run(
                        session=session,
                        keyring=keyring,
                        org_id=target.org_id,
                        actor=ACTOR,
                        workspace=target.workspace,
                        kind="refresh_only",
                        auto_apply=False,
                        message=f"xcf compose: drift check of {target.key}",
                        source="drift",
                    )
                elif target.engine == "ansible":
                    source = session.get(ComposeChangeSet, target.changeset_id)
                    pool = (source.context.get("pool") if source else None) or "embedded"
                    target.check_job_id = job_nodes.start(
                        session=session,
                        org_id=target.org_id,
                        kind=job_nodes.PLAN_KIND,
                        pool=pool,
                        changeset=target.changeset_id,
                        node=target.key,
                        payload=job_nodes.engine_payload(
                            engine="ansible", ref=target.ref, inputs=target.inputs
                        ),
                    )
                else:
                    target.next_check_at = None  # no drift check for this engine yet (see docs/compose.md)
        except DomainError as exc:
            log.warning("drift check of %s/%s not started: %s", target.environment, target.key, exc)


def _poll_checks(session: Session, keyring: Keyring, now: datetime) -> None:
    checking = list(
        session.scalars(
            select(ComposeTarget)
            .where(ComposeTarget.status == "active")
            .where(ComposeTarget.check_run_id.is_not(None) | ComposeTarget.check_job_id.is_not(None))
            .limit(50)
            .with_for_update(skip_locked=True)
        )
    )
    for target in checking:
        if target.check_run_id is not None:
            progress = tf_nodes.poll(
                session=session, keyring=keyring, org_id=target.org_id, run_id=target.check_run_id
            )
        else:
            assert target.check_job_id is not None
            progress = job_nodes.poll(
                session=session, org_id=target.org_id, job_id=target.check_job_id, planning=True
            )
        if progress.state == "running":
            continue
        target.check_run_id = target.check_job_id = None
        target.last_checked_at = now
        if progress.state == "failed":
            log.warning("drift check of %s/%s failed: %s", target.environment, target.key, progress.error)
            continue
        if progress.state != "planned":
            continue
        target.drifted_at, target.drift_summary = now, progress.plan
        _on_drift(session, target, progress.plan or {})


def _on_drift(session: Session, target: ComposeTarget, plan: dict[str, Any]) -> None:
    source = session.get(ComposeChangeSet, target.changeset_id)
    if source is None:
        return
    policy = target.route.get("drift") or "alert"
    details = {
        "policy": policy,
        "summary": plan.get("summary"),
        "resources": [c.get("address") for c in plan.get("resource_changes") or []][:50],
    }
    events.record(
        session,
        source,
        "compose.drift.detected",
        node=None,
        details={"node": target.key, **details},
        notify_event="compose.drift_detected",
    )
    if policy == "alert":
        return
    cs = derived_changeset(session, template=source, kind="reconcile", actor=ACTOR)
    snap = {
        "restore_code_version": target.code_version,
        "bundle_changeset": str(target.changeset_id),
        "inputs": target.inputs,
        "drift": details,
    }
    session.add(derived_node(cs, seq=0, like=target, action="correct", snapshot=snap))
    session.flush()
    events.record(session, cs, "compose.changeset.reconcile", details={"node": target.key, "drift": details})


def _collect_expired(session: Session, now: datetime) -> None:
    expired = list(
        session.scalars(
            select(ComposeTarget)
            .where(
                ComposeTarget.status == "active",
                ComposeTarget.expires_at.is_not(None),
                ComposeTarget.expires_at <= now,
            )
            .limit(20)
            .with_for_update(skip_locked=True)
        )
    )
    for target in expired:
        if _busy(session, target):
            continue
        source = session.get(ComposeChangeSet, target.changeset_id)
        if source is None:
            continue
        target.expires_at = None
        cs = derived_changeset(session, template=source, kind="gc", actor=ACTOR)
        session.add(
            derived_node(
                cs,
                seq=0,
                like=target,
                action="destroy",
                snapshot={"bundle_changeset": str(target.changeset_id), "ttl_expired": True},
            )
        )
        session.flush()
        events.record(session, cs, "compose.changeset.gc", details={"node": target.key, "ttl": "expired"})
