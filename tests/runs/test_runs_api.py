"""Runs over the people API, driven by a scripted agent: auth on every route, stage rules, queueing,
cancel, the agent's bundle, and the notifications runs send."""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

from fastapi.testclient import TestClient

from tests.conftest import ADMIN_TOKEN
from tests.factories import targz
from tests.jobs.conftest import AGENT_API, bearer
from tests.runs.conftest import (
    MAIN_TF,
    ScriptedAgent,
    make_workspace,
    plan_result,
    show,
    start_run,
)


def _routes(run_id: str, address: str = "shop/dev") -> list[tuple[str, str, Any]]:
    return [
        ("POST", f"/api/v1/workspaces/{address}/runs", {"kind": "plan"}),
        ("GET", f"/api/v1/workspaces/{address}/runs", None),
        ("GET", "/api/v1/runs", None),
        ("GET", f"/api/v1/runs/{run_id}", None),
        ("POST", f"/api/v1/runs/{run_id}/confirm", None),
        ("POST", f"/api/v1/runs/{run_id}/discard", None),
        ("POST", f"/api/v1/runs/{run_id}/cancel", None),
        ("GET", f"/api/v1/runs/{run_id}/logs", None),
        ("GET", f"/api/v1/runs/{run_id}/plan", None),
        ("GET", f"/api/v1/workspaces/{address}/drift", None),
        ("POST", f"/api/v1/workspaces/{address}/drift/check", None),
    ]


WRITES = {"confirm", "discard", "cancel", "runs", "check"}


def _is_write(method: str, path: str) -> bool:
    return method == "POST" and path.rsplit("/", 1)[-1] in WRITES


def _error(resp: Any) -> dict[str, Any]:
    body: dict[str, Any] = resp.json()["error"]
    return body


def test_every_route_needs_a_token_and_readers_only_read(
    admin: TestClient, reader: TestClient, anon: TestClient, agent: ScriptedAgent
) -> None:
    make_workspace(admin)
    run = start_run(admin, kind="plan_and_apply")
    agent.plan(run["id"])
    assert show(admin, run["id"])["stage"] == "planned"
    routes = _routes(run["id"])
    for method, path, body in routes:
        assert anon.request(method, path, json=body).status_code == 401, (method, path)
        for bad in ("xcf_bogus", "xcfj_not-a-job-token", "xcfa_not-an-agent"):
            resp = anon.request(method, path, json=body, headers=bearer(bad))
            assert resp.status_code == 401, (method, path, bad)
    for method, path, body in routes:
        resp = reader.request(method, path, json=body)
        if _is_write(method, path):
            assert resp.status_code == 403, (method, path, resp.text)
            assert _error(resp)["code"] == "forbidden"
        else:
            assert resp.status_code == 200, (method, path, resp.text)
    # the reader changed nothing: still one run, still planned
    listed = reader.get("/api/v1/workspaces/shop/dev/runs").json()["items"]
    assert [(r["number"], r["stage"]) for r in listed] == [(1, "planned")]
    denied = admin.get("/api/v1/audit-logs", params={"result": "denied"}).json()["items"]
    assert {e["resource"] for e in denied} >= {f"/api/v1/runs/{run['id']}/confirm"}


def test_agent_routes_need_that_jobs_token(
    admin: TestClient, reader: TestClient, anon: TestClient, agent: ScriptedAgent
) -> None:
    make_workspace(admin)
    make_workspace(admin, "shop/other")
    run = start_run(admin, kind="plan_and_apply")
    other = start_run(admin, "shop/other", kind="plan")
    job = agent.claim("terraform.plan", run["id"])
    other_job = agent.claim("terraform.plan", other["id"])
    reader_token = reader.headers["Authorization"].split()[1]
    for tail in ("run", "code", "plan"):
        path = f"{AGENT_API}/jobs/{job['id']}/{tail}"
        assert anon.get(path).status_code == 401, path
        assert anon.get(path, headers=bearer("xcfj_bogus")).status_code == 401, path
        for wrong in (reader_token, ADMIN_TOKEN, agent.token, other_job["token"]):
            assert anon.get(path, headers=bearer(wrong)).status_code == 403, (path, wrong)
        unknown = f"{AGENT_API}/jobs/{uuid.uuid4()}/{tail}"
        assert anon.get(unknown, headers=bearer(job["token"])).status_code == 404, unknown


