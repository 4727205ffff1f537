"""Run fixtures: the app without an embedded agent, and a test that plays the agent over the agent API.

No Terraform here: `ScriptedAgent` registers with a pool token, claims `terraform.plan` /
`terraform.apply` jobs from /api/agent/v1/jobs/next and reports what a real agent would (logs,
artifacts, a result as in the contract). Leases are long enough that nothing expires while a test
talks to the app, except in tests that ask for a short one (`jobs_config` parametrized indirectly
with the lease in seconds) to see the reaper at work.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.factories import body, md5_header, targz, tf_state
from tests.jobs.conftest import AGENT_API, bearer, job_settings, pool_token, register
from xcloudflow.db import Database
from xcloudflow.jobs.config import JobSettings
from xcloudflow.server.app import create_app
from xcloudflow.settings import Settings

RUN_JOB_KINDS = ["terraform.plan", "terraform.apply"]
MAIN_TF = 'resource "terraform_data" "one" {\n  input = "a"\n}\n\noutput "value" {\n  value = "a"\n}\n'
DEFAULT_LEASE_SECONDS = 20.0


@pytest.fixture
def jobs_config(request: pytest.FixtureRequest) -> JobSettings:
    lease = getattr(request, "param", DEFAULT_LEASE_SECONDS)
    return job_settings(job_lease_seconds=lease)


@pytest.fixture
def app_client(settings: Settings, db: Database, jobs_config: JobSettings) -> Iterator[TestClient]:
    app = create_app(settings, maintenance=False, jobs=jobs_config, embedded_agent=False)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def make_workspace(
    client: TestClient,
    address: str = "shop/dev",
    *,
    files: dict[str, str] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """A workspace with one uploaded code version (`files`, default a one-resource main.tf)."""
    project, name = address.split("/")
    resp = client.post("/api/v1/workspaces", json={"project": project, "name": name, **fields})
    assert resp.status_code == 201, resp.text
    upload = client.post(
        f"/api/v1/workspaces/{address}/code-versions",
        content=targz(files or {"main.tf": MAIN_TF}),
        headers={"Content-Type": "application/gzip"},
    )
    assert upload.status_code == 201, upload.text
    out: dict[str, Any] = resp.json()
    return out


def start_run(client: TestClient, address: str = "shop/dev", **body: Any) -> dict[str, Any]:
    resp = client.post(f"/api/v1/workspaces/{address}/runs", json=body)
    assert resp.status_code == 201, resp.text
    run: dict[str, Any] = resp.json()
    return run


def show(client: TestClient, run_id: str) -> dict[str, Any]:
    resp = client.get(f"/api/v1/runs/{run_id}")
    assert resp.status_code == 200, resp.text
    run: dict[str, Any] = resp.json()
    return run


def plan_result(
    has_changes: bool = True,
    *,
    add: int = 1,
    serial: int | None = None,
    lineage: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A plan job's result as the agent reports it."""
    return {
        "has_changes": has_changes,
        "summary": {"add": add if has_changes else 0, "change": 0, "destroy": 0, "import": 0},
        "output_changes": [],
        "resource_drift": [],
        "state_serial": serial,
        "state_lineage": lineage,
        **extra,
    }


