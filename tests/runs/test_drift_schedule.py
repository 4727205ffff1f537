"""Drift checks: `schedule_due` starts refresh-only runs when due; findings are recorded and listed."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient

from tests.runs.conftest import ScriptedAgent, make_workspace, plan_result, show, start_run
from xcloudflow.db import Database
from xcloudflow.db.base import utcnow
from xcloudflow.keys.keyring import Keyring
from xcloudflow.runs.drift import schedule_due
from xcloudflow.settings import Settings

INTERVAL = 5  # minutes, the least a workspace may ask for


def tick(db: Database, settings: Settings, now: datetime) -> int:
    keyring = Keyring.from_settings(settings, create=False)
    with db.write() as session:
        return schedule_due(session=session, keyring=keyring, now=now)


def next_drift(client: TestClient, address: str) -> datetime | None:
    value = client.get(f"/api/v1/workspaces/{address}").json()["next_drift_at"]
    return datetime.fromisoformat(value) if value else None


def runs_of(client: TestClient, address: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = client.get(f"/api/v1/workspaces/{address}/runs").json()["items"]
    return items


def test_due_workspaces_get_one_drift_run_at_a_time_and_locked_ones_none(
    admin: TestClient, db: Database, settings: Settings
) -> None:
    make_workspace(admin, "shop/dev", drift_interval_minutes=INTERVAL)
    make_workspace(admin, "shop/held", drift_interval_minutes=INTERVAL)
    make_workspace(admin, "shop/off")
    admin.post("/api/v1/workspaces/shop/held/lock", json={"reason": "state repair"}).raise_for_status()
    first_due = next_drift(admin, "shop/dev")
    assert first_due is not None and next_drift(admin, "shop/off") is None

    assert tick(db, settings, utcnow()) == 0  # nothing due yet
    assert next_drift(admin, "shop/dev") == first_due

    now = first_due + timedelta(seconds=1)
    assert tick(db, settings, now) == 1
    [run] = runs_of(admin, "shop/dev")
    assert (run["kind"], run["source"], run["created_by"]) == ("refresh_only", "drift", "system")
    assert run["stage"] == "pending" and run["plan_job"] and run["message"] == "scheduled drift check"
    assert next_drift(admin, "shop/dev") == now + timedelta(minutes=INTERVAL)
    assert runs_of(admin, "shop/held") == [] and runs_of(admin, "shop/off") == []
    assert next_drift(admin, "shop/held") == now + timedelta(minutes=INTERVAL)  # skipped, not retried hot

    later = now + timedelta(minutes=INTERVAL, seconds=1)
    assert tick(db, settings, later) == 0  # the first drift check is still open
    assert len(runs_of(admin, "shop/dev")) == 1
    assert next_drift(admin, "shop/dev") == later + timedelta(minutes=INTERVAL)

    admin.post(f"/api/v1/runs/{run['id']}/cancel").raise_for_status()
    admin.post("/api/v1/workspaces/shop/held/unlock").raise_for_status()
    again = later + timedelta(minutes=INTERVAL, seconds=1)
    assert tick(db, settings, again) == 2
    assert [r["source"] for r in runs_of(admin, "shop/dev")] == ["drift", "drift"]
    assert [r["kind"] for r in runs_of(admin, "shop/held")] == ["refresh_only"]


def test_a_drift_run_that_finds_changes_records_a_finding_and_never_applies(
    admin: TestClient, reader: TestClient, agent: ScriptedAgent, db: Database, settings: Settings
) -> None:
    admin.post(
        "/api/v1/notification-destinations",
        json={"name": "drift", "url": "http://127.0.0.1:9/x", "events": ["run.drift_detected"]},
    ).raise_for_status()
    make_workspace(admin, drift_interval_minutes=INTERVAL, auto_apply=True)
    due = next_drift(admin, "shop/dev")
    assert due is not None
    assert tick(db, settings, due) == 1
    [run] = runs_of(admin, "shop/dev")
    job = agent.claim("terraform.plan", run["id"])
    bundle = agent.bundle(job)
    assert bundle["run"]["plan_mode"] == "refresh-only" and bundle["run"]["kind"] == "refresh_only"
    agent.start(job)
    drifted = [{"address": "terraform_data.one", "actions": ["update"]}]
    agent.finish(
        job,
        result=plan_result(
            add=0,
            resource_drift=drifted,
            output_changes=[{"name": "value", "actions": ["update"]}],
        ),
    )
    done = show(reader, run["id"])
    assert done["stage"] == "planned_and_finished" and done["has_changes"] is True
    assert done["apply_job"] is None and agent.nothing_queued()  # auto-apply never applies a drift check

    findings = reader.get("/api/v1/workspaces/shop/dev/drift").json()
    assert len(findings) == 1
    finding = findings[0]
    assert (finding["run"], finding["run_number"], finding["count"]) == (run["id"], 1, 2)
    assert finding["resources"] == [
        {"address": "terraform_data.one", "actions": ["update"]},
        {"address": "output.value", "actions": ["update"]},
    ]
    [delivery] = admin.get("/api/v1/notification-destinations/drift/deliveries").json()["items"]
    assert delivery["event"] == "run.drift_detected" and delivery["payload"]["count"] == 2
    assert delivery["payload"]["drifted"][0]["address"] == "terraform_data.one"

    # a check started by hand: no changes, no finding
    resp = admin.post("/api/v1/workspaces/shop/dev/drift/check")
    assert resp.status_code == 201, resp.text
    manual = resp.json()
    assert (manual["kind"], manual["source"], manual["message"]) == ("refresh_only", "drift", "drift check")
    agent.plan(manual["id"], plan_result(has_changes=False))
    assert show(reader, manual["id"])["stage"] == "planned_and_finished"
    assert len(reader.get("/api/v1/workspaces/shop/dev/drift").json()) == 1
    assert reader.get("/api/v1/workspaces/shop/nope/drift").status_code == 404
    assert reader.get("/api/v1/workspaces/shop/dev/drift", params={"limit": 0}).status_code == 422


def test_a_drift_check_waits_behind_the_run_holding_the_workspace(
    admin: TestClient, agent: ScriptedAgent
) -> None:
    make_workspace(admin)
    holder = start_run(admin, kind="plan")
    check = admin.post("/api/v1/workspaces/shop/dev/drift/check").json()
    assert check["stage"] == "pending" and check["queue_position"] == 1 and check["plan_job"] is None
    agent.plan(holder["id"], plan_result(has_changes=False))
    assert show(admin, check["id"])["plan_job"] is not None
