"""The notification-destinations API: CRUD, roles on every route, bad inputs, the write-only secret."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.notify.conftest import SECRET, make_workspace
from xcloudflow.db import Database

BASE = "/api/v1/notification-destinations"
URL = "https://hooks.example.com/services/T000/B000/XXXX"


def _create(admin: TestClient, name: str = "ops", **extra: Any) -> dict[str, Any]:
    resp = admin.post(BASE, json={"name": name, "url": URL, **extra})
    assert resp.status_code == 201, resp.text
    out: dict[str, Any] = resp.json()
    return out


ROUTES = [
    ("post", BASE, {"name": "x", "url": URL}),
    ("get", BASE, None),
    ("get", f"{BASE}/ops", None),
    ("patch", f"{BASE}/ops", {"enabled": False}),
    ("delete", f"{BASE}/ops", None),
    ("post", f"{BASE}/ops/test", None),
    ("get", f"{BASE}/ops/deliveries", None),
]
WRITES = [r for r in ROUTES if r[0] != "get"]


def _call(client: TestClient, method: str, path: str, body: Any) -> Any:
    if body is None:
        return client.request(method.upper(), path)
    return client.request(method.upper(), path, json=body)


def test_crud(admin: TestClient, db: Database) -> None:
    make_workspace(db, "net", "prod")
    out = _create(
        admin,
        "ops",
        format="slack",
        events=["run.errored", "run.applied", "run.errored"],
        workspace="net/prod",
    )
    assert out["name"] == "ops" and out["url"] == URL and out["format"] == "slack"
    assert out["events"] == ["run.applied", "run.errored"]  # deduplicated, stable order
    assert out["workspace"] == "net/prod" and out["enabled"] is True and out["has_secret"] is False
    assert out["created_by"] == "admin"

    default = _create(admin, "all")
    assert default["events"] == [
        "run.created",
        "run.needs_confirmation",
        "run.applied",
        "run.errored",
        "run.drift_detected",
        "compose.approval_requested",
        "compose.applied",
        "compose.failed",
        "compose.drift_detected",
        "compose.rolled_back",
    ]
    assert default["format"] == "generic" and default["workspace"] is None

    listed = admin.get(BASE).json()
    assert [d["name"] for d in listed] == ["all", "ops"]
    assert admin.get(f"{BASE}/ops").json() == out

    patched = admin.patch(
        f"{BASE}/ops", json={"url": "http://other.example:8080/x", "format": "feishu", "secret": "k"}
    )
    assert patched.status_code == 200, patched.text
    p = patched.json()
    assert p["url"] == "http://other.example:8080/x" and p["format"] == "feishu" and p["has_secret"] is True
    assert p["events"] == out["events"] and p["workspace"] == "net/prod"
    assert admin.patch(f"{BASE}/ops", json={"secret": None}).json()["has_secret"] is False

    deleted = admin.delete(f"{BASE}/ops")
    assert deleted.status_code == 200 and deleted.json()["name"] == "ops"
    assert admin.get(f"{BASE}/ops").status_code == 404
    assert [d["name"] for d in admin.get(BASE).json()] == ["all"]

    actions = [
        e["action"] for e in admin.get("/api/v1/audit-logs", params={"action": "notify."}).json()["items"]
    ]
    assert sorted(set(actions)) == [
        "notify.destination.create",
        "notify.destination.delete",
        "notify.destination.update",
    ]


def test_secret_is_write_only(admin: TestClient, reader: TestClient) -> None:
    texts = []
    resp = admin.post(BASE, json={"name": "ops", "url": URL, "secret": SECRET})
    assert resp.status_code == 201 and resp.json()["has_secret"] is True
    texts.append(resp.text)
    texts.append(admin.get(BASE).text)
    texts.append(admin.get(f"{BASE}/ops").text)
    texts.append(reader.get(f"{BASE}/ops").text)
    texts.append(admin.patch(f"{BASE}/ops", json={"secret": SECRET + "2"}).text)
    texts.append(admin.post(f"{BASE}/ops/test").text)
    texts.append(admin.get(f"{BASE}/ops/deliveries").text)
    texts.append(admin.get("/api/v1/audit-logs").text)
    texts.append(admin.post(BASE, json={"name": "ops", "url": URL, "secret": SECRET}).text)  # 409
    texts.append(admin.post(BASE, json={"name": "bad", "url": "ftp://x", "secret": SECRET}).text)  # 400
    long_secret = SECRET * 100
    resp = admin.patch(f"{BASE}/ops", json={"secret": long_secret})
    assert resp.status_code == 422
    texts.append(resp.text)
    for text in texts:
        assert SECRET not in text
        assert 'secret":"' not in text


def test_readers_see_no_webhook_path(admin: TestClient, reader: TestClient) -> None:
    _create(admin, "ops")
    _create(admin, "bare", url="http://10.0.0.5:8080")
    assert reader.get(f"{BASE}/ops").json()["url"] == "https://hooks.example.com/…"
    assert {d["name"]: d["url"] for d in reader.get(BASE).json()} == {
        "ops": "https://hooks.example.com/…",
        "bare": "http://10.0.0.5:8080/",
    }
    assert admin.get(f"{BASE}/ops").json()["url"] == URL


def test_unauthenticated_on_every_route(admin: TestClient, anon: TestClient) -> None:
    _create(admin)
    for method, path, body in ROUTES:
        assert _call(anon, method, path, body).status_code == 401, (method, path)
        anon.headers["Authorization"] = "Bearer xcf_not_a_real_token"
        assert _call(anon, method, path, body).status_code == 401, (method, path)
        del anon.headers["Authorization"]


@pytest.mark.parametrize("role", ["reader", "writer"])
def test_writes_need_admin(role: str, request: pytest.FixtureRequest, admin: TestClient) -> None:
    client: TestClient = request.getfixturevalue(role)
    _create(admin)
    for method, path, body in WRITES:
        resp = _call(client, method, path, body)
        assert resp.status_code == 403, (method, path, resp.text)
        assert "admin role" in resp.json()["error"]["message"]
    for method, path, body in ROUTES:
        if method == "get":
            assert _call(client, method, path, body).status_code == 200, (method, path)
    # nothing changed
    assert admin.get(f"{BASE}/ops").json()["enabled"] is True
    assert admin.get(f"{BASE}/ops/deliveries").json()["items"] == []


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"url": "ftp://example.com/x"}, 400, "url"),
        ({"url": "not a url"}, 400, "url"),
        ({"url": "http://"}, 400, "url"),
        ({"url": "https://example.com:99999/"}, 400, "url"),
        ({"format": "teams"}, 400, "format"),
        ({"events": ["run.exploded"]}, 400, "events"),
        ({"events": []}, 400, "events"),
        ({"workspace": "net/nope"}, 400, "workspace"),
        ({"workspace": "no-slash"}, 422, None),
        ({"name": "bad name!"}, 422, None),
        ({"colour": "red"}, 422, None),
    ],
)
def test_bad_inputs(admin: TestClient, body: dict[str, Any], status: int, field: str | None) -> None:
    resp = admin.post(BASE, json={"name": "ops", "url": URL, **body})
    assert resp.status_code == status, resp.text
    if field is not None:
        assert resp.json()["error"]["details"]["field"] == field
    assert admin.get(BASE).json() == []


def test_bad_messages_say_what_is_known(admin: TestClient) -> None:
    msg = admin.post(BASE, json={"name": "ops", "url": URL, "format": "teams"}).json()["error"]["message"]
    assert "generic, slack, feishu" in msg
    msg = admin.post(BASE, json={"name": "ops", "url": URL, "events": ["run.x"]}).json()["error"]["message"]
    assert "'run.x'" in msg and "run.created" in msg


def test_duplicate_name_and_missing(admin: TestClient) -> None:
    _create(admin)
    resp = admin.post(BASE, json={"name": "ops", "url": URL})
    assert resp.status_code == 409 and "already exists" in resp.json()["error"]["message"]
    for method, path, body in ROUTES[2:]:
        resp = _call(admin, method, path.replace("/ops", "/nope"), body)
        assert resp.status_code == 404, (method, path, resp.text)


def test_bad_patches(admin: TestClient) -> None:
    _create(admin)
    for body in (
        {"url": "gopher://x"},
        {"format": "x"},
        {"events": ["nope"]},
        {"events": None},
        {"url": None},
    ):
        resp = admin.patch(f"{BASE}/ops", json=body)
        assert resp.status_code == 400, (body, resp.text)
    assert admin.patch(f"{BASE}/ops", json={"name": "renamed"}).status_code == 422
    assert admin.get(f"{BASE}/ops").json()["url"] == URL


def test_test_delivery_and_deliveries_page(admin: TestClient) -> None:
    _create(admin, enabled=False)  # a disabled destination can still be tested
    ids = []
    for _ in range(3):
        resp = admin.post(f"{BASE}/ops/test")
        assert resp.status_code == 201, resp.text
        d = resp.json()
        assert d["destination"] == "ops" and d["status"] == "pending" and d["attempts"] == 0
        assert d["payload"]["requested_by"] == "admin"
        ids.append(d["id"])
    page = admin.get(f"{BASE}/ops/deliveries", params={"limit": 2}).json()
    assert [d["id"] for d in page["items"]] == ids[::-1][:2]
    rest = admin.get(f"{BASE}/ops/deliveries", params={"limit": 2, "cursor": page["next_cursor"]}).json()
    assert [d["id"] for d in rest["items"]] == ids[:1] and rest["next_cursor"] is None
    assert admin.get(f"{BASE}/ops/deliveries", params={"status": "sent"}).json()["items"] == []
    assert len(admin.get(f"{BASE}/ops/deliveries", params={"status": "pending"}).json()["items"]) == 3
    assert admin.get(f"{BASE}/ops/deliveries", params={"status": "lost"}).status_code == 400
    assert admin.get(f"{BASE}/ops/deliveries", params={"limit": 0}).status_code == 400
    assert admin.get(f"{BASE}/ops/deliveries", params={"cursor": "!!"}).status_code == 400
