"""Drift found by a refresh-only check becomes `drift` events of the resources the inventory knows."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from tests.inventory.test_service import aws_vpc, subnets, tf
from xcloudflow.db import Database
from xcloudflow.db.base import utcnow
from xcloudflow.inventory.drift import record_drift
from xcloudflow.inventory.models import ResourceCurrent, ResourceEvent


def test_drift_events_name_known_resources_and_carry_no_values(db, put_state, consume) -> None:  # type: ignore[no-untyped-def]
    put_state(tf(1, [aws_vpc(), subnets(["a"])]))
    consume()
    run_id = uuid.uuid4()
    with db.write() as session:
        org_id = session.scalars(select(ResourceCurrent.org_id)).first()
        written = record_drift(
            session=session,
            org_id=org_id,
            project="net",
            stack="prod",
            run_id=run_id,
            at=utcnow(),
            drifted=[
                {"address": "aws_vpc.main", "actions": ["update"]},
                {"address": "aws_vpc.gone", "actions": ["delete"]},  # not in the inventory: skipped
                {"address": "output.cidr", "actions": ["update"]},
            ],
        )
    assert written == 1
    drift = _drift_events(db)
    assert [(e.addr, e.run_id, e.state_version) for e in drift] == [("aws_vpc.main", run_id, 1)]
    assert drift[0].patch_json == [{"op": "add", "path": "/drift", "value": {"actions": ["update"]}}]
    with db.read() as session:
        vpc = session.scalars(select(ResourceCurrent).where(ResourceCurrent.addr == "aws_vpc.main")).one()
    assert drift[0].stable_uid == vpc.stable_uid
    # Another stack's resource of the same address is not touched.
    with db.write() as session:
        assert (
            record_drift(
                session=session,
                org_id=org_id,
                project="net",
                stack="staging",
                run_id=uuid.uuid4(),
                at=utcnow(),
                drifted=[{"address": "aws_vpc.main", "actions": ["update"]}],
            )
            == 0
        )


def _drift_events(db: Database) -> list[ResourceEvent]:
    with db.read() as session:
        return list(session.scalars(select(ResourceEvent).where(ResourceEvent.action == "drift")))
