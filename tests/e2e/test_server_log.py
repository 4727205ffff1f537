"""The log of a real `xcf server` process: a UTC timestamp on every line, no ConnectError or traceback
from the embedded agent at start, and the agents' and watchers' repeated long polls kept out of the
access log while their failures and every other request stay in it."""

from __future__ import annotations

import re
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import READY_TIMEOUT, _clean_env, _free_port, _stop

LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (DEBUG|INFO|WARNING|ERROR|CRITICAL) +[\w.]+: ")
WATCH = "/api/v1/conflux/watch"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, str, subprocess.Popen[bytes], Path]]:
    """A fresh `python -m xcloudflow server` (SQLite, embedded agent on); its stderr in a file."""
    data_dir = tmp_path / "data"
    stderr_path = tmp_path / "server.stderr"
    token = "xcf_e2e_" + secrets.token_hex(24)
    port = _free_port()
    env = _clean_env() | {
        "XCF_DATA_DIR": str(data_dir),
        "XCF_BOOTSTRAP_TOKEN": token,
        "XCF_DATABASE_URL": f"sqlite:///{data_dir / 'xcloudflow.db'}",
        "PYTHONUNBUFFERED": "1",
    }
    cmd = [sys.executable, "-m", "xcloudflow", "server", "--host", "127.0.0.1", "--port", str(port)]
    with stderr_path.open("wb") as err:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=err, cwd=str(tmp_path))
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            assert proc.poll() is None, stderr_path.read_text()
            try:
                if httpx.get(base + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, stderr_path.read_text()
            time.sleep(0.2)
        yield base, token, proc, stderr_path
    finally:
        _stop(proc)


def _wait_for(path: Path, text: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while text not in path.read_text():
        assert time.monotonic() < deadline, f"{text!r} never logged:\n{path.read_text()}"
        time.sleep(0.1)


def test_the_server_log(server: tuple[str, str, subprocess.Popen[bytes], Path]) -> None:
    base, token, proc, stderr_path = server
    admin = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    _wait_for(stderr_path, "registered in pool embedded")  # the embedded agent reached the server

    # An agent of our own: register, then the calls agents repeat all the time.
    assert admin.post("/api/v1/agent-pools", json={"name": "logs"}).status_code == 201
    pool_token = admin.post("/api/v1/agent-pools/logs/tokens", json={"name": "t"}).json()["token"]
    reg = httpx.post(
        base + "/api/agent/v1/register",
        headers={"Authorization": f"Bearer {pool_token}"},
        json={"name": "log-agent", "hostname": "h", "version": "1", "kinds": ["noop"]},
    )
    assert reg.status_code == 201, reg.text
    agent = httpx.Client(
        base_url=base + "/api/agent/v1",
        headers={"Authorization": f"Bearer {reg.json()['agent_token']}"},
        timeout=30,
    )
    for _ in range(3):
        assert agent.get("/jobs/next", params={"wait": 0}).status_code == 204
        assert agent.post("/heartbeat", json={"running": []}).status_code == 200
    scope = {"tenant": "t", "application": "a", "environment": "e"}
    for _ in range(3):
        resp = admin.get(WATCH, params={**scope, "since": 0, "timeout": 0.1})
        assert resp.status_code == 304, resp.text
    # Failures of the same routes, and ordinary requests, stay in the access log.
    assert httpx.get(base + "/api/agent/v1/jobs/next").status_code == 401
    assert admin.get(WATCH, params={**scope, "tenant": "-bad-", "since": 0}).status_code in (400, 422)
    assert admin.get("/api/v1/agents").status_code == 200
    assert admin.get("/api/docs").status_code == 200
    _wait_for(stderr_path, '"GET /api/docs HTTP/1.1" 200')
    _stop(proc)

    log = stderr_path.read_text()
    lines = [line for line in log.splitlines() if line.strip()]
    assert lines, "the server logged nothing"
    undated = [line for line in lines if not LINE.match(line)]
    assert undated == [], "\n".join(undated)
    assert "Traceback" not in log, log
    # the agents' HTTP client does not log each of its requests (every long poll would be a line)
    assert " httpx: " not in log, log
    # Until shutdown (the embedded agent's last poll may still find the listener closed): the agent
    # polled the server before it listened, and said nothing about it above info.
    running = log.split(" uvicorn.error: Shutting down")[0]
    assert "ConnectError" not in running, log
    assert not re.search(r"(WARNING|ERROR) +xcloudflow\.agent", running), log
    access = [line for line in lines if " uvicorn.access: " in line]
    # quiet: successful long polls, heartbeats, watches
    assert not [line for line in access if "/api/agent/v1/jobs/next" in line and '" 204' in line], log
    assert not [line for line in access if "/api/agent/v1/heartbeat" in line], log
    assert not [line for line in access if WATCH in line and '" 304' in line], log
    # kept: their failures, the agent's lifecycle, everything else
    assert [line for line in access if '"GET /api/agent/v1/jobs/next HTTP/1.1" 401' in line], log
    assert [line for line in access if WATCH in line and re.search(r'" 4(00|22)', line)], log
    assert len([line for line in access if '"POST /api/agent/v1/register HTTP/1.1" 201' in line]) == 2, log
    assert [line for line in access if '"GET /api/v1/agents HTTP/1.1" 200' in line], log
    assert [
        line for line in access if "GET /api/v1/agent-pools" in line or "POST /api/v1/agent-pools" in line
    ]
