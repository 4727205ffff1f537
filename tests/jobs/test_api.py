"""The people API (/api/v1) and the agent API (/api/agent/v1): auth on every route, and behaviour."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.jobs.conftest import AGENT_API, bearer, job_settings, pool_token, register, serve
from xcloudflow.db import Database
from xcloudflow.iam import service as iam
from xcloudflow.jobs import service
from xcloudflow.settings import Settings

PEOPLE_ROUTES = [
    ("GET", "/api/v1/agent-pools"),
    ("POST", "/api/v1/agent-pools"),
    ("GET", "/api/v1/agent-pools/p/tokens"),
    ("POST", "/api/v1/agent-pools/p/tokens"),
    ("DELETE", "/api/v1/agent-pools/p/tokens/1"),
    ("GET", "/api/v1/agents"),
    ("GET", "/api/v1/jobs"),
    ("POST", "/api/v1/jobs"),
    ("GET", f"/api/v1/jobs/{uuid.uuid4()}"),
    ("GET", f"/api/v1/jobs/{uuid.uuid4()}/logs"),
    ("GET", f"/api/v1/jobs/{uuid.uuid4()}/artifacts"),
    ("GET", f"/api/v1/jobs/{uuid.uuid4()}/artifacts/x"),
    ("POST", f"/api/v1/jobs/{uuid.uuid4()}/cancel"),
]
ADMIN_ONLY = [
    ("POST", "/api/v1/agent-pools", {"name": "p2"}),
    ("GET", "/api/v1/agent-pools/builders/tokens", None),
    ("POST", "/api/v1/agent-pools/builders/tokens", {"name": "x"}),
    ("DELETE", "/api/v1/agent-pools/builders/tokens/1", None),
    ("POST", "/api/v1/jobs", {"kind": "agent.diagnose"}),
]


def enqueue(db: Database, kind: str = "test.echo", pool: str = "builders", **payload: Any) -> str:
    with db.write() as session:
        org = iam.org_id_by_name(session=session, name=iam.DEFAULT_ORG)
        return str(service.enqueue(session=session, org_id=org, kind=kind, payload=payload, pool=pool).id)


def claim(client: Any, agent_token: str, wait: float = 0) -> dict[str, Any]:
    resp = client.get(f"{AGENT_API}/jobs/next", params={"wait": wait}, headers=bearer(agent_token))
    assert resp.status_code == 200, resp.text
    job: dict[str, Any] = resp.json()
    return job


def test_people_routes_need_a_token(anon: TestClient) -> None:
    for method, path in PEOPLE_ROUTES:
        assert anon.request(method, path, json={}).status_code == 401, (method, path)
    agent_like = TestClient(anon.app, raise_server_exceptions=False, headers=bearer("xcfa_not-an-api-token"))
    assert agent_like.get("/api/v1/jobs").status_code == 401


def test_admin_only_routes_refuse_readers_and_writers(
    admin: TestClient, reader: TestClient, writer: TestClient
) -> None:
    pool_token(admin)
    for client in (reader, writer):
        for method, path, body in ADMIN_ONLY:
            assert client.request(method, path, json=body).status_code == 403, (method, path)


def test_pools_tokens_agents_and_audit(admin: TestClient, reader: TestClient) -> None:
    assert admin.post("/api/v1/agent-pools", json={"name": "builders"}).status_code == 201
    assert admin.post("/api/v1/agent-pools", json={"name": "builders"}).status_code == 409
    assert admin.post("/api/v1/agent-pools", json={"name": "bad name"}).status_code == 422
    created = admin.post("/api/v1/agent-pools/builders/tokens", json={"name": "ci"}).json()
    assert created["token"].startswith("xcfa_") and created["pool"] == "builders"
    listed = admin.get("/api/v1/agent-pools/builders/tokens").json()
    assert [t["name"] for t in listed] == ["ci"] and "token" not in listed[0]
    register(admin, created["token"], name="runner-1")
    pools = reader.get("/api/v1/agent-pools").json()
    assert [(p["name"], p["agents_online"]) for p in pools] == [("builders", 1)]
    agents = reader.get("/api/v1/agents", params={"pool": "builders"}).json()
    assert [(a["name"], a["status"], a["kinds"]) for a in agents] == [("runner-1", "online", ["test.echo"])]
    assert admin.delete(f"/api/v1/agent-pools/builders/tokens/{created['id']}").json()["revoked_at"]
    assert reader.get("/api/v1/agents").json()[0]["status"] == "offline"
    assert admin.get("/api/v1/agent-pools/nope/tokens").status_code == 404
    actions = [
        e["action"] for e in admin.get("/api/v1/audit-logs", params={"action": "jobs."}).json()["items"]
    ]
    assert actions == ["jobs.pool_token.revoke", "jobs.pool_token.create", "jobs.pool.create"]


def test_agent_api_auth(admin: TestClient, reader: TestClient, anon: TestClient, db: Database) -> None:
    token = pool_token(admin)
    agent_token = register(admin, token)
    job_a, job_b = enqueue(db), enqueue(db)
    a, b = claim(anon, agent_token), claim(anon, agent_token)
    assert {a["id"], b["id"]} == {job_a, job_b}
    reader_token = reader.headers["Authorization"].split()[1]
    agent_routes = [
        ("POST", f"{AGENT_API}/heartbeat", {"running": []}),
        ("GET", f"{AGENT_API}/jobs/next", None),
    ]
    job_routes = [
        ("POST", f"{AGENT_API}/jobs/{a['id']}/start", None),
        ("POST", f"{AGENT_API}/jobs/{a['id']}/logs", {"chunks": ["x"]}),
        ("PUT", f"{AGENT_API}/jobs/{a['id']}/artifacts/out.txt", None),
        ("POST", f"{AGENT_API}/jobs/{a['id']}/finish", {"outcome": "succeeded"}),
        ("GET", f"{AGENT_API}/jobs/{a['id']}/cancel", None),
    ]
    for method, path, body in [("POST", f"{AGENT_API}/register", None), *agent_routes, *job_routes]:
        assert anon.request(method, path, json=body).status_code == 401, path
        assert anon.request(method, path, json=body, headers=bearer("xcfa_bogus")).status_code == 401, path
        assert anon.request(method, path, json=body, headers=bearer(reader_token)).status_code == 403, path
    for method, path, body in agent_routes:  # a pool token or a job token is not an agent token
        assert anon.request(method, path, json=body, headers=bearer(token)).status_code == 403, path
        assert anon.request(method, path, json=body, headers=bearer(a["token"])).status_code == 403, path
    for method, path, body in job_routes:
        assert anon.request(method, path, json=body, headers=bearer(agent_token)).status_code == 403, path
        assert anon.request(method, path, json=body, headers=bearer(b["token"])).status_code == 403, path
        other = path.replace(a["id"], str(uuid.uuid4()))
        assert anon.request(method, other, json=body, headers=bearer(a["token"])).status_code == 404, path
    finish = anon.post(
        f"{AGENT_API}/jobs/{a['id']}/finish", json={"outcome": "succeeded"}, headers=bearer(a["token"])
    )
    assert finish.status_code == 200 and finish.json()["status"] == "succeeded"
    for method, path, body in job_routes:
        assert anon.request(method, path, json=body, headers=bearer(a["token"])).status_code == 409, path
    # a pool token that names another pool, then a revoked pool token
    wrong = anon.post(
        f"{AGENT_API}/register",
        json={"name": "x", "hostname": "h", "version": "0", "kinds": ["k.k"], "pool": "other"},
        headers=bearer(token),
    )
    assert wrong.status_code == 403 and "belongs to agent pool builders" in wrong.json()["error"]["message"]
    token_id = admin.get("/api/v1/agent-pools/builders/tokens").json()[0]["id"]
    admin.delete(f"/api/v1/agent-pools/builders/tokens/{token_id}")
    assert anon.post(f"{AGENT_API}/heartbeat", json={}, headers=bearer(agent_token)).status_code == 401
    assert (
        anon.post(
            f"{AGENT_API}/register",
            json={"name": "x", "hostname": "h", "version": "0", "kinds": ["k.k"]},
            headers=bearer(token),
        ).status_code
        == 401
    )


def test_job_lifecycle_through_the_api(
    admin: TestClient, writer: TestClient, reader: TestClient, anon: TestClient, db: Database
) -> None:
    agent_token = register(admin, pool_token(admin))
    assert anon.get(f"{AGENT_API}/jobs/next", headers=bearer(agent_token)).status_code == 204
    job_id = enqueue(db, n=1)
    job = claim(anon, agent_token)
    assert job["id"] == job_id and job["payload"] == {"n": 1} and job["token"].startswith("xcfj_")
    h = bearer(job["token"])
    assert anon.post(f"{AGENT_API}/jobs/{job_id}/start", headers=h).json()["status"] == "running"
    for i in range(3):
        assert anon.post(
            f"{AGENT_API}/jobs/{job_id}/logs", json={"chunks": [f"line {i}a\n", f"line {i}b\n"]}, headers=h
        ).json() == {"last_seq": 2 * i + 2}
    assert (
        anon.post(f"{AGENT_API}/jobs/{job_id}/logs", json={"chunks": ["x" * 2000]}, headers=h).status_code
        == 413
    )
    put = anon.put(f"{AGENT_API}/jobs/{job_id}/artifacts/report.json", content=b'{"ok": true}', headers=h)
    assert put.status_code == 201 and put.json()["size"] == 12
    assert anon.put(f"{AGENT_API}/jobs/{job_id}/artifacts/..evil", content=b"x", headers=h).status_code == 400
    assert (
        anon.put(
            f"{AGENT_API}/jobs/{job_id}/artifacts/big", content=b"x" * (64 * 1024 + 1), headers=h
        ).status_code
        == 413
    )
    assert anon.get(f"{AGENT_API}/jobs/{job_id}/cancel", headers=h).json()["cancel_requested"] is False
    assert reader.post(f"/api/v1/jobs/{job_id}/cancel").status_code == 403
    assert writer.post(f"/api/v1/jobs/{job_id}/cancel").json()["status"] == "running"
    assert anon.get(f"{AGENT_API}/jobs/{job_id}/cancel", headers=h).json()["cancel_requested"] is True
    done = anon.post(
        f"{AGENT_API}/jobs/{job_id}/finish", json={"outcome": "canceled", "error": "stopped"}, headers=h
    )
    assert done.json()["status"] == "canceled"
    shown = reader.get(f"/api/v1/jobs/{job_id}").json()
    assert shown["status"] == "canceled" and shown["agent"] == "a1" and shown["error"] == "stopped"
    logs = reader.get(f"/api/v1/jobs/{job_id}/logs", params={"after": 2, "limit": 2}).json()
    assert (
        [x["text"] for x in logs["items"]] == ["line 1a\n", "line 1b\n"]
        and logs["more"]
        and logs["last_seq"] == 4
    )
    assert [a["name"] for a in reader.get(f"/api/v1/jobs/{job_id}/artifacts").json()] == ["report.json"]
    assert reader.get(f"/api/v1/jobs/{job_id}/artifacts/report.json").content == b'{"ok": true}'
    assert reader.get(f"/api/v1/jobs/{job_id}/artifacts/nope").status_code == 404
    assert writer.post(f"/api/v1/jobs/{job_id}/cancel").status_code == 409
    actions = {
        e["action"] for e in admin.get("/api/v1/audit-logs", params={"action": "jobs.job."}).json()["items"]
    }
    assert actions == {"jobs.job.cancel"}


def test_cancel_of_a_queued_job_is_immediate(admin: TestClient, writer: TestClient, db: Database) -> None:
    pool_token(admin)
    job_id = enqueue(db)
    out = writer.post(f"/api/v1/jobs/{job_id}/cancel").json()
    assert out["status"] == "canceled" and "before an agent claimed it" in out["error"]


def test_enqueue_endpoint_and_listing(admin: TestClient, reader: TestClient, db: Database) -> None:
    pool_token(admin)
    bad = admin.post("/api/v1/jobs", json={"kind": "terraform.apply", "pool": "builders"})
    assert bad.status_code == 400 and "agent.diagnose" in bad.json()["error"]["message"]
    assert admin.post("/api/v1/jobs", json={"kind": "agent.sleep", "pool": "nope"}).status_code == 404
    ids = [
        admin.post(
            "/api/v1/jobs", json={"kind": "agent.sleep", "pool": "builders", "payload": {"seconds": i}}
        ).json()["id"]
        for i in range(5)
    ]
    ids.append(admin.post("/api/v1/jobs", json={"kind": "agent.diagnose"}).json()["id"])  # embedded pool
    page = reader.get("/api/v1/jobs", params={"limit": 2}).json()
    seen = [j["id"] for j in page["items"]]
    while page["next_cursor"]:
        page = reader.get("/api/v1/jobs", params={"limit": 2, "cursor": page["next_cursor"]}).json()
        seen += [j["id"] for j in page["items"]]
    assert seen == list(reversed(ids))
    assert len(reader.get("/api/v1/jobs", params={"pool": "builders"}).json()["items"]) == 5
    assert [
        j["id"] for j in reader.get("/api/v1/jobs", params={"kind": "agent.diagnose"}).json()["items"]
    ] == [ids[-1]]
    assert len(reader.get("/api/v1/jobs", params={"status": "queued"}).json()["items"]) == 6
    assert reader.get("/api/v1/jobs", params={"status": "nope"}).status_code == 400
    assert reader.get("/api/v1/jobs", params={"cursor": "!!"}).status_code == 400
    assert reader.get(f"/api/v1/jobs/{uuid.uuid4()}").status_code == 404
    audit = admin.get("/api/v1/audit-logs", params={"action": "jobs.job.enqueue"}).json()["items"]
    assert len(audit) == 6 and audit[0]["actor"] == "admin"


@pytest.fixture
def slow_poll_server(settings: Settings, db: Database) -> Any:
    # The poll fallback is longer than the wait: only a wake-up can deliver the job in time.
    base, stop = serve(settings, job_settings(job_poll_seconds=60))
    yield base
    stop()


def test_long_poll_returns_the_job_enqueued_while_waiting(slow_poll_server: str, db: Database) -> None:
    admin = httpx.Client(base_url=slow_poll_server, headers=bearer("xcf_test_admin_" + "a" * 32), timeout=60)
    agent_token = register(admin, pool_token(admin))
    answer: dict[str, Any] = {}
    polling = threading.Thread(
        target=lambda: answer.update(
            resp=httpx.get(
                f"{slow_poll_server}{AGENT_API}/jobs/next",
                params={"wait": 30},
                headers=bearer(agent_token),
                timeout=60,
            )
        )
    )
    polling.start()
    # Enqueue through the API of the same server (its in-process wake-up) once the poll is waiting.
    import time

    time.sleep(0.3)
    job_id = admin.post("/api/v1/jobs", json={"kind": "test.echo", "pool": "builders"})
    assert job_id.status_code == 400  # test kinds are not allowed by hand; enqueue through the service
    enqueued = enqueue(db)
    polling.join(timeout=40)
    resp = answer["resp"]
    assert resp.status_code == 200 and resp.json()["id"] == enqueued


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # SQLite has no NOTIFY; replicas poll
def test_notify_wakes_another_replica(db: Database) -> None:
    """PostgreSQL only: a NOTIFY from an enqueue in another process reaches a LISTENing replica."""
    import asyncio

    from xcloudflow.jobs.waker import JobWaker, NotifyListener

    waker = JobWaker()  # not the process-wide one: only the LISTEN thread can wake it
    listener = NotifyListener(db, waker, timeout=0.2)
    listener.start()
    try:
        with db.write() as session:
            org = iam.org_id_by_name(session=session, name=iam.DEFAULT_ORG)
            from xcloudflow.jobs import agents

            pool_id = agents.ensure_pool(session=session, org_id=org, name="embedded").id

        async def wait_for_wake() -> bool:
            with waker.subscription(pool_id) as woken:
                await asyncio.sleep(0.5)  # the listener is connected by now
                await asyncio.to_thread(enqueue, db, "test.echo", "embedded")
                await asyncio.wait_for(woken.wait(), timeout=20)
                return True

        assert asyncio.run(wait_for_wake())
    finally:
        listener.close()
