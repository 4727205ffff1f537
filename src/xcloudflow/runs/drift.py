"""Drift checks: workspaces with a drift interval get a refresh-only run when one is due.

The run is an ordinary run (source `drift`): it queues behind whatever holds the workspace, never
applies, and a plan that finds changes made outside Terraform records a finding and notifies.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from xcloudflow.audit.schemas import AuditContext
from xcloudflow.db.base import utcnow
from xcloudflow.errors import DomainError
from xcloudflow.keys.keyring import Keyring
from xcloudflow.runs.models import FINAL_STAGES, DriftFinding, Run
from xcloudflow.runs.schemas import DriftFindingOut, RunCreate
from xcloudflow.runs.service import SYSTEM, create_run
from xcloudflow.workspaces import service as workspaces
from xcloudflow.workspaces.models import Workspace

log = logging.getLogger("xcloudflow.runs.drift")


def schedule_due(*, session: Session, keyring: Keyring, now: datetime | None = None, limit: int = 20) -> int:
    """Start the drift checks that are due; returns how many runs were created."""
    now = now or utcnow()
    due = list(
        session.scalars(
            select(Workspace)
            .where(Workspace.next_drift_at.is_not(None), Workspace.next_drift_at <= now)
            .order_by(Workspace.next_drift_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )
    started = 0
    for ws in due:
        ws.next_drift_at = now + timedelta(minutes=ws.drift_interval_minutes or 60)
        waiting = session.scalars(
            select(Run.id)
            .where(Run.workspace_id == ws.id, Run.source == "drift", Run.stage.not_in(FINAL_STAGES))
            .limit(1)
        ).first()
        if waiting is not None or ws.locked:
            continue  # one drift check at a time; a locked workspace is being looked after
        try:
            create_run(
                session=session,
                keyring=keyring,
                principal=None,
                ctx=AuditContext(actor=SYSTEM, org_id=ws.org_id),
                project=ws.project,
                name=ws.name,
                body=RunCreate(kind="refresh_only", message="scheduled drift check"),
                source="drift",
            )
            started += 1
        except DomainError as exc:
            log.warning("drift check of %s/%s not started: %s", ws.project, ws.name, exc)
    session.flush()
    return started


def list_findings(
    *, session: Session, org_id: int, project: str, name: str, limit: int = 50
) -> list[DriftFindingOut]:
    ws = workspaces.get_workspace(session=session, org_id=org_id, project=project, name=name)
    rows = session.execute(
        select(DriftFinding, Run.number)
        .join(Run, Run.id == DriftFinding.run_id)
        .where(DriftFinding.workspace_id == ws.id)
        .order_by(DriftFinding.detected_at.desc())
        .limit(limit)
    ).all()
    return [
        DriftFindingOut(
            id=f.id,
            run=f.run_id,
            run_number=n,
            detected_at=f.detected_at,
            count=f.count,
            resources=f.resources,
        )
        for f, n in rows
    ]
