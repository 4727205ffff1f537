"""Job-queue fixtures: the app with short leases (so expiry is seen in seconds), and helpers.

`app_client` and `live_server` override the root fixtures of the same name, so `admin`, `reader`,
`anon` and `writer` talk to an app built with `JOB_SETTINGS`. Never assert durations: leases are
short only so that the tests end soon.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import free_port, serve_app
from xcloudflow.db import Database
from xcloudflow.jobs.config import JobSettings
from xcloudflow.server.app import create_app
from xcloudflow.settings import Settings

AGENT_API = "/api/agent/v1"


def job_settings(**overrides: Any) -> JobSettings:
    values: dict[str, Any] = {
        "job_lease_seconds": 2.0,
        "job_poll_seconds": 0.5,
        "job_log_chunk_max_bytes": 1024,
        "job_artifact_max_bytes": 64 * 1024,
        "embedded_agent": False,
    }
    values.update(overrides)
    return JobSettings(**values)


@pytest.fixture
def jobs_config() -> JobSettings:
    return job_settings()


@pytest.fixture
def app_client(settings: Settings, db: Database, jobs_config: JobSettings) -> Iterator[TestClient]:
    app = create_app(settings, maintenance=False, jobs=jobs_config)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def serve(
    settings: Settings, jobs_config: JobSettings, port: int | None = None, *, embedded_agent: bool = False
) -> tuple[str, Callable[[], None]]:
    """The real app (with these job settings) under uvicorn in a thread; returns its URL and a stop
    function."""
    port = port or free_port()
    app = create_app(
        settings,
        maintenance=False,
        jobs=jobs_config,
        embedded_agent=embedded_agent,
        agent_url=f"http://127.0.0.1:{port}",
    )
    return serve_app(app, port)


@pytest.fixture
def live_server(settings: Settings, db: Database, jobs_config: JobSettings) -> Iterator[str]:
    base, stop = serve(settings, jobs_config)
    yield base
    stop()


def pool_token(admin: Any, pool: str = "builders") -> str:
    """Create `pool` (if needed) and a token for it through the API; returns the secret."""
    resp = admin.post("/api/v1/agent-pools", json={"name": pool})
    assert resp.status_code in (201, 409), resp.text
    resp = admin.post(f"/api/v1/agent-pools/{pool}/tokens", json={"name": "test"})
    assert resp.status_code == 201, resp.text
    token: str = resp.json()["token"]
    return token


def register(
    client: Any, token: str, *, name: str = "a1", kinds: list[str] | None = None, capacity: int = 4
) -> str:
    resp = client.post(
        f"{AGENT_API}/register",
        json={
            "name": name,
            "hostname": "test",
            "version": "0",
            "capacity": capacity,
            "kinds": kinds or ["test.echo"],
        },
        headers={"Authorization": f"Bearer {token}"},
    )
    assert resp.status_code == 201, resp.text
    agent_token: str = resp.json()["agent_token"]
    return agent_token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def wait_for(predicate: Callable[[], Any], *, timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")
