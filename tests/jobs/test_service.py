"""The queue's service functions on both databases: claiming, leases, tokens, logs, artifacts, cancel."""

from __future__ import annotations

import threading
import uuid

import pytest
from sqlalchemy import select, text

from tests.jobs.conftest import wait_for
from xcloudflow.db import Database
from xcloudflow.errors import Conflict, Forbidden, NotFound, TooLarge, Unauthorized
from xcloudflow.iam import service as iam
from xcloudflow.jobs import agents, service
from xcloudflow.jobs.agents import AgentIdentity
from xcloudflow.jobs.models import JobArtifact
from xcloudflow.jobs.schemas import AgentRegister
from xcloudflow.jobs.service import JobIdentity
from xcloudflow.keys.keyring import Keyring
from xcloudflow.settings import Settings

LEASE = 60.0


def org_id(db: Database) -> int:
    with db.read() as session:
        return iam.org_id_by_name(session=session, name=iam.DEFAULT_ORG)


def make_agent(
    db: Database, name: str = "a1", *, capacity: int = 64, kinds: tuple[str, ...] = ("test.echo",)
) -> AgentIdentity:
    with db.write() as session:
        pool = agents.ensure_pool(session=session, org_id=org_id(db), name="embedded")
        token = agents.mint_pool_token(session=session, pool=pool, name="t", actor="test").token
        reg = agents.register_agent(
            session=session,
            pool_token=token,
            body=AgentRegister(name=name, hostname="h", version="0", capacity=capacity, kinds=list(kinds)),
            lease_seconds=LEASE,
        )
    with db.read() as session:
        return agents.authenticate_agent(session=session, token=reg.agent_token)


def enqueue(db: Database, n: int = 1, kind: str = "test.echo") -> list[uuid.UUID]:
    with db.write() as session:
        return [
            service.enqueue(session=session, org_id=org_id(db), kind=kind, payload={"i": i}).id
            for i in range(n)
        ]


def claim(db: Database, agent: AgentIdentity, lease: float = LEASE) -> tuple[JobIdentity, str] | None:
    with db.write() as session:
        job = service.claim_next(session=session, agent=agent, lease_seconds=lease)
    if job is None:
        return None
    with db.read() as session:
        return service.authenticate_job(session=session, token=job.token, job_id=job.id), job.token