def test_the_agent_gets_the_bundle_the_code_and_for_an_apply_the_plan(
    admin: TestClient, agent: ScriptedAgent
) -> None:
    make_workspace(admin, working_directory="", auto_apply=False)
    admin.put(
        "/api/v1/workspaces/shop/dev/vars/terraform/region", json={"value": "eu-west-1"}
    ).raise_for_status()
    admin.put(
        "/api/v1/workspaces/shop/dev/vars/env/TF_TOKEN", json={"value": "tok-123", "sensitive": True}
    ).raise_for_status()
    run = start_run(admin, kind="plan_and_apply", targets=["terraform_data.one"])
    job = agent.claim("terraform.plan", run["id"])
    bundle = agent.bundle(job)
    assert bundle["run"] == {
        "id": run["id"],
        "number": 1,
        "kind": "plan_and_apply",
        "operation": "plan",
        "plan_mode": "normal",
        "targets": ["terraform_data.one"],
        "detailed_exitcode": True,
        "cancel_grace_seconds": 20,
    }
    assert bundle["workspace"] == {
        "project": "shop",
        "name": "dev",
        "working_directory": "",
        "terraform_bin": None,
    }
    assert bundle["backend"]["address"] == "/terraform/state/shop/dev"
    assert bundle["backend"]["lock_method"] == "LOCK" and bundle["backend"]["username"] == "job"
    assert bundle["code"]["number"] == 1 and bundle["plan"] is None
    assert bundle["tfvars"] == {"region": "eu-west-1"} and bundle["env"] == {"TF_TOKEN": "tok-123"}
    assert bundle["sensitive"] == ["tok-123"]
    code = agent.call("GET", job, "code")
    assert code.status_code == 200 and code.headers["content-type"] == "application/gzip"
    archive = admin.get("/api/v1/workspaces/shop/dev/code-versions/1/archive").content
    assert code.content == archive and hashlib.sha256(archive).hexdigest() == bundle["code"]["sha256"]
    assert agent.call("GET", job, "plan").status_code == 404  # a plan job has no plan to fetch
    agent.start(job)
    agent.artifact(job, "plan.bin", b"the binary plan")
    agent.artifact(job, "plan.json", b'{"resource_changes": []}')
    agent.finish(job, result=plan_result(serial=None))
    assert admin.get(f"/api/v1/runs/{run['id']}/plan").json() == {"resource_changes": []}
    admin.post(f"/api/v1/runs/{run['id']}/confirm").raise_for_status()
    apply = agent.claim("terraform.apply", run["id"])
    bundle = agent.bundle(apply)
    assert bundle["run"]["operation"] == "apply"
    assert bundle["plan"] == {"job_id": job["id"], "state_serial": None, "state_lineage": None}
    assert agent.call("GET", apply, "plan").content == b"the binary plan"
    # a code version uploaded meanwhile does not change what this run applies
    admin.post(
        "/api/v1/workspaces/shop/dev/code-versions",
        content=targz({"main.tf": "# v2\n"}),
        headers={"Content-Type": "application/gzip"},
    ).raise_for_status()
    assert agent.bundle(apply)["code"]["number"] == 1
    assert agent.call("GET", apply, "code").content == archive


