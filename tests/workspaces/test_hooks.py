"""Hooks over the API: targets per kind, timeouts, write-only secrets, order and delete."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.workspaces.conftest import API, make_workspace
from xcloudflow.audit.models import AuditLog
from xcloudflow.db import Database

WS = f"{API}/shop/dev"
HOOK_SECRET = "hook-hmac-key-never-shown"


def test_create_list_show_delete(writer: TestClient, admin: TestClient, db: Database) -> None:
    make_workspace(admin)
    resp = writer.post(
        f"{WS}/hooks",
        json={
            "stage": "pre_apply",
            "kind": "http",
            "target": "https://ci.example/hook",
            "secret": HOOK_SECRET,
        },
    )
    assert resp.status_code == 201, resp.text
    hook = resp.json()
    assert hook["has_secret"] is True and "secret" not in hook and HOOK_SECRET not in resp.text
    assert hook["mandatory"] is True and hook["timeout_seconds"] == 60 and hook["created_by"] == "wendy"
    second = writer.post(
        f"{WS}/hooks", json={"stage": "pre_plan", "kind": "script", "target": "make check"}
    ).json()
    listed = writer.get(f"{WS}/hooks")
    assert [h["id"] for h in listed.json()] == [second["id"], hook["id"]]  # by stage
    assert HOOK_SECRET not in listed.text
    assert writer.get(f"{WS}/hooks/{hook['id']}").json() == hook
    assert writer.get(f"{WS}/hooks/999").status_code == 404
    resp = writer.delete(f"{WS}/hooks/{hook['id']}")
    assert resp.status_code == 200 and HOOK_SECRET not in resp.text
    assert writer.delete(f"{WS}/hooks/{hook['id']}").status_code == 404
    make_workspace(admin, name="other")
    assert writer.get(f"{API}/shop/other/hooks/{second['id']}").status_code == 404
    with db.read() as session:
        rows = session.scalars(select(AuditLog).where(AuditLog.action.startswith("workspaces.hook."))).all()
        dumped = json.dumps([[r.action, r.details] for r in rows])
    assert sorted(r.action for r in rows) == [
        "workspaces.hook.create",
        "workspaces.hook.create",
        "workspaces.hook.delete",
    ]
    assert HOOK_SECRET not in dumped


def test_bad_hooks_are_refused(admin: TestClient) -> None:
    make_workspace(admin)
    cases = [
        ({"stage": "pre_plan", "kind": "python", "target": "not a function"}, 400, "package.module:function"),
        ({"stage": "pre_plan", "kind": "python", "target": "pkg.mod"}, 400, "package.module:function"),
        ({"stage": "pre_plan", "kind": "http", "target": "ftp://x.example/"}, 400, "http:// or https://"),
        ({"stage": "pre_plan", "kind": "http", "target": "https://"}, 400, "http:// or https://"),
        ({"stage": "pre_plan", "kind": "script", "target": "  "}, 400, "non-empty"),
        ({"stage": "pre_plan", "kind": "script", "target": "x", "secret": "k"}, 400, "only http hooks"),
        (
            {"stage": "pre_plan", "kind": "script", "target": "x", "timeout_seconds": 0},
            400,
            "between 1 and 3600",
        ),
        (
            {"stage": "pre_plan", "kind": "script", "target": "x", "timeout_seconds": 3601},
            400,
            "between 1 and 3600",
        ),
        ({"stage": "whenever", "kind": "script", "target": "x"}, 422, None),
        ({"stage": "pre_plan", "kind": "binary", "target": "x"}, 422, None),
    ]
    for payload, status, message in cases:
        resp = admin.post(f"{WS}/hooks", json=payload)
        assert resp.status_code == status, (payload, resp.text)
        if message:
            assert message in resp.json()["error"]["message"]
    assert admin.get(f"{WS}/hooks").json() == []
    ok = {"stage": "post_apply", "kind": "python", "target": "my_pkg.hooks:notify", "timeout_seconds": 3600}
    assert admin.post(f"{WS}/hooks", json=ok).status_code == 201
