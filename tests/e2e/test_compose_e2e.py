"""The control plane end to end: real git repositories made from examples/platform, the real server
(SQLite and PostgreSQL) with its embedded agent, real Terraform and real ansible-playbook.

Each test uses an environment name of its own: the server (and its reconcile targets) is shared by
the whole session.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.compose_helpers import (
    commit,
    edit_yaml,
    env_inputs,
    env_name,
    make_repo,
    node,
    only,
    plan,
    show,
    user_client,
    wait_for,
    wait_status,
)
from tests.e2e.conftest import XcfServer, host_path

pytestmark = pytest.mark.e2e
NETWORK, DATABASE, WEB, CONFIG, PREVIEW = (
    "network/network",
    "database/database",
    "web/web",
    "app-config/app-config",
    "preview/preview",
)


@pytest.fixture
def api(xcf_server: XcfServer) -> Iterator[httpx.Client]:
    with xcf_server.client() as client:
        yield client


@pytest.fixture
def alice(xcf_server: XcfServer, api: httpx.Client) -> Iterator[httpx.Client]:
    """An approver from .xcf.yaml (a writer): admins may not approve what they planned themselves."""
    with user_client(api, xcf_server.base_url, "alice", "writer") as client:
        yield client


def _state(server: XcfServer, env: str, workspace: str) -> dict[str, Any]:
    project, name = f"platform-{env}", workspace
    stack = server.stack(project, name)
    assert stack is not None, f"no state for {project}/{name}"
    data: dict[str, Any] = json.loads(server.version_content(project, name, stack["head_version"]))
    return data


def _outputs(server: XcfServer, env: str, workspace: str) -> dict[str, Any]:
    return {k: v["value"] for k, v in _state(server, env, workspace).get("outputs", {}).items()}


def _audit(api: httpx.Client, action: str) -> list[dict[str, Any]]:
    resp = api.get("/api/v1/audit-logs", params={"action": action, "limit": 200})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    items: list[dict[str, Any]] = body["items"] if isinstance(body, dict) else body
    return items


def test_plan_approve_apply_in_dag_order_then_roll_back(
    xcf_server: XcfServer, api: httpx.Client, alice: httpx.Client, tmp_path: Path
) -> None:
    env = env_name()
    conf = host_path(tmp_path, "conf")  # sandboxed jobs write only where the operator allows
    repo = make_repo(tmp_path, env=env, template="prod", config_dir=conf)

    cs = plan(api, repo, env)
    assert cs["status"] == "planning" and cs["commit"]
    cs = wait_status(api, cs["id"], "planned")
    keys = [n["key"] for n in cs["nodes"]]
    assert keys.index(NETWORK) < keys.index(DATABASE) < keys.index(WEB) < keys.index(CONFIG)
    assert NETWORK in node(cs, DATABASE)["depends_on"]
    net = node(cs, NETWORK)
    assert net["engine"] == "terraform" and net["layer"] == "Foundation"
    assert net["route"]["approval"] == "required" and net["route"]["drift"] == "alert"
    assert any(
        c["actions"] == ["create"] and c["type"] == "terraform_data" for c in net["plan"]["resource_changes"]
    )
    assert node(cs, CONFIG)["engine"] == "ansible" and node(cs, CONFIG)["plan"]["has_changes"] is True
    assert not conf.exists(), "check mode must not write the file"
    assert cs["summary"]["with_changes"] == 4 and cs["policy"]["blocking"] is False
    markdown = api.get(f"/api/v1/compose/changesets/{cs['id']}/markdown")
    assert markdown.status_code == 200 and NETWORK in markdown.text and "terraform_data" in markdown.text

    # Foundation always needs approval; the database too in a protected environment; the admin who
    # planned it may not approve it (four eyes), alice (an approver) may.
    assert node(cs, DATABASE)["approval"]["required"] is True and node(cs, WEB)["approval"] is None
    applying = api.post(f"/api/v1/compose/changesets/{cs['id']}/apply")
    assert applying.status_code == 200, applying.text
    waiting = wait_for(api, cs["id"], lambda c: node(c, NETWORK)["status"] == "awaiting_approval", "awaiting")
    assert node(waiting, WEB)["status"] == "planned"  # it waits for its dependencies, not for people
    self_approval = api.post(f"/api/v1/compose/changesets/{cs['id']}/approve", json={"reason": "mine"})
    assert self_approval.status_code == 403 and "four eyes" in self_approval.text
    approved = alice.post(f"/api/v1/compose/changesets/{cs['id']}/approve", json={"reason": "CAB-42"})
    assert approved.status_code == 200, approved.text
    assert node(approved.json(), DATABASE)["approval"]["by"] == "alice"

    done = wait_status(api, cs["id"], "applied", "failed")
    assert done["status"] == "applied", done
    order = sorted(done["nodes"], key=lambda n: n["applied_at"])
    assert [n["key"] for n in order] == [NETWORK, DATABASE, WEB, CONFIG]
    assert node(done, DATABASE)["snapshot"]["backup_job"]  # pre-change backup command ran first
    assert "hello from xcloudflow" in (conf / "app.conf").read_text()
    assert any(r["details"].get("reason") == "CAB-42" for r in _audit(api, "compose.node.approve"))
    assert _outputs(xcf_server, env, "network.network")["subnet_cidr"] == "10.0.1.0/24"
    targets = api.get("/api/v1/compose/targets", params={"environment": env}).json()
    assert {t["key"] for t in targets} == {NETWORK, DATABASE, WEB, CONFIG}

    # A second commit changes the network and the configuration; roll it back afterwards.
    env_inputs(repo, env, "network", cidr="10.99.0.0/16")
    env_inputs(repo, env, "app-config", message="second version")
    commit(repo, "wider network")
    second = plan(api, repo, env, apply=True)
    wait_for(api, second["id"], lambda c: node(c, NETWORK)["status"] == "awaiting_approval", "awaiting")
    assert alice.post(f"/api/v1/compose/changesets/{second['id']}/approve", json={}).status_code == 200
    second = wait_status(api, second["id"], "applied", "failed")
    assert second["status"] == "applied", second
    assert node(second, WEB)["status"] == "applied" and node(second, WEB)["plan"]["has_changes"] is False
    assert "second version" in (conf / "app.conf").read_text()
    assert _outputs(xcf_server, env, "network.network")["subnet_cidr"] == "10.99.1.0/24"

    rollback = api.post(f"/api/v1/compose/changesets/{second['id']}/rollback", json={"reason": "bad cidr"})
    assert rollback.status_code == 201, rollback.text
    rb = rollback.json()
    assert rb["kind"] == "rollback" and [n["key"] for n in rb["nodes"]] == [CONFIG, NETWORK]
    assert node(rb, NETWORK)["depends_on"] == [CONFIG]  # reverse DAG order
    rb = wait_status(api, rb["id"], "applied", "failed")
    assert rb["status"] == "applied", rb
    assert show(api, second["id"])["status"] == "rolled_back"
    assert "hello from xcloudflow" in (conf / "app.conf").read_text()
    net_state = _state(xcf_server, env, "network.network")
    cidrs = [
        r["instances"][0]["attributes"]["input"]
        for r in net_state["resources"]
        if r["type"] == "terraform_data"
    ]
    assert any("10.0.0.0/16" in json.dumps(c) for c in cidrs), cidrs


def test_mandatory_policy_blocks_until_an_admin_overrides(
    xcf_server: XcfServer, api: httpx.Client, tmp_path: Path
) -> None:
    env = env_name()
    repo = make_repo(tmp_path, env=env)
    only(repo, env, "network", "database")
    env_inputs(repo, env, "database", publicly_accessible=True)
    commit(repo, "open the database")
    cs = wait_status(api, plan(api, repo, env)["id"], "blocked", "planned")
    assert cs["status"] == "blocked" and cs["policy"]["blocking"] is True
    verdicts = node(cs, DATABASE)["policy"]
    assert any(v["enforcement"] == "mandatory" and v["deny"] for v in verdicts), verdicts
    refused = api.post(f"/api/v1/compose/changesets/{cs['id']}/apply")
    assert refused.status_code == 409 and "mandatory policy" in refused.text
    with user_client(api, xcf_server.base_url, "wendy", "writer") as wendy:
        forbidden = wendy.post(f"/api/v1/compose/changesets/{cs['id']}/override", json={"reason": "please"})
        assert forbidden.status_code == 403
    missing_reason = api.post(f"/api/v1/compose/changesets/{cs['id']}/override", json={})
    assert missing_reason.status_code == 422
    over = api.post(f"/api/v1/compose/changesets/{cs['id']}/override", json={"reason": "INC-7 temporary"})
    assert over.status_code == 200, over.text
    assert (
        over.json()["status"] == "planned"
        and over.json()["policy"]["override"]["reason"] == "INC-7 temporary"
    )
    rows = [r for r in _audit(api, "compose.changeset.override") if r["resource"] == f"changeset/{cs['id']}"]
    assert rows and rows[0]["details"]["reason"] == "INC-7 temporary" and rows[0]["details"]["denied"]
    discarded = api.post(f"/api/v1/compose/changesets/{cs['id']}/discard")
    assert discarded.status_code == 200 and discarded.json()["status"] == "discarded"
    run = api.get(f"/api/v1/runs/{node(cs, DATABASE)['run']}").json()
    assert run["stage"] == "discarded"


def test_a_failed_node_stops_its_dependents(
    xcf_server: XcfServer, api: httpx.Client, alice: httpx.Client, tmp_path: Path
) -> None:
    env = env_name()
    hook = api.post(
        "/api/v1/notification-destinations",
        json={
            "name": f"ops-{env}",
            "url": "http://127.0.0.1:9/hook",  # nobody listens: the deliveries stay queued, with their events
            "events": ["compose.approval_requested", "compose.failed", "compose.applied"],
        },
    )
    assert hook.status_code == 201, hook.text
    repo = make_repo(tmp_path, env=env)
    only(repo, env, "network", "database", "web")
    env_inputs(repo, env, "database", fail_apply=True)
    commit(repo, "break the migration")
    cs = plan(api, repo, env, apply=True)
    wait_for(api, cs["id"], lambda c: node(c, NETWORK)["status"] == "awaiting_approval", "awaiting")
    assert alice.post(f"/api/v1/compose/changesets/{cs['id']}/approve", json={}).status_code == 200
    done = wait_status(api, cs["id"], "applied", "failed")
    assert done["status"] == "failed"
    assert node(done, NETWORK)["status"] == "applied"
    assert node(done, DATABASE)["status"] == "failed" and "exit" in (node(done, DATABASE)["error"] or "")
    assert node(done, WEB)["status"] == "skipped" and DATABASE in node(done, WEB)["error"]
    assert node(done, WEB)["run"] is not None
    assert api.get(f"/api/v1/runs/{node(done, WEB)['run']}").json()["stage"] == "discarded"
    deliveries = api.get(f"/api/v1/notification-destinations/ops-{env}/deliveries").json()["items"]
    ours = [
        (d["event"], d["payload"].get("node")) for d in deliveries if d["payload"].get("environment") == env
    ]
    assert ("compose.approval_requested", NETWORK) in ours
    assert ("compose.failed", DATABASE) in ours and (
        "compose.failed",
        None,
    ) in ours  # the node, the ChangeSet


def _tamper(server: XcfServer, env: str, workspace: str) -> None:
    """Change the recorded state behind Terraform's back (what a console edit does to real resources)."""
    project = f"platform-{env}"
    state = _state(server, env, workspace)
    state["outputs"]["id"]["value"] = "tampered"
    state["serial"] += 1
    with server.client() as c:
        resp = c.post(server.state_url(project, workspace), content=json.dumps(state).encode())
    assert resp.status_code == 200, resp.text