@dataclass
class ScriptedAgent:
    """An agent played by the test over the real agent API (no Terraform)."""

    client: TestClient
    token: str

    def claim(self, kind: str | None = None, run_id: str | None = None) -> dict[str, Any]:
        """The next job (which must exist, and be of `kind` / for `run_id` when given)."""
        resp = self.client.get(f"{AGENT_API}/jobs/next", params={"wait": 0}, headers=bearer(self.token))
        assert resp.status_code == 200, f"no job to claim: {resp.status_code} {resp.text}"
        job: dict[str, Any] = resp.json()
        if kind is not None:
            assert job["kind"] == kind, job
        if run_id is not None:
            assert job["payload"]["run_id"] == run_id, job
        return job

    def nothing_queued(self) -> bool:
        resp = self.client.get(f"{AGENT_API}/jobs/next", params={"wait": 0}, headers=bearer(self.token))
        assert resp.status_code in (200, 204), resp.text
        return bool(resp.status_code == 204)

    def call(self, method: str, job: dict[str, Any], path: str, **kwargs: Any) -> Any:
        return self.client.request(
            method, f"{AGENT_API}/jobs/{job['id']}/{path}", headers=bearer(job["token"]), **kwargs
        )

    def start(self, job: dict[str, Any]) -> None:
        resp = self.call("POST", job, "start")
        assert resp.status_code == 200, resp.text

    def log(self, job: dict[str, Any], *lines: str) -> None:
        resp = self.call("POST", job, "logs", json={"chunks": list(lines)})
        assert resp.status_code == 200, resp.text

    def artifact(self, job: dict[str, Any], name: str, data: bytes) -> None:
        resp = self.call("PUT", job, f"artifacts/{name}", content=data)
        assert resp.status_code == 201, resp.text

    def bundle(self, job: dict[str, Any]) -> dict[str, Any]:
        resp = self.call("GET", job, "run")
        assert resp.status_code == 200, resp.text
        out: dict[str, Any] = resp.json()
        return out

    def write_state(self, job: dict[str, Any]) -> None:
        """POST the stack's next serial through the backend with the job token (no lock: none is held)."""
        address = self.bundle(job)["backend"]["address"]
        current = self.client.get(address, headers=bearer(job["token"]))
        serial = current.json()["serial"] + 1 if current.status_code == 200 else 1
        data = body(tf_state(serial=serial))
        resp = self.client.post(
            address, content=data, headers={**bearer(job["token"]), "Content-MD5": md5_header(data)}
        )
        assert resp.status_code == 200, resp.text

    def heartbeat(self, *job_ids: str) -> None:
        resp = self.client.post(
            f"{AGENT_API}/heartbeat", json={"running": list(job_ids)}, headers=bearer(self.token)
        )
        assert resp.status_code == 200, resp.text

    def finish(
        self,
        job: dict[str, Any],
        outcome: str = "succeeded",
        *,
        result: dict[str, Any] | None = None,
        error: str | None = None,
        retryable: bool = False,
    ) -> dict[str, Any]:
        resp = self.call(
            "POST",
            job,
            "finish",
            json={"outcome": outcome, "result": result, "error": error, "retryable": retryable},
        )
        assert resp.status_code == 200, resp.text
        out: dict[str, Any] = resp.json()
        return out

    def plan(
        self,
        run_id: str,
        result: dict[str, Any] | None = None,
        *,
        lines: tuple[str, ...] = ("Terraform will perform the following actions:\n",),
    ) -> dict[str, Any]:
        """Claim the run's plan job and carry it out successfully; returns the job."""
        job = self.claim("terraform.plan", run_id)
        self.start(job)
        if lines:
            self.log(job, *lines)
        self.artifact(job, "plan.bin", b"binary plan of " + run_id.encode())
        self.artifact(job, "plan.json", b'{"format_version": "1.2", "resource_changes": []}')
        self.finish(job, result=result if result is not None else plan_result())
        return job

    def apply(
        self,
        run_id: str,
        result: dict[str, Any] | None = None,
        *,
        lines: tuple[str, ...] = ("Apply complete! Resources: 1 added, 0 changed, 0 destroyed.\n",),
        write_state: bool = True,
    ) -> dict[str, Any]:
        """Claim the run's apply job and carry it out successfully (writing the next state version, as
        Terraform would, with the job's token); returns the job."""
        job = self.claim("terraform.apply", run_id)
        self.start(job)
        if lines:
            self.log(job, *lines)
        if write_state:
            self.write_state(job)
        self.finish(job, result=result if result is not None else {"outputs": {}})
        return job


@pytest.fixture
def agent(app_client: TestClient, admin: TestClient) -> ScriptedAgent:
    """An agent of the `embedded` pool (the workspaces' default) that runs the run job kinds."""
    token = pool_token(admin, "embedded")
    anon = TestClient(app_client.app, raise_server_exceptions=False)
    return ScriptedAgent(anon, register(anon, token, name="scripted", kinds=RUN_JOB_KINDS, capacity=20))
