"""The agent tests use the job-queue fixtures (short leases, live server with them)."""

from tests.jobs.conftest import app_client, jobs_config, live_server  # noqa: F401
