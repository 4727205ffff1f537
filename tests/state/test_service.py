"""State service behaviour that needs the database itself: outbox, NOTIFY, concurrent writers."""

from __future__ import annotations

import threading

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.factories import lock_info, tf_state
from tests.state.test_backend_api import post_state
from xcloudflow.db import Database
from xcloudflow.settings import Settings
from xcloudflow.state.models import StateOutbox, StateVersion


def test_each_write_adds_one_outbox_row(admin: TestClient, db: Database) -> None:
    for serial in (1, 2):
        assert post_state(admin, tf_state(serial=serial)).status_code == 200
    assert post_state(admin, b"{bad").status_code == 400
    with db.read() as session:
        rows = session.execute(select(StateOutbox.version, StateOutbox.processed_at)).all()
    assert rows == [(1, None), (2, None)]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # SQLite consumers poll the outbox
def test_notify_is_sent_after_commit_on_postgresql(admin: TestClient, settings: Settings) -> None:
    dsn = settings.resolved_database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("LISTEN xcf_state_written")
        assert post_state(admin, tf_state()).status_code == 200
        got = [n.payload for n in conn.notifies(timeout=5, stop_after=1)]
    assert len(got) == 1 and got[0].endswith(":1")


def test_concurrent_writers_get_distinct_consecutive_versions(admin: TestClient, db: Database) -> None:
    errors: list[int] = []

    def write(serial: int) -> None:
        client = TestClient(admin.app, raise_server_exceptions=False)
        client.headers.update(admin.headers)
        for i in range(4):
            resp = post_state(client, tf_state(serial=serial * 100 + i))
            if resp.status_code != 200:
                errors.append(resp.status_code)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with db.read() as session:
        versions = sorted(session.scalars(select(StateVersion.version)))
    assert versions == list(range(1, 25))


def test_concurrent_lockers_exactly_one_wins(admin: TestClient) -> None:
    results: list[int] = []

    def take() -> None:
        client = TestClient(admin.app, raise_server_exceptions=False)
        client.headers.update(admin.headers)
        results.append(client.request("LOCK", "/terraform/state/net/prod", json=lock_info()).status_code)

    threads = [threading.Thread(target=take) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [200] + [423] * 5