def test_drift_is_corrected_for_platform_and_only_alerted_for_foundation(
    xcf_server: XcfServer, api: httpx.Client, alice: httpx.Client, tmp_path: Path
) -> None:
    env = env_name()
    repo = make_repo(tmp_path, env=env)
    only(repo, env, "network", "database")
    commit(repo, "network and database")
    cs = plan(api, repo, env, apply=True)
    wait_for(api, cs["id"], lambda c: node(c, NETWORK)["status"] == "awaiting_approval", "awaiting")
    assert alice.post(f"/api/v1/compose/changesets/{cs['id']}/approve", json={}).status_code == 200
    assert wait_status(api, cs["id"], "applied", "failed")["status"] == "applied"

    _tamper(xcf_server, env, "network.network")
    _tamper(xcf_server, env, "database.database")
    checked = api.post("/api/v1/compose/targets/check", json={"environment": env})
    assert checked.status_code == 200, checked.text
    assert {t["key"] for t in checked.json()} == {NETWORK, DATABASE}

    def drifted() -> dict[str, Any]:
        return {t["key"]: t for t in api.get("/api/v1/compose/targets", params={"environment": env}).json()}

    deadline = time.monotonic() + 180
    while not all(t["drifted_at"] for t in drifted().values()):
        assert time.monotonic() < deadline, drifted()
        time.sleep(0.5)
    sets = api.get("/api/v1/compose/changesets", params={"environment": env}).json()["items"]
    reconciles = [s for s in sets if s["kind"] == "reconcile"]
    assert len(reconciles) == 1, sets
    fixed = wait_status(api, reconciles[0]["id"], "applied", "failed")
    assert fixed["status"] == "applied" and [n["key"] for n in fixed["nodes"]] == [DATABASE]
    assert _outputs(xcf_server, env, "database.database")["id"] != "tampered"
    assert _outputs(xcf_server, env, "network.network")["id"] == "tampered"  # alerted, left alone
    alerts = [r for r in _audit(api, "compose.drift.detected") if r["details"].get("environment") == env]
    assert {(r["details"]["node"], r["details"]["policy"]) for r in alerts} == {
        (NETWORK, "alert"),
        (DATABASE, "correct"),
    }


