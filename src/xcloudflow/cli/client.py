"""The CLI's HTTP client: server URL and token from options or XCF_SERVER / XCF_TOKEN.

Errors go to stderr once, as one line that is never wrapped (a path cut in two cannot be copied).
IDs may be given as unique prefixes, like git: `resolve_id` expands one against a listing.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from typing import Any, NoReturn

import httpx
import typer
from rich.console import Console

err = Console(stderr=True, soft_wrap=True)
FULL_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
MIN_PREFIX = 4


def fail(message: str, code: int = 1) -> NoReturn:
    err.print("[red]error:[/red] ", end="", highlight=False)
    err.print(message, highlight=False, markup=False)
    raise typer.Exit(code)


def error_message(resp: httpx.Response) -> str:
    """The server's `error.message`, else the start of the body."""
    try:
        message = resp.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = resp.text[:500] or resp.reason_phrase
    return str(message)


class Client:
    def __init__(self, server: str | None, token: str | None, *, timeout: float = 120.0) -> None:
        self.server = (server or os.environ.get("XCF_SERVER") or "http://127.0.0.1:8080").rstrip("/")
        self.token = token or os.environ.get("XCF_TOKEN")
        if not self.token:
            fail("no API token: set XCF_TOKEN or pass --token (`xcf token create` makes one)", 2)
        self.http = httpx.Client(
            base_url=self.server, headers={"Authorization": f"Bearer {self.token}"}, timeout=timeout
        )

    def request(
        self, method: str, path: str, *, ok: tuple[int, ...] = (200, 201, 204), **kw: Any
    ) -> httpx.Response:
        try:
            resp = self.http.request(method, path, **kw)
        except httpx.HTTPError as exc:
            fail(f"cannot reach {self.server}: {exc}")
        if resp.status_code not in ok:
            fail(f"{resp.status_code} {error_message(resp)} ({method} {path})")
        return resp

    def json(self, method: str, path: str, **kw: Any) -> Any:
        return self.request(method, path, **kw).json()

    def pages(self, path: str, params: dict[str, Any] | None = None) -> Iterable[dict[str, Any]]:
        """Every item of a cursor-paged listing (`{"items": [...], "next_cursor": ...}`)."""
        params = dict(params or {})
        while True:
            page = self.json("GET", path, params=params)
            yield from page["items"]
            if not page.get("next_cursor"):
                return
            params["cursor"] = page["next_cursor"]

    def resolve_id(
        self, given: str, what: str, path: str, params: dict[str, Any] | None = None, key: str = "id"
    ) -> str:
        """A full ID from a full one or a unique prefix of one (like git), found in a listing."""
        return resolve_prefix(given, what, (str(item[key]) for item in self.pages(path, params)))


def resolve_prefix(given: str, what: str, ids: Iterable[str]) -> str:
    value = given.strip().lower()
    if FULL_UUID.match(value) or not re.fullmatch(r"[0-9a-f-]+", value):
        return given  # a full ID, or no ID at all: the server says what is wrong with it
    if len(value) < MIN_PREFIX:
        fail(f"{given!r} is too short for a {what} ID prefix: give at least {MIN_PREFIX} characters", 2)
    matches = sorted({i for i in ids if i.lower().startswith(value)})
    if not matches:
        fail(f"no {what} has an ID starting with {given}")
    if len(matches) > 1:
        shown = ", ".join(matches[:10]) + (f" and {len(matches) - 10} more" if len(matches) > 10 else "")
        fail(f"{what} ID prefix {given} is ambiguous: {shown}")
    return matches[0]