def test_confirm_discard_and_cancel_name_the_stage_and_the_allowed_ones(
    admin: TestClient, agent: ScriptedAgent
) -> None:
    make_workspace(admin)
    first = start_run(admin, kind="plan_and_apply")
    second = start_run(admin, kind="plan_and_apply")

    def refused(run: dict[str, Any], action: str, stage: str) -> dict[str, Any]:
        resp = admin.post(f"/api/v1/runs/{run['id']}/{action}")
        assert resp.status_code == 409, (action, resp.text)
        error = _error(resp)
        assert stage in error["message"], error
        assert error["details"]["stage"] == stage
        return error

    error = refused(first, "confirm", "pending")
    assert error["details"]["allowed"] == ["canceled", "errored", "planning"]
    assert "it can become canceled, errored, planning" in error["message"]
    refused(second, "confirm", "pending")
    refused(first, "discard", "pending")
    job = agent.claim("terraform.plan", first["id"])
    agent.start(job)
    error = refused(first, "confirm", "planning")
    assert "planned" in error["details"]["allowed"]
    refused(first, "discard", "planning")
    agent.finish(job, result=plan_result())
    assert show(admin, first["id"])["stage"] == "planned"
    assert show(admin, second["id"])["plan_job"] is None  # a planned run still holds the workspace

    resp = admin.post(f"/api/v1/runs/{first['id']}/discard")
    assert resp.status_code == 200 and resp.json()["stage"] == "discarded"
    error = refused(first, "confirm", "discarded")
    assert error["details"]["allowed"] == [] and "final" in error["message"]
    refused(first, "discard", "discarded")
    assert "already discarded" in refused(first, "cancel", "discarded")["message"]

    agent.plan(second["id"])  # dispatched once the first was discarded
    assert admin.post(f"/api/v1/runs/{second['id']}/confirm").json()["stage"] == "confirmed"
    refused(second, "discard", "confirmed")
    refused(second, "confirm", "confirmed")
    agent.apply(second["id"])
    refused(second, "confirm", "applied")
    refused(second, "cancel", "applied")
    assert admin.post(f"/api/v1/runs/{uuid.uuid4()}/confirm").status_code == 404
    assert admin.post("/api/v1/runs/not-a-uuid/confirm").status_code == 422
    actions = [
        e["action"] for e in admin.get("/api/v1/audit-logs", params={"action": "runs."}).json()["items"]
    ]
    assert actions.count("runs.run.create") == 2 and "runs.run.discard" in actions
    assert "runs.run.confirm" in actions


def test_no_changes_ends_planned_and_finished(admin: TestClient, agent: ScriptedAgent) -> None:
    make_workspace(admin, auto_apply=True)
    run = start_run(admin, kind="plan_and_apply")
    agent.plan(run["id"], plan_result(has_changes=False))
    done = show(admin, run["id"])
    assert done["stage"] == "planned_and_finished" and done["has_changes"] is False
    assert done["summary"] == {"add": 0, "change": 0, "destroy": 0, "import": 0}
    assert done["apply_job"] is None and done["finished_at"] and done["planned_at"]
    assert admin.post(f"/api/v1/runs/{run['id']}/confirm").status_code == 409
    assert agent.nothing_queued()


def test_auto_apply_goes_straight_to_confirmed_but_never_for_plan_runs(
    admin: TestClient, agent: ScriptedAgent
) -> None:
    make_workspace(admin, "shop/auto", auto_apply=True)
    make_workspace(admin, "shop/manual")
    run = start_run(admin, "shop/auto", kind="plan_and_apply")
    assert run["auto_apply"] is True
    agent.plan(run["id"])
    confirmed = show(admin, run["id"])
    assert confirmed["stage"] == "confirmed" and confirmed["apply_job"]
    assert [(t["to"], t["actor"]) for t in confirmed["transitions"]][-2:] == [
        ("planned", "scripted"),
        ("confirmed", "auto-apply"),
    ]
    agent.apply(run["id"])
    assert show(admin, run["id"])["stage"] == "applied"

    # a plan run never applies on its own, even in an auto-apply workspace or when asked to
    for body in ({}, {"auto_apply": True}):
        plan = start_run(admin, "shop/auto", kind="plan", **body)
        agent.plan(plan["id"])
        waiting = show(admin, plan["id"])
        assert waiting["stage"] == "planned" and waiting["apply_job"] is None
        assert admin.post(f"/api/v1/runs/{plan['id']}/discard").status_code == 200
    assert agent.nothing_queued()

    # the run's own auto_apply wins over the workspace's
    manual = start_run(admin, "shop/manual", kind="plan_and_apply", auto_apply=True)
    agent.plan(manual["id"])
    assert show(admin, manual["id"])["stage"] == "confirmed"
    agent.apply(manual["id"])
    held = start_run(admin, "shop/auto", kind="plan_and_apply", auto_apply=False)
    agent.plan(held["id"])
    assert show(admin, held["id"])["stage"] == "planned"


