"""The config center's HTTP API on both databases: auth on every route, every bad input of the issue,
idempotent publish, compare-and-set, releases, policies resolved through the API, history and diff."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from xcloudflow.conflux.rules import bucket

API = "/api/v1/conflux"
ADDR = "default/app-a/production"
CFG = f"{API}/configs/{ADDR}/database.toml"
SCHEMA = '{"type": "object", "properties": {"pool": {"type": "object", "properties": {"size": {"type": "integer", "minimum": 1}}, "required": ["size"]}}, "required": ["pool"]}'
GOOD = "[pool]\nsize = 10\n"


def make_config(client: TestClient, path: str = CFG, **body: Any) -> dict[str, Any]:
    resp = client.put(path, json={"format": "toml", **body})
    assert resp.status_code in (200, 201), resp.text
    data: dict[str, Any] = resp.json()
    return data


def publish(client: TestClient, content: str = GOOD, path: str = CFG, status: int = 201, **body: Any) -> Any:
    resp = client.post(f"{path}/publish", json={"content": content, **body})
    assert resp.status_code == status, resp.text
    return resp.json()


def count_versions(client: TestClient, path: str = CFG) -> int:
    resp = client.get(f"{path}/versions")
    assert resp.status_code == 200, resp.text
    return len(resp.json()["items"])


# ---------------------------------------------------------------- auth

READ_ROUTES = [
    ("GET", f"{API}/configs"),
    ("GET", CFG),
    ("GET", f"{CFG}/versions"),
    ("GET", f"{CFG}/versions/1"),
    ("GET", f"{CFG}/diff?from=1&to=1"),
    ("GET", f"{CFG}/releases"),
    ("GET", f"{CFG}/policy"),
    ("GET", f"{CFG}/history"),
    ("GET", f"{CFG}/resolve"),
    ("GET", f"{API}/watch?tenant=default&application=app-a&environment=production"),
]
WRITE_ROUTES: list[tuple[str, str, dict[str, Any] | None]] = [
    ("PUT", CFG, {"format": "toml"}),
    ("POST", f"{CFG}/publish", {"content": GOOD}),
    ("POST", f"{CFG}/releases", {"version": 1}),
    ("PUT", f"{CFG}/policy", {"rules": []}),
    ("DELETE", CFG, None),
]


def test_every_route_needs_a_token(anon: TestClient, admin: TestClient) -> None:
    config = make_config(admin)
    routes = [(m, p, None) for m, p in READ_ROUTES] + WRITE_ROUTES
    routes.append(("GET", f"{API}/configs/by-id/{config['id']}", None))
    for method, path, body in routes:
        resp = anon.request(method, path, json=body)
        assert resp.status_code == 401, (method, path, resp.text)
        assert resp.json()["error"]["code"] == "unauthorized"


def test_readers_read_and_writers_write(reader: TestClient, writer: TestClient, admin: TestClient) -> None:
    config = make_config(admin)
    publish(admin, is_stable=True)
    for method, path, body in WRITE_ROUTES:
        resp = reader.request(method, path, json=body)
        assert resp.status_code == 403, (method, path, resp.text)
    for method, path in [*READ_ROUTES, ("GET", f"{API}/configs/by-id/{config['id']}")]:
        assert reader.request(method, path).status_code == 200, (method, path)
    for method, path, body in WRITE_ROUTES:
        resp = writer.request(method, path, json=body)
        assert resp.status_code in (200, 201, 204), (method, path, resp.text)
    denied = admin.get("/api/v1/audit-logs", params={"result": "denied"}).json()["items"]
    assert {d["resource"] for d in denied} >= {CFG, f"{CFG}/publish"}


# ---------------------------------------------------------------- configs


def test_put_config_creates_then_updates_and_lists(admin: TestClient) -> None:
    resp = admin.put(CFG, json={"format": "toml", "schema": SCHEMA, "description": "db"})
    assert resp.status_code == 201, resp.text
    out = resp.json()
    assert out["address"] == f"{ADDR}/database.toml"
    assert out["schema"] == SCHEMA and out["latest_version"] is None and out["stable"] is None
    assert out["policy"] == {"revision": 0, "rules": []}
    again = admin.put(CFG, json={"format": "toml", "schema": SCHEMA, "description": "db"})
    assert again.status_code == 200 and again.json()["updated_at"] == out["updated_at"]
    retention = {"strategy": "AND", "rules": [{"type": "count", "keep": 50}, {"type": "days", "keep": 180}]}
    changed = admin.put(CFG, json={"format": "toml", "retention": retention})
    assert changed.status_code == 200 and changed.json()["retention"] == retention
    assert changed.json()["schema"] is None
    assert admin.get(f"{API}/configs/by-id/{out['id']}").json()["address"] == out["address"]
    for name in ("b.json", "a.json", "c.json"):
        make_config(admin, f"{API}/configs/default/app-b/production/{name}", format="json")
    page = admin.get(f"{API}/configs", params={"application": "app-b", "limit": 2}).json()
    assert [c["name"] for c in page["items"]] == ["a.json", "b.json"]
    rest = admin.get(f"{API}/configs", params={"application": "app-b", "cursor": page["next_cursor"]}).json()
    assert [c["name"] for c in rest["items"]] == ["c.json"] and rest["next_cursor"] is None
    assert len(admin.get(f"{API}/configs").json()["items"]) == 4


def test_bad_config_input(admin: TestClient) -> None:
    resp = admin.put(CFG, json={"format": "xml"})
    assert resp.status_code == 400 and "unknown format 'xml'" in resp.json()["error"]["message"]
    resp = admin.put(CFG, json={"format": "json", "schema": '{"type": 12}'})
    assert resp.status_code == 400 and "JSON Schema" in resp.json()["error"]["message"]
    resp = admin.put(CFG, json={"format": "json", "schema": "{not json"})
    assert resp.status_code == 400
    resp = admin.put(CFG, json={"format": "toml", "retention": {"strategy": "XOR", "rules": []}})
    assert resp.status_code == 400 and "strategy" in resp.json()["error"]["message"]
    resp = admin.put(f"{API}/configs/default/app-a/production/-bad", json={"format": "json"})
    assert resp.status_code == 400 and resp.json()["error"]["details"]["field"] == "name"
    resp = admin.put(CFG, json={"format": "toml", "colour": "red"})
    assert resp.status_code == 422
    assert admin.get(CFG).status_code == 404
    make_config(admin)
    publish(admin)
    resp = admin.put(CFG, json={"format": "json"})
    assert resp.status_code == 409 and "cannot change" in resp.json()["error"]["message"]


def test_delete_config(admin: TestClient) -> None:
    make_config(admin)
    publish(admin, is_stable=True)
    assert admin.delete(CFG).status_code == 204
    assert admin.get(CFG).status_code == 404
    assert admin.get(f"{CFG}/resolve").status_code == 404
    assert admin.delete(CFG).status_code == 404
    assert admin.get("/api/v1/audit-logs", params={"action": "conflux.config.delete"}).json()["items"]


# ---------------------------------------------------------------- publish


@pytest.mark.parametrize(
    ("fmt", "content", "where"),
    [
        ("json", '{"a": 1,\n "b": }', "line 2"),
        ("yaml", "a: 1\nb: [1, 2\n", "line"),
        ("toml", "[pool]\nsize = = 3\n", "line 2"),
        ("ini", "no section header\n", "line 1"),
    ],
)
def test_invalid_content_is_422_with_the_path(admin: TestClient, fmt: str, content: str, where: str) -> None:
    path = f"{API}/configs/default/app-a/production/c.{fmt}"
    make_config(admin, path, format=fmt)
    resp = admin.post(f"{path}/publish", json={"content": content, "is_stable": True})
    assert resp.status_code == 422, resp.text
    error = resp.json()["error"]
    assert error["code"] == "invalid_content"
    assert where in (error["details"]["path"] or "") and fmt in error["message"]
    assert count_versions(admin, path) == 0
    assert admin.get(path).json()["stable"] is None


def test_content_against_the_schema(admin: TestClient) -> None:
    make_config(admin, schema=SCHEMA)
    resp = admin.post(f"{CFG}/publish", json={"content": "[pool]\nsize = 0\n"})
    assert resp.status_code == 422
    error = resp.json()["error"]
    assert error["details"]["path"] == "$.pool.size" and "minimum" in error["message"]
    resp = admin.post(f"{CFG}/publish", json={"content": "[pool]\nsize = 'ten'\n"})
    assert resp.status_code == 422 and "$.pool.size" in resp.json()["error"]["message"]
    assert count_versions(admin) == 0
    out = publish(admin)
    assert out["version"]["number"] == 1 and out["version"]["size"] == len(GOOD)


def test_idempotent_publish(admin: TestClient) -> None:
    make_config(admin)
    first = publish(admin, is_stable=True, idempotency_key="tf-1", description="v1", source="terraform")
    assert first["replayed"] is False and first["version"]["source"] == "terraform"
    publish(admin, "[pool]\nsize = 11\n")  # someone else publishes in between
    replay = admin.post(
        f"{CFG}/publish",
        json={
            "content": GOOD,
            "is_stable": True,
            "idempotency_key": "tf-1",
            "description": "v1",
            "expected_version": 0,
        },
    )
    assert replay.status_code == 200, replay.text
    assert replay.json() == {**first, "replayed": True}
    conflict = admin.post(
        f"{CFG}/publish", json={"content": "[pool]\nsize = 12\n", "idempotency_key": "tf-1"}
    )
    assert conflict.status_code == 409 and conflict.json()["error"]["code"] == "idempotency_conflict"
    flags = admin.post(
        f"{CFG}/publish", json={"content": GOOD, "idempotency_key": "tf-1", "description": "v1"}
    )
    assert flags.status_code == 409  # same content, other stability: a different request
    assert count_versions(admin) == 2


def test_expected_version_compare_and_set(admin: TestClient) -> None:
    make_config(admin)
    assert publish(admin, expected_version=0)["version"]["number"] == 1
    stale = admin.post(f"{CFG}/publish", json={"content": "[pool]\nsize = 2\n", "expected_version": 0})
    assert stale.status_code == 409
    assert stale.json()["error"]["details"] == {"expected_version": 0, "latest_version": 1}
    assert publish(admin, "[pool]\nsize = 2\n", expected_version=1)["version"]["number"] == 2
    assert count_versions(admin) == 2


def test_publish_unknown_config_is_404(admin: TestClient) -> None:
    resp = admin.post(f"{CFG}/publish", json={"content": GOOD})
    assert resp.status_code == 404


# ---------------------------------------------------------------- policy and resolve


def test_rules_pointing_at_missing_versions(admin: TestClient) -> None:
    make_config(admin)
    publish(admin, is_stable=True)
    resp = admin.put(f"{CFG}/policy", json={"rules": [{"name": "canary", "priority": 5, "version": 7}]})
    assert resp.status_code == 422
    assert "canary" in resp.json()["error"]["message"] and resp.json()["error"]["details"]["rule"] == "canary"
    resp = admin.put(
        f"{CFG}/policy",
        json={"rules": [{"priority": 5, "version_id": "00000000-0000-0000-0000-000000000000"}]},
    )
    assert resp.status_code == 422 and "rule-5" in resp.json()["error"]["message"]
    resp = admin.post(
        f"{CFG}/publish",
        json={"content": "[pool]\nsize = 3\n", "policy": {"rules": [{"priority": 1, "version": 9}]}},
    )
    assert resp.status_code == 422
    assert count_versions(admin) == 1  # nothing half-published
    resp = admin.put(f"{CFG}/policy", json={"rules": [{"priority": 1, "version": 1, "percentage": 101}]})
    assert resp.status_code == 400
    resp = admin.put(f"{CFG}/policy", json={"rules": [{"priority": 1}]})
    assert resp.status_code == 400
    assert admin.get(f"{CFG}/policy").json() == {"revision": 0, "rules": []}


def test_policy_expected_revision(admin: TestClient) -> None:
    make_config(admin)
    publish(admin)
    out = admin.put(f"{CFG}/policy", json={"rules": [{"priority": 1, "version": 1}], "expected_revision": 0})
    assert out.status_code == 200 and out.json()["revision"] == 1
    stale = admin.put(f"{CFG}/policy", json={"rules": [], "expected_revision": 0})
    assert stale.status_code == 409
    same = admin.put(f"{CFG}/policy", json={"rules": [{"priority": 1, "version": 1}]})
    assert same.json()["revision"] == 1  # unchanged rules write nothing


def test_policy_resolution_through_the_api(admin: TestClient, reader: TestClient) -> None:
    config = make_config(admin)
    assert reader.get(f"{CFG}/resolve").status_code == 404
    publish(admin, "[pool]\nsize = 1\n", is_stable=True)
    publish(admin, "[pool]\nsize = 2\n")
    publish(admin, "[pool]\nsize = 3\n")
    rules = [
        {"name": "canary", "priority": 10, "version": 2, "labels": {"canary": "true"}},
        {"name": "eu-any", "priority": 10, "version": 3, "labels": {"region": "*"}},
        {"name": "ten-percent", "priority": 5, "version": 3, "percentage": 10},
    ]
    assert admin.put(f"{CFG}/policy", json={"rules": rules}).status_code == 200

    def resolved(**params: str) -> tuple[int, str | None]:
        resp = reader.get(f"{CFG}/resolve", params=params)
        assert resp.status_code == 200, resp.text
        assert resp.headers["etag"] == f'"{resp.json()["version_id"]}"'
        return resp.json()["version"], resp.json()["rule"]

    assert resolved() == (1, None)
    assert resolved(labels="canary=true") == (2, "canary")
    assert resolved(labels="canary=false") == (1, None)
    # both priority 10 rules match: ties go by name, "canary" < "eu-any"
    assert resolved(labels="canary=true,region=eu") == (2, "canary")
    assert resolved(labels="region=us") == (3, "eu-any")
    inside = next(f"c{i}" for i in range(1000) if bucket(config["id"], f"c{i}") < 10)
    outside = next(f"c{i}" for i in range(1000) if bucket(config["id"], f"c{i}") >= 10)
    assert resolved(client_id=inside) == (3, "ten-percent")
    assert resolved(client_id=outside) == (1, None)
    first = reader.get(f"{CFG}/resolve", params={"labels": "canary=true"})
    assert first.json()["content"] == "[pool]\nsize = 2\n" and first.json()["format"] == "toml"
    cached = reader.get(f"{CFG}/resolve?labels=canary=true", headers={"If-None-Match": first.headers["etag"]})
    assert cached.status_code == 304 and cached.content == b""
    other = reader.get(f"{CFG}/resolve", headers={"If-None-Match": first.headers["etag"]})
    assert other.status_code == 200 and other.json()["version"] == 1
    bad = reader.get(f"{CFG}/resolve", params={"labels": "canary"})
    assert bad.status_code == 400 and "key=value" in bad.json()["error"]["message"]


def test_publish_with_policy_for_the_new_version(admin: TestClient) -> None:
    make_config(admin)
    publish(admin, is_stable=True)
    out = publish(
        admin,
        "[pool]\nsize = 20\n",
        policy={"rules": [{"name": "canary", "priority": 10, "labels": {"canary": "true"}}]},
    )
    assert out["policy"]["rules"][0]["version"] == 2 and out["version"]["rules"] == ["canary"]
    assert out["stable"]["number"] == 1
    resp = admin.get(f"{CFG}/resolve", params={"labels": "canary=true"})
    assert resp.json()["version"] == 2


# ---------------------------------------------------------------- releases, history, diff


def test_releases_rollback_history_and_diff(admin: TestClient) -> None:
    make_config(admin)
    publish(admin, is_stable=True, description="first")
    publish(admin, "[pool]\nsize = 20\n", is_stable=True)
    publish(
        admin,
        "[pool]\nsize = 30\n",
        policy={"rules": [{"name": "canary", "priority": 1, "labels": {"c": "1"}}]},
    )
    rollback = admin.post(f"{CFG}/releases", json={"version": 1, "note": "v2 broke the pool"})
    assert rollback.status_code == 201, rollback.text
    assert rollback.json()["version"] == 1 and rollback.json()["note"] == "v2 broke the pool"
    again = admin.post(f"{CFG}/releases", json={"version": 1})
    assert again.status_code == 200 and again.json()["id"] == rollback.json()["id"]
    assert admin.post(f"{CFG}/releases", json={"version": 9}).status_code == 404
    assert admin.post(f"{CFG}/releases", json={}).status_code == 400
    releases = admin.get(f"{CFG}/releases").json()
    assert [r["version"] for r in releases] == [1, 2, 1]
    history = admin.get(f"{CFG}/history").json()
    assert history["effective"]["stable"]["number"] == 1
    assert [r["name"] for r in history["effective"]["rules"]] == ["canary"]
    marks = {v["number"]: (v["stable"], v["rules"]) for v in history["versions"]}
    assert marks == {3: (False, ["canary"]), 2: (False, []), 1: (True, [])}
    assert [r["version"] for r in history["releases"]] == [1, 2, 1]
    diff = admin.get(f"{CFG}/diff", params={"from": 1, "to": 3}).json()
    assert diff["from"] == 1 and diff["to"] == 3
    assert "-size = 10" in diff["diff"] and "+size = 30" in diff["diff"]
    assert admin.get(f"{CFG}/diff", params={"from": 1, "to": 1}).json()["diff"] == ""
    assert admin.get(f"{CFG}/diff", params={"from": 1, "to": 8}).status_code == 404
    version = admin.get(f"{CFG}/versions/2").json()
    assert version["content"] == "[pool]\nsize = 20\n" and version["stable"] is False
    page = admin.get(f"{CFG}/versions", params={"limit": 2}).json()
    assert [v["number"] for v in page["items"]] == [3, 2] and page["items"][0]["content"] is None
    rest = admin.get(f"{CFG}/versions", params={"cursor": page["next_cursor"]}).json()
    assert [v["number"] for v in rest["items"]] == [1]
    actions = {a["action"] for a in admin.get("/api/v1/audit-logs").json()["items"]}
    assert {"conflux.config.create", "conflux.publish", "conflux.release"} <= actions
