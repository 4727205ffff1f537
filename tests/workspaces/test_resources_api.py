"""Managed resources through the API: resources and their versions, compare, rollback, delete."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.workspaces.resources_helpers import API, WS, add, block, depend, make_workspace

A = "terraform_data.a"
HCL_V1 = 'resource "terraform_data" "a" {\n  input = "one"\n}\n'
HCL_V2 = 'resource "terraform_data" "a" {\n  input = "two"\n}\n'


def _audit(admin: TestClient, action: str) -> list[dict[str, Any]]:
    resp = admin.get("/api/v1/audit-logs", params={"action": action})
    assert resp.status_code == 200, resp.text
    items: list[dict[str, Any]] = resp.json()["items"]
    return items


@pytest.fixture
def ws(admin: TestClient) -> dict[str, Any]:
    return make_workspace(admin)


# ---------------------------------------------------------------- create / show / list


def test_create_show_and_list(ws: dict[str, Any], admin: TestClient, reader: TestClient) -> None:
    out = add(admin, A, HCL_V1, description="the a", message="first")
    assert out["address"] == A
    assert (out["kind"], out["resource_type"], out["resource_name"]) == ("resource", "terraform_data", "a")
    assert (out["current_version"], out["latest_version"], out["hcl"]) == (1, 1, HCL_V1)
    assert out["description"] == "the a" and out["created_by"] == "admin"
    assert out["depends_on"] == [] and out["dependents"] == []
    data = add(admin, "data.terraform_remote_state.r", block("data.terraform_remote_state.r", ""))
    assert (data["kind"], data["resource_type"], data["resource_name"]) == (
        "data",
        "terraform_remote_state",
        "r",
    )
    mod = add(admin, "module.net", 'module "net" {\n  source = "./net"\n}\n')
    assert (mod["kind"], mod["resource_type"], mod["resource_name"]) == ("module", "module", "net")

    shown = reader.get(f"{WS}/resources/{A}")
    assert shown.status_code == 200 and shown.json()["hcl"] == HCL_V1
    listed = reader.get(f"{WS}/resources").json()
    assert [r["address"] for r in listed["items"]] == ["data.terraform_remote_state.r", "module.net", A]
    assert "hcl" not in listed["items"][0] and listed["next_cursor"] is None
    page = reader.get(f"{WS}/resources", params={"limit": 2}).json()
    assert len(page["items"]) == 2 and page["next_cursor"]
    rest = reader.get(f"{WS}/resources", params={"limit": 2, "cursor": page["next_cursor"]}).json()
    assert [r["address"] for r in rest["items"]] == [A] and rest["next_cursor"] is None
    audit = _audit(admin, "workspaces.resource.create")
    assert {a["resource"] for a in audit} == {
        f"workspace/shop/dev/resources/{x}" for x in (A, "data.terraform_remote_state.r", "module.net")
    }
    # the workspace now runs from its resources
    assert reader.get(f"{API}/shop/dev").json()["source"] == "resources"


@pytest.mark.parametrize(
    ("address", "hcl", "status", "words"),
    [
        ("terraform_data", HCL_V1, 400, "is not a resource address"),
        ("data.x", HCL_V1, 400, "is not a resource address"),
        ("a.b.c", HCL_V1, 400, "is not a resource address"),
        ("1x.a", HCL_V1, 400, "is not a resource address"),
        ("terraform_data.b", HCL_V1, 400, "declares terraform_data.a (line 1)"),
        ("data.terraform_data.a", HCL_V1, 400, "declares terraform_data.a"),
        (A, 'provider "aws" {}\n', 400, "a provider block"),
        (A, HCL_V1 + HCL_V1, 400, "2 blocks"),
        (A, 'resource "terraform_data" "a" {\n  input = \n}\n', 400, "line 2: syntax error"),
        (A, "", 400, "no block"),
        # NUL never reaches the route: the HTTP edge refuses it in any JSON string, naming the field
        (A, 'resource "terraform_data" "a" {\n  x = "\x00"\n}\n', 422, "body.hcl: contains a NUL"),
        (A, 'resource "terraform_data" "a" {\n' + "  # " + "x" * 300 * 1024 + "\n}\n", 413, "256 KiB"),
    ],
)
def test_create_refuses_bad_addresses_and_hcl(
    ws: dict[str, Any], admin: TestClient, address: str, hcl: str, status: int, words: str
) -> None:
    resp = admin.post(f"{WS}/resources", json={"address": address, "hcl": hcl})
    assert resp.status_code == status, resp.text
    message = resp.json()["error"]["message"]
    assert words in message
    if status == 400 and "address" not in words:
        assert address in message  # names the resource
    assert admin.get(f"{WS}/resources").json()["items"] == []


def test_create_refuses_unknown_fields_duplicates_and_unknown_workspaces(
    ws: dict[str, Any], admin: TestClient
) -> None:
    resp = admin.post(f"{WS}/resources", json={"address": A, "hcl": HCL_V1, "bogus": 1})
    assert resp.status_code == 422
    add(admin, A, HCL_V1)
    resp = admin.post(f"{WS}/resources", json={"address": A, "hcl": HCL_V2})
    assert resp.status_code == 409 and "already has a resource terraform_data.a" in resp.text
    resp = admin.post(f"{API}/shop/nope/resources", json={"address": A, "hcl": HCL_V1})
    assert resp.status_code == 404 and "shop/nope" in resp.text
    resp = admin.get(f"{WS}/resources/terraform_data.zz")
    assert resp.status_code == 404 and "no resource terraform_data.zz in workspace shop/dev" in resp.text
    assert admin.get(f"{WS}/resources", params={"limit": 0}).status_code == 400
    assert admin.get(f"{WS}/resources", params={"cursor": "!!"}).status_code == 400


# ---------------------------------------------------------------- versions


def test_put_makes_immutable_versions_and_identical_hcl_is_a_no_op(
    ws: dict[str, Any], admin: TestClient
) -> None:
    add(admin, A, HCL_V1)
    resp = admin.put(f"{WS}/resources/{A}", json={"hcl": HCL_V2, "message": "bump"})
    assert resp.status_code == 200, resp.text
    assert (resp.json()["current_version"], resp.json()["latest_version"], resp.json()["hcl"]) == (
        2,
        2,
        HCL_V2,
    )
    again = admin.put(f"{WS}/resources/{A}", json={"hcl": HCL_V2, "message": "same"})
    assert (
        again.status_code == 200
        and again.json()["current_version"] == 2
        and again.json()["latest_version"] == 2
    )
    assert len(_audit(admin, "workspaces.resource.update")) == 1

    versions = admin.get(f"{WS}/resources/{A}/versions").json()
    assert [(v["version"], v["current"], v["message"]) for v in versions["items"]] == [
        (2, True, "bump"),
        (1, False, None),
    ]
    v1 = admin.get(f"{WS}/resources/{A}/versions/1").json()
    assert v1["hcl"] == HCL_V1 and v1["address"] == A and v1["size"] == len(HCL_V1)
    assert admin.get(f"{WS}/resources/{A}/versions/9").status_code == 404

    # a PUT must keep the address and the rules
    resp = admin.put(f"{WS}/resources/{A}", json={"hcl": block("terraform_data.other")})
    assert resp.status_code == 400 and "declares terraform_data.other" in resp.text
    assert admin.put(f"{WS}/resources/terraform_data.zz", json={"hcl": HCL_V1}).status_code == 404
    assert admin.put(f"{WS}/resources/{A}", json={"hcl": HCL_V1, "address": A}).status_code == 422
    # description alone
    resp = admin.put(f"{WS}/resources/{A}", json={"hcl": HCL_V2, "description": "new words"})
    assert resp.json()["description"] == "new words" and resp.json()["latest_version"] == 2


def test_versions_are_paginated_newest_first(ws: dict[str, Any], admin: TestClient) -> None:
    add(admin, A, HCL_V1)
    for i in range(2, 8):
        body = {"hcl": f'resource "terraform_data" "a" {{\n  input = {i}\n}}\n'}
        assert admin.put(f"{WS}/resources/{A}", json=body).status_code == 200
    seen: list[int] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = admin.get(f"{WS}/resources/{A}/versions", params=params).json()
        seen += [v["version"] for v in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [7, 6, 5, 4, 3, 2, 1]
    assert admin.get(f"{WS}/resources/{A}/versions", params={"limit": 501}).status_code == 400


def test_compare_gives_a_unified_diff(ws: dict[str, Any], admin: TestClient) -> None:
    add(admin, A, HCL_V1)
    admin.put(f"{WS}/resources/{A}", json={"hcl": HCL_V2})
    resp = admin.get(f"{WS}/resources/{A}/compare", params={"from": 1, "to": 2})
    assert resp.status_code == 200, resp.text
    out = resp.json()
    assert (out["from"], out["to"]) == (1, 2)
    assert out["diff"].startswith("--- terraform_data.a v1\n+++ terraform_data.a v2\n")
    assert '-  input = "one"\n+  input = "two"\n' in out["diff"]
    assert admin.get(f"{WS}/resources/{A}/compare", params={"from": 2, "to": 2}).json()["diff"] == ""
    resp = admin.get(f"{WS}/resources/{A}/compare", params={"from": 1, "to": 5})
    assert resp.status_code == 404 and "no version 5" in resp.text
    assert admin.get(f"{WS}/resources/{A}/compare", params={"from": 0, "to": 1}).status_code == 422
    assert admin.get(f"{WS}/resources/{A}/compare", params={"from": 1}).status_code == 422


def test_rollback_makes_an_older_version_current_and_is_audited(
    ws: dict[str, Any], admin: TestClient
) -> None:
    add(admin, A, HCL_V1)
    admin.put(f"{WS}/resources/{A}", json={"hcl": HCL_V2})
    resp = admin.post(f"{WS}/resources/{A}/rollback", json={"version": 1})
    assert resp.status_code == 200, resp.text
    assert (resp.json()["current_version"], resp.json()["latest_version"], resp.json()["hcl"]) == (
        1,
        2,
        HCL_V1,
    )
    [row] = _audit(admin, "workspaces.resource.rollback")
    assert row["details"] == {"from_version": 2, "to_version": 1}
    # back to where we were: a new transition, no new version
    resp = admin.post(f"{WS}/resources/{A}/rollback", json={"version": 2})
    assert resp.json()["current_version"] == 2 and resp.json()["latest_version"] == 2
    assert len(_audit(admin, "workspaces.resource.rollback")) == 2
    # a PUT of v1's text after a rollback is a new version 3
    admin.post(f"{WS}/resources/{A}/rollback", json={"version": 1})
    resp = admin.put(f"{WS}/resources/{A}", json={"hcl": HCL_V2})
    assert (resp.json()["current_version"], resp.json()["latest_version"]) == (3, 3)
    resp = admin.post(f"{WS}/resources/{A}/rollback", json={"version": 7})
    assert resp.status_code == 404 and "no version 7 (versions 1 to 3)" in resp.text
    assert admin.post(f"{WS}/resources/{A}/rollback", json={"version": 0}).status_code == 422


def test_delete_is_refused_while_others_depend_on_it(ws: dict[str, Any], admin: TestClient) -> None:
    for x in ("terraform_data.a", "terraform_data.b", "terraform_data.c"):
        add(admin, x)
    depend(admin, "terraform_data.b", "terraform_data.a")
    depend(admin, "terraform_data.c", "terraform_data.a")
    resp = admin.delete(f"{WS}/resources/terraform_data.a")
    assert resp.status_code == 409
    assert "terraform_data.b, terraform_data.c depend on it" in resp.json()["error"]["message"]
    assert admin.delete(f"{WS}/resources/terraform_data.b").status_code == 204
    assert admin.delete(f"{WS}/dependencies/x").status_code in (404, 405)
    assert admin.delete(f"{WS}/resources/terraform_data.c/dependencies/terraform_data.a").status_code == 204
    assert admin.delete(f"{WS}/resources/terraform_data.a").status_code == 204
    assert admin.get(f"{WS}/resources/terraform_data.a").status_code == 404
    assert admin.get(f"{WS}/dependencies").json()["items"] == []
    assert admin.delete(f"{WS}/resources/terraform_data.a").status_code == 404
    assert len(_audit(admin, "workspaces.resource.delete")) == 2
    # the address can be used again and starts at version 1
    assert add(admin, "terraform_data.a")["current_version"] == 1


def test_workspaces_are_separate(ws: dict[str, Any], admin: TestClient) -> None:
    make_workspace(admin, "shop", "prod")
    add(admin, A, HCL_V1)
    add(admin, A, HCL_V2, ws=f"{API}/shop/prod")
    assert admin.get(f"{WS}/resources/{A}").json()["hcl"] == HCL_V1
    assert admin.get(f"{API}/shop/prod/resources/{A}").json()["hcl"] == HCL_V2
    resp = admin.post(f"{WS}/resources/{A}/dependencies", json={"depends_on": "terraform_data.b"})
    assert resp.status_code == 400 and "no such resource" in resp.text


# ---------------------------------------------------------------- preview


def test_resources_main_preview(ws: dict[str, Any], admin: TestClient, reader: TestClient) -> None:
    assert reader.get(f"{WS}/resources-main").json() == {"main.tf": ""}
    add(admin, "terraform_data.b")
    add(admin, "terraform_data.a")
    depend(admin, "terraform_data.b", "terraform_data.a")
    main = reader.get(f"{WS}/resources-main").json()["main.tf"]
    assert main.index("# xcf: terraform_data.a v1") < main.index("# xcf: terraform_data.b v1")
    assert "depends_on = [terraform_data.a]" in main
    assert reader.get(f"{API}/shop/nope/resources-main").status_code == 404
