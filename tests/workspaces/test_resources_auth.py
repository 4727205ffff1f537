"""Every managed-resources route: 401 without a valid token, 403 for a reader on writes, and reads
open to readers."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from tests.workspaces.resources_helpers import WS, add, block, depend, make_workspace
from xcloudflow.workspaces.resources_api import router

A = "terraform_data.a"
B = "terraform_data.b"

READS: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", f"{WS}/resources", None),
    ("GET", f"{WS}/resources/{A}", None),
    ("GET", f"{WS}/resources/{A}/versions", None),
    ("GET", f"{WS}/resources/{A}/versions/1", None),
    ("GET", f"{WS}/resources/{A}/compare?from=1&to=1", None),
    ("GET", f"{WS}/dependencies", None),
    ("GET", f"{WS}/snapshots", None),
    ("GET", f"{WS}/snapshots/s1", None),
    ("GET", f"{WS}/resources-main", None),
]
WRITES: list[tuple[str, str, dict[str, Any] | None]] = [
    ("POST", f"{WS}/resources", {"address": "terraform_data.c", "hcl": block("terraform_data.c")}),
    ("PUT", f"{WS}/resources/{A}", {"hcl": block(A, "")}),
    ("POST", f"{WS}/resources/{A}/rollback", {"version": 1}),
    ("POST", f"{WS}/resources/{A}/dependencies", {"depends_on": "terraform_data.c"}),
    ("DELETE", f"{WS}/resources/{B}/dependencies/{A}", None),
    ("POST", f"{WS}/snapshots", {"name": "s2"}),
    ("POST", f"{WS}/snapshots/s1/restore", None),
    ("DELETE", f"{WS}/snapshots/s1", None),
    ("DELETE", f"{WS}/resources/{B}", None),
]
ROUTES = READS + WRITES


@pytest.fixture
def ws(admin: TestClient) -> dict[str, Any]:
    out = make_workspace(admin)
    add(admin, A)
    add(admin, B)
    depend(admin, B, A)
    assert admin.post(f"{WS}/snapshots", json={"name": "s1"}).status_code == 201
    return out


def _call(client: TestClient, method: str, url: str, body: dict[str, Any] | None) -> Any:
    return client.request(method, url, json=body) if body is not None else client.request(method, url)


def test_all_routes_are_covered() -> None:
    routes = {(m, r.path) for r in router.routes if isinstance(r, APIRoute) for m in r.methods}
    covered = {(m, u.split("?")[0]) for m, u, _ in ROUTES}
    assert len(routes) == len(covered) == len(ROUTES)


def test_unauthenticated_is_401(ws: dict[str, Any], anon: TestClient, app_client: TestClient) -> None:
    bad = TestClient(app_client.app, raise_server_exceptions=False)
    bad.headers["Authorization"] = "Bearer xcf_not_a_real_token"
    for method, url, body in ROUTES:
        assert _call(anon, method, url, body).status_code == 401, (method, url)
        assert _call(bad, method, url, body).status_code == 401, (method, url)


def test_reader_cannot_write(ws: dict[str, Any], reader: TestClient, admin: TestClient) -> None:
    for method, url, body in WRITES:
        resp = _call(reader, method, url, body)
        assert resp.status_code == 403, (method, url, resp.text)
        assert "needs the writer role" in resp.json()["error"]["message"]
    # nothing changed
    assert admin.get(f"{WS}/resources/{A}").json()["latest_version"] == 1
    assert len(admin.get(f"{WS}/resources").json()["items"]) == 2
    assert [s["name"] for s in admin.get(f"{WS}/snapshots").json()["items"]] == ["s1"]
    assert len(admin.get(f"{WS}/dependencies").json()["items"]) == 1


def test_reader_can_read(ws: dict[str, Any], reader: TestClient) -> None:
    for method, url, body in READS:
        resp = _call(reader, method, url, body)
        assert resp.status_code == 200, (method, url, resp.text)


def test_writer_can_write(ws: dict[str, Any], writer: TestClient) -> None:
    for method, url, body in WRITES:  # in this order, each one succeeds
        resp = _call(writer, method, url, body)
        assert resp.status_code in (200, 201, 204), (method, url, resp.text)
