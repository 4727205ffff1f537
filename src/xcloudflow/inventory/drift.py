"""Drift found by a workspace's refresh-only check, written into the inventory as `drift` events.

The event names the resource by its stable uid, so its history shows when it was found changed
outside Terraform; the patch says which actions the refresh reported (never attribute values: the
plan's values may hold secrets, and the next state version records what really changed).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from xcloudflow.inventory import identity
from xcloudflow.inventory.models import ResourceCurrent, ResourceEvent


def record_drift(
    *,
    session: Session,
    org_id: int,
    project: str,
    stack: str,
    run_id: uuid.UUID,
    at: datetime,
    drifted: list[dict[str, Any]],
) -> int:
    """One `drift` event per drifted address that the inventory knows; returns how many were written."""
    actions = {str(d.get("address")): list(d.get("actions") or []) for d in drifted}
    if not actions:
        return 0
    rows = session.scalars(
        select(ResourceCurrent).where(
            ResourceCurrent.org_id == org_id,
            ResourceCurrent.tool == "terraform",
            ResourceCurrent.project == project,
            ResourceCurrent.stack == stack,
            ResourceCurrent.addr.in_(list(actions)),
            ResourceCurrent.deleted_at.is_(None),
        )
    ).all()
    events = [
        {
            "id": uuid.uuid5(identity.NAMESPACE, f"drift|{run_id}|{r.stable_uid}"),
            "at": at,
            "org_id": org_id,
            "run_id": run_id,
            "stable_uid": r.stable_uid,
            "provider": r.provider,
            "resource_type": r.resource_type,
            "addr": r.addr,
            "action": "drift",
            "patch_json": [{"op": "add", "path": "/drift", "value": {"actions": actions[r.addr]}}],
            "before_hash": r.attrs_hash,
            "after_hash": None,
            "cloud": r.cloud,
            "region": r.region,
            "tool": "terraform",
            "project": project,
            "stack": stack,
            "head_id": r.head_id,
            "state_version": r.state_version,
        }
        for r in rows
    ]
    if events:
        session.execute(insert(ResourceEvent), events)
    return len(events)
