"""Stale Terraform locks: their age is shown, and the server's policy breaks (audited) the locks whose
holder is a finished job and, when configured, those older than a limit. The clock is injected."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from tests.factories import lock_info
from tests.jobs.test_service import claim, make_agent
from xcloudflow.db import Database
from xcloudflow.db.base import utcnow
from xcloudflow.iam import service as iam
from xcloudflow.jobs import service as jobs
from xcloudflow.keys.keyring import Keyring
from xcloudflow.server.deps import AppContext
from xcloudflow.server.lock_expiry import LockExpiry
from xcloudflow.settings import Settings

URL = "/terraform/state/net/prod"
API = "/api/v1/stacks/terraform/net/prod"


def expiry(settings: Settings, db: Database, **policy: object) -> LockExpiry:
    return LockExpiry(AppContext(settings.model_copy(update=policy), db, Keyring.from_settings(settings)))


def expired_audit(admin: TestClient) -> list[dict[str, object]]:
    items: list[dict[str, object]] = admin.get(
        "/api/v1/audit-logs", params={"action": "state.lock.expire"}
    ).json()["items"]
    return items


def test_lock_age_is_listed(admin: TestClient, reader: TestClient) -> None:
    info = lock_info()
    assert admin.request("LOCK", URL, json=info).status_code == 200
    assert admin.request("LOCK", "/terraform/state/net/dev", json=lock_info()).status_code == 200
    listed = reader.get("/api/v1/stacks/locks").json()
    assert [(item["project"], item["stack"]) for item in listed] == [("net", "prod"), ("net", "dev")]
    assert listed[0]["ID"] == info["ID"] and listed[0]["Who"] == "alice@laptop"
    assert listed[0]["actor"] == "admin" and listed[0]["age_seconds"] >= 0 and listed[0]["locked_at"]
    assert admin.get(API).json()["lock"]["age_seconds"] >= 0


def test_old_locks_expire_only_when_a_limit_is_set(
    admin: TestClient, settings: Settings, db: Database
) -> None:
    info = lock_info()
    assert admin.request("LOCK", URL, json=info).status_code == 200
    later = utcnow() + timedelta(hours=2)
    assert expiry(settings, db).run_once(now=later) == []  # default: no age limit
    assert admin.get(API).json()["lock"]["ID"] == info["ID"]
    policy = expiry(settings, db, state_lock_max_age_seconds=3600.0)
    assert policy.run_once(now=utcnow() + timedelta(minutes=30)) == []  # younger than the limit
    [gone] = policy.run_once(now=later)
    assert info["ID"] == gone.info.ID and "XCF_STATE_LOCK_MAX_AGE_SECONDS" in gone.reason
    assert admin.get(API).json()["lock"] is None
    [row] = expired_audit(admin)
    assert row["actor"] == "system" and row["resource"] == "stack/terraform/net/prod"
    details = row["details"]
    assert isinstance(details, dict)
    assert (
        details["lock_id"] == info["ID"] and details["who"] == "alice@laptop" and "3600" in details["reason"]
    )
    # The holder's own unlock now finds no lock; a new lock can be taken.
    assert admin.request("UNLOCK", URL, json=info).status_code == 409
    assert admin.request("LOCK", URL, json=lock_info()).status_code == 200


@pytest.mark.parametrize("finished", [True, False])
def test_a_lock_of_a_finished_job_expires(
    app_client: TestClient, admin: TestClient, settings: Settings, db: Database, finished: bool
) -> None:
    with db.write() as session:
        org_id = iam.org_id_by_name(session=session, name=iam.DEFAULT_ORG)
        job_id = jobs.enqueue(
            session=session,
            org_id=org_id,
            kind="test.echo",
            payload={"state": {"project": "net", "stack": "prod"}},
        ).id
    got = claim(db, make_agent(db))
    assert got is not None
    job, token = got
    holder = TestClient(app_client.app, raise_server_exceptions=False)
    holder.headers["Authorization"] = f"Bearer {token}"
    info = lock_info(who="runner@agent")
    assert holder.request("LOCK", URL, json=info).status_code == 200
    assert admin.get(API).json()["lock"]["actor"] == f"job:{job_id}"
    # The age limit never breaks the lock of a job still running, however old.
    policy = expiry(settings, db, state_lock_max_age_seconds=60.0, state_lock_expire_finished_jobs=finished)
    far = utcnow() + timedelta(days=3)
    assert policy.run_once(now=far) == []
    with db.write() as session:
        jobs.finish(session=session, job=job, outcome="failed", result=None, error="agent crashed")
    expired = policy.run_once(now=utcnow())
    if not finished:  # the policy is off: the lock stays (an admin can still force-unlock it)
        assert expired == [] and admin.get(API).json()["lock"]["ID"] == info["ID"]
        return
    [gone] = expired
    assert gone.reason == f"its holder job:{job_id} has finished (failed)"
    assert admin.get(API).json()["lock"] is None
    [row] = expired_audit(admin)
    assert row["details"]["holder"] == f"job:{job_id}"  # type: ignore[index]


def test_holder_statuses_of_unknown_jobs(db: Database) -> None:
    missing = f"job:{uuid.uuid4()}"
    with db.read() as session:
        assert jobs.holder_statuses(session=session, holders=[missing, "job:not-a-uuid"]) == {
            missing: "missing",
            "job:not-a-uuid": "missing",
        }
