"""A run job's token reaches its workspace's state through the Terraform backend, and nothing else."""

from __future__ import annotations

import base64
from typing import Any

from fastapi.testclient import TestClient

from tests.factories import LINEAGE, body, lock_info, md5_header, tf_state
from tests.jobs.conftest import bearer
from tests.runs.conftest import ScriptedAgent, make_workspace, plan_result, show, start_run

STATE = "/terraform/state/shop/dev"


def basic(token: str) -> dict[str, str]:
    """How Terraform's http backend sends it: username `job`, the token as password."""
    return {"Authorization": "Basic " + base64.b64encode(f"job:{token}".encode()).decode()}


def post_state(client: TestClient, url: str, doc: Any, headers: dict[str, str], lock_id: str | None) -> Any:
    data = body(doc)
    return client.post(
        url,
        content=data,
        params={"ID": lock_id} if lock_id else None,
        headers={**headers, "Content-MD5": md5_header(data), "Content-Type": "application/json"},
    )


def test_the_job_token_reaches_only_its_stack_and_only_while_the_job_runs(
    admin: TestClient, anon: TestClient, agent: ScriptedAgent
) -> None:
    make_workspace(admin)
    make_workspace(admin, "shop/other")
    run = start_run(admin, kind="plan_and_apply")
    job = agent.claim("terraform.plan", run["id"])
    agent.start(job)
    token = job["token"]
    assert token.startswith("xcfj_")

    for headers in (bearer(token), basic(token)):
        assert anon.get(STATE, headers=headers).status_code == 204  # no state yet
    lock = lock_info(who="job@agent")
    resp = anon.request("LOCK", STATE, json=lock, headers=basic(token))
    assert resp.status_code == 200, resp.text
    written = post_state(anon, STATE, tf_state(serial=1), basic(token), lock["ID"])
    assert written.status_code == 200, written.text
    held = admin.get("/api/v1/stacks/terraform/shop/dev").json()["lock"]
    assert held["ID"] == lock["ID"] and held["actor"] == f"job:{job['id']}"
    assert anon.get(STATE, headers=basic(token)).content == body(tf_state(serial=1))
    assert anon.request("UNLOCK", STATE, json=lock, headers=basic(token)).status_code == 200
    # the seed's lock paths are the same stack
    assert anon.post("/terraform/lock/shop/dev", json=lock, headers=bearer(token)).status_code == 200
    assert anon.post("/terraform/unlock/shop/dev", json=lock, headers=bearer(token)).status_code == 200
    versions = admin.get("/api/v1/stacks/terraform/shop/dev/versions").json()["items"]
    assert [(v["serial"], v["lineage"]) for v in versions] == [(1, LINEAGE)]
    writes = admin.get("/api/v1/audit-logs", params={"actor": f"job:{job['id']}"}).json()["items"]
    assert writes, "the job's state changes are audited under job:<id>"

    refused: list[tuple[str, str]] = [
        ("GET", "/terraform/state/shop/other"),
        ("LOCK", "/terraform/state/shop/other"),
        ("POST", "/terraform/lock/shop/other"),
        ("GET", "/terraform/state/other/dev"),
        ("GET", "/pulumi/state/shop/dev"),
        ("GET", "/api/v1/workspaces"),
        ("GET", "/api/v1/workspaces/shop/dev"),
        ("GET", "/api/v1/runs"),
        ("GET", f"/api/v1/runs/{run['id']}"),
        ("POST", f"/api/v1/runs/{run['id']}/cancel"),
        ("GET", "/api/v1/stacks/terraform/shop/dev"),
        ("GET", f"/api/v1/jobs/{job['id']}"),
    ]
    for method, path in refused:
        resp = anon.request(method, path, json=lock if method == "LOCK" else None, headers=bearer(token))
        assert resp.status_code == 403, (method, path, resp.status_code, resp.text)
    other = post_state(anon, "/terraform/state/shop/other", tf_state(serial=1), bearer(token), None)
    assert other.status_code == 403
    assert "shop/dev" in other.json()["error"]["message"]

    agent.finish(job, result=plan_result(serial=1, lineage=LINEAGE))
    for headers in (bearer(token), basic(token)):
        after = anon.get(STATE, headers=headers)
        assert after.status_code == 401, after.text
        assert "finished" in after.json()["error"]["message"]
    assert post_state(anon, STATE, tf_state(serial=2), bearer(token), None).status_code == 401
    assert show(admin, run["id"])["stage"] == "planned"

    # the apply job gets its own token, with the same reach
    admin.post(f"/api/v1/runs/{run['id']}/confirm").raise_for_status()
    apply = agent.claim("terraform.apply", run["id"])
    assert apply["token"] != token
    assert anon.get(STATE, headers=basic(apply["token"])).status_code == 200
    assert anon.get("/terraform/state/shop/other", headers=basic(apply["token"])).status_code == 403
    agent.start(apply)
    agent.finish(apply, result={"outputs": {}})
    assert anon.get(STATE, headers=basic(apply["token"])).status_code == 401


def test_a_job_without_a_state_scope_reaches_no_state(
    admin: TestClient, anon: TestClient, agent: ScriptedAgent, db: Any
) -> None:
    """Tokens of other job kinds (no "state" in the payload) are refused on the backend."""
    from xcloudflow.iam import service as iam
    from xcloudflow.jobs import service as jobs

    with db.write() as session:
        org = iam.org_id_by_name(session=session, name=iam.DEFAULT_ORG)
        jobs.enqueue(session=session, org_id=org, kind="terraform.plan", payload={"run_id": "x"})
    job = agent.claim("terraform.plan")
    resp = anon.get(STATE, headers=basic(job["token"]))
    assert resp.status_code == 403 and "reaches no state" in resp.json()["error"]["message"]
    # its own agent routes still work, and the runs domain ignores a job that names no run
    assert agent.call("GET", job, "run").status_code == 404
    agent.start(job)
    agent.finish(job, "failed", error="no run")


def test_the_job_token_cannot_delete_the_stack(
    admin: TestClient, anon: TestClient, agent: ScriptedAgent
) -> None:
    make_workspace(admin)
    run = start_run(admin, kind="plan_and_apply")
    job = agent.claim("terraform.plan", run["id"])
    agent.start(job)
    resp = anon.delete(STATE, headers=bearer(job["token"]))
    assert resp.status_code == 403, resp.text
    assert "cannot DELETE" in resp.json()["error"]["message"]
