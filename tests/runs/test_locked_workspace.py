"""A locked workspace starts no runs and applies none; runs waiting behind it start after the unlock."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.runs.conftest import ScriptedAgent, make_workspace, show, start_run
from xcloudflow.db import Database
from xcloudflow.runs import service


def test_lock_holds_confirm_and_queue_until_unlocked(
    admin: TestClient, agent: ScriptedAgent, db: Database
) -> None:
    make_workspace(admin)
    first = start_run(admin, kind="plan_and_apply")
    agent.plan(first["id"])
    second = start_run(admin, kind="plan")
    assert admin.post("/api/v1/workspaces/shop/dev/lock", json={"reason": "maintenance"}).status_code == 200

    resp = admin.post(f"/api/v1/runs/{first['id']}/confirm")
    assert resp.status_code == 409 and "maintenance" in resp.json()["error"]["message"]
    assert admin.post(f"/api/v1/runs/{first['id']}/discard").status_code == 200
    # The first run is final, but the workspace is locked: the second is not dispatched.
    assert show(admin, second["id"])["plan_job"] is None
    with db.write() as session:
        assert service.dispatch_waiting(session=session) == 0

    assert admin.post("/api/v1/workspaces/shop/dev/unlock").status_code == 200
    with db.write() as session:
        assert service.dispatch_waiting(session=session) == 1
    assert show(admin, second["id"])["plan_job"] is not None
    agent.plan(second["id"])
    assert show(admin, second["id"])["stage"] == "planned"
