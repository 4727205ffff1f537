"""Provider settings of a workspace: checked on write, written as providers.tf for resource-level runs."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.workspaces.conftest import API, make_workspace, targz, upload
from tests.workspaces.resources_helpers import add
from tests.workspaces.test_run_inputs import inputs_of
from xcloudflow.db import Database

PROVIDERS = """terraform {
  required_providers {
    aws = { source = "hashicorp/aws" }
  }
}

provider "aws" {
  region = var.region
}
"""


def test_providers_go_to_resource_level_runs_only(admin: TestClient, db: Database) -> None:
    out = make_workspace(admin, providers_hcl=PROVIDERS)
    assert out["providers_hcl"] == PROVIDERS
    add(admin, "terraform_data.web")
    assert inputs_of(admin, db).files["providers.tf"] == PROVIDERS

    upload(admin, targz({"main.tf": 'resource "terraform_data" "x" {}\n'}))
    assert "providers.tf" not in inputs_of(admin, db).files  # uploaded code configures its own providers

    resp = admin.patch(f"{API}/shop/dev", json={"providers_hcl": None})
    assert resp.status_code == 200 and resp.json()["providers_hcl"] is None


def test_provider_settings_hold_only_provider_and_terraform_blocks(admin: TestClient) -> None:
    for bad, why in (
        ('resource "terraform_data" "x" {}\n', "a resource block"),
        ("region = 1\n", "top-level argument"),
        ("provider {\n}\n", "label"),
        ('provider "aws" {\n', "syntax error"),
    ):
        resp = admin.post(API, json={"project": "shop", "name": "bad", "providers_hcl": bad})
        assert resp.status_code == 400, resp.text
        message = resp.json()["error"]["message"]
        assert message.startswith("providers_hcl:") and why in message, message
    make_workspace(admin)
    resp = admin.patch(f"{API}/shop/dev", json={"providers_hcl": "locals {\n  a = 1\n}\n"})
    assert resp.status_code == 400 and "a locals block" in resp.json()["error"]["message"]
