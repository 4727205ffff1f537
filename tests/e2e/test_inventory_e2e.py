"""Real Terraform applies through the state service become inventory events and edges.

The server's own inventory consumer (a thread in `xcf server`) does the work; the test only writes
through Terraform and reads through the API.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import TerraformRunner, XcfServer, output_of
from tests.e2e.test_terraform_backend import backend_block

pytestmark = pytest.mark.e2e
WAIT = 60.0  # upper bound for the consumer to catch up; never asserted as a duration


def config(net_input: str, app_trigger: str) -> str:
    return f"""
resource "terraform_data" "net" {{
  input = "{net_input}"
}}

resource "terraform_data" "app" {{
  input            = terraform_data.net.id
  triggers_replace = ["{app_trigger}"]
}}

resource "terraform_data" "dns" {{
  input      = "dns"
  depends_on = [terraform_data.app]
}}
"""


def wait_for(check: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + WAIT
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"inventory did not show {what} within {WAIT:.0f}s")
        time.sleep(0.5)


def test_applies_become_events_edges_and_blast_radius(
    xcf_server: XcfServer, terraform: TerraformRunner, names: tuple[str, str], tmp_path: Path
) -> None:
    project, stack = names
    api = xcf_server.client()
    work = tmp_path / "tf"
    work.mkdir()
    main = work / "main.tf"
    main.write_text(backend_block(xcf_server.state_url(project, stack)) + config("v1", "t1"))
    for args in (("init", "-input=false"), ("apply", "-auto-approve", "-input=false")):
        proc = terraform(work, *args, password=xcf_server.token)
        assert proc.returncode == 0, output_of(proc)

    def resources() -> dict[str, dict[str, Any]]:
        items = api.get("/api/v1/resources", params={"project": project, "stack": stack}).json()["items"]
        return {r["addr"]: r for r in items}

    found = wait_for(lambda: (r := resources()) and len(r) == 3 and r, "3 resources")
    assert {r["type"] for r in found.values()} == {"terraform_data"}
    assert {r["provider"] for r in found.values()} == {"terraform"}
    net, app, dns = (found[f"terraform_data.{n}"]["stable_uid"] for n in ("net", "app", "dns"))

    events = api.get("/api/v1/events", params={"project": project, "stack": stack}).json()["items"]
    assert sorted((e["action"], e["addr"]) for e in events) == [
        ("create", "terraform_data.app"),
        ("create", "terraform_data.dns"),
        ("create", "terraform_data.net"),
    ]
    # app depends on net (a reference, and its input holds net's id); dns depends on app.
    shown = api.get(f"/api/v1/resources/{app}").json()
    assert shown["attrs"]["triggers_replace"]["value"] == ["t1"]  # a dynamic value: {value, type}
    radius = api.get(f"/api/v1/graph/blast-radius/{net}", params={"direction": "downstream"}).json()
    depth = {r["addr"]: r["depth"] for r in radius["items"] if r["depth"] > 0}
    # Terraform records dependencies transitively in the state, so dns names net directly too.
    assert depth == {"terraform_data.app": 1, "terraform_data.dns": 1}
    upstream = api.get(f"/api/v1/graph/blast-radius/{dns}", params={"direction": "upstream"}).json()
    assert {r["addr"] for r in upstream["items"] if r["depth"] > 0} == {
        "terraform_data.app",
        "terraform_data.net",
    }

    # Change net's input (in place) and app's trigger (a replacement: new id, same address).
    main.write_text(backend_block(xcf_server.state_url(project, stack)) + config("v2", "t2"))
    proc = terraform(work, "apply", "-auto-approve", "-input=false", password=xcf_server.token)
    assert proc.returncode == 0, output_of(proc)

    def version_2_events() -> list[dict[str, Any]]:
        items = api.get("/api/v1/events", params={"project": project, "stack": stack}).json()["items"]
        return [e for e in items if e["state_version"] >= 2]

    later = wait_for(version_2_events, "the second apply's events")
    by_addr = {e["addr"]: e for e in later}
    assert by_addr["terraform_data.net"]["action"] == "update"
    assert {"op": "replace", "path": "/attributes/input/value", "value": "v2"} in by_addr[
        "terraform_data.net"
    ]["patch_json"]
    app_ops = {op["path"] for op in by_addr["terraform_data.app"]["patch_json"]}
    assert "/attributes/triggers_replace/value/0" in app_ops and "/attributes/id" in app_ops
    history = api.get(f"/api/v1/resources/{app}/history").json()["items"]
    assert [h["action"] for h in history] == ["update", "create"]
