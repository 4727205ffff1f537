"""ChangeSets the control plane derives from others: rollbacks, drift corrections and TTL collections.

A rollback applies the inverse of a ChangeSet: every node it changed goes back to its pre-change code
version (Terraform: that code version is made current again and applied; a node that had none, i.e.
was created by the ChangeSet, is destroyed; Ansible: the playbook of the previous applied commit runs
again, and a first apply has nothing to return to), in reverse DAG order. Derived ChangeSets skip
planning review and approval: they restore what was already reviewed, or collect what expired; each
is audited like any other.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.orm import Session

from xcloudflow.compose import events
from xcloudflow.compose.models import ComposeChangeSet, ComposeNode
from xcloudflow.compose.planner import nodes_of
from xcloudflow.db.base import utcnow
from xcloudflow.errors import Conflict


def derived_changeset(
    session: Session,
    *,
    template: ComposeChangeSet,
    kind: str,
    actor: str,
    rollback_of: uuid.UUID | None = None,
) -> ComposeChangeSet:
    now = utcnow()
    cs = ComposeChangeSet(
        id=uuid.uuid4(),
        org_id=template.org_id,
        environment=template.environment,
        kind=kind,
        status="applying",
        repo=template.repo,
        ref=template.ref,
        commit=template.commit,
        apply_requested=True,
        context={k: v for k, v in template.context.items() if k != "rollback_on_failure"},
        rollback_of=rollback_of,
        created_at=now,
        created_by=actor,
        apply_started_at=now,
    )
    session.add(cs)
    session.flush()
    return cs


def derived_node(
    cs: ComposeChangeSet,
    *,
    seq: int,
    like: Any,
    action: str,
    snapshot: dict[str, Any],
    depends_on: list[str] | None = None,
) -> ComposeNode:
    """A node of `cs` acting on what `like` (a node or a target) manages."""
    return ComposeNode(
        changeset_id=cs.id,
        org_id=cs.org_id,
        environment=cs.environment,
        seq=seq,
        key=like.key,
        composition=like.composition,
        module=getattr(like, "module", None) or like.key.split("/", 1)[-1],
        ref=like.ref,
        engine=like.engine,
        layer=like.layer,
        depends_on=depends_on or [],
        route=dict(like.route),
        inputs=dict(snapshot.get("inputs") or like.inputs),
        action=action,
        status="pending",
        approval_required=False,
        workspace=like.workspace,
        snapshot=snapshot,
        attempts=0,
    )


def was_applied(node: ComposeNode) -> bool:
    """The node changed something: its apply went through (even if its observation failed later)."""
    return (
        node.action == "apply" and node.applied_at is not None and bool((node.plan or {}).get("has_changes"))
    )


def _ancestors(nodes: dict[str, ComposeNode]) -> dict[str, set[str]]:
    memo: dict[str, set[str]] = {}

    def walk(key: str) -> set[str]:
        if key not in memo:
            memo[key] = set()
            found: set[str] = set()
            for dep in nodes[key].depends_on if key in nodes else []:
                found.add(dep)
                found |= walk(dep)
            memo[key] = found
        return memo[key]

    for key in nodes:
        walk(key)
    return memo


def create_rollback(
    *, session: Session, cs: ComposeChangeSet, actor: str, reason: str | None
) -> ComposeChangeSet:
    if cs.kind != "apply":
        raise Conflict(f"changeset {cs.id} is a {cs.kind}: only applied ChangeSets are rolled back")
    if cs.status not in ("applied", "failed"):
        raise Conflict(
            f"changeset {cs.id} is {cs.status}: only an applied or failed ChangeSet can be rolled back"
        )
    nodes = nodes_of(session, cs.id)
    changed = [n for n in nodes if was_applied(n)]
    if not changed:
        raise Conflict(f"changeset {cs.id} changed nothing: there is nothing to roll back")
    ancestors = _ancestors({n.key: n for n in nodes})
    keys = {n.key for n in changed}
    rb = derived_changeset(session, template=cs, kind="rollback", actor=actor, rollback_of=cs.id)
    # Reverse DAG order: a node waits for the rollback of every changed node that depended on it.
    for seq, node in enumerate(reversed(changed)):
        after = sorted(k for k in keys if node.key in ancestors.get(k, set()))
        before = node.snapshot or {}
        snapshot: dict[str, Any] = {"rolled_back_from": str(cs.id)}
        if node.engine == "terraform":
            number = before.get("code_version")
            action = "restore" if number is not None else "destroy"
            snapshot["restore_code_version"] = number
        else:
            previous = before.get("changeset")
            action = "restore" if previous else "skip"
            snapshot.update(bundle_changeset=previous, inputs=before.get("inputs"))
        row = derived_node(
            rb,
            seq=seq,
            like=node,
            action=action if action != "skip" else "restore",
            snapshot=snapshot,
            depends_on=after,
        )
        if action == "skip":
            row.status, row.finished_at = "applied", utcnow()
            row.error = "first apply of an Ansible node: there is no earlier playbook run to return to"
        session.add(row)
    session.flush()
    events.record(
        session,
        rb,
        "compose.changeset.rollback",
        actor=actor,
        details={"rollback_of": str(cs.id), "reason": reason, "nodes": len(changed)},
    )
    return rb
