"""The ChangeSet API over the ASGI app (both databases): authorization on every route, bad input that
stores nothing, and what planning writes before any agent runs (the e2e tests run the agents)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.e2e.compose_helpers import commit, edit_yaml, make_repo
from xcloudflow.settings import Settings

ENV = "qa"
SOME = str(uuid.uuid4())
ROUTES = [
    ("POST", "/api/v1/compose/changesets"),
    ("GET", "/api/v1/compose/changesets"),
    ("GET", f"/api/v1/compose/changesets/{SOME}"),
    ("GET", f"/api/v1/compose/changesets/{SOME}/markdown"),
    ("POST", f"/api/v1/compose/changesets/{SOME}/apply"),
    ("POST", f"/api/v1/compose/changesets/{SOME}/approve"),
    ("POST", f"/api/v1/compose/changesets/{SOME}/reject"),
    ("POST", f"/api/v1/compose/changesets/{SOME}/override"),
    ("POST", f"/api/v1/compose/changesets/{SOME}/discard"),
    ("POST", f"/api/v1/compose/changesets/{SOME}/rollback"),
    ("GET", "/api/v1/compose/targets"),
    ("POST", "/api/v1/compose/targets/check"),
    ("GET", f"/api/agent/v1/jobs/{SOME}/compose-bundle"),
]
BODIES = {
    "/api/v1/compose/changesets": {"repo": "/nowhere", "environment": ENV},
    "/reject": {"reason": "no"},
    "/override": {"reason": "yes"},
    "/approve": {},
    "/api/v1/compose/targets/check": {"environment": ENV},
}


def _body(path: str) -> dict[str, object] | None:
    for suffix, body in BODIES.items():
        if path.endswith(suffix):
            return body
    return None


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    return settings.model_copy(update={"compose_local_roots": str(tmp_path)})


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path, env=ENV)


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_every_route_needs_a_token(anon: TestClient, method: str, path: str) -> None:
    resp = anon.request(method, path, json=_body(path))
    assert resp.status_code == 401, resp.text


@pytest.mark.parametrize(("method", "path"), [r for r in ROUTES if r[0] == "POST" and "agent" not in r[1]])
def test_readers_cannot_plan_or_decide(reader: TestClient, method: str, path: str) -> None:
    resp = reader.request(method, path, json=_body(path))
    assert resp.status_code in (403, 404), resp.text
    if resp.status_code == 404:  # the changeset does not exist: the role check comes after the lookup
        assert "no changeset" in resp.json()["error"]["message"]
    else:
        assert "role" in resp.json()["error"]["message"]


def test_a_reader_cannot_plan(reader: TestClient, repo: Path) -> None:
    resp = reader.post("/api/v1/compose/changesets", json={"repo": str(repo), "environment": ENV})
    assert resp.status_code == 403 and "writer" in resp.text


def test_person_tokens_do_not_open_agent_routes(admin: TestClient) -> None:
    resp = admin.get(f"/api/agent/v1/jobs/{SOME}/compose-bundle")
    assert resp.status_code in (401, 403), resp.text


def _plan(admin: TestClient, repo: Path | str, env: str = ENV) -> tuple[int, dict[str, object]]:
    resp = admin.post("/api/v1/compose/changesets", json={"repo": str(repo), "environment": env})
    return resp.status_code, resp.json()


def _error(body: dict[str, object]) -> str:
    error = body["error"]
    assert isinstance(error, dict)
    return str(error["message"]) + " " + str(error.get("details"))


def _nothing_stored(admin: TestClient) -> None:
    assert admin.get("/api/v1/compose/changesets").json()["items"] == []
    assert admin.get("/api/v1/workspaces").json()["items"] == []


def test_bad_yaml_is_refused_with_file_and_line(admin: TestClient, repo: Path) -> None:
    path = repo / "compositions/platform/database.yaml"
    path.write_text(path.read_text().replace("  lifecycle: PaaS", "  lifecycle: [PaaS"))
    commit(repo, "broken yaml")
    status, body = _plan(admin, repo)
    assert status == 400, body
    issues = body["error"]["details"]["issues"]  # type: ignore[index]
    own = [i for i in issues if i["file"] == "compositions/platform/database.yaml"]
    assert own and own[0]["line"] in (8, 9) and "yaml" in own[0]["message"].lower(), issues
    _nothing_stored(admin)


@pytest.mark.parametrize(
    ("module", "expected"),
    [
        ({"ref": "modules/web", "engine": "chef"}, "unknown engine 'chef'"),
        ({"ref": "modules/nowhere"}, "modules/nowhere"),
    ],
)
def test_unknown_engine_and_missing_module_are_named(
    admin: TestClient, repo: Path, module: dict[str, str], expected: str
) -> None:
    def change(doc: dict[str, object]) -> None:
        spec = doc["spec"]
        assert isinstance(spec, dict)
        spec["modules"] = [module]

    edit_yaml(repo, "compositions/apps/web.yaml", change)
    commit(repo, "bad module")
    status, body = _plan(admin, repo)
    text = _error(body)
    assert status == 400 and expected in text and "compositions/apps/web.yaml:" in text, text
    _nothing_stored(admin)


def test_a_dependency_cycle_prints_the_cycle(admin: TestClient, repo: Path) -> None:
    def change(doc: dict[str, object]) -> None:
        spec = doc["spec"]
        assert isinstance(spec, dict)
        spec["dependencies"] = [{"ref": "compositions/apps/web"}]

    edit_yaml(repo, "compositions/platform/database.yaml", change)
    commit(repo, "cycle")
    status, body = _plan(admin, repo)
    assert status == 400 and "->" in _error(body), body
    _nothing_stored(admin)


def test_a_policy_that_does_not_compile_stops_planning(admin: TestClient, repo: Path) -> None:
    (repo / "policies/security/broken.rego").write_text(
        "package broken\n\ndeny contains msg if {\n  msg := \n"
    )
    commit(repo, "broken policy")
    status, body = _plan(admin, repo)
    assert status == 400 and "policies/security/broken.rego:" in _error(body), body
    _nothing_stored(admin)


def test_unknown_environment_unreachable_git_and_paths_outside_the_roots(
    admin: TestClient, repo: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    status, body = _plan(admin, repo, env="staging")
    assert status == 400 and "staging" in _error(body) and ENV in _error(body)
    status, body = _plan(admin, "https://user:hunter2@127.0.0.1:9/nothing.git")
    assert status == 400 and "hunter2" not in _error(body) and "127.0.0.1" in _error(body)
    elsewhere = make_repo(tmp_path_factory.mktemp("outside"), env=ENV)
    status, body = _plan(admin, elsewhere)
    assert status == 400 and "XCF_COMPOSE_LOCAL_ROOTS" in _error(body), body
    status, body = _plan(admin, f"file://{elsewhere}")
    assert status == 400, body
    _nothing_stored(admin)


def test_planning_creates_a_workspace_and_a_run_per_terraform_node(admin: TestClient, repo: Path) -> None:
    status, body = _plan(admin, repo)
    assert status == 201, body
    nodes = {n["key"]: n for n in body["nodes"]}  # type: ignore[union-attr]
    assert body["status"] == "planning" and len(nodes) == 5
    assert {n["status"] for n in nodes.values()} == {"planning"}
    net = nodes["network/network"]
    assert net["workspace"] == f"platform-{ENV}/network.network" and net["run"] is not None
    assert nodes["app-config/app-config"]["job"] is not None and nodes["app-config/app-config"]["run"] is None
    versions = admin.get(f"/api/v1/workspaces/platform-{ENV}/network.network/code-versions").json()
    assert len(versions) == 1
    files = {f["path"] for f in versions[0]["files"]}
    assert "modules/network/xcf.auto.tfvars.json" in files and "modules/network/main.tf" in files
    assert not any(p.startswith(("policies/", "envs/")) for p in files)

    # The same commit again: no new code version (the content is the same), a new changeset.
    status, again = _plan(admin, repo)
    assert status == 201 and again["id"] != body["id"]
    assert len(admin.get(f"/api/v1/workspaces/platform-{ENV}/network.network/code-versions").json()) == 1

    early = admin.post(f"/api/v1/compose/changesets/{again['id']}/approve", json={})
    assert early.status_code == 409 and "planning" in early.text
    override = admin.post(f"/api/v1/compose/changesets/{again['id']}/override", json={"reason": "x"})
    assert override.status_code == 409 and "blocked" in override.text
    rollback = admin.post(f"/api/v1/compose/changesets/{again['id']}/rollback", json={"reason": "x"})
    assert rollback.status_code == 409
    unknown = admin.get(f"/api/v1/compose/changesets/{SOME}")
    assert unknown.status_code == 404
    # The newer ChangeSet superseded the older one: its runs no longer hold the workspaces.
    superseded = admin.get(f"/api/v1/compose/changesets/{body['id']}").json()
    assert (
        superseded["status"] == "discarded"
        and f"superseded by changeset {again['id']}" in superseded["error"]
    )
    run = admin.get(f"/api/v1/runs/{net['run']}").json()
    assert run["stage"] in ("canceled", "discarded")
    discarded = admin.post(f"/api/v1/compose/changesets/{again['id']}/discard")
    assert discarded.status_code == 200 and discarded.json()["status"] == "discarded"
    again_twice = admin.post(f"/api/v1/compose/changesets/{again['id']}/discard")
    assert again_twice.status_code == 409
    audit = admin.get("/api/v1/audit-logs", params={"action": "compose."}).json()["items"]
    actions = {a["action"] for a in audit}
    assert {
        "compose.changeset.create",
        "compose.changeset.discard",
        "compose.changeset.superseded",
    } <= actions


def test_unknown_key_in_the_request_is_refused(admin: TestClient) -> None:
    resp = admin.post("/api/v1/compose/changesets", json={"repo": "/x", "environment": ENV, "branch": "main"})
    assert resp.status_code == 422
