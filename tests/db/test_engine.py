"""SQLite runs in WAL mode and serializes writers; a failed transaction leaves nothing behind."""

from __future__ import annotations

import threading

from sqlalchemy import select, text

from xcloudflow.db import Database
from xcloudflow.iam.models import Organization


def test_sqlite_wal(tmp_path) -> None:  # type: ignore[no-untyped-def]
    db = Database(f"sqlite:///{tmp_path / 'x.db'}")
    with db.read() as session:
        assert session.execute(text("PRAGMA journal_mode")).scalar() == "wal"
    db.dispose()


def test_rollback_on_error(database_url: str, db: Database) -> None:
    try:
        with db.write() as session:
            session.add(Organization(name="half-done"))
            session.flush()
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    with db.read() as session:
        assert session.scalars(select(Organization).where(Organization.name == "half-done")).first() is None


def test_concurrent_writers_do_not_lose_updates(db: Database) -> None:
    """Read-modify-write under write transactions from many threads: every increment survives."""
    with db.write() as session:
        session.add(Organization(name="counter-0"))

    def bump() -> None:
        for _ in range(10):
            with db.write() as session:
                org = session.scalars(
                    select(Organization).where(Organization.name.like("counter-%")).with_for_update()
                ).one()
                org.name = f"counter-{int(org.name.split('-')[1]) + 1}"

    threads = [threading.Thread(target=bump) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with db.read() as session:
        assert (
            session.scalars(select(Organization.name).where(Organization.name.like("counter-%"))).one()
            == "counter-40"
        )
