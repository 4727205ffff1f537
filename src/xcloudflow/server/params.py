"""Integer path and query parameters bounded to what their database columns hold, so that a number
out of range is a 422 naming the parameter, not a database error (PostgreSQL's integer is 32-bit,
SQLite's and bigint 64-bit)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path

INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1

# A version or a number (state, code, config, resource versions): 1 .. 2^31-1.
Number = Annotated[int, Path(ge=1, le=INT32_MAX)]
# A row id (API tokens, pool tokens, hooks): 1 .. 2^63-1.
RowId = Annotated[int, Path(ge=1, le=INT64_MAX)]
