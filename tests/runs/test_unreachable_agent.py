"""A run for a pool nobody serves says what it waits for, and ends errored after the queue timeout."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient

from tests.runs.conftest import ScriptedAgent, make_workspace, show, start_run
from xcloudflow.db import Database
from xcloudflow.db.base import utcnow
from xcloudflow.runs import service


def test_a_run_no_agent_can_take_ends_with_a_clear_message(
    admin: TestClient, agent: ScriptedAgent, db: Database
) -> None:
    assert admin.post("/api/v1/agent-pools", json={"name": "far"}).status_code == 201
    make_workspace(admin, agent_pool="far")
    run = start_run(admin, kind="plan")
    waiting = show(admin, run["id"])
    assert waiting["stage"] == "pending"
    assert waiting["waiting_for"] == "an agent of pool far: none is online"

    with db.write() as session:  # not yet: the timeout has not passed
        assert service.expire_unclaimed(session=session, timeout_seconds=60) == 0
    with db.write() as session:
        assert (
            service.expire_unclaimed(session=session, timeout_seconds=60, now=utcnow() + timedelta(minutes=5))
            == 1
        )
    out = show(admin, run["id"])
    assert out["stage"] == "errored" and out["error_class"] == "transient"
    assert "no agent of pool far came online" in out["error"]
    job = admin.get(f"/api/v1/jobs/{out['plan_job']}").json()
    assert job["status"] == "canceled"  # never picked up later by an agent that comes back


def test_a_busy_pool_keeps_its_queue(admin: TestClient, agent: ScriptedAgent, db: Database) -> None:
    """The embedded pool has an agent online (the scripted one): its queued runs just wait."""
    make_workspace(admin)
    run = start_run(admin, kind="plan")
    assert show(admin, run["id"])["waiting_for"] == "a free agent of pool embedded (1 online)"
    with db.write() as session:
        assert (
            service.expire_unclaimed(session=session, timeout_seconds=60, now=utcnow() + timedelta(hours=1))
            == 0
        )
    agent.plan(run["id"])
    assert show(admin, run["id"])["stage"] == "planned"
