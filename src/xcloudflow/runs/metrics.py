"""Run metrics: runs by kind and result, stage durations, queue wait, queue depth and agents online.

Counters and histograms move with the runs; the gauges are read from the database when /metrics is
scraped (`refresh`), so every replica reports the same truth.
"""

from __future__ import annotations

from datetime import datetime

from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy.orm import Session

from xcloudflow.jobs import agents as job_agents
from xcloudflow.runs.models import FINAL_STAGES

_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
RUNS_CREATED = Counter("xcf_runs_created_total", "Runs created", ["kind"])
RUNS_FINISHED = Counter("xcf_runs_finished_total", "Runs that reached a final stage", ["kind", "stage"])
RUN_STAGE_SECONDS = Histogram(
    "xcf_run_stage_duration_seconds", "Time a run spent in a stage", ["stage"], buckets=_BUCKETS
)
RUN_QUEUE_WAIT = Histogram(
    "xcf_run_queue_wait_seconds",
    "From the plan job being queued to an agent starting it",
    ["kind"],
    buckets=_BUCKETS,
)
RUNS_QUEUED = Counter("xcf_runs_dispatched_total", "Plan jobs queued for runs", ["kind"])
DRIFT_FINDINGS = Counter("xcf_drift_findings_total", "Drift checks that found changes made outside")
JOBS_QUEUED = Gauge("xcf_jobs_queued", "Jobs waiting for an agent", ["pool"])
AGENTS_ONLINE = Gauge("xcf_agents_online", "Agents heartbeating", ["pool"])


def created(kind: str) -> None:
    RUNS_CREATED.labels(kind).inc()


def queued(kind: str) -> None:
    RUNS_QUEUED.labels(kind).inc()


def waited(kind: str, seconds: float) -> None:
    RUN_QUEUE_WAIT.labels(kind).observe(max(seconds, 0.0))


def drift_found() -> None:
    DRIFT_FINDINGS.inc()


def stage_changed(kind: str, old: str, new: str, *, since: datetime | None, now: datetime) -> None:
    if since is not None:
        RUN_STAGE_SECONDS.labels(old).observe(max((now - since).total_seconds(), 0.0))
    if new in FINAL_STAGES:
        RUNS_FINISHED.labels(kind, new).inc()


def refresh(session: Session) -> None:
    """Set the queue-depth and agents-online gauges from the database."""
    for pool, queued_jobs, online in job_agents.pool_gauges(session=session):
        JOBS_QUEUED.labels(pool).set(queued_jobs)
        AGENTS_ONLINE.labels(pool).set(online)