def test_an_ephemeral_composition_is_collected_when_its_ttl_expires(
    xcf_server: XcfServer, api: httpx.Client, tmp_path: Path
) -> None:
    env = env_name()
    repo = make_repo(tmp_path, env=env)
    only(repo, env, "preview")
    (repo / "compositions/ephemeral/preview.yaml").write_text(
        (repo / "compositions/ephemeral/preview.yaml").read_text().replace("ttl: 1h", "ttl: 5s")
    )
    commit(repo, "short-lived preview")
    cs = wait_status(api, plan(api, repo, env, apply=True)["id"], "applied", "failed")
    assert cs["status"] == "applied", cs
    assert _state(xcf_server, env, "preview.preview")["resources"]
    target = api.get("/api/v1/compose/targets", params={"environment": env}).json()[0]
    assert target["expires_at"] is not None and target["route"]["drift"] == "gc"

    deadline = time.monotonic() + 180
    while True:
        sets = api.get("/api/v1/compose/changesets", params={"environment": env}).json()["items"]
        gc = [s for s in sets if s["kind"] == "gc"]
        if gc:
            break
        assert time.monotonic() < deadline, sets
        time.sleep(0.5)
    collected = wait_status(api, gc[0]["id"], "applied", "failed")
    assert collected["status"] == "applied" and node(collected, PREVIEW)["action"] == "destroy"
    assert _state(xcf_server, env, "preview.preview")["resources"] == []
    target = api.get("/api/v1/compose/targets", params={"environment": env}).json()[0]
    assert target["status"] == "gone"


