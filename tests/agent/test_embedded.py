"""The embedded agent of the server: it pulls the default organization's `embedded` pool over HTTP."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.conftest import ADMIN_TOKEN
from tests.jobs.conftest import bearer, serve, wait_for
from xcloudflow.agent.embedded import EmbeddedAgent, agent_environment
from xcloudflow.db import Database
from xcloudflow.jobs.config import JobSettings
from xcloudflow.settings import Settings


def test_embedded_agent_runs_diagnose_and_leaves_no_live_token(
    settings: Settings, db: Database, jobs_config: JobSettings
) -> None:
    base, stop = serve(settings, jobs_config, embedded_agent=True)
    try:
        with httpx.Client(base_url=base, headers=bearer(ADMIN_TOKEN), timeout=30) as api:
            job = api.post("/api/v1/jobs", json={"kind": "agent.diagnose"}).json()
            assert job["pool"] == "embedded"
            done = wait_for(
                lambda: (j := api.get(f"/api/v1/jobs/{job['id']}").json())["status"] == "succeeded" and j,
                timeout=120,
                what="the embedded agent",
            )
            assert done["agent"].startswith("embedded-")
            assert done["result"]["terraform"]["available"] is True
    finally:
        stop()
    # After shutdown the token the server minted for itself is revoked.
    from sqlalchemy import text

    with db.read() as session:
        revoked = session.execute(text("SELECT revoked_at FROM agent_pool_tokens")).scalars().all()
    assert revoked and all(r is not None for r in revoked)


def test_the_embedded_agents_environment_is_an_allowlist(tmp_path: Path) -> None:
    server_env = {
        "PATH": "/usr/bin",
        "HOME": "/home/x",
        "LC_ALL": "C",
        "XCF_DATABASE_URL": "postgresql://u:pw@db/x",
        "XCF_BOOTSTRAP_TOKEN": "xcf_boot",
        "XCF_ENCRYPTION_KEY": "k",
        "XCF_ENCRYPTION_OLD_KEYS": "o",
        "XCF_DATA_DIR": "/srv/xcf",
        "PGPASSWORD": "pw",
        "AWS_SECRET_ACCESS_KEY": "aws",
        "XCF_AGENT_SANDBOX": "bwrap",
    }
    env = agent_environment(server_env, protected=[Path("/srv/xcf")], data_dir=tmp_path)
    assert env == {
        "PATH": "/usr/bin",
        "HOME": "/home/x",
        "LC_ALL": "C",
        "XCF_AGENT_SANDBOX": "bwrap",
        "XCF_AGENT_DATA_DIR": str(tmp_path),
        "XCF_AGENT_PROTECTED_PATHS": "/srv/xcf",
        "PYTHONUNBUFFERED": "1",
    }


def test_an_agent_data_dir_inside_the_servers_is_refused(tmp_path: Path) -> None:
    server_data = tmp_path / "data"
    with pytest.raises(ValueError, match="is inside the server's"):
        EmbeddedAgent(
            server_url="http://127.0.0.1:1",
            token="xcfa_x",
            name="embedded-x",
            pool="embedded",
            concurrency=1,
            protected=[server_data],
            source_env={"XCF_AGENT_DATA_DIR": str(server_data / "agent"), "PATH": "/usr/bin"},
        )
    assert not (server_data / "agent").exists()
