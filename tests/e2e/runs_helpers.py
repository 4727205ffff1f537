"""Helpers of the run end-to-end tests: configurations, workspaces, runs, `xcf agent` processes and
waiting for stages."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.conftest import XcfServer, _clean_env
from tests.factories import targz

FINAL = ("planned_and_finished", "applied", "errored", "canceled", "discarded")
RUN_TIMEOUT = 180.0


def workspace(client: httpx.Client, project: str, name: str, **fields: Any) -> dict[str, Any]:
    resp = client.post("/api/v1/workspaces", json={"project": project, "name": name, **fields})
    assert resp.status_code == 201, resp.text
    body: dict[str, Any] = resp.json()
    return body


def upload(client: httpx.Client, project: str, name: str, files: dict[str, str]) -> dict[str, Any]:
    resp = client.post(
        f"/api/v1/workspaces/{project}/{name}/code-versions",
        content=targz(files),
        headers={"Content-Type": "application/gzip"},
    )
    assert resp.status_code == 201, resp.text
    body: dict[str, Any] = resp.json()
    return body


def set_var(client: httpx.Client, project: str, name: str, key: str, value: str, **flags: Any) -> None:
    category = flags.pop("category", "terraform")
    resp = client.put(
        f"/api/v1/workspaces/{project}/{name}/vars/{category}/{key}", json={"value": value, **flags}
    )
    assert resp.status_code in (200, 201), resp.text


def start_run(client: httpx.Client, project: str, name: str, **body: Any) -> dict[str, Any]:
    resp = client.post(f"/api/v1/workspaces/{project}/{name}/runs", json=body)
    assert resp.status_code == 201, resp.text
    run: dict[str, Any] = resp.json()
    return run


def show(client: httpx.Client, run_id: str) -> dict[str, Any]:
    resp = client.get(f"/api/v1/runs/{run_id}")
    assert resp.status_code == 200, resp.text
    run: dict[str, Any] = resp.json()
    return run


def wait_until(check: Callable[[], Any], what: str, timeout: float = RUN_TIMEOUT) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what} (last: {last})")


def wait_stage(
    client: httpx.Client, run_id: str, *stages: str, timeout: float = RUN_TIMEOUT
) -> dict[str, Any]:
    """Wait until the run is in one of `stages`; fails at once if it ends elsewhere."""
    deadline = time.monotonic() + timeout
    run = show(client, run_id)
    while time.monotonic() < deadline:
        run = show(client, run_id)
        if run["stage"] in stages:
            return run
        if run["stage"] in FINAL:
            raise AssertionError(
                f"run ended {run['stage']} while waiting for {stages}: {run['error']}\n{log_text(client, run_id)}"
            )
        time.sleep(0.25)
    raise AssertionError(
        f"run still {run['stage']} after {timeout}s, waiting for {stages}\n{log_text(client, run_id)}"
    )


def log_text(client: httpx.Client, run_id: str) -> str:
    lines: list[str] = []
    after: str | None = None
    while True:
        params = {"after": after} if after else {}
        resp = client.get(f"/api/v1/runs/{run_id}/logs", params=params)
        assert resp.status_code == 200, resp.text
        page = resp.json()
        lines += [item["text"] for item in page["items"]]
        after = page["last_cursor"]
        if not page["more"]:
            return "".join(lines)


def start_agent(
    server: XcfServer, token: str, pool: str, data_dir: Path, *args: str, **env: str
) -> subprocess.Popen[bytes]:
    """An `xcf agent` process of `pool` with its own data dir (its output in <data_dir>.log beside it);
    `args` go to the command line, `env` over the clean environment."""
    log = (data_dir.parent / f"{data_dir.name}.log").open("wb")
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "xcloudflow",
            "agent",
            "--server",
            server.base_url,
            "--token",
            token,
            "--pool",
            pool,
            *args,
            "--poll-wait",
            "5",
        ],
        env=_clean_env() | {"XCF_AGENT_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1", **env},
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def stop_agent(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
