"""A resource-level run plans the resource versions it was created with, even if they change meanwhile."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.runs.conftest import ScriptedAgent, show, start_run

WS = "/api/v1/workspaces/shop/res"


def _hcl(value: str) -> str:
    return f'resource "terraform_data" "web" {{\n  input = "{value}"\n}}\n'


def test_the_bundle_uses_the_versions_the_run_was_created_with(
    admin: TestClient, agent: ScriptedAgent
) -> None:
    assert admin.post("/api/v1/workspaces", json={"project": "shop", "name": "res"}).status_code == 201
    resp = admin.post(f"{WS}/resources", json={"address": "terraform_data.web", "hcl": _hcl("one")})
    assert resp.status_code == 201, resp.text
    run = start_run(admin, "shop/res", kind="plan")
    assert show(admin, run["id"])["resource_versions"] == {"terraform_data.web": 1}

    resp = admin.put(f"{WS}/resources/terraform_data.web", json={"hcl": _hcl("two")})
    assert resp.status_code == 200, resp.text
    job = agent.claim("terraform.plan", run["id"])
    agent.start(job)
    main = agent.bundle(job)["files"]["main.tf"]
    assert '"one"' in main and '"two"' not in main

    # Once the resource is gone, the run cannot be planned as created: the bundle says which.
    later = start_run(admin, "shop/res", kind="plan")  # pinned to v2, queued behind the first
    agent.finish(
        job, result={"has_changes": False, "summary": {}, "output_changes": [], "resource_drift": []}
    )
    db_hcl = 'resource "terraform_data" "db" {\n  input = "db"\n}\n'
    assert (
        admin.post(f"{WS}/resources", json={"address": "terraform_data.db", "hcl": db_hcl}).status_code == 201
    )
    assert admin.delete(f"{WS}/resources/terraform_data.web").status_code == 204
    job2 = agent.claim("terraform.plan", later["id"])
    resp = agent.call("GET", job2, "run")
    assert resp.status_code == 400 and "terraform_data.web v2" in resp.json()["error"]["message"]
