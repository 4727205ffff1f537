"""Opaque keyset cursors for `{"items": [...], "next_cursor": ...}` listings."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Select, and_, or_
from sqlalchemy.orm import InstrumentedAttribute

from xcloudflow.errors import Invalid

MAX_LIMIT = 500
T = TypeVar("T")
SelectT = TypeVar("SelectT", bound=Select[*tuple[Any, ...]])


def encode_cursor(key: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(key, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> Any:
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        return json.loads(raw)
    except (binascii.Error, ValueError) as exc:
        raise Invalid("cursor is not one this server handed out", details={"field": "cursor"}) from exc


def check_limit(limit: int) -> int:
    if limit < 1 or limit > MAX_LIMIT:
        raise Invalid(f"limit must be between 1 and {MAX_LIMIT}", details={"field": "limit"})
    return limit


def page_of(rows: Sequence[T], limit: int, key: Callable[[T], Any]) -> tuple[list[T], str | None]:
    """Cut a `limit + 1` query result to a page and the cursor of the next one (None at the end)."""
    page = list(rows[:limit])
    return page, encode_cursor(key(page[-1])) if len(rows) > limit and page else None


def newest_first(
    stmt: SelectT,
    created: InstrumentedAttribute[datetime],
    ident: InstrumentedAttribute[uuid.UUID],
    cursor: str | None,
    limit: int,
) -> SelectT:
    """Order by (created, uuid id) newest first, after the cursor `newest_cursor` made, `limit + 1` rows."""
    after = decode_cursor(cursor)
    if after is not None:
        try:
            at, last = datetime.fromisoformat(after[0]), uuid.UUID(after[1])
        except (TypeError, ValueError, IndexError, KeyError) as exc:
            raise Invalid("cursor is not one this server handed out", details={"field": "cursor"}) from exc
        stmt = stmt.where(or_(created < at, and_(created == at, ident < last)))
    return stmt.order_by(created.desc(), ident.desc()).limit(limit + 1)


def newest_cursor(created_at: datetime, ident: uuid.UUID) -> list[str]:
    return [created_at.isoformat(), str(ident)]
