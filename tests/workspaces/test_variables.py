"""Variables: upsert, keys per category, sizes, HCL values, and sensitive values that never come back."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.workspaces.conftest import API, make_workspace
from xcloudflow.audit.models import AuditLog
from xcloudflow.db import Database
from xcloudflow.workspaces.models import WorkspaceVariable

WS = f"{API}/shop/dev"
SECRET = "s3cr3t-value-that-must-not-leak"


def test_upsert_list_and_delete(writer: TestClient, admin: TestClient) -> None:
    make_workspace(admin)
    resp = writer.put(f"{WS}/vars/terraform/region", json={"value": "eu-west-1", "description": "where"})
    assert resp.status_code == 201, resp.text
    var = resp.json()
    assert var == {**var, "key": "region", "category": "terraform", "value": "eu-west-1", "hcl": False}
    assert var["sensitive"] is False and var["description"] == "where"
    resp = writer.put(f"{WS}/vars/terraform/region", json={"value": "us-east-1"})
    assert resp.status_code == 200 and resp.json()["value"] == "us-east-1"
    assert resp.json()["description"] == "where"  # not sent: kept
    assert writer.put(f"{WS}/vars/env/AWS_REGION", json={"value": "eu"}).status_code == 201
    assert (
        writer.put(f"{WS}/vars/terraform/tags", json={"value": '{a = "b"}', "hcl": True}).status_code == 201
    )
    listed = writer.get(f"{WS}/vars").json()
    assert [(v["category"], v["key"]) for v in listed] == [
        ("env", "AWS_REGION"),
        ("terraform", "region"),
        ("terraform", "tags"),
    ]
    resp = writer.delete(f"{WS}/vars/terraform/region")
    assert resp.status_code == 200 and resp.json()["key"] == "region"
    assert writer.delete(f"{WS}/vars/terraform/region").status_code == 404
    assert writer.put(f"{API}/shop/nope/vars/env/A", json={"value": "x"}).status_code == 404
    assert len(writer.get(f"{WS}/vars").json()) == 2


def test_keys_are_checked_per_category(admin: TestClient) -> None:
    make_workspace(admin)
    assert admin.put(f"{WS}/vars/terraform/with-dash_1", json={"value": "x"}).status_code == 201
    for category, key in [
        ("terraform", "1abc"),
        ("terraform", "-abc"),
        ("terraform", "a.b"),
        ("env", "WITH-DASH"),
        ("env", "9X"),
        ("env", "a" * 129),
    ]:
        resp = admin.put(f"{WS}/vars/{category}/{key}", json={"value": "x"})
        assert resp.status_code == 400, (category, key, resp.text)
        assert f"{category} variable key" in resp.json()["error"]["message"]
    resp = admin.put(f"{WS}/vars/other/A", json={"value": "x"})
    assert resp.status_code == 400 and "terraform or env" in resp.text
    assert admin.delete(f"{WS}/vars/other/A").status_code == 400
    resp = admin.put(f"{WS}/vars/env/TF_HTTP_PASSWORD", json={"value": "x"})
    assert resp.status_code == 400 and "reserved" in resp.text
    assert admin.put(f"{WS}/vars/env/XCF_THING", json={"value": "x"}).status_code == 400


def test_values_are_checked(admin: TestClient) -> None:
    make_workspace(admin)
    resp = admin.put(f"{WS}/vars/terraform/big", json={"value": "x" * (256 * 1024 + 1)})
    assert resp.status_code == 413 and "the limit is 262144" in resp.text
    assert admin.put(f"{WS}/vars/terraform/big", json={"value": "x" * 256 * 1024}).status_code == 201
    resp = admin.put(f"{WS}/vars/terraform/bad", json={"value": "{a = ", "hcl": True})
    assert resp.status_code == 400 and "not a valid HCL expression" in resp.text
    resp = admin.put(f"{WS}/vars/terraform/sneaky", json={"value": '1\nother = "x"', "hcl": True})
    assert resp.status_code == 400 and "single HCL expression" in resp.text
    resp = admin.put(f"{WS}/vars/terraform/blocky", json={"value": '1\nresource "a" "b" {}', "hcl": True})
    assert resp.status_code == 400
    ok = admin.put(f"{WS}/vars/terraform/list", json={"value": '[\n  "a",\n  "b",\n]', "hcl": True})
    assert ok.status_code == 201, ok.text
    resp = admin.put(f"{WS}/vars/env/HCL", json={"value": "1", "hcl": True})
    assert resp.status_code == 400 and "terraform variables only" in resp.text
    resp = admin.put(f"{WS}/vars/env/NUL", json={"value": "a\x00b"})  # the HTTP edge: 422 naming the field
    assert resp.status_code == 422 and resp.json()["error"]["details"][0]["field"] == "body.value"
    resp = admin.put(f"{WS}/vars/terraform/new", json={"hcl": True})
    assert resp.status_code == 400 and "send its value" in resp.text
    # A flag change without a value re-checks the stored value.
    assert admin.put(f"{WS}/vars/terraform/plain", json={"value": "not hcl {"}).status_code == 201
    assert admin.put(f"{WS}/vars/terraform/plain", json={"hcl": True}).status_code == 400
    assert admin.put(f"{WS}/vars/terraform/plain", json={"value": "x", "extra": 1}).status_code == 422


def test_sensitive_values_never_come_back(admin: TestClient, db: Database) -> None:
    make_workspace(admin)
    resp = admin.put(f"{WS}/vars/env/TOKEN", json={"value": SECRET, "sensitive": True})
    assert resp.status_code == 201 and resp.json()["value"] is None and resp.json()["sensitive"] is True
    assert SECRET not in resp.text
    resp = admin.put(
        f"{WS}/vars/terraform/password", json={"value": SECRET + "-tf", "sensitive": True, "hcl": False}
    )
    assert SECRET not in resp.text
    # Changing only the description keeps the sealed value.
    resp = admin.put(f"{WS}/vars/env/TOKEN", json={"sensitive": True, "description": "api token"})
    assert resp.status_code == 200 and resp.json()["description"] == "api token"
    listed = admin.get(f"{WS}/vars")
    assert SECRET not in listed.text and all(v["value"] is None for v in listed.json())
    deleted = admin.delete(f"{WS}/vars/terraform/password")
    assert deleted.status_code == 200 and SECRET not in deleted.text
    with db.read() as session:
        row = session.scalars(select(WorkspaceVariable).where(WorkspaceVariable.key == "TOKEN")).one()
        assert row.value is None and row.sealed_value is not None and SECRET.encode() not in row.sealed_value
        audit_rows = session.scalars(select(AuditLog)).all()
        dumped = json.dumps([[r.action, r.resource, r.details] for r in audit_rows])
    assert "workspaces.variable.set" in dumped and "workspaces.variable.delete" in dumped
    assert SECRET not in dumped


def test_a_sensitive_variable_needs_a_new_value_to_become_plain(admin: TestClient) -> None:
    make_workspace(admin)
    admin.put(f"{WS}/vars/terraform/pw", json={"value": SECRET, "sensitive": True})
    resp = admin.put(f"{WS}/vars/terraform/pw", json={"sensitive": False})
    assert resp.status_code == 400
    assert "making it non-sensitive needs a new value" in resp.json()["error"]["message"]
    resp = admin.put(f"{WS}/vars/terraform/pw", json={"value": "public", "sensitive": False})
    assert resp.status_code == 200 and resp.json()["value"] == "public"
    # and the other way round: a plain value is sealed in place
    resp = admin.put(f"{WS}/vars/terraform/pw", json={"sensitive": True})
    assert resp.status_code == 200 and resp.json()["value"] is None and resp.json()["sensitive"] is True


def test_a_bad_hcl_value_is_not_echoed(admin: TestClient) -> None:
    make_workspace(admin)
    resp = admin.put(
        f"{WS}/vars/terraform/pw", json={"value": f"[1, {SECRET} x]", "hcl": True, "sensitive": True}
    )
    assert resp.status_code == 400 and "syntax error at line 1, column" in resp.text
    assert SECRET not in resp.text
