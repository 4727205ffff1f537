"""Tunables of the job queue and the embedded agent, read from `XCF_*` like the main settings.

Kept beside the domain rather than in `xcloudflow.settings` so this domain can land without touching
the shared settings file; `create_app(..., jobs=JobSettings(...))` lets tests use short leases.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class JobSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="XCF_", extra="ignore")

    # How long a claimed job stays an agent's without a heartbeat; agents beat every quarter of it.
    job_lease_seconds: float = Field(default=60.0, gt=0)
    # Long-poll fallback: how often a waiting agent re-checks the queue when no wake-up arrives.
    job_poll_seconds: float = Field(default=2.0, gt=0)
    job_log_chunk_max_bytes: int = Field(default=64 * 1024, gt=0)
    job_artifact_max_bytes: int = Field(default=64 * 1024 * 1024, gt=0)
    # `xcf server` runs one agent in-process for the default organization's `embedded` pool.
    embedded_agent: bool = True
    embedded_agent_concurrency: int = Field(default=2, ge=1, le=64)

    @property
    def heartbeat_seconds(self) -> float:
        return self.job_lease_seconds / 4

    @property
    def reap_interval_seconds(self) -> float:
        return min(max(self.job_lease_seconds / 4, 0.2), 5.0)
