"""`xcf workspace ...` against a real server over HTTP: workspaces, code uploads, variables."""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from tests.conftest import ADMIN_TOKEN
from xcloudflow.cli.main import app
from xcloudflow.cli.workspace_cmd import PackError, pack_directory

runner = CliRunner()
SECRET = "hunter2-do-not-print"


def xcf(server: str, *args: str, token: str = ADMIN_TOKEN, input: str | None = None) -> Result:
    return runner.invoke(app, ["--server", server, "--token", token, *args], input=input)


def said(result: Result) -> str:
    """stdout and stderr with Rich's line wrapping undone."""
    return " ".join(result.output.split())


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    root = tmp_path / "config"
    (root / "modules" / "net").mkdir(parents=True)
    (root / "main.tf").write_text('resource "terraform_data" "one" {\n  input = "a"\n}\n')
    (root / "modules" / "net" / "main.tf").write_text("# a module\n")
    (root / "run.sh").write_text("#!/bin/sh\n")
    (root / "run.sh").chmod(0o755)
    os.symlink("main.tf", root / "alias.tf")  # inside: packed as a regular file
    for junk in (".terraform/providers/x", ".git/HEAD", "terraform.tfstate", "terraform.tfstate.d/dev/s"):
        (root / junk).parent.mkdir(parents=True, exist_ok=True)
        (root / junk).write_text("junk")
    (root / "terraform.tfstate.backup").write_text("{}")
    return root


def test_pack_directory_is_reproducible_and_skips_local_files(config_dir: Path) -> None:
    data, files, skipped = pack_directory(config_dir)
    assert files == ["alias.tf", "main.tf", "modules/net/main.tf", "run.sh"]
    assert sorted(skipped) == [
        ".git/",
        ".terraform/",
        "terraform.tfstate",
        "terraform.tfstate.backup",
        "terraform.tfstate.d/",
    ]
    assert pack_directory(config_dir)[0] == data  # same directory, same bytes (same checksum)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        members = {m.name: m for m in tar}
    assert all(m.isfile() or m.isdir() for m in members.values())
    assert members["run.sh"].mode == 0o755 and members["main.tf"].mode == 0o644
    assert members["alias.tf"].size == (config_dir / "main.tf").stat().st_size


def test_pack_directory_refuses_links_out_and_loops(tmp_path: Path) -> None:
    root = tmp_path / "config"
    root.mkdir()
    (tmp_path / "secret.tf").write_text("outside")
    os.symlink("../secret.tf", root / "escape.tf")
    with pytest.raises(PackError, match=r"escape\.tf is a symlink to '\.\./secret\.tf', outside"):
        pack_directory(root)
    (root / "escape.tf").unlink()
    os.symlink("nowhere.tf", root / "dangling.tf")
    with pytest.raises(PackError, match="does not exist"):
        pack_directory(root)
    (root / "dangling.tf").unlink()
    (root / "sub").mkdir()
    os.symlink("..", root / "sub" / "up")
    with pytest.raises(PackError, match="its own parent"):
        pack_directory(root)


