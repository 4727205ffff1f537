"""The orchestrator step by step, with the test as the agent (speaking the real agent HTTP API) and the
clock in the test's hands: retries with backoff, a failure that stops dependents, concurrency, and
ChangeSets of two environments that do not hold each other up. Both databases."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.e2e.compose_helpers import commit, edit_yaml, make_repo
from tests.jobs.conftest import AGENT_API, bearer, pool_token, register
from xcloudflow.compose import orchestrator
from xcloudflow.db import Database
from xcloudflow.db.base import utcnow
from xcloudflow.settings import Settings

ENV = "qa"
LIMITS = orchestrator.Limits(max_attempts=3, retry_base_seconds=60)
KINDS = ["compose.plan", "compose.apply", "compose.exec"]


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    return settings.model_copy(update={"compose_local_roots": str(tmp_path)})


class Agent:
    """The test acting as an agent of pool `builders`: it claims compose jobs and reports outcomes."""

    def __init__(self, client: TestClient, admin: TestClient) -> None:
        self.client = client
        self.token = register(client, pool_token(admin), name="tester", kinds=KINDS)

    def claim(self) -> dict[str, Any] | None:
        resp = self.client.get(f"{AGENT_API}/jobs/next", params={"wait": 0}, headers=bearer(self.token))
        if resp.status_code == 204:
            return None
        assert resp.status_code == 200, resp.text
        job: dict[str, Any] = resp.json()
        assert (
            self.client.post(f"{AGENT_API}/jobs/{job['id']}/start", headers=bearer(job["token"])).status_code
            < 300
        )
        return job

    def claim_all(self) -> list[dict[str, Any]]:
        jobs = []
        while (job := self.claim()) is not None:
            jobs.append(job)
        return jobs

    def finish(self, job: dict[str, Any], *, ok: bool, changes: bool = True, transient: bool = False) -> None:
        plan = {
            "engine": "ansible",
            "has_changes": changes,
            "summary": {"add": 0, "change": 1 if changes else 0, "destroy": 0},
            "resource_changes": [{"address": "localhost/write", "type": "copy", "actions": ["update"]}]
            if changes
            else [],
        }
        body = {
            "outcome": "succeeded" if ok else "failed",
            "result": {"plan": plan} if ok else {"error_class": "transient" if transient else "permanent"},
            "error": None if ok else "task write failed on localhost",
            "retryable": False,
        }
        resp = self.client.post(
            f"{AGENT_API}/jobs/{job['id']}/finish", json=body, headers=bearer(job["token"])
        )
        assert resp.status_code < 300, resp.text


def tick(app_client: TestClient, db: Database, now: datetime) -> None:
    ctx = app_client.app.state.ctx  # type: ignore[attr-defined]
    with db.write() as session:
        orchestrator.tick(session=session, keyring=ctx.keyring, limits=LIMITS, now=now)


def _repo(tmp_path: Path, env: str = ENV, *, configs: int = 3, pool: str = "builders") -> Path:
    """An environment of `configs` independent Ansible compositions (Config layer), on pool `pool`."""
    repo = make_repo(tmp_path / env, env=env)
    for index in range(1, configs):
        text = (repo / "compositions/config/app-config.yaml").read_text()
        (repo / f"compositions/config/app-config{index}.yaml").write_text(
            text.replace("name: app-config", f"name: app-config{index}")
        )

    def change(doc: dict[str, Any]) -> None:
        doc["spec"]["pool"] = pool
        doc["spec"]["compositions"] = [
            {"ref": "compositions/config/app-config" + (str(i) if i else "")} for i in range(configs)
        ]

    edit_yaml(repo, f"envs/{env}/environment.yaml", change)
    commit(repo, "configs only")
    return repo


def _show(admin: TestClient, cs_id: str) -> dict[str, Any]:
    body: dict[str, Any] = admin.get(f"/api/v1/compose/changesets/{cs_id}").json()
    return body


def _nodes(cs: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n["key"]: n for n in cs["nodes"]}


def test_transient_failures_are_retried_with_backoff_then_fail(
    app_client: TestClient, admin: TestClient, db: Database, tmp_path: Path
) -> None:
    agent = Agent(app_client, admin)
    repo = _repo(tmp_path, configs=1)
    created = admin.post(
        "/api/v1/compose/changesets", json={"repo": str(repo), "environment": ENV, "apply": True}
    )
    assert created.status_code == 201, created.text
    cs_id = created.json()["id"]
    (plan_job,) = agent.claim_all()
    assert plan_job["kind"] == "compose.plan" and plan_job["payload"]["engine"] == "ansible"
    bundle = app_client.get(
        f"{AGENT_API}/jobs/{plan_job['id']}/compose-bundle", headers=bearer(plan_job["token"])
    )
    assert bundle.status_code == 200 and bundle.content[:2] == b"\x1f\x8b"
    agent.finish(plan_job, ok=True)
    now = utcnow()
    tick(app_client, db, now)  # planned -> applying (apply was asked for)
    tick(app_client, db, now)  # the node starts
    (apply_job,) = agent.claim_all()
    assert apply_job["kind"] == "compose.apply"
    agent.finish(apply_job, ok=False, transient=True)
    tick(app_client, db, now)
    node = _nodes(_show(admin, cs_id))["app-config/app-config"]
    assert node["status"] == "waiting" and node["attempts"] == 1 and "retry 2" in node["waiting_for"]
    tick(app_client, db, now + timedelta(seconds=30))  # before the backoff (60 s) ends: nothing
    assert agent.claim_all() == []
    tick(app_client, db, now + timedelta(seconds=61))
    (second,) = agent.claim_all()
    agent.finish(second, ok=False, transient=True)
    tick(app_client, db, now + timedelta(seconds=62))
    node = _nodes(_show(admin, cs_id))["app-config/app-config"]
    assert node["attempts"] == 2 and "retry 3" in node["waiting_for"]  # backoff doubled: 120 s
    tick(app_client, db, now + timedelta(seconds=62 + 100))
    assert agent.claim_all() == []
    tick(app_client, db, now + timedelta(seconds=62 + 121))
    (third,) = agent.claim_all()
    agent.finish(third, ok=False, transient=True)
    tick(app_client, db, now + timedelta(seconds=200))
    cs = _show(admin, cs_id)
    assert cs["status"] == "failed" and _nodes(cs)["app-config/app-config"]["attempts"] == 3
    assert "task write failed" in cs["error"]


def test_a_permanent_failure_is_not_retried_and_concurrency_is_kept(
    app_client: TestClient, admin: TestClient, db: Database, tmp_path: Path
) -> None:
    agent = Agent(app_client, admin)
    repo = _repo(tmp_path, configs=3)

    def one_at_a_time(doc: dict[str, Any]) -> None:
        doc["spec"]["defaults"]["concurrency"] = 1

    edit_yaml(repo, ".xcf.yaml", one_at_a_time)
    commit(repo, "one at a time")
    cs_id = admin.post(
        "/api/v1/compose/changesets", json={"repo": str(repo), "environment": ENV, "apply": True}
    ).json()["id"]
    plans = agent.claim_all()
    assert len(plans) == 3  # every node plans at once
    for job in plans:
        agent.finish(job, ok=True)
    now = utcnow()
    tick(app_client, db, now)
    tick(app_client, db, now)
    (first,) = agent.claim_all()  # concurrency 1: one apply at a time
    waiting = [n for n in _show(admin, cs_id)["nodes"] if n["status"] == "waiting"]
    assert len(waiting) == 2 and all("concurrency limit of 1" in n["waiting_for"] for n in waiting)
    agent.finish(first, ok=False)
    tick(app_client, db, now)
    failed = [n for n in _show(admin, cs_id)["nodes"] if n["status"] == "failed"]
    assert len(failed) == 1 and failed[0]["attempts"] == 1
    tick(app_client, db, now)
    (second,) = agent.claim_all()  # independent nodes go on after a failure
    agent.finish(second, ok=True)
    tick(app_client, db, now)
    tick(app_client, db, now)
    (third,) = agent.claim_all()
    agent.finish(third, ok=True)
    tick(app_client, db, now)
    cs = _show(admin, cs_id)
    assert cs["status"] == "failed" and sorted(n["status"] for n in cs["nodes"]) == [
        "applied",
        "applied",
        "failed",
    ]
    targets = admin.get("/api/v1/compose/targets", params={"environment": ENV}).json()
    assert len(targets) == 2


def test_environments_are_isolated(
    app_client: TestClient, admin: TestClient, db: Database, tmp_path: Path
) -> None:
    agent = Agent(app_client, admin)
    ids = []
    for env in ("qa", "uat"):
        repo = _repo(tmp_path, env, configs=1)
        created = admin.post(
            "/api/v1/compose/changesets", json={"repo": str(repo), "environment": env, "apply": True}
        )
        assert created.status_code == 201, created.text
        ids.append(created.json()["id"])
    for job in agent.claim_all():
        agent.finish(job, ok=True)
    now = utcnow()
    tick(app_client, db, now)
    tick(app_client, db, now)
    applies = agent.claim_all()
    assert sorted(j["payload"]["changeset"] for j in applies) == sorted(ids)  # both run at once
