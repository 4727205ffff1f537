"""Helpers for what SQLite and PostgreSQL do differently, so domain code never looks at the dialect."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


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
