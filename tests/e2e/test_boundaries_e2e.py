"""Boundaries of issue 11 through the real Terraform CLI and a real `xcf server`:

- a reader's token reads another stack's public outputs with `terraform_remote_state` (the backend
  serves it a state holding only those), never the raw state nor a sensitive output;
- a value Terraform does not mark sensitive but that equals a sensitive one (`terraform_data.output`
  copies a sensitive `input`) never reaches the inventory: events, history, current attributes, graph.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import TerraformRunner, XcfServer, output_of
from tests.e2e.test_inventory_e2e import wait_for
from tests.e2e.test_terraform_backend import Workspace, create_token

pytestmark = pytest.mark.e2e
SECRET = "s3cret-db-password-4711"

PRODUCER = f"""
variable "secret" {{
  type      = string
  sensitive = true
  default   = "{SECRET}"
}}

resource "terraform_data" "s" {{
  input = var.secret
}}

resource "terraform_data" "net" {{
  input = "vpc-42"
}}

output "vpc" {{
  value = terraform_data.net.output
}}

output "db_password" {{
  value     = terraform_data.s.output
  sensitive = true
}}
"""


def consumer(url: str, token: str, extra: str = "") -> str:
    return f"""
data "terraform_remote_state" "net" {{
  backend = "http"
  config = {{
    address  = "{url}"
    username = "reader"
    password = "{token}"
  }}
}}

output "vpc" {{
  value = data.terraform_remote_state.net.outputs.vpc
}}
{extra}
"""


@pytest.fixture
def producer(
    xcf_server: XcfServer, terraform: TerraformRunner, tmp_path: Path, names: tuple[str, str]
) -> Workspace:
    ws = Workspace(xcf_server, terraform, tmp_path / "producer", *names)
    ws.write(PRODUCER)
    ws.init()
    ws.apply()
    return ws


def test_terraform_remote_state_works_for_an_outputs_only_reader(
    xcf_server: XcfServer, terraform: TerraformRunner, tmp_path: Path, producer: Workspace
) -> None:
    token = create_token(xcf_server, "reader")
    raw = httpx.get(producer.url, auth=("e2e", token), timeout=30)
    assert raw.status_code == 200 and SECRET not in raw.text
    assert raw.headers["x-xcf-state"] == "outputs-only"

    work = tmp_path / "consumer"
    work.mkdir()
    (work / "main.tf").write_text(consumer(producer.url, token))
    for args in (
        ("init", "-input=false", "-no-color"),
        ("apply", "-auto-approve", "-input=false", "-no-color"),
    ):
        proc = terraform(work, *args)
        assert proc.returncode == 0, output_of(proc)
    shown = terraform(work, "output", "-raw", "vpc")
    assert shown.stdout == "vpc-42", output_of(shown)
    local = (work / "terraform.tfstate").read_text()
    assert SECRET not in local

    # A sensitive output is not in the reader's document: the plan fails naming it, with no value.
    (work / "main.tf").write_text(
        consumer(
            producer.url,
            token,
            'output "pw" {\n  value     = data.terraform_remote_state.net.outputs.db_password\n'
            "  sensitive = true\n}\n",
        )
    )
    denied = terraform(work, "plan", "-input=false", "-no-color")
    assert denied.returncode != 0
    assert "db_password" in output_of(denied) and SECRET not in output_of(denied)

    # The owner's token (state:read) still reads the raw state and the sensitive output.
    owner = producer.ok("output", "-raw", "db_password")
    assert owner.stdout == SECRET


def _texts(api: httpx.Client, uid: str, project: str, stack: str) -> list[str]:
    params = {"project": project, "stack": stack}
    return [
        api.get("/api/v1/events", params=params).text,
        api.get(f"/api/v1/resources/{uid}").text,
        api.get(f"/api/v1/resources/{uid}/history").text,
        api.get("/api/v1/resources", params=params).text,
        api.get(f"/api/v1/graph/blast-radius/{uid}").text,
        api.get("/api/v1/graph", params={"project": project, "stack": stack}).text,
    ]


def test_inventory_redacts_values_equal_to_a_sensitive_one(
    xcf_server: XcfServer, producer: Workspace
) -> None:
    api = xcf_server.client()
    params = {"project": producer.project, "stack": producer.stack}

    def resources() -> dict[str, dict[str, Any]]:
        items = api.get("/api/v1/resources", params=params).json()["items"]
        return {r["addr"]: r for r in items}

    found = wait_for(lambda: (r := resources()) and len(r) == 2 and r, "2 resources")
    state = json.loads(xcf_server.version_content(producer.project, producer.stack, 1))
    [s] = [r for r in state["resources"] if r["name"] == "s"]
    # What Terraform marks: only `input` (the premise of the finding).
    assert [p[0]["value"] for p in s["instances"][0]["sensitive_attributes"]] == ["input"]
    assert s["instances"][0]["attributes"]["output"] == {"value": SECRET, "type": "string"}

    uid = found["terraform_data.s"]["stable_uid"]
    for text in _texts(api, uid, producer.project, producer.stack):
        assert SECRET not in text, text
    attrs = api.get(f"/api/v1/resources/{uid}").json()["attrs"]
    assert attrs["input"].startswith("(sensitive:")  # marked by Terraform: the whole dynamic value
    assert attrs["output"]["value"].startswith("(sensitive:")  # the unmarked copy
    assert attrs["output"]["type"] == "string"
    net = api.get(f"/api/v1/resources/{found['terraform_data.net']['stable_uid']}").json()["attrs"]
    assert net["output"] == {"value": "vpc-42", "type": "string"}  # unrelated values stay readable
