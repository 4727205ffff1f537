"""The embedded agent of the server: it pulls the default organization's `embedded` pool over HTTP."""

from __future__ import annotations

import httpx

from tests.conftest import ADMIN_TOKEN
from tests.jobs.conftest import bearer, serve, wait_for
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
