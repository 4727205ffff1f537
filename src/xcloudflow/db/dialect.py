"""Helpers for what SQLite and PostgreSQL do differently, so domain code never looks at the dialect."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Table, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL
from sqlalchemy.orm import Session

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger("xcloudflow.db")


def _is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def insert_ignore(session: Session, table: Table, values: dict[str, Any], *, conflict: list[str]) -> None:
    """INSERT that silently does nothing when a row with the same `conflict` key exists."""
    insert = postgresql.insert if _is_postgres(session) else sqlite.insert
    session.execute(insert(table).values(**values).on_conflict_do_nothing(index_elements=conflict))


def notify(session: Session, channel: str, payload: str) -> None:
    """Wake listeners once this transaction commits (PostgreSQL NOTIFY); SQLite consumers poll."""
    if _is_postgres(session):
        session.execute(select(text("pg_notify(:c, :p)")), {"c": channel, "p": payload})


def try_advisory_xact_lock(session: Session, namespace: int, key: int) -> bool:
    """Take a transaction-scoped advisory lock if free (PostgreSQL); SQLite writers are serialized anyway."""
    if not _is_postgres(session):
        return True
    return bool(
        session.execute(
            select(text("pg_try_advisory_xact_lock(:n, :k)")), {"n": namespace, "k": key}
        ).scalar()
    )


def is_postgres(session: Session) -> bool:
    return _is_postgres(session)


def upsert(
    session: Session, table: Table, rows: list[dict[str, Any]], *, conflict: list[str], update: list[str]
) -> None:
    """INSERT ... ON CONFLICT (conflict) DO UPDATE SET update = excluded.update, for many rows."""
    if not rows:
        return
    insert = postgresql.insert if _is_postgres(session) else sqlite.insert
    stmt = insert(table)
    stmt = stmt.on_conflict_do_update(index_elements=conflict, set_={c: stmt.excluded[c] for c in update})
    session.execute(stmt, rows)


def ensure_monthly_partitions(conn: Connection, table: str, *, months_ahead: int = 2) -> list[str]:
    """Create `<table>_yYYYYmMM` range partitions for this month and the next ones (PostgreSQL only).

    Rows outside every monthly partition land in `<table>_default`, created by the migration.
    Returns the partitions created now.
    """
    if conn.dialect.name != "postgresql":
        return []
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    year, month = now.year, now.month
    created = []
    for _ in range(months_ahead + 1):
        nyear, nmonth = (year + 1, 1) if month == 12 else (year, month + 1)
        name = f"{table}_y{year:04d}m{month:02d}"
        exists = conn.execute(text("SELECT to_regclass(:n)"), {"n": name}).scalar()
        if exists is None:
            conn.execute(
                text(
                    f'CREATE TABLE "{name}" PARTITION OF "{table}" '
                    f"FOR VALUES FROM ('{year:04d}-{month:02d}-01') TO ('{nyear:04d}-{nmonth:02d}-01')"
                )
            )
            created.append(name)
        year, month = nyear, nmonth
    return created


def listen(db_url: URL, channel: str) -> psycopg.Connection[Any] | None:
    """A dedicated autocommit connection LISTENing on `channel` (PostgreSQL), or None where the
    database has no NOTIFY (SQLite) or the connection fails (callers then poll)."""
    if db_url.get_backend_name() != "postgresql":
        return None
    import psycopg

    url = db_url.set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        conn = psycopg.connect(url, autocommit=True)
        conn.execute(f"LISTEN {channel}")
        return conn
    except psycopg.Error as exc:
        log.warning("cannot LISTEN on %s (%s); polling instead", channel, exc)
        return None
