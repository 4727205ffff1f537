"""The README's first steps, run as written: its shell blocks are extracted from README.md and run with
bash against a real `xcf server`, with no `terraform` on PATH (the README falls back on the embedded
Terraform of `xcf terraform`), and its compose sequence through the real CLI.

The commands are never retyped here: a change to the README is what these tests run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.e2e.compose_helpers import commit, env_name, make_repo, only, user_client
from tests.e2e.conftest import TF_TIMEOUT, XcfServer, _clean_env

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
FENCE = re.compile(r"^```sh\n(.*?)^```", re.MULTILINE | re.DOTALL)


def readme_block(containing: str) -> str:
    """The one ```sh block of README.md that contains `containing`."""
    blocks = [b for b in FENCE.findall((ROOT / "README.md").read_text()) if containing in b]
    assert len(blocks) == 1, f"expected one sh block of README.md with {containing!r}, found {len(blocks)}"
    return blocks[0]


def _path_without_terraform() -> str:
    dirs = [d for d in os.environ.get("PATH", "/usr/bin:/bin").split(os.pathsep) if d]
    return os.pathsep.join(d for d in dirs if not (Path(d) / "terraform").exists())


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A directory that looks like the README's: a checkout whose `.venv/bin/xcf` is this code's CLI."""
    root = tmp_path / "checkout"
    venv_bin = root / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    xcf = venv_bin / "xcf"
    xcf.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m xcloudflow "$@"\n')
    xcf.chmod(0o755)
    return root


def test_the_readme_terraform_step_works_as_written(xcf_server: XcfServer, checkout: Path) -> None:
    script = readme_block("backend-config")
    home = checkout.parent / "home"
    home.mkdir()
    env = _clean_env() | {
        "XCF_SERVER": xcf_server.base_url,
        "XCF_TOKEN": xcf_server.token,
        "HOME": str(home),  # `xcf terraform` writes its CLI configuration there
        "PATH": _path_without_terraform(),
        "NO_COLOR": "1",
    }
    assert shutil.which("terraform", path=env["PATH"]) is None
    proc = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", script],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        timeout=3 * TF_TIMEOUT,
        check=False,
    )
    said = f"--- script ---\n{script}\n--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"
    assert proc.returncode == 0, said
    # The README's project/stack hold the state Terraform wrote, and its last commands showed it.
    match = re.search(r"--project (\S+) --stack (\S+)", script)
    assert match, script
    project, stack = match.groups()
    head = xcf_server.stack(project, stack)
    assert head is not None and head["head_version"] >= 1, said
    state = json.loads(xcf_server.version_content(project, stack, head["head_version"]))
    assert [r["type"] for r in state["resources"]] == ["terraform_data"], said
    assert "Apply complete!" in proc.stdout, said
    assert state["outputs"], said
    for name, out in state["outputs"].items():
        assert f"{name} = {json.dumps(out['value'])}" in proc.stdout, said  # `xcf state outputs`
    backend_tf = next(checkout.rglob("backend.tf")).read_text()
    assert "export" not in backend_tf and 'backend "http"' in backend_tf
    assert (home / ".xcf" / "terraform" / "terraform.rc").exists()  # the embedded Terraform ran


def test_the_readme_compose_sequence_plans_once(
    xcf_server: XcfServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """plan -> apply CHANGESET (the 8 characters the Markdown shows) -> approve --wait: one ChangeSet."""
    from xcloudflow.cli.main import app

    sequence = readme_block("compose plan")
    assert re.search(r"xcf compose plan .*-o markdown", sequence), sequence
    assert re.search(r"xcf compose apply CHANGESET", sequence), sequence  # the saved plan, no new one
    assert re.search(r"xcf compose approve CHANGESET .*--wait", sequence), sequence

    env = env_name()
    repo = make_repo(tmp_path, env=env)
    only(repo, env, "network")  # the Foundation: approval required, like the README's first deploy
    commit(repo, "foundation only")

    def xcf(*args: str, token: str = xcf_server.token) -> Any:
        return CliRunner().invoke(app, ["--server", xcf_server.base_url, "--token", token, *args])

    planned = xcf("compose", "plan", "--repo", str(repo), "--env", env, "-o", "markdown")
    assert planned.exit_code == 2, planned.output
    match = re.search(r"ChangeSet `([0-9a-f]{8})`", planned.stdout)
    assert match, planned.stdout
    short = match.group(1)
    waiting = xcf("compose", "apply", short, "-o", "json")
    assert waiting.exit_code == 2, waiting.output  # the Foundation waits for an approver
    cs = json.loads(waiting.stdout)
    assert cs["id"].startswith(short) and cs["apply_requested"]
    listed = xcf("compose", "list", "--env", env, "-o", "json")
    assert [c["id"] for c in json.loads(listed.stdout)] == [cs["id"]]  # planned once

    with xcf_server.client() as api, user_client(api, xcf_server.base_url, "alice", "writer") as alice:
        alice_token = alice.headers["Authorization"].removeprefix("Bearer ")
        approved = xcf(
            "compose", "approve", short, "--reason", "first deploy", "--wait", "-o", "json", token=alice_token
        )
    assert approved.exit_code == 0, approved.output
    assert json.loads(approved.stdout)["status"] == "applied"
    status = xcf("compose", "status", "--env", env, "-o", "json")
    assert status.exit_code == 0, status.output
    assert [(t["node"], t["changeset"]) for t in json.loads(status.stdout)] == [("network/network", cs["id"])]

    # The rollback's summary counts the nodes it returns: the one node this ChangeSet changed.
    rolled = xcf("compose", "rollback", short, "--reason", "readme")
    assert rolled.exit_code == 0, rolled.output
    assert f"rolls back 1 node(s) of changeset {cs['id']}" in rolled.stdout, rolled.output
