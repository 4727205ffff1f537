"""The CLI's HTTP client: server URL and token from options or XCF_SERVER / XCF_TOKEN."""

from __future__ import annotations

import os
from typing import Any, NoReturn

import httpx
import typer
from rich.console import Console

err = Console(stderr=True)


def fail(message: str, code: int = 1) -> NoReturn:
    err.print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(code)


class Client:
    def __init__(self, server: str | None, token: str | None, *, timeout: float = 120.0) -> None:
        self.server = (server or os.environ.get("XCF_SERVER") or "http://127.0.0.1:8080").rstrip("/")
        self.token = token or os.environ.get("XCF_TOKEN")
        if not self.token:
            fail("no API token: pass --token or set XCF_TOKEN", 2)
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
            try:
                error = resp.json()["error"]
                message = error["message"]
            except (ValueError, KeyError, TypeError):
                message = resp.text[:500] or resp.reason_phrase
            fail(f"{method} {path}: {resp.status_code} {message}")
        return resp

    def json(self, method: str, path: str, **kw: Any) -> Any:
        return self.request(method, path, **kw).json()
