"""Listing output: a Rich table for people, JSON for scripts (`--output table|json`).

A table never cuts an ID (the value other commands take): ID columns keep their full width and the
other columns wrap instead. Written to a pipe or a file, a table is as wide as its content, so nothing
is cut at all (`| grep` sees every value).
"""

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


def is_id_column(name: str) -> bool:
    return name in ("id", "uid", "changeset", "run") or name.endswith(("_id", "_uid"))


def emit(data: Any, fmt: Format, columns: list[str] | None = None) -> None:
    if fmt is Format.json:
        print(json.dumps(data, indent=2, default=str))
        return
    rows = data if isinstance(data, list) else [data]
    cols = columns or (list(rows[0].keys()) if rows else [])
    table = Table(*cols)
    cells = [["" if row.get(c) is None else str(row.get(c)) for c in cols] for row in rows]
    for index, name in enumerate(cols):
        if is_id_column(name):
            table.columns[index].no_wrap = True
            table.columns[index].min_width = max([len(name), *(len(r[index]) for r in cells)])
    for row in cells:
        table.add_row(*row)
    print_table(table)


def print_table(table: Table) -> None:
    """On a terminal, fit its width; elsewhere, as wide as the content."""
    if out.is_terminal:
        out.print(table)
        return
    from rich.measure import Measurement

    natural = Measurement.get(out, out.options.update(width=100_000), table).maximum
    Console(width=max(natural, out.width)).print(table)
