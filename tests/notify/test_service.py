"""`emit`: which destinations an event reaches, and that it lives in the caller's transaction."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.notify.conftest import default_org, make_workspace
from xcloudflow.db import Database
from xcloudflow.db.base import utcnow
from xcloudflow.errors import Invalid
from xcloudflow.keys.keyring import Keyring
from xcloudflow.notify import service
from xcloudflow.notify.models import NotificationDelivery, NotificationDestination

URL = "http://127.0.0.1:9/hook"


def _create(admin: TestClient, name: str, **extra: Any) -> None:
    resp = admin.post("/api/v1/notification-destinations", json={"name": name, "url": URL, **extra})
    assert resp.status_code == 201, resp.text


def _queued(db: Database) -> list[tuple[str, str]]:
    with db.read() as session:
        rows = session.execute(
            select(NotificationDestination.name, NotificationDelivery.event)
            .join(NotificationDelivery, NotificationDelivery.destination_id == NotificationDestination.id)
            .order_by(NotificationDestination.name, NotificationDelivery.id)
        ).all()
    return [(n, e) for n, e in rows]


def _emit(db: Database, event: str, workspace_id: int | None) -> int:
    with db.write() as session:
        return service.emit(
            session=session,
            org_id=default_org(db),
            workspace_id=workspace_id,
            event=event,
            payload={"workspace": "x/y", "number": 1},
        )


def test_emit_filters_by_workspace_event_and_enabled(admin: TestClient, db: Database) -> None:
    prod = make_workspace(db, "net", "prod")
    dev = make_workspace(db, "net", "dev")
    _create(admin, "all")  # every workspace, every event
    _create(admin, "prod-only", workspace="net/prod")
    _create(admin, "errors", events=["run.errored"])
    _create(admin, "prod-errors", workspace="net/prod", events=["run.errored", "run.applied"])
    _create(admin, "off", enabled=False)

    assert _emit(db, "run.applied", prod) == 3
    assert _queued(db) == [
        ("all", "run.applied"),
        ("prod-errors", "run.applied"),
        ("prod-only", "run.applied"),
    ]

    assert _emit(db, "run.errored", dev) == 2
    assert [q for q in _queued(db) if q[1] == "run.errored"] == [
        ("all", "run.errored"),
        ("errors", "run.errored"),
    ]

    assert _emit(db, "run.drift_detected", None) == 1  # an event of no workspace: org-wide destinations only
    assert [q for q in _queued(db) if q[1] == "run.drift_detected"] == [("all", "run.drift_detected")]


def test_emit_follows_the_callers_transaction(admin: TestClient, db: Database) -> None:
    _create(admin, "all")

    class Boom(Exception):
        pass

    with pytest.raises(Boom), db.write() as session:
        assert (
            service.emit(
                session=session, org_id=default_org(db), workspace_id=None, event="run.created", payload={}
            )
            == 1
        )
        raise Boom
    assert _queued(db) == []


def test_emit_with_no_destination_and_unknown_event(db: Database) -> None:
    assert _emit(db, "run.created", None) == 0
    with pytest.raises(Invalid, match="unknown notification event"):
        _emit(db, "run.exploded", None)


def test_emit_does_not_cross_organizations(admin: TestClient, db: Database) -> None:
    _create(admin, "all")
    with db.write() as session:
        assert (
            service.emit(
                session=session,
                org_id=default_org(db) + 1000,
                workspace_id=None,
                event="run.created",
                payload={},
            )
            == 0
        )


def test_workspace_scope_can_be_widened(admin: TestClient, db: Database) -> None:
    prod = make_workspace(db, "net", "prod")
    dev = make_workspace(db, "net", "dev")
    _create(admin, "scoped", workspace="net/prod")
    assert _emit(db, "run.created", dev) == 0
    resp = admin.patch("/api/v1/notification-destinations/scoped", json={"workspace": None})
    assert resp.status_code == 200 and resp.json()["workspace"] is None
    assert _emit(db, "run.created", dev) == 1
    resp = admin.patch(
        "/api/v1/notification-destinations/scoped", json={"workspace": "net/dev", "events": ["run.applied"]}
    )
    assert resp.json()["workspace"] == "net/dev" and resp.json()["events"] == ["run.applied"]
    assert _emit(db, "run.created", dev) == 0
    assert _emit(db, "run.applied", prod) == 0
    assert _emit(db, "run.applied", dev) == 1
    resp = admin.patch("/api/v1/notification-destinations/scoped", json={"enabled": False})
    assert resp.json()["enabled"] is False
    assert _emit(db, "run.applied", dev) == 0


def test_retry_delay() -> None:
    assert [service.retry_delay(a, base_seconds=30) for a in (1, 2, 3, 4)] == [30, 60, 120, 240]
    assert service.retry_delay(20, base_seconds=30) == 3600


def test_a_claim_is_a_lease(admin: TestClient, db: Database, keyring: Keyring) -> None:
    _create(admin, "all", secret="k")
    assert _emit(db, "run.created", None) == 1
    now = utcnow()
    with db.write() as session:
        [claim] = service.claim_due(session=session, keyring=keyring, now=now, limit=10, lease_seconds=60)
    assert claim.attempt == 1 and claim.secret == b"k" and claim.destination == "all"
    assert "secret" not in repr(claim)  # the secret stays out of logs
    with db.write() as session:  # another sender finds nothing while the lease runs
        assert service.claim_due(session=session, keyring=keyring, now=now, limit=10, lease_seconds=60) == []
    later = now + timedelta(seconds=61)
    with db.write() as session:  # the first sender died: the lease ran out, the delivery is taken over
        [again] = service.claim_due(session=session, keyring=keyring, now=later, limit=10, lease_seconds=60)
    assert again.id == claim.id and again.attempt == 2
    record = {
        "now": later,
        "ok": True,
        "response_status": 200,
        "error": None,
        "max_attempts": 8,
        "retry_base_seconds": 30.0,
    }
    with db.write() as session:  # the late first sender's outcome no longer counts
        assert service.record_attempt(session=session, claim=claim, **record) is None
    with db.write() as session:
        assert service.record_attempt(session=session, claim=again, **record) == "sent"
