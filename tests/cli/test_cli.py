"""The `xcf` CLI against a real server over HTTP."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import ADMIN_TOKEN
from tests.factories import body, pulumi_export, tf_state
from xcloudflow.cli.main import app

runner = CliRunner()


def xcf(server: str, *args: str, token: str = ADMIN_TOKEN) -> tuple[int, str]:
    result = runner.invoke(app, ["--server", server, "--token", token, *args])
    return result.exit_code, result.output


@pytest.fixture
def state_file(tmp_path: Path) -> Path:
    path = tmp_path / "terraform.tfstate"
    path.write_bytes(body(tf_state(serial=1, resources={"a": "x"})))
    return path


def test_state_lifecycle(live_server: str, state_file: Path, tmp_path: Path) -> None:
    code, out = xcf(live_server, "state", "push", str(state_file), "-p", "net", "-s", "prod")
    assert code == 0, out
    assert "version 1" in out
    state_file.write_bytes(body(tf_state(serial=2, resources={"a": "y", "b": "z"})))
    assert xcf(live_server, "state", "import", str(state_file), "-p", "net", "-s", "prod")[0] == 0
    code, out = xcf(live_server, "state", "list", "-o", "json")
    assert code == 0 and json.loads(out)[0]["head_version"] == 2
    code, out = xcf(live_server, "state", "versions", "-p", "net", "-s", "prod", "-o", "json")
    assert [v["version"] for v in json.loads(out)] == [2, 1]
    code, out = xcf(live_server, "state", "diff", "1", "2", "-p", "net", "-s", "prod")
    assert "+ terraform_data.b" in out and "~ terraform_data.a" in out
    pulled = tmp_path / "pulled.json"
    assert (
        xcf(live_server, "state", "pull", "-p", "net", "-s", "prod", "--version", "1", "--out", str(pulled))[
            0
        ]
        == 0
    )
    assert json.loads(pulled.read_bytes())["serial"] == 1
    code, out = xcf(live_server, "state", "rollback", "1", "-p", "net", "-s", "prod")
    assert code == 0 and "serial 3" in out
    code, out = xcf(live_server, "state", "export", "-p", "net", "-s", "prod")
    assert json.loads(out)["serial"] == 3
    assert xcf(live_server, "state", "delete", "-p", "net", "-s", "prod")[0] == 0
    code, out = xcf(live_server, "state", "pull", "-p", "net", "-s", "prod")
    assert code == 1 and "deleted" in out
    assert xcf(live_server, "state", "restore", "-p", "net", "-s", "prod")[0] == 0


def test_lock_unlock_and_show(live_server: str, state_file: Path) -> None:
    xcf(live_server, "state", "push", str(state_file), "-p", "net", "-s", "prod")
    code, lock_id = xcf(live_server, "state", "lock", "-p", "net", "-s", "prod", "--reason", "maintenance")
    assert code == 0
    code, out = xcf(live_server, "state", "show", "-p", "net", "-s", "prod")
    assert "locked by" in out and lock_id.strip() in out
    code, out = xcf(live_server, "state", "push", str(state_file), "-p", "net", "-s", "prod")
    assert code == 1 and "423" in out
    assert xcf(live_server, "state", "unlock", "-p", "net", "-s", "prod")[0] == 2
    assert (
        xcf(live_server, "state", "unlock", "-p", "net", "-s", "prod", "--lock-id", lock_id.strip())[0] == 0
    )
    xcf(live_server, "state", "lock", "-p", "net", "-s", "prod")
    assert xcf(live_server, "state", "unlock", "-p", "net", "-s", "prod", "--force")[0] == 0


def test_bad_input_messages(live_server: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"version": 4}')
    code, out = xcf(live_server, "state", "push", str(bad), "-p", "net", "-s", "prod")
    assert code == 1 and "serial" in out
    code, out = xcf(live_server, "state", "list", token="xcf_nope")
    assert code == 1 and "401" in out
    code, out = xcf("http://127.0.0.1:9", "state", "list")
    assert code == 1 and "cannot reach" in out


def test_users_and_tokens(live_server: str) -> None:
    code, out = xcf(live_server, "user", "create", "carol", "--role", "writer", "-o", "json")
    assert code == 0 and json.loads(out)["role"] == "writer"
    code, out = xcf(live_server, "token", "create", "--name", "ci", "--user", "carol", "-o", "json")
    token = json.loads(out)["token"]
    code, out = xcf(live_server, "user", "list", "-o", "json", token=token)
    assert code == 1 and "403" in out
    code, out = xcf(live_server, "token", "list", "-o", "json")
    ci = next(t for t in json.loads(out) if t["name"] == "ci")
    assert xcf(live_server, "token", "revoke", str(ci["id"]))[0] == 0
    assert xcf(live_server, "state", "list", token=token)[0] == 1


def test_pulumi_import_export_and_missing_cli(live_server: str, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    doc = tmp_path / "stack.json"
    doc.write_bytes(body(pulumi_export()))
    assert (
        xcf(live_server, "state", "import", "--tool", "pulumi", str(doc), "-p", "shop", "-s", "dev")[0] == 0
    )
    code, out = xcf(live_server, "state", "export", "--tool", "pulumi", "-p", "shop", "-s", "dev")
    assert out.encode() == doc.read_bytes()
    monkeypatch.setenv("PATH", str(tmp_path))  # no pulumi here
    code, out = xcf(live_server, "pulumi", "push", "-p", "shop", "-s", "dev", "--pulumi-stack", "dev")
    assert code == 1 and "pulumi CLI is not on PATH" in out


def test_backend_config(live_server: str) -> None:
    code, out = xcf(live_server, "backend-config", "-p", "net", "-s", "prod")
    assert code == 0
    assert f'address        = "{live_server}/terraform/state/net/prod"' in out
    assert 'lock_method    = "LOCK"' in out and "TF_HTTP_PASSWORD" in out


def test_help_is_fast_to_import() -> None:
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "xcloudflow", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    heavy = [
        line
        for line in out.stderr.splitlines()
        if line.rstrip().endswith(("| fastapi", "| sqlalchemy", "| uvicorn"))
    ]
    assert heavy == []


def test_org_create_server_side(settings, db, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("XCF_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("XCF_DATA_DIR", str(settings.data_dir))
    result = runner.invoke(app, ["org", "create", "team-b", "--admin", "bob"])
    assert result.exit_code == 0, result.output
    assert "xcf_" in result.output
    assert runner.invoke(app, ["org", "create", "team-b", "--admin", "bob"]).exit_code == 1
    assert runner.invoke(app, ["org", "create", "bad/name", "--admin", "bob"]).exit_code == 2