def _compose_spec(repo: Path, path: str, **fields: Any) -> None:
    def change(doc: dict[str, Any]) -> None:
        doc["spec"].update(fields)

    edit_yaml(repo, path, change)


def test_budget_and_change_window_hold_a_node(
    xcf_server: XcfServer, api: httpx.Client, alice: httpx.Client, tmp_path: Path
) -> None:
    env = env_name()
    repo = make_repo(tmp_path, env=env)
    only(repo, env, "app-config")
    _compose_spec(repo, "compositions/config/app-config.yaml", budget={"max": 1, "per": "1h"})
    commit(repo, "one change an hour")
    first = wait_status(api, plan(api, repo, env, apply=True)["id"], "applied", "failed")
    assert first["status"] == "applied", first

    env_inputs(repo, env, "app-config", message="again")
    commit(repo, "second change")
    second = plan(api, repo, env, apply=True)
    held = wait_for(api, second["id"], lambda c: "budget" in (node(c, CONFIG)["waiting_for"] or ""), "held")
    assert "at most 1 per 1h" in node(held, CONFIG)["waiting_for"]
    rejected = alice.post(f"/api/v1/compose/changesets/{second['id']}/reject", json={"reason": "not now"})
    assert rejected.status_code == 200 and rejected.json()["status"] == "rejected", rejected.text

    # A window that opens in six hours (UTC): the node waits and says when it opens.
    opens = (datetime.now(UTC) + timedelta(hours=6)).replace(second=0, microsecond=0)
    window = {
        "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
        "start": opens.strftime("%H:%M"),
        "end": (opens + timedelta(hours=1)).strftime("%H:%M"),
        "timezone": "UTC",
    }

    def config(doc: dict[str, Any]) -> None:
        doc["spec"]["changeWindows"]["later"] = window

    edit_yaml(repo, ".xcf.yaml", config)
    _compose_spec(repo, "compositions/config/app-config.yaml", budget={"max": 5, "per": "1h"})

    def module(doc: dict[str, Any]) -> None:
        doc["spec"]["modules"][0]["policies"] = {"changeWindow": "later"}

    edit_yaml(repo, "compositions/config/app-config.yaml", module)
    commit(repo, "only at night")
    third = plan(api, repo, env, apply=True)
    waiting = wait_for(
        api, third["id"], lambda c: "window" in (node(c, CONFIG)["waiting_for"] or ""), "in window"
    )
    assert (
        f"change window later is closed; it opens at {opens.isoformat()}"
        in node(waiting, CONFIG)["waiting_for"]
    )
    assert node(waiting, CONFIG)["route"]["change_window"] == "later"
    assert (
        alice.post(f"/api/v1/compose/changesets/{third['id']}/reject", json={"reason": "x"}).status_code
        == 200
    )