def test_claims_are_atomic_each_job_once(db: Database) -> None:
    ids = enqueue(db, 40)
    pool_agents = [make_agent(db, f"a{i}") for i in range(4)]
    claimed: list[uuid.UUID] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def worker(agent: AgentIdentity) -> None:
        try:
            while (got := claim(db, agent)) is not None:
                with lock:
                    claimed.append(got[0].job_id)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(pool_agents[i % 4],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(claimed) == sorted(ids)  # every job exactly once


def test_claim_order_kinds_and_capacity(db: Database) -> None:
    first, second = enqueue(db, 2)
    other = enqueue(db, 1, kind="test.other")[0]
    agent = make_agent(db, capacity=1)
    got = claim(db, agent)
    assert got is not None and got[0].job_id == first
    assert claim(db, agent) is None  # at capacity
    with db.write() as session:
        service.finish(session=session, job=got[0], outcome="succeeded", result={"ok": 1}, error=None)
    got2 = claim(db, agent)
    assert got2 is not None and got2[0].job_id == second
    with db.read() as session:
        assert service.show_job(session=session, org_id=org_id(db), job_id=other).status == "queued"


def test_expired_lease_errors_the_job_with_reason_and_never_reruns(db: Database) -> None:
    (job_id,) = enqueue(db)
    agent = make_agent(db, "runner-7")
    got = claim(db, agent, lease=0.5)
    assert got is not None

    def reaped() -> list[uuid.UUID]:
        with db.write() as session:
            return service.reap_expired(session=session, lease_seconds=0.5)

    assert wait_for(reaped, what="the lease to expire") == [job_id]
    with db.read() as session:
        job = service.show_job(session=session, org_id=org_id(db), job_id=job_id)
        listed = agents.list_agents(session=session, org_id=org_id(db))
    assert job.status == "errored" and job.finished_at is not None
    assert job.error is not None
    assert job.error.startswith("agent runner-7 stopped heartbeating at ")
    assert job.error.endswith("; the job was not retried automatically")
    assert [a.status for a in listed] == ["offline"]
    assert claim(db, agent) is None
    with db.read() as session, pytest.raises(Conflict):
        service.authenticate_job(session=session, token=got[1], job_id=job_id)


def test_heartbeat_extends_only_the_jobs_the_agent_still_runs(db: Database) -> None:
    kept, dropped = enqueue(db, 2)
    agent = make_agent(db)
    assert claim(db, agent, lease=0.5) is not None
    assert claim(db, agent, lease=0.5) is not None
    stranger = uuid.uuid4()
    with db.write() as session:
        ack = agents.heartbeat(session=session, agent=agent, running=[kept, stranger], lease_seconds=LEASE)
    assert ack.lost == [stranger]

    def reaped() -> list[uuid.UUID]:
        with db.write() as session:
            return service.reap_expired(session=session, lease_seconds=LEASE)

    assert wait_for(reaped, what="the unlisted job to expire") == [dropped]
    with db.read() as session:
        assert service.show_job(session=session, org_id=org_id(db), job_id=kept).status == "claimed"


def test_job_token_scope(db: Database) -> None:
    a, b = enqueue(db, 2)
    agent = make_agent(db)
    got_a, got_b = claim(db, agent), claim(db, agent)
    assert got_a is not None and got_b is not None
    with db.read() as session:
        with pytest.raises(Forbidden):
            service.authenticate_job(session=session, token=got_a[1], job_id=b)
        with pytest.raises(NotFound):
            service.authenticate_job(session=session, token=got_a[1], job_id=uuid.uuid4())
        with pytest.raises(Unauthorized):
            service.authenticate_job(session=session, token="xcfj_nope", job_id=a)
    with db.write() as session:
        pool = agents.ensure_pool(session=session, org_id=org_id(db), name="embedded")
        other_kind = agents.mint_pool_token(session=session, pool=pool, name="x", actor="t").token
    with db.read() as session, pytest.raises(Forbidden, match="agent pool token"):
        service.authenticate_job(session=session, token=other_kind, job_id=a)


def test_logs_keep_order_and_cap_chunks(db: Database) -> None:
    (job_id,) = enqueue(db)
    got = claim(db, make_agent(db))
    assert got is not None
    with db.write() as session:
        service.start(session=session, job=got[0], lease_seconds=LEASE)
    for batch in range(5):
        with db.write() as session:
            service.append_log(
                session=session, job=got[0], chunks=[f"{batch}-{i}\n" for i in range(3)], max_chunk_bytes=100
            )
    with db.write() as session, pytest.raises(TooLarge):
        service.append_log(session=session, job=got[0], chunks=["x" * 101], max_chunk_bytes=100)
    with db.read() as session:
        first = service.read_logs(session=session, org_id=org_id(db), job_id=job_id, after=0, limit=10)
        rest = service.read_logs(session=session, org_id=org_id(db), job_id=job_id, after=first.last_seq)
    assert first.more and not rest.more
    lines = [line.text for line in [*first.items, *rest.items]]
    assert lines == [f"{b}-{i}\n" for b in range(5) for i in range(3)]
    assert [line.seq for line in [*first.items, *rest.items]] == list(range(1, 16))


def test_artifact_round_trip_is_encrypted_at_rest(db: Database, settings: Settings) -> None:
    keyring = Keyring.from_settings(settings, create=False)
    (job_id,) = enqueue(db)
    got = claim(db, make_agent(db))
    assert got is not None
    secret = b"artifact-plaintext-marker-" + uuid.uuid4().hex.encode() * 50
    with db.write() as session:
        out = service.upload_artifact(
            session=session, keyring=keyring, job=got[0], name="plan.bin", data=secret, max_bytes=1 << 20
        )
    assert out.size == len(secret)
    with db.write() as session:  # the same bytes again: a no-op
        service.upload_artifact(
            session=session, keyring=keyring, job=got[0], name="plan.bin", data=secret, max_bytes=1 << 20
        )
    with db.write() as session, pytest.raises(Conflict):
        service.upload_artifact(
            session=session, keyring=keyring, job=got[0], name="plan.bin", data=b"other", max_bytes=1 << 20
        )
    with db.read() as session:
        assert (
            service.read_artifact(
                session=session, keyring=keyring, org_id=org_id(db), job_id=job_id, name="plan.bin"
            )
            == secret
        )
        stored = session.scalars(select(JobArtifact.content)).one()
        dump = b"".join(bytes(r[0]) for r in session.execute(text("SELECT content FROM job_artifacts")))
    assert b"artifact-plaintext-marker" not in stored and b"artifact-plaintext-marker" not in dump
    with db.write() as session, pytest.raises(TooLarge):
        service.upload_artifact(
            session=session, keyring=keyring, job=got[0], name="big", data=b"x" * 11, max_bytes=10
        )
    for bad in ("../x", ".hidden", "a/b", "x" * 200):
        with db.write() as session, pytest.raises(Exception, match="not valid"):
            service.upload_artifact(
                session=session, keyring=keyring, job=got[0], name=bad, data=b"", max_bytes=10
            )


def test_retryable_failure_goes_back_to_the_queue_until_attempts_run_out(db: Database) -> None:
    with db.write() as session:
        service.enqueue(session=session, org_id=org_id(db), kind="test.echo", payload={}, max_attempts=2)
    agent = make_agent(db)
    got = claim(db, agent)
    assert got is not None
    with db.write() as session:
        out = service.finish(
            session=session, job=got[0], outcome="failed", result=None, error="flaky", retryable=True
        )
    assert out.status == "queued" and out.attempts == 1 and out.finished_at is None
    assert claim(db, agent) is None  # backing off before the next attempt
    with db.write() as session:
        session.execute(text("UPDATE jobs SET available_at = NULL"))
    got = claim(db, agent)
    assert got is not None
    with db.write() as session:
        out = service.finish(
            session=session, job=got[0], outcome="failed", result=None, error="flaky", retryable=True
        )
    assert out.status == "failed" and out.attempts == 2 and out.error == "flaky"
    with db.write() as session, pytest.raises(Conflict):
        service.finish(session=session, job=got[0], outcome="succeeded", result=None, error=None)
