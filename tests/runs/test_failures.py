"""How runs end when their jobs fail: errors and their class, an agent that stops heartbeating (the
app's lease reaper), a state that could not be saved, and a plan made stale by a state write."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.factories import LINEAGE, body, lock_info, md5_header, tf_state
from tests.jobs.conftest import bearer, wait_for
from tests.runs.conftest import ScriptedAgent, make_workspace, plan_result, show, start_run

STATE = "/terraform/state/shop/dev"


def write_state(client: TestClient, serial: int, headers: dict[str, str] | None = None) -> None:
    data = body(tf_state(serial=serial))
    resp = client.post(STATE, content=data, headers={**(headers or {}), "Content-MD5": md5_header(data)})
    assert resp.status_code == 200, resp.text


def test_a_failed_plan_errors_the_run_with_the_jobs_error_and_class(
    admin: TestClient, anon: TestClient, agent: ScriptedAgent
) -> None:
    make_workspace(admin)
    run = start_run(admin, kind="plan_and_apply")
    queued = start_run(admin, kind="plan")
    job = agent.claim("terraform.plan", run["id"])
    agent.start(job)
    lock = lock_info(who="job")
    assert anon.request("LOCK", STATE, json=lock, headers=bearer(job["token"])).status_code == 200
    agent.log(job, "Error: Unsupported argument\n")
    agent.finish(
        job,
        "failed",
        error='Error: Unsupported argument: an argument named "inptu" is not expected here',
        result={"error_class": "permanent"},
    )
    failed = show(admin, run["id"])
    assert failed["stage"] == "errored" and failed["error_class"] == "permanent"
    assert failed["error"].startswith('Error: Unsupported argument: an argument named "inptu"')
    assert f"the state lock {lock['ID']} it held was released" in failed["error"]
    assert failed["transitions"][-1]["to"] == "errored" and failed["finished_at"]
    mine = lock_info()
    assert admin.request("LOCK", STATE, json=mine).status_code == 200  # the lock is free
    assert admin.request("UNLOCK", STATE, json=mine).status_code == 200
    assert show(admin, queued["id"])["plan_job"]  # the workspace moved on

    # a transient failure with attempts left goes back to the queue; the run keeps planning
    job = agent.claim("terraform.plan", queued["id"])
    agent.start(job)
    retry = agent.finish(
        job, "failed", error="Error: 503", result={"error_class": "transient"}, retryable=True
    )
    assert retry["status"] == "queued" and retry["attempts"] == 1
    assert show(admin, queued["id"])["stage"] == "planning"
    assert admin.post(f"/api/v1/runs/{queued['id']}/cancel").json()["stage"] == "canceled"

    # a transient failure on the last attempt ends the run, classified
    last = start_run(admin, kind="plan")
    job = agent.claim("terraform.plan", last["id"])
    agent.start(job)
    agent.finish(job, "failed", error="Error: connection reset", result={"error_class": "transient"})
    ended = show(admin, last["id"])
    assert (ended["stage"], ended["error_class"], ended["error"]) == (
        "errored",
        "transient",
        "Error: connection reset",
    )


@pytest.mark.parametrize("jobs_config", [1.5], indirect=True)  # lease seconds
def test_an_apply_whose_agent_goes_silent_errors_locks_the_workspace_and_frees_the_state(
    admin: TestClient, anon: TestClient, agent: ScriptedAgent
) -> None:
    make_workspace(admin)
    run = start_run(admin, kind="plan_and_apply", auto_apply=True)
    waiting = start_run(admin, kind="plan")
    agent.plan(run["id"])
    job = agent.claim("terraform.apply", run["id"])
    agent.start(job)
    lock = lock_info(who="job")
    assert anon.request("LOCK", STATE, json=lock, headers=bearer(job["token"])).status_code == 200
    agent.log(job, "terraform_data.one: Creating...\n")
    # ... and the agent goes silent: no heartbeat, no finish. The app's reaper expires the lease.

    def ended() -> dict[str, Any] | None:
        shown = show(admin, run["id"])
        return shown if shown["stage"] == "errored" else None

    errored = wait_for(ended, timeout=30, what="the run to error after the lease expired")
    assert "stopped heartbeating" in errored["error"] and errored["error_class"] == "permanent"
    assert f"the state lock {lock['ID']} it held was released" in errored["error"]
    assert "workspace shop/dev is locked" in errored["error"]
    ws = admin.get("/api/v1/workspaces/shop/dev").json()
    assert ws["locked"] is True and ws["locked_by"] == "system"
    assert "interrupted" in ws["lock_reason"] and "check the state" in ws["lock_reason"]
    assert admin.get("/api/v1/jobs/" + job["id"]).json()["status"] == "errored"
    assert admin.request("LOCK", STATE, json=lock_info()).status_code == 200  # the state lock is free
    assert agent.call("POST", job, "finish", json={"outcome": "succeeded"}).status_code == 409
    refused = admin.post("/api/v1/workspaces/shop/dev/runs", json={"kind": "plan"})
    assert refused.status_code == 409 and "interrupted" in refused.json()["error"]["message"]
    assert show(admin, waiting["id"])["stage"] == "pending"


def test_a_state_that_could_not_be_saved_locks_the_workspace_with_the_backup_path(
    admin: TestClient, agent: ScriptedAgent
) -> None:
    make_workspace(admin, "shop/dev")
    make_workspace(admin, "shop/plain")
    backup = "/var/lib/xcf-agent/backups/run-1/errored.tfstate"
    run = start_run(admin, kind="plan_and_apply", auto_apply=True)
    agent.plan(run["id"])
    job = agent.claim("terraform.apply", run["id"])
    agent.start(job)
    agent.finish(
        job,
        "failed",
        error="Error: Failed to save state: HTTP 503",
        result={"state_backup": backup, "error_class": "transient"},
    )
    errored = show(admin, run["id"])
    assert errored["stage"] == "errored" and errored["error_class"] == "transient"
    assert errored["error"].startswith("Error: Failed to save state") and backup in errored["error"]
    ws = admin.get("/api/v1/workspaces/shop/dev").json()
    assert ws["locked"] is True and backup in ws["lock_reason"]

    # an apply that failed (Terraform reported an error, the state was saved) does not lock
    plain = start_run(admin, "shop/plain", kind="plan_and_apply", auto_apply=True)
    agent.plan(plain["id"])
    job = agent.claim("terraform.apply", plain["id"])
    agent.start(job)
    agent.finish(job, "failed", error="Error: creating bucket: AccessDenied")
    assert show(admin, plain["id"])["error"] == "Error: creating bucket: AccessDenied"
    assert admin.get("/api/v1/workspaces/shop/plain").json()["locked"] is False


def test_confirm_refuses_a_plan_made_stale_by_a_state_write(admin: TestClient, agent: ScriptedAgent) -> None:
    make_workspace(admin)
    write_state(admin, 1)
    current = start_run(admin, kind="plan_and_apply")
    agent.plan(current["id"], plan_result(serial=1, lineage=LINEAGE))
    assert admin.post(f"/api/v1/runs/{current['id']}/confirm").json()["stage"] == "confirmed"
    agent.apply(current["id"])

    run = start_run(admin, kind="plan_and_apply")
    agent.plan(run["id"], plan_result(serial=1, lineage=LINEAGE))
    write_state(admin, 2)  # someone changed the state after the plan
    resp = admin.post(f"/api/v1/runs/{run['id']}/confirm")
    assert resp.status_code == 409, resp.text
    message = resp.json()["error"]["message"]
    assert "stale" in message and "serial 1" in message and "serial 2" in message
    stale = show(admin, run["id"])
    assert stale["stage"] == "errored" and stale["error_class"] == "stale" and stale["apply_job"] is None
    assert agent.nothing_queued()
    audit = admin.get("/api/v1/audit-logs", params={"action": "runs.run.confirm"}).json()["items"]
    assert [e["result"] for e in audit] == ["refused", "success"]

    # a plan that claims another lineage is stale too, and the workspace moves on after each
    other = start_run(admin, kind="plan_and_apply")
    agent.plan(other["id"], plan_result(serial=2, lineage="another-lineage"))
    assert admin.post(f"/api/v1/runs/{other['id']}/confirm").status_code == 409
    assert show(admin, other["id"])["error_class"] == "stale"


def test_an_apply_reported_done_without_a_new_state_errors(admin: TestClient, agent: ScriptedAgent) -> None:
    """Post-execution validation: success with changes but no new state version is not `applied`."""
    make_workspace(admin)
    run = start_run(admin, kind="plan_and_apply", auto_apply=True)
    agent.plan(run["id"])
    agent.apply(run["id"], write_state=False)
    out = show(admin, run["id"])
    assert out["stage"] == "errored"
    assert "no new state version" in out["error"]