def test_a_foundation_change_holds_the_environment_until_it_is_verified(
    xcf_server: XcfServer, api: httpx.Client, alice: httpx.Client, tmp_path: Path
) -> None:
    env = env_name()
    flag = host_path(tmp_path, "network-verified")
    repo = make_repo(tmp_path, env=env)
    _compose_spec(
        repo,
        "compositions/foundation/network.yaml",
        observation={"command": f"test -f {flag}", "window": "2m", "interval": "1s"},
    )
    only(repo, env, "network")
    commit(repo, "network only")
    network_commit = plan(api, repo, env, apply=True)
    wait_for(
        api, network_commit["id"], lambda c: node(c, NETWORK)["status"] == "awaiting_approval", "awaiting"
    )
    assert (
        alice.post(f"/api/v1/compose/changesets/{network_commit['id']}/approve", json={}).status_code == 200
    )
    wait_for(api, network_commit["id"], lambda c: node(c, NETWORK)["status"] == "observing", "observing")

    # Another commit of the same environment touches only the configuration: it must wait.
    def config_only(doc: dict[str, Any]) -> None:
        doc["spec"]["compositions"] = [
            {
                "ref": "compositions/config/app-config",
                "inputs": {"configDir": str(host_path(tmp_path, "conf"))},
            }
        ]

    edit_yaml(repo, f"envs/{env}/environment.yaml", config_only)
    commit(repo, "configuration only")
    config = plan(api, repo, env, apply=True)
    held = wait_for(
        api, config["id"], lambda c: "Foundation" in (node(c, CONFIG)["waiting_for"] or ""), "held"
    )
    assert node(held, CONFIG)["status"] == "waiting"
    assert (
        f"the Foundation change {NETWORK} (changeset {network_commit['id']})"
        in node(held, CONFIG)["waiting_for"]
    )

    flag.touch()
    verified = wait_status(api, network_commit["id"], "applied", "failed")
    assert verified["status"] == "applied" and node(verified, NETWORK)["status"] == "applied"
    done = wait_status(api, config["id"], "applied", "failed")
    assert done["status"] == "applied", done
    assert node(done, CONFIG)["started_at"] >= node(verified, NETWORK)["finished_at"]