def test_workspace_lifecycle(live_server: str) -> None:
    result = xcf(
        live_server,
        "workspace",
        "create",
        "net/prod",
        "--tag",
        "team-a",
        "--tag",
        "prod",
        "--description",
        "the network",
        "--drift-interval",
        "60",
        "-o",
        "json",
    )
    assert result.exit_code == 0, result.output
    created = json.loads(result.stdout)
    assert (created["project"], created["name"], created["agent_pool"]) == ("net", "prod", "embedded")
    assert created["tags"] == ["prod", "team-a"] or sorted(created["tags"]) == ["prod", "team-a"]
    assert created["drift_interval_minutes"] == 60 and created["source"] == "empty"
    result = xcf(live_server, "workspace", "create", "apps/dev", "--auto-apply", "--working-dir", "envs/dev")
    assert result.exit_code == 0 and "created workspace apps/dev" in said(result)

    result = xcf(live_server, "workspace", "list", "-o", "json")
    assert sorted(w["project"] + "/" + w["name"] for w in json.loads(result.stdout)) == [
        "apps/dev",
        "net/prod",
    ]
    result = xcf(live_server, "workspace", "list", "--tag", "team-a", "-o", "json")
    assert [w["name"] for w in json.loads(result.stdout)] == ["prod"]
    result = xcf(live_server, "workspace", "list", "--project", "apps")
    assert result.exit_code == 0 and "dev" in said(result) and "prod" not in said(result)
    result = xcf(live_server, "workspace", "show", "apps/dev", "-o", "json")
    shown = json.loads(result.stdout)
    assert shown["auto_apply"] is True and shown["working_directory"] == "envs/dev"
    result = xcf(live_server, "workspace", "show", "apps/dev")
    assert result.exit_code == 0 and "working_directory" in said(result) and "envs/dev" in said(result)

    result = xcf(live_server, "workspace", "lock", "net/prod", "--reason", "maintenance")
    assert result.exit_code == 0 and "locked net/prod: maintenance" in said(result)
    result = xcf(live_server, "workspace", "lock", "net/prod")
    assert result.exit_code == 1 and "409" in said(result) and "already locked" in said(result)
    assert json.loads(xcf(live_server, "workspace", "show", "net/prod", "-o", "json").stdout)["locked"]
    assert xcf(live_server, "workspace", "unlock", "net/prod").exit_code == 0

    result = xcf(live_server, "workspace", "delete", "apps/dev", input="n\n")
    assert result.exit_code == 1  # declined: nothing deleted
    assert xcf(live_server, "workspace", "show", "apps/dev").exit_code == 0
    result = xcf(live_server, "workspace", "delete", "apps/dev", "--yes")
    assert result.exit_code == 0 and "deleted workspace apps/dev" in said(result)
    result = xcf(live_server, "workspace", "show", "apps/dev")
    assert result.exit_code == 1 and "404" in said(result)


def test_workspace_errors(live_server: str) -> None:
    result = xcf(live_server, "workspace", "show", "no-slash")
    assert result.exit_code == 2 and "PROJECT/NAME" in said(result)
    result = xcf(live_server, "workspace", "create", "net/bad name")
    assert result.exit_code == 1 and "422" in said(result)
    assert xcf(live_server, "workspace", "create", "net/prod").exit_code == 0
    result = xcf(live_server, "workspace", "create", "net/prod")
    assert result.exit_code == 1 and "409" in said(result) and "net/prod" in said(result)
    result = xcf(live_server, "workspace", "list", token="xcf_nope")
    assert result.exit_code == 1 and "401" in said(result)


def test_create_with_provider_settings_from_a_file(live_server: str, tmp_path: Path) -> None:
    good = tmp_path / "providers.tf"
    good.write_text('provider "aws" {\n  region = "eu-west-1"\n}\n')
    result = xcf(live_server, "workspace", "create", "net/res", "--providers-file", str(good), "-o", "json")
    assert result.exit_code == 0, said(result)
    assert json.loads(result.stdout)["providers_hcl"] == good.read_text()
    bad = tmp_path / "bad.tf"
    bad.write_text('resource "terraform_data" "x" {}\n')
    result = xcf(live_server, "workspace", "create", "net/bad", "--providers-file", str(bad))
    assert result.exit_code == 1 and "only provider and terraform blocks" in said(result)


def test_upload_versions_compare_rollback(live_server: str, config_dir: Path) -> None:
    assert xcf(live_server, "workspace", "create", "net/prod").exit_code == 0
    result = xcf(live_server, "workspace", "upload", "net/prod", str(config_dir), "-m", "first")
    assert result.exit_code == 0, result.output
    assert "code version 1 of net/prod: 4 files" in said(result) and "sha256 " in said(result)
    assert "skipped: .git/, .terraform/" in said(result)

    (config_dir / "main.tf").write_text('resource "terraform_data" "one" {\n  input = "b"\n}\n')
    (config_dir / "run.sh").unlink()
    (config_dir / "extra.tf").write_text("# new\n")
    result = xcf(live_server, "workspace", "upload", "net/prod", str(config_dir), "-o", "json")
    assert result.exit_code == 0, result.output
    version = json.loads(result.stdout)
    assert version["number"] == 2 and version["current"] is True and len(version["sha256"]) == 64
    assert {f["path"] for f in version["files"]} == {"alias.tf", "extra.tf", "main.tf", "modules/net/main.tf"}

    result = xcf(live_server, "workspace", "compare", "net/prod", "1", "2")
    assert result.exit_code == 0, result.output
    assert "+ extra.tf" in said(result) and "- run.sh" in said(result) and "~ main.tf" in said(result)
    assert '-  input = "a"' in result.output and '+  input = "b"' in result.output
    data = json.loads(xcf(live_server, "workspace", "compare", "net/prod", "1", "2", "-o", "json").stdout)
    assert data["from"] == 1 and data["to"] == 2 and data["added"] == ["extra.tf"]

    result = xcf(live_server, "workspace", "rollback", "net/prod", "1")
    assert result.exit_code == 0 and "code version 1 of net/prod is current" in said(result)
    versions = json.loads(xcf(live_server, "workspace", "versions", "net/prod", "-o", "json").stdout)
    assert [(v["number"], v["current"]) for v in versions] == [(2, False), (1, True)]
    result = xcf(live_server, "workspace", "versions", "net/prod")
    assert result.exit_code == 0 and "1 *" in said(result) and "first" in said(result)
    result = xcf(live_server, "workspace", "rollback", "net/prod", "9")
    assert result.exit_code == 1 and "404" in said(result)


