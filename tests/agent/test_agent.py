"""Real `Agent` instances (threads) against a real server over HTTP, on both databases."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_TOKEN, free_port
from tests.jobs.conftest import AGENT_API, bearer, pool_token, register, serve, wait_for
from xcloudflow.agent import Agent, JobIO, JobOutcome, JobSpec
from xcloudflow.db import Database
from xcloudflow.iam import service as iam
from xcloudflow.jobs import service
from xcloudflow.jobs.config import JobSettings
from xcloudflow.settings import Settings

FINISHED = ("succeeded", "failed", "canceled", "errored")


@pytest.fixture
def api(live_server: str) -> Any:
    with httpx.Client(base_url=live_server, headers=bearer(ADMIN_TOKEN), timeout=30) as client:
        yield client


def enqueue(db: Database, kind: str, n: int = 1, **payload: Any) -> list[str]:
    with db.write() as session:
        org = iam.org_id_by_name(session=session, name=iam.DEFAULT_ORG)
        return [
            str(service.enqueue(session=session, org_id=org, kind=kind, payload=payload, pool="builders").id)
            for _ in range(n)
        ]


def finished(api: httpx.Client, job_id: str) -> dict[str, Any] | None:
    job: dict[str, Any] = api.get(f"/api/v1/jobs/{job_id}").json()
    return job if job["status"] in FINISHED else None


def make_agent(url: str, token: str, handlers: dict[str, Any], **kw: Any) -> Agent:
    return Agent(url, token, pool="builders", handlers=handlers, poll_wait=1.0, cancel_poll_seconds=0.2, **kw)


def test_two_agents_drain_ten_jobs_exactly_once(live_server: str, api: httpx.Client, db: Database) -> None:
    token = pool_token(api)
    seen: list[tuple[str, str]] = []
    lock = threading.Lock()

    def work(name: str) -> Any:
        def handler(job: JobSpec, io: JobIO) -> JobOutcome:
            io.log(f"{name} runs {job.id}")
            with lock:
                seen.append((name, job.id))
            return JobOutcome.success({"by": name})

        return handler

    agents = [
        make_agent(live_server, token, {"test.work": work(n)}, name=n, concurrency=2) for n in ("a", "b")
    ]
    for agent in agents:
        agent.start()
    try:
        ids = enqueue(db, "test.work", 10)
        jobs = [wait_for(lambda j=j: finished(api, j), what=f"job {j}") for j in ids]
    finally:
        for agent in agents:
            agent.stop(grace=10)
    assert Counter(job_id for _, job_id in seen) == Counter(ids)  # each exactly once
    assert {j["status"] for j in jobs} == {"succeeded"}
    assert all(j["result"]["by"] == j["agent"] for j in jobs)
    assert all(j["attempts"] == 1 for j in jobs)


def test_cancel_reaches_a_running_handler(live_server: str, api: httpx.Client, db: Database) -> None:
    started = threading.Event()
    saw_cancel = threading.Event()

    def handler(job: JobSpec, io: JobIO) -> JobOutcome:
        started.set()
        if io.cancelled.wait(60):
            saw_cancel.set()
            return JobOutcome.canceled("stopped on request")
        return JobOutcome.success()

    agent = make_agent(live_server, pool_token(api), {"test.wait": handler})
    agent.start()
    try:
        (job_id,) = enqueue(db, "test.wait")
        assert started.wait(30)
        assert api.post(f"/api/v1/jobs/{job_id}/cancel").json()["status"] == "running"
        job = wait_for(lambda: finished(api, job_id), what="the job to stop")
    finally:
        agent.stop(grace=10)
    assert saw_cancel.is_set()
    assert job["status"] == "canceled" and job["error"] == "stopped on request"


def test_logs_in_order_artifacts_and_handler_errors(
    live_server: str, api: httpx.Client, db: Database
) -> None:
    def chatty(job: JobSpec, io: JobIO) -> JobOutcome:
        for i in range(300):
            io.log(f"line {i}")
        io.upload("out.bin", bytes(range(256)) * 10)
        return JobOutcome.success({"lines": 300})

    def broken(job: JobSpec, io: JobIO) -> JobOutcome:
        raise RuntimeError("disk on fire")

    agent = make_agent(live_server, pool_token(api), {"test.chatty": chatty, "test.broken": broken})
    agent.start()
    try:
        (ok,) = enqueue(db, "test.chatty")
        (bad,) = enqueue(db, "test.broken")
        assert wait_for(lambda: finished(api, ok))["status"] == "succeeded"
        failed = wait_for(lambda: finished(api, bad))
    finally:
        agent.stop(grace=10)
    lines: list[str] = []
    after = 0
    while True:
        page = api.get(f"/api/v1/jobs/{ok}/logs", params={"after": after, "limit": 100}).json()
        lines += [x["text"] for x in page["items"]]
        after = page["last_seq"]
        if not page["more"]:
            break
    assert lines == [f"line {i}\n" for i in range(300)]
    assert api.get(f"/api/v1/jobs/{ok}/artifacts/out.bin").content == bytes(range(256)) * 10
    assert (
        failed["status"] == "failed"
        and failed["error"] == "handler for test.broken raised RuntimeError: disk on fire"
    )
    trace = api.get(f"/api/v1/jobs/{bad}/logs").json()["items"]
    assert "disk on fire" in "".join(x["text"] for x in trace)


def test_a_silent_agent_loses_its_job(live_server: str, api: httpx.Client, db: Database) -> None:
    """An agent that claims and starts a job, then stops heartbeating (killed): the job errors."""
    agent_token = register(api, pool_token(api), name="doomed", kinds=["test.any"])
    (job_id,) = enqueue(db, "test.any")
    job = httpx.get(f"{live_server}{AGENT_API}/jobs/next", headers=bearer(agent_token), timeout=30).json()
    assert job["id"] == job_id
    assert (
        httpx.post(f"{live_server}{AGENT_API}/jobs/{job_id}/start", headers=bearer(job["token"])).status_code
        == 200
    )
    errored = wait_for(lambda: finished(api, job_id), what="the lease to expire")
    assert errored["status"] == "errored"
    assert errored["error"].startswith("agent doomed stopped heartbeating at ")
    assert "not retried automatically" in errored["error"]
    late = httpx.post(
        f"{live_server}{AGENT_API}/jobs/{job_id}/finish",
        json={"outcome": "succeeded"},
        headers=bearer(job["token"]),
    )
    assert late.status_code == 409  # the job is never reported twice
    assert api.get("/api/v1/agents").json()[0]["status"] == "offline"


def test_heartbeats_keep_a_long_job_alive(live_server: str, api: httpx.Client, db: Database) -> None:
    """The lease is 2 s; a job running several leases long still succeeds because the agent beats."""

    def slow(job: JobSpec, io: JobIO) -> JobOutcome:
        io.cancelled.wait(5)
        return JobOutcome.success()

    agent = make_agent(live_server, pool_token(api), {"test.slow": slow})
    agent.start()
    try:
        (job_id,) = enqueue(db, "test.slow")
        job = wait_for(lambda: finished(api, job_id), what="the slow job")
    finally:
        agent.stop(grace=10)
    assert job["status"] == "succeeded"


def test_agent_waits_for_a_server_that_is_not_up_yet(
    settings: Settings, db: Database, jobs_config: JobSettings
) -> None:
    """The agent retries with backoff (as across a server restart) and works once the server is there."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with db.write() as session:
        from xcloudflow.jobs import agents

        org = iam.org_id_by_name(session=session, name=iam.DEFAULT_ORG)
        pool = agents.ensure_pool(session=session, org_id=org, name="builders")
        token = agents.mint_pool_token(session=session, pool=pool, name="t", actor="test").token
    agent = make_agent(url, token, {"test.echo": lambda job, io: JobOutcome.success(job.payload)})
    agent.start()
    base, stop = serve(settings, jobs_config, port=port)
    try:
        assert agent.registered.wait(30)
        (job_id,) = enqueue(db, "test.echo", x=1)
        with httpx.Client(base_url=base, headers=bearer(ADMIN_TOKEN)) as client:
            job = wait_for(lambda: finished(client, job_id))
        assert job["status"] == "succeeded" and job["result"] == {"x": 1}
    finally:
        agent.stop(grace=10)
        stop()
