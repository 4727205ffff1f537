"""What the control plane tells people: an audit row and a notification per step, in the step's transaction."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from xcloudflow.audit import service as audit
from xcloudflow.audit.schemas import AuditContext
from xcloudflow.compose.models import ComposeChangeSet, ComposeNode
from xcloudflow.notify import service as notify

ACTOR = "xcf-compose"


def record(
    session: Session,
    cs: ComposeChangeSet,
    action: str,
    *,
    node: ComposeNode | None = None,
    actor: str = ACTOR,
    details: dict[str, Any] | None = None,
    notify_event: str | None = None,
) -> None:
    body: dict[str, Any] = {"changeset": str(cs.id), "environment": cs.environment, "kind": cs.kind}
    if node is not None:
        body.update(node=node.key, engine=node.engine, layer=node.layer)
    body.update(details or {})
    resource = f"changeset/{cs.id}" + (f"/node/{node.key}" if node is not None else "")
    audit.record(
        session=session,
        ctx=AuditContext(actor=actor, org_id=cs.org_id),
        action=action,
        resource=resource,
        details=body,
    )
    if notify_event is not None:
        notify.emit(session=session, org_id=cs.org_id, workspace_id=None, event=notify_event, payload=body)
