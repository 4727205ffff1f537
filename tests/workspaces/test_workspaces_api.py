"""Workspaces over the API: CRUD, validation, filters and pages, locks, delete, audit, 401/403."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient

from tests.workspaces.conftest import API, MAIN_TF, make_workspace, targz, upload

WS = f"{API}/shop/dev"
# Every route of the domain, with a body good enough to get past validation for a writer.
READ_ROUTES = [
    ("GET", API, None),
    ("GET", WS, None),
    ("GET", f"{WS}/vars", None),
    ("GET", f"{WS}/code-versions", None),
    ("GET", f"{WS}/code-versions/1", None),
    ("GET", f"{WS}/code-versions/1/archive", None),
    ("GET", f"{WS}/code-versions/compare?from=1&to=1", None),
    ("GET", f"{WS}/hooks", None),
    ("GET", f"{WS}/hooks/1", None),
]
WRITE_ROUTES = [
    ("POST", API, {"project": "shop", "name": "other"}),
    ("PATCH", WS, {"auto_apply": True}),
    ("DELETE", WS, None),
    ("POST", f"{WS}/lock", {"reason": "x"}),
    ("POST", f"{WS}/unlock", None),
    ("PUT", f"{WS}/vars/terraform/region", {"value": "x"}),
    ("DELETE", f"{WS}/vars/terraform/region", None),
    ("POST", f"{WS}/code-versions", None),
    ("POST", f"{WS}/code-versions/1/rollback", None),
    ("POST", f"{WS}/hooks", {"stage": "pre_plan", "kind": "script", "target": "true"}),
    ("DELETE", f"{WS}/hooks/1", None),
]


def test_every_route_needs_a_token(anon: TestClient, admin: TestClient) -> None:
    make_workspace(admin)
    bad = TestClient(anon.app, raise_server_exceptions=False, headers={"Authorization": "Bearer xcf_nope"})
    for method, path, body in READ_ROUTES + WRITE_ROUTES:
        assert anon.request(method, path, json=body).status_code == 401, (method, path)
        assert bad.request(method, path, json=body).status_code == 401, (method, path)


def test_readers_read_and_cannot_write(admin: TestClient, reader: TestClient) -> None:
    make_workspace(admin)
    upload(admin, targz({"main.tf": MAIN_TF}))
    hook = admin.post(f"{WS}/hooks", json={"stage": "pre_plan", "kind": "script", "target": "true"}).json()
    for method, path, _ in READ_ROUTES:
        assert reader.request(method, path.replace("hooks/1", f"hooks/{hook['id']}")).status_code == 200, path
    for method, path, body in WRITE_ROUTES:
        path = path.replace("hooks/1", f"hooks/{hook['id']}")
        if path.endswith("/code-versions"):
            resp = reader.post(path, content=targz({"main.tf": "x"}))
        else:
            resp = reader.request(method, path, json=body)
        assert resp.status_code == 403, (method, path, resp.text)
    assert admin.get(WS).status_code == 200
    assert admin.get(f"{WS}/hooks").json() != []


def test_create_show_and_defaults(writer: TestClient, admin: TestClient) -> None:
    ws = make_workspace(writer, tags=["team-a", "prod", "prod"], description="the shop")
    assert ws["project"] == "shop" and ws["name"] == "dev" and ws["description"] == "the shop"
    assert ws["agent_pool"] == "embedded" and ws["terraform_bin"] is None and ws["working_directory"] == ""
    assert ws["auto_apply"] is False and ws["locked"] is False and ws["lock_reason"] is None
    assert ws["tags"] == ["prod", "team-a"]
    assert ws["current_code_version"] is None and ws["source"] == "empty"
    assert ws["drift_interval_minutes"] is None and ws["next_drift_at"] is None
    assert ws["created_by"] == "wendy"
    assert writer.get(WS).json() == ws
    resp = writer.post(API, json={"project": "shop", "name": "dev"})
    assert resp.status_code == 409 and "already exists" in resp.json()["error"]["message"]
    assert admin.get(f"{API}/shop/nope").status_code == 404
    assert "no workspace shop/nope" in admin.get(f"{API}/shop/nope").json()["error"]["message"]


def test_a_workspace_adopts_an_existing_state_stack(admin: TestClient) -> None:
    from tests.factories import body, tf_state

    assert admin.post("/terraform/state/shop/dev", content=body(tf_state())).status_code == 200
    make_workspace(admin)
    assert admin.get("/api/v1/stacks/terraform/shop/dev").status_code == 200


def test_bad_inputs_are_refused(admin: TestClient) -> None:
    cases = [
        ({"project": "bad project", "name": "x"}, 422, None),
        ({"project": "p", "name": "../x"}, 422, None),
        ({"project": "p", "name": "x", "unknown": 1}, 422, None),
        ({"project": "p", "name": "x", "agent_pool": "nowhere"}, 400, "agent_pool 'nowhere'"),
        ({"project": "p", "name": "x", "terraform_bin": "tofu"}, 400, "absolute path"),
        ({"project": "p", "name": "x", "working_directory": "/abs"}, 400, "no leading '/'"),
        ({"project": "p", "name": "x", "working_directory": "a/../../b"}, 400, "'..'"),
        ({"project": "p", "name": "x", "drift_interval_minutes": 4}, 400, "must be from 5 to 527040"),
        ({"project": "p", "name": "x", "drift_interval_minutes": 10**12}, 400, "must be from 5 to 527040"),
        ({"project": "p", "name": "x", "tags": ["has space"]}, 400, "tag 'has space'"),
    ]
    for payload, status, message in cases:
        resp = admin.post(API, json=payload)
        assert resp.status_code == status, (payload, resp.text)
        if message:
            assert message in resp.json()["error"]["message"], resp.text
    assert admin.get(API).json()["items"] == []


def test_pool_path_and_drift_settings(admin: TestClient) -> None:
    assert admin.post("/api/v1/agent-pools", json={"name": "builders"}).status_code == 201
    before = datetime.now(UTC)
    ws = make_workspace(
        admin,
        agent_pool="builders",
        terraform_bin="/usr/local/bin/tofu",
        working_directory="./envs//dev/",
        drift_interval_minutes=30,
    )
    assert ws["agent_pool"] == "builders" and ws["terraform_bin"] == "/usr/local/bin/tofu"
    assert ws["working_directory"] == "envs/dev"
    due = datetime.fromisoformat(ws["next_drift_at"])
    assert before + timedelta(minutes=29) < due < datetime.now(UTC) + timedelta(minutes=31)


def test_patch_changes_only_what_is_sent(admin: TestClient) -> None:
    make_workspace(admin, description="d", terraform_bin="/bin/terraform", drift_interval_minutes=10)
    resp = admin.patch(WS, json={"auto_apply": True, "tags": ["x"]})
    assert resp.status_code == 200, resp.text
    ws = resp.json()
    assert ws["auto_apply"] is True and ws["tags"] == ["x"] and ws["description"] == "d"
    assert ws["terraform_bin"] == "/bin/terraform" and ws["drift_interval_minutes"] == 10
    ws = admin.patch(
        WS, json={"terraform_bin": None, "drift_interval_minutes": None, "description": None}
    ).json()
    assert (
        ws["terraform_bin"] is None and ws["drift_interval_minutes"] is None and ws["next_drift_at"] is None
    )
    assert ws["description"] is None and ws["auto_apply"] is True
    ws = admin.patch(WS, json={"drift_interval_minutes": 60}).json()
    assert ws["next_drift_at"] is not None
    assert admin.patch(WS, json={"agent_pool": None}).status_code == 400
    assert admin.patch(WS, json={"agent_pool": "missing"}).status_code == 400
    assert admin.patch(WS, json={"working_directory": "../up"}).status_code == 400
    assert admin.patch(WS, json={"drift_interval_minutes": 1}).status_code == 400
    assert admin.patch(WS, json={"terraform_bin": "relative/tf"}).status_code == 400
    assert admin.patch(WS, json={"name": "renamed"}).status_code == 422
    assert admin.patch(f"{API}/shop/nope", json={}).status_code == 404


def test_list_filters_and_pages(admin: TestClient) -> None:
    for project in ("a", "b"):
        for i in range(3):
            make_workspace(admin, project=project, name=f"w{i}", tags=["even"] if i % 2 == 0 else [])
    page = admin.get(API, params={"limit": 4}).json()
    assert [f"{w['project']}/{w['name']}" for w in page["items"]] == ["a/w0", "a/w1", "a/w2", "b/w0"]
    rest = admin.get(API, params={"limit": 4, "cursor": page["next_cursor"]}).json()
    assert [f"{w['project']}/{w['name']}" for w in rest["items"]] == ["b/w1", "b/w2"]
    assert rest["next_cursor"] is None
    assert [w["name"] for w in admin.get(API, params={"project": "b"}).json()["items"]] == ["w0", "w1", "w2"]
    tagged = admin.get(API, params={"tag": "even", "limit": 3}).json()
    assert [f"{w['project']}/{w['name']}" for w in tagged["items"]] == ["a/w0", "a/w2", "b/w0"]
    last = admin.get(API, params={"tag": "even", "limit": 3, "cursor": tagged["next_cursor"]}).json()
    assert [f"{w['project']}/{w['name']}" for w in last["items"]] == ["b/w2"] and last["next_cursor"] is None
    assert admin.get(API, params={"limit": 0}).status_code == 400
    assert admin.get(API, params={"cursor": "garbage!"}).status_code == 400
    assert admin.get(API, params={"cursor": "WzFd"}).status_code == 400  # a valid cursor of another shape


def test_lock_and_unlock(writer: TestClient, admin: TestClient) -> None:
    make_workspace(admin)
    resp = writer.post(f"{WS}/lock", json={"reason": "maintenance window"})
    assert resp.status_code == 200, resp.text
    ws = resp.json()
    assert ws["locked"] is True and ws["lock_reason"] == "maintenance window" and ws["locked_by"] == "wendy"
    assert ws["locked_at"] is not None
    again = admin.post(f"{WS}/lock", json={"reason": "other"})
    assert again.status_code == 409 and "already locked by wendy: maintenance window" in again.text
    ws = admin.post(f"{WS}/unlock").json()
    assert ws["locked"] is False and ws["lock_reason"] is None and ws["locked_by"] is None
    assert ws["locked_at"] is None
    assert admin.post(f"{WS}/unlock").status_code == 200
    assert admin.post(f"{API}/shop/nope/lock", json={}).status_code == 404


def test_delete_cascades_and_keeps_the_state(admin: TestClient) -> None:
    from tests.factories import body, tf_state

    make_workspace(admin)
    assert admin.post("/terraform/state/shop/dev", content=body(tf_state())).status_code == 200
    upload(admin, targz({"main.tf": MAIN_TF}))
    assert admin.put(f"{WS}/vars/terraform/region", json={"value": "eu"}).status_code == 201
    assert (
        admin.post(f"{WS}/hooks", json={"stage": "pre_plan", "kind": "script", "target": "true"}).status_code
        == 201
    )
    resp = admin.delete(WS)
    assert resp.status_code == 200 and resp.json()["name"] == "dev"
    assert admin.get(WS).status_code == 404
    assert admin.delete(WS).status_code == 404
    assert admin.get("/api/v1/stacks/terraform/shop/dev").status_code == 200
    again = make_workspace(admin)
    assert again["current_code_version"] is None
    assert admin.get(f"{WS}/vars").json() == [] and admin.get(f"{WS}/hooks").json() == []
    assert admin.get(f"{WS}/code-versions").json() == []


def test_writes_are_audited(admin: TestClient) -> None:
    make_workspace(admin)
    admin.patch(WS, json={"auto_apply": True})
    admin.post(f"{WS}/lock", json={"reason": "r"})
    admin.post(f"{WS}/unlock")
    admin.delete(WS)
    rows = admin.get("/api/v1/audit-logs", params={"action": "workspaces."}).json()["items"]
    actions = sorted(r["action"] for r in rows)
    assert actions == [
        "workspaces.workspace.create",
        "workspaces.workspace.delete",
        "workspaces.workspace.lock",
        "workspaces.workspace.unlock",
        "workspaces.workspace.update",
    ]
    assert {r["resource"] for r in rows} == {"workspace/shop/dev"}
    update = next(r for r in rows if r["action"] == "workspaces.workspace.update")
    assert update["details"] == {"fields": ["auto_apply"]} and update["actor"] == "admin"
