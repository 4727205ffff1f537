"""Listing output: a Rich table for people, JSON for scripts (`--output table|json`)."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any

from rich.console import Console
from rich.table import Table

out = Console()


class Format(StrEnum):
    table = "table"
    json = "json"


def emit(data: Any, fmt: Format, columns: list[str] | None = None) -> None:
    if fmt is Format.json:
        print(json.dumps(data, indent=2, default=str))
        return
    rows = data if isinstance(data, list) else [data]
    cols = columns or (list(rows[0].keys()) if rows else [])
    table = Table(*cols)
    for row in rows:
        table.add_row(*["" if row.get(c) is None else str(row.get(c)) for c in cols])
    out.print(table)
