"""A real `xcf agent` process against a real server: `agent.diagnose` end to end, then a kill mid-job."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
from typer.testing import CliRunner

from tests.conftest import ADMIN_TOKEN
from tests.jobs.conftest import bearer, wait_for
from xcloudflow.cli.main import app

runner = CliRunner()


def xcf(server: str, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["--server", server, "--token", ADMIN_TOKEN, *args])
    return result.exit_code, result.output


def test_xcf_agent_process_runs_diagnose_and_a_killed_agent_errors_its_job(
    live_server: str, tmp_path: Path
) -> None:
    assert xcf(live_server, "agent-pool", "create", "builders")[0] == 0
    code, out = xcf(live_server, "agent-token", "create", "--pool", "builders", "-o", "json")
    assert code == 0, out
    token = json.loads(out)["token"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XCF_", "TF_"))}
    log_path = tmp_path / "agent.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "xcloudflow",
                "agent",
                "--server",
                live_server,
                "--token",
                token,
                "--pool",
                "builders",
                "--name",
                "cli-agent",
                "--poll-wait",
                "1",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**env, "HOME": str(tmp_path)},
        )
    api = httpx.Client(base_url=live_server, headers=bearer(ADMIN_TOKEN), timeout=30)
    try:
        job = api.post("/api/v1/jobs", json={"kind": "agent.diagnose", "pool": "builders"}).json()

        def done(job_id: str) -> dict[str, Any] | None:
            body: dict[str, Any] = api.get(f"/api/v1/jobs/{job_id}").json()
            return body if body["status"] in ("succeeded", "failed", "canceled", "errored") else None

        result = wait_for(lambda: done(job["id"]), timeout=120, what="diagnose")
        assert result["status"] == "succeeded", (result, log_path.read_text())
        assert result["agent"] == "cli-agent"
        report = result["result"]
        assert report["python"] == ".".join(map(str, sys.version_info[:3]))
        assert report["terraform"]["available"] is True and report["terraform"]["version"].count(".") == 2
        artifact = api.get(f"/api/v1/jobs/{job['id']}/artifacts/diagnose.json")
        assert json.loads(artifact.content) == report
        logs = "".join(x["text"] for x in api.get(f"/api/v1/jobs/{job['id']}/logs").json()["items"])
        assert f"terraform {report['terraform']['version']}" in logs
        code, out = xcf(live_server, "job", "logs", job["id"])
        assert code == 0 and logs == out

        # Now kill the agent in the middle of a job: the server errors the job once the lease runs out.
        sleeper = api.post(
            "/api/v1/jobs", json={"kind": "agent.sleep", "pool": "builders", "payload": {"seconds": 600}}
        ).json()
        wait_for(
            lambda: api.get(f"/api/v1/jobs/{sleeper['id']}").json()["status"] == "running", what="running"
        )
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        errored = wait_for(lambda: done(sleeper["id"]), what="the lease to expire")
        assert errored["status"] == "errored"
        assert errored["error"].startswith("agent cli-agent stopped heartbeating at ")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        api.close()


def test_xcf_agent_refuses_a_bad_token(live_server: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XCF_", "TF_"))}
    proc = subprocess.run(
        [sys.executable, "-m", "xcloudflow", "agent", "--server", live_server, "--token", "xcfa_wrong"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 1
    assert "not valid" in proc.stderr


def test_agent_token_cli_lifecycle(live_server: str) -> None:
    assert xcf(live_server, "agent-pool", "create", "ci")[0] == 0
    code, out = xcf(live_server, "agent-token", "create", "--pool", "ci", "--name", "runner")
    assert code == 0 and "xcfa_" in out
    code, out = xcf(live_server, "agent-token", "list", "--pool", "ci", "-o", "json")
    (tok,) = json.loads(out)
    assert tok["name"] == "runner" and "token" not in tok
    assert xcf(live_server, "agent-token", "revoke", str(tok["id"]), "--pool", "ci")[0] == 0
    code, out = xcf(live_server, "agent-pool", "list", "-o", "json")
    assert [p["name"] for p in json.loads(out)] == ["ci"]
    assert xcf(live_server, "agent-pool", "create", "ci")[0] == 1
