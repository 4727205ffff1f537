"""`xcf inventory ...` and `xcf graph ...` against a real server over HTTP.

The live server runs without its background consumer, so each test drains the outbox with the
`consume` fixture after writing states.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from typer.testing import CliRunner

from tests.conftest import ADMIN_TOKEN
from tests.inventory.conftest import consume, put_state  # noqa: F401 - fixtures used here
from tests.inventory.test_api import apps_dev, net_prod, tf
from xcloudflow.cli.main import app

runner = CliRunner()


def xcf(server: str, *args: str, token: str = ADMIN_TOKEN) -> tuple[int, str]:
    result = runner.invoke(app, ["--server", server, "--token", token, *args])
    return result.exit_code, result.output


@pytest.fixture
def seeded(live_server: str, put_state: Callable[..., None], consume: Callable[[], int]) -> dict[str, str]:  # noqa: F811
    put_state(net_prod())
    put_state(apps_dev(), project="apps", stack="dev")
    consume()
    put_state(net_prod(serial=2, cidr="10.1.0.0/16"))
    put_state(tf(3, [{"mode": "managed", "type": "aws_vpc", "name": "x", "instances": "nope"}]))
    consume()
    code, out = xcf(live_server, "inventory", "list", "-o", "json")
    assert code == 0, out
    return {i["addr"]: i["stable_uid"] for i in json.loads(out)}


def test_inventory_list_filters(live_server: str, seeded: dict[str, str]) -> None:
    assert len(seeded) == 12
    code, out = xcf(
        live_server, "inventory", "list", "--stack", "prod", "--attr", "tags.env:prod", "-o", "json"
    )
    assert code == 0, out
    assert sorted(i["addr"] for i in json.loads(out)) == ["aws_instance.web[0]", "module.net.aws_vpc.main"]
    code, out = xcf(
        live_server, "inventory", "list", "--attr", "tags.env:prod", "--attr", "tags.team:core", "-o", "json"
    )
    assert [i["addr"] for i in json.loads(out)] == ["module.net.aws_vpc.main"]
    code, out = xcf(live_server, "inventory", "list", "--type", "aws_subnet", "--cloud", "aws", "-o", "json")
    assert sorted(i["addr"] for i in json.loads(out)) == [
        'aws_subnet.private["a"]',
        'aws_subnet.private["b"]',
    ]
    code, out = xcf(live_server, "inventory", "list", "--q", "terraform_data", "--limit", "2", "-o", "json")
    assert code == 0 and len(json.loads(out)) == 2
    code, out = xcf(live_server, "inventory", "list", "--project", "apps")  # a table (cut to 80 columns)
    assert code == 0 and "stable_" in out and "apps" in out and "net" not in out
    code, out = xcf(live_server, "inventory", "list", "--attr", "no-colon")
    assert code == 1 and "400" in out and "PATH:VALUE" in out


def test_inventory_show_history_errors(live_server: str, seeded: dict[str, str]) -> None:
    vpc = seeded["module.net.aws_vpc.main"]
    code, out = xcf(live_server, "inventory", "show", vpc, "-o", "json")
    assert code == 0 and json.loads(out)["attrs"]["cidr_block"] == "10.1.0.0/16"
    code, out = xcf(live_server, "inventory", "show", vpc)
    assert code == 0 and '"cidr_block": "10.1.0.0/16"' in out
    assert "depended on by: aws_security_group.web (ref, terraform/apps/dev)" in out
    code, out = xcf(live_server, "inventory", "history", vpc, "-o", "json")
    events = json.loads(out)
    assert [(e["action"], e["state_version"]) for e in events] == [("update", 2), ("create", 1)]
    assert events[0]["patch_json"] == [
        {"op": "replace", "path": "/attributes/cidr_block", "value": "10.1.0.0/16"}
    ]
    code, out = xcf(live_server, "inventory", "history", vpc)
    assert code == 0 and "update" in out and "create" in out
    code, out = xcf(live_server, "inventory", "errors", "-o", "json")
    (error,) = json.loads(out)
    assert (error["stack"], error["state_version"]) == ("prod", 3) and "instances" in error["message"]
    code, out = xcf(live_server, "inventory", "show", "nope")
    assert code == 1 and "400" in out and "not a UUID" in out
    code, out = xcf(live_server, "inventory", "show", "00000000-0000-0000-0000-000000000000")
    assert code == 1 and "404" in out
    code, out = xcf(live_server, "inventory", "list", token="xcf_nope")
    assert code == 1 and "401" in out


def test_graph_blast_radius_and_export(live_server: str, seeded: dict[str, str]) -> None:
    vpc = seeded["module.net.aws_vpc.main"]
    code, out = xcf(live_server, "graph", "blast-radius", vpc, "-o", "json")
    assert code == 0, out
    items = json.loads(out)["items"]
    assert (items[0]["addr"], items[0]["depth"]) == ("module.net.aws_vpc.main", 0)
    assert {i["addr"] for i in items if i["depth"] == 2} == {"aws_instance.web[0]", "aws_instance.web[1]"}
    code, out = xcf(live_server, "graph", "blast-radius", vpc, "--max-depth", "1", "-o", "json")
    assert max(i["depth"] for i in json.loads(out)["items"]) == 1
    web = seeded["aws_instance.web[1]"]
    code, out = xcf(live_server, "graph", "blast-radius", web, "--direction", "upstream", "-o", "json")
    assert code == 0 and json.loads(out)["items"][-1]["addr"] == "module.net.aws_vpc.main"
    code, out = xcf(live_server, "graph", "blast-radius", web, "--direction", "upstream")
    assert code == 0 and "depth" in out
    assert xcf(live_server, "graph", "blast-radius", web, "--direction", "sideways")[0] == 2

    code, out = xcf(live_server, "graph", "export", "--stack", "dev", "--format", "dot")
    assert code == 0 and out.startswith("digraph inventory {")
    assert f'"{seeded["aws_security_group.web"]}" -> "{vpc}" [label="ref"];' in out
    code, out = xcf(
        live_server, "graph", "export", "--stack", "dev", "--stack", "prod", "--format", "mermaid"
    )
    assert code == 0 and out.startswith("graph LR\n") and "-->|ref|" in out
    assert "external" not in out  # both stacks selected: nothing outside
    code, out = xcf(live_server, "graph", "export", "--stack", "prod", "--format", "json")
    graph = json.loads(out)
    assert {n["addr"] for n in graph["nodes"] if n["external"]} == {"aws_security_group.web"}
    assert xcf(live_server, "graph", "export", "--format", "png")[0] == 2


def test_rebuild_and_worker_server_side(settings, db, admin, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from tests.factories import body, md5_header, tf_state

    data = body(tf_state(resources={"a": "1", "b": "2"}))
    assert (
        admin.post(
            "/terraform/state/net/prod", content=data, headers={"Content-MD5": md5_header(data)}
        ).status_code
        == 200
    )
    monkeypatch.setenv("XCF_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("XCF_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("XCF_ENCRYPTION_KEY", settings.encryption_key.get_secret_value())
    result = runner.invoke(app, ["inventory", "worker", "--once"])
    assert result.exit_code == 0, result.output
    assert "2 events written" in result.output
    assert runner.invoke(app, ["inventory", "worker", "--once"]).output.strip() == "0 events written"
    result = runner.invoke(app, ["inventory", "rebuild"])
    assert result.exit_code == 0 and "2 events" in result.output
    result = runner.invoke(app, ["inventory", "rebuild", "--stack", "terraform/net/prod"])
    assert result.exit_code == 0 and "2 events" in result.output
    assert runner.invoke(app, ["inventory", "rebuild", "--stack", "net/prod"]).exit_code == 2
    assert runner.invoke(app, ["inventory", "rebuild", "--org", "nope"]).exit_code == 1
    assert len(admin.get("/api/v1/resources").json()["items"]) == 2