def test_runs_of_a_workspace_queue_in_order_and_other_workspaces_go_on(
    admin: TestClient, reader: TestClient, agent: ScriptedAgent
) -> None:
    make_workspace(admin, "shop/dev")
    make_workspace(admin, "shop/prod")
    first = start_run(admin, kind="plan")
    second = start_run(admin, kind="plan")
    third = start_run(admin, kind="plan")
    other = start_run(admin, "shop/prod", kind="plan")
    assert (first["queue_position"], first["plan_job"] is not None) == (None, True)
    assert (second["stage"], second["queue_position"], second["plan_job"]) == ("pending", 1, None)
    assert (third["queue_position"], third["plan_job"]) == (2, None)
    assert other["plan_job"] is not None and other["queue_position"] is None

    agent.plan(first["id"], plan_result(has_changes=False))
    agent.plan(other["id"])  # not blocked by shop/dev's runs
    assert show(admin, third["id"])["queue_position"] == 1
    assert show(admin, second["id"])["plan_job"] is not None
    agent.plan(second["id"])
    assert show(admin, second["id"])["stage"] == "planned"
    assert show(admin, third["id"])["plan_job"] is None  # waits for the planned run to be decided
    assert agent.nothing_queued()
    admin.post(f"/api/v1/runs/{second['id']}/discard").raise_for_status()
    agent.plan(third["id"], plan_result(has_changes=False))

    page = reader.get("/api/v1/workspaces/shop/dev/runs").json()
    assert [(r["number"], r["stage"]) for r in page["items"]] == [
        (3, "planned_and_finished"),
        (2, "discarded"),
        (1, "planned_and_finished"),
    ]
    stage = reader.get("/api/v1/workspaces/shop/dev/runs", params={"stage": "discarded"}).json()
    assert [r["id"] for r in stage["items"]] == [second["id"]]
    one = reader.get("/api/v1/runs", params={"workspace": "shop/prod"}).json()["items"]
    assert [r["id"] for r in one] == [other["id"]]
    assert len(reader.get("/api/v1/runs", params={"project": "shop"}).json()["items"]) == 4
    seen: list[str] = []
    params: dict[str, Any] = {"limit": 1}
    while True:
        page = reader.get("/api/v1/runs", params=params).json()
        seen += [r["id"] for r in page["items"]]
        if not page["next_cursor"]:
            break
        params["cursor"] = page["next_cursor"]
    assert seen == [other["id"], third["id"], second["id"], first["id"]]  # newest first
    assert reader.get("/api/v1/runs", params={"stage": "nope"}).status_code == 400
    assert reader.get("/api/v1/runs", params={"cursor": "!!"}).status_code == 400
    assert reader.get("/api/v1/runs", params={"workspace": "no-slash"}).status_code == 400
    assert reader.get("/api/v1/workspaces/shop/nope/runs").status_code == 404


def test_bad_run_requests(admin: TestClient, writer: TestClient) -> None:
    make_workspace(admin)
    assert writer.post("/api/v1/workspaces/shop/dev/runs", json={"kind": "bogus"}).status_code == 422
    assert writer.post("/api/v1/workspaces/shop/dev/runs", json={"extra": 1}).status_code == 422
    bad_target = writer.post("/api/v1/workspaces/shop/dev/runs", json={"targets": ["a b; rm -rf /"]})
    assert bad_target.status_code == 400 and "targets" in json.dumps(bad_target.json())
    assert writer.post("/api/v1/workspaces/shop/nope/runs", json={}).status_code == 404
    admin.post("/api/v1/workspaces/shop/dev/lock", json={"reason": "maintenance"}).raise_for_status()
    locked = writer.post("/api/v1/workspaces/shop/dev/runs", json={})
    assert locked.status_code == 409 and "maintenance" in _error(locked)["message"]
    admin.post("/api/v1/workspaces/shop/dev/unlock").raise_for_status()
    run = writer.post("/api/v1/workspaces/shop/dev/runs", json={}).json()
    assert run["created_by"] == "wendy" and run["kind"] == "plan_and_apply"


def test_a_workspace_without_configuration_records_an_errored_run(admin: TestClient) -> None:
    admin.post("/api/v1/workspaces", json={"project": "shop", "name": "empty"}).raise_for_status()
    run = start_run(admin, "shop/empty", kind="plan")
    assert run["stage"] == "errored" and run["plan_job"] is None
    assert run["error_class"] == "permanent" and "upload a code version" in run["error"]