def test_a_failed_observation_rolls_the_change_back(
    xcf_server: XcfServer, api: httpx.Client, alice: httpx.Client, tmp_path: Path
) -> None:
    env = env_name()
    repo = make_repo(tmp_path, env=env)
    _compose_spec(
        repo,
        "compositions/foundation/network.yaml",
        observation={
            "command": "echo unhealthy; exit 1",
            "window": "3s",
            "interval": "1s",
            "rollbackOnFailure": True,
        },
    )
    only(repo, env, "network")
    commit(repo, "network with a health check that fails")
    cs = plan(api, repo, env, apply=True)
    wait_for(api, cs["id"], lambda c: node(c, NETWORK)["status"] == "awaiting_approval", "awaiting")
    assert alice.post(f"/api/v1/compose/changesets/{cs['id']}/approve", json={}).status_code == 200
    failed = wait_status(api, cs["id"], "failed", "applied", "rolled_back")
    assert failed["status"] in ("failed", "rolled_back")
    assert "observation failed" in node(failed, NETWORK)["error"]
    sets = api.get("/api/v1/compose/changesets", params={"environment": env}).json()["items"]
    rollbacks = [s for s in sets if s["kind"] == "rollback"]
    assert len(rollbacks) == 1, sets
    rb = wait_status(api, rollbacks[0]["id"], "applied", "failed")
    assert rb["status"] == "applied" and node(rb, NETWORK)["action"] == "destroy"  # it was the first apply
    assert show(api, cs["id"])["status"] == "rolled_back"
    assert _state(xcf_server, env, "network.network")["resources"] == []


def test_the_cli_validates_plans_applies_and_shows_status(
    xcf_server: XcfServer, api: httpx.Client, alice: httpx.Client, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from xcloudflow.cli.main import app

    def xcf(*args: str) -> Any:
        return CliRunner().invoke(app, ["--server", xcf_server.base_url, "--token", xcf_server.token, *args])

    env = env_name()
    conf = host_path(tmp_path, "cli-conf")
    repo = make_repo(tmp_path, env=env, config_dir=conf)
    only(repo, env, "app-config")
    commit(repo, "configuration only")

    assert xcf("compose", "validate", "--repo", str(repo), "--env", env).exit_code == 0
    planned = xcf("compose", "plan", "--repo", str(repo), "--env", env, "--format", "markdown")
    assert planned.exit_code == 2, planned.output  # changes waiting, like terraform -detailed-exitcode
    assert CONFIG in planned.output and "ansible" in planned.output
    applied = xcf("compose", "apply", "--repo", str(repo), "--env", env)
    assert applied.exit_code == 0, applied.output
    assert "applied" in applied.output and "hello from xcloudflow" in (conf / "app.conf").read_text()
    status = xcf("compose", "status", "--env", env, "--format", "json")
    assert status.exit_code == 0 and json.loads(status.stdout)[0]["node"] == CONFIG
    again = xcf("compose", "plan", "--repo", str(repo), "--env", env, "--format", "json")
    assert again.exit_code == 0, again.output  # nothing left to change
    assert json.loads(again.stdout)["summary"]["with_changes"] == 0
    unknown = xcf("compose", "plan", "--repo", str(repo), "--env", "nowhere")
    assert unknown.exit_code == 1 and "nowhere" in unknown.output

    # With the network back, `apply` stops waiting once only an approver can move it on: exit 2.
    def with_network(doc: dict[str, Any]) -> None:
        doc["spec"]["compositions"].insert(0, {"ref": "compositions/foundation/network"})

    edit_yaml(repo, f"envs/{env}/environment.yaml", with_network)
    commit(repo, "network too")
    waiting = xcf("compose", "apply", "--repo", str(repo), "--env", env, "--format", "json")
    assert waiting.exit_code == 2, waiting.output
    pending = json.loads(waiting.stdout)
    assert node(pending, NETWORK)["status"] == "awaiting_approval"
    assert (
        alice.post(f"/api/v1/compose/changesets/{pending['id']}/reject", json={"reason": "later"}).status_code
        == 200
    )