def test_upload_refuses_a_symlink_out_of_the_directory(live_server: str, tmp_path: Path) -> None:
    assert xcf(live_server, "workspace", "create", "net/prod").exit_code == 0
    root = tmp_path / "config"
    root.mkdir()
    (root / "main.tf").write_text("# main\n")
    (tmp_path / "credentials").write_text("secret")
    os.symlink(tmp_path / "credentials", root / "creds.tf")
    result = xcf(live_server, "workspace", "upload", "net/prod", str(root))
    assert result.exit_code == 1
    assert "creds.tf is a symlink to" in said(result) and "refusing to upload it" in said(result)
    versions = json.loads(xcf(live_server, "workspace", "versions", "net/prod", "-o", "json").stdout)
    assert versions == []
    result = xcf(live_server, "workspace", "upload", "net/prod", str(tmp_path / "missing"))
    assert result.exit_code == 1 and "is not a directory" in said(result)


def test_variables(live_server: str) -> None:
    assert xcf(live_server, "workspace", "create", "net/prod").exit_code == 0
    result = xcf(live_server, "workspace", "vars", "set", "net/prod", "region", "eu-west-1")
    assert result.exit_code == 0 and "set terraform variable region of net/prod" in said(result)
    result = xcf(
        live_server,
        "workspace",
        "vars",
        "set",
        "net/prod",
        "password",
        "-",
        "--sensitive",
        input=SECRET + "\n",
    )
    assert result.exit_code == 0, result.output
    assert "(sensitive)" in said(result) and SECRET not in said(result)
    result = xcf(
        live_server,
        "workspace",
        "vars",
        "set",
        "net/prod",
        "TF_LOG",
        "info",
        "--env",
        "-o",
        "json",
    )
    assert json.loads(result.stdout)["category"] == "env"
    result = xcf(live_server, "workspace", "vars", "set", "net/prod", "zones", '["a", "b"]', "--hcl")
    assert result.exit_code == 0 and "(hcl)" in said(result)

    result = xcf(live_server, "workspace", "vars", "net/prod", "-o", "json")  # `vars P/N` = `vars list P/N`
    assert result.exit_code == 0, result.output
    variables = {(v["category"], v["key"]): v for v in json.loads(result.stdout)}
    assert set(variables) == {
        ("terraform", "region"),
        ("terraform", "password"),
        ("env", "TF_LOG"),
        ("terraform", "zones"),
    }
    assert variables[("terraform", "password")]["value"] is None
    assert variables[("terraform", "password")]["sensitive"] is True
    assert variables[("terraform", "zones")]["hcl"] is True
    result = xcf(live_server, "workspace", "vars", "list", "net/prod")
    assert result.exit_code == 0 and "(sensitive)" in said(result) and "eu-west-1" in said(result)
    assert SECRET not in said(result)

    result = xcf(live_server, "workspace", "vars", "delete", "net/prod", "TF_LOG", "--env")
    assert result.exit_code == 0 and "deleted env variable TF_LOG" in said(result)
    result = xcf(live_server, "workspace", "vars", "delete", "net/prod", "TF_LOG", "--env")
    assert result.exit_code == 1 and "404" in said(result)
    result = xcf(live_server, "workspace", "vars", "set", "net/prod", "bad key", "x")
    assert result.exit_code == 1 and ("400" in said(result) or "422" in said(result))