def test_cancel_in_every_open_stage(admin: TestClient, agent: ScriptedAgent) -> None:
    make_workspace(admin)
    queued = start_run(admin, kind="plan")  # its plan job is queued
    waiting = start_run(admin, kind="plan")  # no job yet
    resp = admin.post(f"/api/v1/runs/{waiting['id']}/cancel")
    assert resp.status_code == 200 and resp.json()["stage"] == "canceled"
    assert resp.json()["transitions"][-1]["reason"] == "canceled by admin"
    canceled = admin.post(f"/api/v1/runs/{queued['id']}/cancel").json()
    assert canceled["stage"] == "canceled"  # the queued job was canceled before any agent had it
    assert agent.nothing_queued()

    planning = start_run(admin, kind="plan")
    job = agent.claim("terraform.plan", planning["id"])
    agent.start(job)
    asked = admin.post(f"/api/v1/runs/{planning['id']}/cancel").json()
    assert asked["stage"] == "planning" and asked["cancel_requested_at"]
    assert agent.call("GET", job, "cancel").json()["cancel_requested"] is True
    agent.finish(job, "canceled", error="interrupted by a cancel request")
    assert show(admin, planning["id"])["stage"] == "canceled"

    planned = start_run(admin, kind="plan")
    agent.plan(planned["id"])
    assert admin.post(f"/api/v1/runs/{planned['id']}/cancel").json()["stage"] == "canceled"

    applying = start_run(admin, kind="plan_and_apply", auto_apply=True)
    agent.plan(applying["id"])
    apply = agent.claim("terraform.apply", applying["id"])
    agent.start(apply)
    assert admin.post(f"/api/v1/runs/{applying['id']}/cancel").json()["stage"] == "applying"
    agent.finish(apply, "canceled", error="interrupted")
    final = show(admin, applying["id"])
    assert final["stage"] == "canceled" and final["transitions"][-1]["actor"] == "admin"
    assert admin.post(f"/api/v1/runs/{applying['id']}/cancel").status_code == 409


def test_notifications_of_a_run_never_carry_a_sensitive_value(
    admin: TestClient, reader: TestClient, agent: ScriptedAgent
) -> None:
    secret = "hunter2-" + uuid.uuid4().hex
    resp = admin.post(
        "/api/v1/notification-destinations", json={"name": "ops", "url": "http://127.0.0.1:9/hook"}
    )
    assert resp.status_code == 201, resp.text
    make_workspace(
        admin,
        files={"main.tf": 'variable "password" {\n  type      = string\n  sensitive = true\n}\n' + MAIN_TF},
    )
    admin.put(
        "/api/v1/workspaces/shop/dev/vars/terraform/password", json={"value": secret, "sensitive": True}
    ).raise_for_status()
    run = start_run(admin, kind="plan_and_apply", message="release 1")
    job = agent.claim("terraform.plan", run["id"])
    assert agent.bundle(job)["sensitive"] == [secret]  # only the job's token gets it, to mask
    agent.start(job)
    agent.finish(job, result=plan_result())
    admin.post(f"/api/v1/runs/{run['id']}/confirm").raise_for_status()
    agent.apply(run["id"], {"outputs": {"pw": {"value": None, "sensitive": True}}})
    failing = start_run(admin, kind="plan")
    job = agent.claim("terraform.plan", failing["id"])
    agent.start(job)
    agent.finish(job, "failed", error="Error: password *** was refused", result={"error_class": "permanent"})

    items = admin.get("/api/v1/notification-destinations/ops/deliveries").json()["items"]
    events = [(d["event"], d["payload"]["run_number"]) for d in reversed(items)]
    assert events == [
        ("run.created", 1),
        ("run.needs_confirmation", 1),
        ("run.applied", 1),
        ("run.created", 2),
        ("run.errored", 2),
    ]
    errored = items[0]["payload"]
    assert errored["workspace"] == "shop/dev" and errored["error"] == "Error: password *** was refused"
    assert errored["stage"] == "errored" and errored["run_id"] == failing["id"]
    assert secret not in json.dumps(items)
    assert secret not in json.dumps(reader.get(f"/api/v1/runs/{run['id']}").json())
    assert secret not in reader.get("/api/v1/workspaces/shop/dev/vars").text
    metrics = admin.get("/metrics").text
    assert "xcf_runs_created_total" in metrics
