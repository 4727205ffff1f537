"""Managed resources through the API: dependencies (cycles refused) and snapshots."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.workspaces.resources_helpers import API, WS, add, block, depend, make_workspace


@pytest.fixture
def ws(admin: TestClient) -> dict[str, Any]:
    out = make_workspace(admin)
    for x in ("terraform_data.a", "terraform_data.b", "terraform_data.c", "module.m"):
        add(admin, x, block(x, '  source = "./m"\n') if x.startswith("module") else None)
    return out


def _audit(admin: TestClient, action: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = admin.get("/api/v1/audit-logs", params={"action": action}).json()["items"]
    return items


# ---------------------------------------------------------------- dependencies


def test_dependencies_add_list_remove(ws: dict[str, Any], admin: TestClient, reader: TestClient) -> None:
    resp = admin.post(
        f"{WS}/resources/terraform_data.b/dependencies", json={"depends_on": "terraform_data.a"}
    )
    assert resp.status_code == 201, resp.text
    assert resp.json()["resource"] == "terraform_data.b" and resp.json()["depends_on"] == "terraform_data.a"
    depend(admin, "module.m", "terraform_data.b")
    items = reader.get(f"{WS}/dependencies").json()["items"]
    assert [(d["resource"], d["depends_on"]) for d in items] == [
        ("module.m", "terraform_data.b"),
        ("terraform_data.b", "terraform_data.a"),
    ]
    shown = reader.get(f"{WS}/resources/terraform_data.b").json()
    assert shown["depends_on"] == ["terraform_data.a"] and shown["dependents"] == ["module.m"]
    listed = {r["address"]: r["depends_on"] for r in reader.get(f"{WS}/resources").json()["items"]}
    assert listed["module.m"] == ["terraform_data.b"] and listed["terraform_data.a"] == []

    assert admin.delete(f"{WS}/resources/module.m/dependencies/terraform_data.b").status_code == 204
    resp = admin.delete(f"{WS}/resources/module.m/dependencies/terraform_data.b")
    assert resp.status_code == 404 and "module.m does not depend on terraform_data.b" in resp.text
    assert admin.delete(f"{WS}/resources/module.m/dependencies/terraform_data.zz").status_code == 404
    assert admin.delete(f"{WS}/resources/module.zz/dependencies/terraform_data.b").status_code == 404
    assert [(d["resource"], d["depends_on"]) for d in reader.get(f"{WS}/dependencies").json()["items"]] == [
        ("terraform_data.b", "terraform_data.a")
    ]
    assert len(_audit(admin, "workspaces.resource.dependency.add")) == 2
    assert len(_audit(admin, "workspaces.resource.dependency.remove")) == 1


def test_dependency_bad_inputs(ws: dict[str, Any], admin: TestClient) -> None:
    url = f"{WS}/resources/terraform_data.a/dependencies"
    resp = admin.post(url, json={"depends_on": "terraform_data.a"})
    assert resp.status_code == 400 and "cannot depend on itself" in resp.text
    resp = admin.post(url, json={"depends_on": "terraform_data.nope"})
    assert resp.status_code == 400 and "has no such resource" in resp.text
    resp = admin.post(
        f"{WS}/resources/terraform_data.nope/dependencies", json={"depends_on": "terraform_data.a"}
    )
    assert resp.status_code == 404 and "no resource terraform_data.nope" in resp.text
    assert admin.post(url, json={}).status_code == 422
    assert admin.post(url, json={"depends_on": "terraform_data.b", "x": 1}).status_code == 422
    depend(admin, "terraform_data.a", "terraform_data.b")
    resp = admin.post(url, json={"depends_on": "terraform_data.b"})
    assert resp.status_code == 409 and "already depends on" in resp.text
    assert admin.get(f"{API}/shop/nope/dependencies").status_code == 404


def test_cycles_are_refused_with_the_path(ws: dict[str, Any], admin: TestClient) -> None:
    depend(admin, "terraform_data.a", "terraform_data.b")
    depend(admin, "terraform_data.b", "terraform_data.c")
    depend(admin, "terraform_data.c", "module.m")
    resp = admin.post(f"{WS}/resources/module.m/dependencies", json={"depends_on": "terraform_data.a"})
    assert resp.status_code == 409
    error = resp.json()["error"]
    assert (
        "module.m -> terraform_data.a -> terraform_data.b -> terraform_data.c -> module.m" in error["message"]
    )
    assert error["details"]["cycle"] == [
        "module.m",
        "terraform_data.a",
        "terraform_data.b",
        "terraform_data.c",
        "module.m",
    ]
    resp = admin.post(
        f"{WS}/resources/terraform_data.b/dependencies", json={"depends_on": "terraform_data.a"}
    )
    assert resp.status_code == 409 and "terraform_data.b -> terraform_data.a -> terraform_data.b" in resp.text
    # a diamond is not a cycle
    depend(admin, "terraform_data.a", "terraform_data.c")
    assert len(admin.get(f"{WS}/dependencies").json()["items"]) == 4


# ---------------------------------------------------------------- snapshots


def _put(admin: TestClient, address: str, value: str) -> None:
    body = {"hcl": block(address, f'  input = "{value}"\n')}
    assert admin.put(f"{WS}/resources/{address}", json=body).status_code == 200


def test_snapshot_create_list_show_restore_delete(
    ws: dict[str, Any], admin: TestClient, reader: TestClient
) -> None:
    _put(admin, "terraform_data.a", "a2")  # a at v2, the others at v1
    resp = admin.post(f"{WS}/snapshots", json={"name": "before-change", "description": "known good"})
    assert resp.status_code == 201, resp.text
    snap = resp.json()
    assert snap["items"] == {
        "module.m": 1,
        "terraform_data.a": 2,
        "terraform_data.b": 1,
        "terraform_data.c": 1,
    }
    assert snap["name"] == "before-change" and snap["created_by"] == "admin"

    _put(admin, "terraform_data.a", "a3")
    _put(admin, "terraform_data.b", "b2")
    add(admin, "terraform_data.d")  # created after the snapshot
    listed = reader.get(f"{WS}/snapshots").json()["items"]
    assert [s["name"] for s in listed] == ["before-change"]
    assert reader.get(f"{WS}/snapshots/before-change").json()["items"] == snap["items"]

    resp = admin.post(f"{WS}/snapshots/before-change/restore")
    assert resp.status_code == 200, resp.text
    out = resp.json()
    assert out["snapshot"] == "before-change"
    assert out["changed"] == [
        {"address": "terraform_data.a", "from_version": 3, "to_version": 2},
        {"address": "terraform_data.b", "from_version": 2, "to_version": 1},
    ]
    assert out["unchanged"] == ["module.m", "terraform_data.c"]
    assert out["not_in_snapshot"] == ["terraform_data.d"]
    current = {
        r["address"]: (r["current_version"], r["latest_version"])
        for r in reader.get(f"{WS}/resources").json()["items"]
    }
    assert current == {
        "module.m": (1, 1),
        "terraform_data.a": (2, 3),
        "terraform_data.b": (1, 2),
        "terraform_data.c": (1, 1),
        "terraform_data.d": (1, 1),
    }
    [row] = _audit(admin, "workspaces.snapshot.restore")
    assert row["details"] == {"changed": {"terraform_data.a": [3, 2], "terraform_data.b": [2, 1]}}
    assert '"a2"' in reader.get(f"{WS}/resources-main").json()["main.tf"]

    assert admin.delete(f"{WS}/snapshots/before-change").status_code == 204
    assert reader.get(f"{WS}/snapshots").json()["items"] == []
    assert admin.delete(f"{WS}/snapshots/before-change").status_code == 404
    assert admin.post(f"{WS}/snapshots/before-change/restore").status_code == 404
    assert len(_audit(admin, "workspaces.snapshot.create")) == 1
    assert len(_audit(admin, "workspaces.snapshot.delete")) == 1


def test_snapshot_bad_inputs(ws: dict[str, Any], admin: TestClient) -> None:
    assert admin.post(f"{WS}/snapshots", json={"name": "ok"}).status_code == 201
    resp = admin.post(f"{WS}/snapshots", json={"name": "ok"})
    assert resp.status_code == 409 and "already has a snapshot 'ok'" in resp.text
    assert admin.post(f"{WS}/snapshots", json={"name": "bad name"}).status_code == 422
    assert admin.post(f"{WS}/snapshots", json={"name": "x", "items": {}}).status_code == 422
    assert admin.get(f"{WS}/snapshots/nope").status_code == 404
    make_workspace(admin, "shop", "empty")
    resp = admin.post(f"{API}/shop/empty/snapshots", json={"name": "s"})
    assert resp.status_code == 400 and "no managed resources" in resp.text
    assert admin.post(f"{API}/shop/nope/snapshots", json={"name": "s"}).status_code == 404


def test_restore_refuses_when_resources_are_gone(ws: dict[str, Any], admin: TestClient) -> None:
    _put(admin, "terraform_data.c", "c2")
    _put(admin, "terraform_data.c", "c3")
    assert admin.post(f"{WS}/snapshots", json={"name": "s1"}).status_code == 201
    _put(admin, "terraform_data.a", "a2")
    assert admin.delete(f"{WS}/resources/module.m").status_code == 204
    assert admin.delete(f"{WS}/resources/terraform_data.b").status_code == 204
    resp = admin.post(f"{WS}/snapshots/s1/restore")
    assert resp.status_code == 409
    error = resp.json()["error"]
    assert "no longer exist: module.m, terraform_data.b" in error["message"]
    assert error["details"]["missing"] == ["module.m", "terraform_data.b"]
    assert admin.get(f"{WS}/resources/terraform_data.a").json()["current_version"] == 2  # nothing changed

    # created again under the same addresses, they start at version 1: b is fine, c's v3 is gone
    add(admin, "module.m", block("module.m", '  source = "./m"\n'))
    add(admin, "terraform_data.b")
    assert admin.delete(f"{WS}/resources/terraform_data.c").status_code == 204
    add(admin, "terraform_data.c")
    resp = admin.post(f"{WS}/snapshots/s1/restore")
    assert resp.status_code == 409 and "terraform_data.c v3" in resp.json()["error"]["message"]
