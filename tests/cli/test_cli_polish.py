"""The first hour with `xcf`, through the real CLI against a real server (uvicorn in a thread):
pure-HCL backend config, version and identity, outputs, positional unlock, ID prefixes, full IDs in
tables, one-line errors without tracebacks, refused empty secrets and consistent options.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import hcl2
import pytest
import typer
from click.testing import Result
from typer.testing import CliRunner

from tests.conftest import ADMIN_TOKEN
from tests.factories import body, tf_state
from xcloudflow import __version__
from xcloudflow.cli.client import resolve_prefix
from xcloudflow.cli.main import app

runner = CliRunner()
ADDR = "acme/shop/prod/app"


def xcf(server: str, *args: str, token: str = ADMIN_TOKEN, input: str | None = None) -> Result:
    return runner.invoke(app, ["--server", server, "--token", token, *args], input=input)


def one_error_line(result: Result) -> str:
    """stderr holds exactly one line, an `error:` one, and no traceback escaped."""
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def _push(server: str, tmp_path: Path, project: str, stack: str, **state: object) -> None:
    path = tmp_path / f"{project}-{stack}.tfstate"
    path.write_bytes(body(tf_state(**state)))  # type: ignore[arg-type]
    result = xcf(server, "state", "push", str(path), "-p", project, "-s", stack)
    assert result.exit_code == 0, result.output


# ---------------------------------------------------------------- backend config, version, whoami


def test_backend_config_prints_pure_hcl_and_the_password_line_apart(live_server: str) -> None:
    result = xcf(live_server, "backend-config", "-p", "net", "-s", "prod")
    assert result.exit_code == 0, result.output
    parsed = hcl2.loads(result.stdout)  # what `> backend.tf` writes must be valid HCL
    http = parsed["terraform"][0]["backend"][0]['"http"']
    assert http["address"] == f'"{live_server}/terraform/state/net/prod"' and http["lock_method"] == '"LOCK"'
    assert set(parsed) == {"terraform"}
    assert "export" not in result.stdout
    assert 'export TF_HTTP_PASSWORD="$XCF_TOKEN"' in result.stderr  # the hint, for people
    env = xcf(live_server, "backend-config", "-p", "net", "-s", "prod", "--env")
    assert env.exit_code == 0 and env.stdout == 'export TF_HTTP_PASSWORD="$XCF_TOKEN"\n'


def test_version_and_whoami(live_server: str) -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout == f"xcf {__version__}\n"
    result = xcf(live_server, "whoami")
    assert result.exit_code == 0, result.output
    assert "admin (admin) in organization" in result.stdout and live_server in result.stdout
    me = json.loads(xcf(live_server, "whoami", "-o", "json").stdout)
    assert me["user"] == "admin" and me["role"] == "admin" and me["server"] == live_server
    result = xcf(live_server, "whoami", token="xcf_nope")
    assert result.exit_code == 1 and "401" in one_error_line(result)


def test_a_missing_token_names_the_variable_and_the_option(
    live_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("XCF_TOKEN", raising=False)
    result = runner.invoke(app, ["--server", live_server, "whoami"])
    assert result.exit_code == 2
    assert "set XCF_TOKEN or pass --token" in one_error_line(result)


# ---------------------------------------------------------------- state outputs and unlock


def test_state_outputs_like_terraform_output(live_server: str, tmp_path: Path) -> None:
    outputs = {
        "greeting": {"value": "hello", "type": "string"},
        "ports": {"value": [80, 443], "type": ["list", "number"]},
        "password": {"value": "s3cret", "type": "string", "sensitive": True},
    }
    _push(live_server, tmp_path, "net", "out", outputs=outputs)
    result = xcf(live_server, "state", "outputs", "-p", "net", "-s", "out")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        'greeting = "hello"',
        "password = <sensitive>",
        "ports = [80, 443]",
    ]
    assert xcf(live_server, "state", "outputs", "greeting", "-p", "net", "-s", "out").stdout == '"hello"\n'
    raw = xcf(live_server, "state", "outputs", "greeting", "--raw", "-p", "net", "-s", "out")
    assert raw.stdout == "hello\n"
    secret = xcf(live_server, "state", "outputs", "password", "--raw", "-p", "net", "-s", "out")
    assert secret.stdout == "s3cret\n"  # by name, for a writer (the admin)
    data = json.loads(xcf(live_server, "state", "outputs", "-p", "net", "-s", "out", "-o", "json").stdout)
    assert data["version"] == 1 and data["outputs"]["ports"]["value"] == [80, 443]
    missing = xcf(live_server, "state", "outputs", "nope", "-p", "net", "-s", "out")
    assert missing.exit_code == 1
    assert "no output nope" in one_error_line(missing) and "greeting, password, ports" in missing.stderr


def test_state_unlock_takes_the_lock_id_as_terraform_force_unlock_does(
    live_server: str, tmp_path: Path
) -> None:
    _push(live_server, tmp_path, "net", "lk")
    lock_id = xcf(live_server, "state", "lock", "-p", "net", "-s", "lk").stdout.strip()
    wrong = xcf(
        live_server, "state", "unlock", "00000000-0000-0000-0000-000000000000", "-p", "net", "-s", "lk"
    )
    assert wrong.exit_code == 1 and "409" in one_error_line(wrong)
    result = xcf(live_server, "state", "unlock", lock_id, "-p", "net", "-s", "lk")
    assert result.exit_code == 0 and result.stdout == "unlocked\n", result.output
    shown = json.loads(xcf(live_server, "state", "show", "-p", "net", "-s", "lk", "-o", "json").stdout)
    assert shown["lock"] is None
    usage = xcf(live_server, "state", "unlock", "-p", "net", "-s", "lk")
    assert usage.exit_code == 2 and "LOCK_ID" in usage.stderr


# ---------------------------------------------------------------- IDs: prefixes and full width


def test_resource_ids_are_shown_whole_and_taken_by_prefix(live_server: str, tmp_path: Path) -> None:
    _push(live_server, tmp_path, "apps", "dev", resources={"a": "x", "b": "y"})
    items = json.loads(xcf(live_server, "inventory", "list", "--project", "apps", "-o", "json").stdout)
    uids = [i["stable_uid"] for i in items]
    table = xcf(live_server, "inventory", "list", "--project", "apps")
    assert table.exit_code == 0
    assert all(uid in table.stdout for uid in uids), table.stdout  # whole, never cut to fit
    for uid in uids:
        result = xcf(live_server, "inventory", "show", uid[:8], "-o", "json")
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["stable_uid"] == uid
        history = xcf(live_server, "inventory", "history", uid[:8], "-o", "json")
        assert history.exit_code == 0 and json.loads(history.stdout)[0]["stable_uid"] == uid
    unknown = xcf(live_server, "inventory", "show", "ffffffff")
    assert unknown.exit_code == 1 and "no resource has an ID starting with ffffffff" in one_error_line(
        unknown
    )
    short = xcf(live_server, "inventory", "show", "ab")
    assert short.exit_code == 2 and "at least 4" in one_error_line(short)


def test_an_ambiguous_prefix_lists_the_candidates() -> None:
    ids = ["abcd0000-0000-0000-0000-000000000001", "abcd0000-0000-0000-0000-000000000002", "ffff0000-1"]
    assert resolve_prefix("ABCD0000-0000-0000-0000-000000000002", "run", ids) == (
        "ABCD0000-0000-0000-0000-000000000002"  # a full ID is taken as is
    )
    assert resolve_prefix("ffff", "run", ids) == "ffff0000-1"
    with pytest.raises(typer.Exit) as exc:
        resolve_prefix("abcd", "run", ids)
    assert exc.value.exit_code == 1


def test_an_ambiguous_prefix_error_names_every_candidate(capsys: pytest.CaptureFixture[str]) -> None:
    ids = [f"abcd{i:04x}-0000-0000-0000-000000000000" for i in range(12)]
    with pytest.raises(typer.Exit):
        resolve_prefix("abcd", "ChangeSet", ids)
    said = capsys.readouterr().err
    assert said.startswith("error: ChangeSet ID prefix abcd is ambiguous: abcd0000-") and "and 2 more" in said
    assert said.count("\n") == 1


def _queued_plan(live_server: str, tmp_path: Path, address: str) -> str:
    """A workspace with one resource and a plan run that stays queued (no agent): the run's ID."""
    assert xcf(live_server, "workspace", "create", address).exit_code == 0
    root = tmp_path / "config"
    root.mkdir()
    (root / "main.tf").write_text('resource "terraform_data" "one" {\n  input = "x"\n}\n')
    assert xcf(live_server, "workspace", "upload", address, str(root)).exit_code == 0
    started = xcf(live_server, "run", "plan", address, "--no-wait")
    assert started.exit_code == 0, started.output
    return started.stdout.strip()


def test_run_ids_are_taken_by_prefix(live_server: str, tmp_path: Path) -> None:
    run_id = _queued_plan(live_server, tmp_path, "net/prefix")
    assert re.fullmatch(r"[0-9a-f-]{36}", run_id), run_id
    shown = xcf(live_server, "run", "show", run_id[:8], "-o", "json")
    assert shown.exit_code == 0 and json.loads(shown.stdout)["id"] == run_id, shown.output
    canceled = xcf(live_server, "run", "cancel", run_id[:8], "-o", "json")
    assert canceled.exit_code == 0 and json.loads(canceled.stdout)["stage"] == "canceled", canceled.output
    listed = xcf(live_server, "run", "list")
    assert run_id in listed.stdout


def test_job_ids_are_taken_by_prefix(live_server: str, tmp_path: Path) -> None:
    _queued_plan(live_server, tmp_path, "net/jobs")  # its plan job stays queued
    jobs = json.loads(xcf(live_server, "job", "list", "-o", "json").stdout)
    job_id = next(j["id"] for j in jobs if j["status"] == "queued")
    shown = xcf(live_server, "job", "show", job_id[:8], "-o", "json")
    assert shown.exit_code == 0 and json.loads(shown.stdout)["id"] == job_id, shown.output
    canceled = xcf(live_server, "job", "cancel", job_id[:8], "-o", "json")
    assert canceled.exit_code == 0, canceled.output
    assert json.loads(canceled.stdout)["status"] == "canceled"
    unknown = xcf(live_server, "job", "show", "0000abcd")
    assert unknown.exit_code == 1 and "no job has an ID starting with 0000abcd" in unknown.output


# ---------------------------------------------------------------- errors: one line, no traceback


def test_a_missing_content_file_is_one_line(live_server: str, tmp_path: Path) -> None:
    missing = tmp_path / "missing.toml"
    result = xcf(live_server, "conflux", "publish", ADDR, str(missing), "--format", "toml")
    assert result.exit_code == 1
    assert one_error_line(result) == f"error: content file {missing}: no such file"
    result = xcf(live_server, "conflux", "publish", ADDR, str(tmp_path), "--format", "toml")
    assert result.exit_code == 1 and "is a directory" in one_error_line(result)


def test_bad_policy_yaml_is_one_line_with_its_place(live_server: str, tmp_path: Path) -> None:
    content = tmp_path / "app.yaml"
    content.write_text("a: 1\n")
    assert (
        xcf(live_server, "conflux", "publish", ADDR, str(content), "--format", "yaml", "--stable").exit_code
        == 0
    )
    bad = tmp_path / "policy.yaml"
    bad.write_text("rules:\n  - name: canary\n    labels: {zone: [a\n")
    result = xcf(live_server, "conflux", "policy", ADDR, "-f", str(bad))
    assert result.exit_code == 1
    line = one_error_line(result)
    assert line.startswith(f"error: policy file {bad}:") and "not valid YAML or JSON" in line
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("just text\n")
    result = xcf(live_server, "conflux", "policy", ADDR, "--file", str(scalar))
    assert result.exit_code == 1 and "expected" in one_error_line(result)
    gone = xcf(live_server, "conflux", "policy", ADDR, "-f", str(tmp_path / "nope.yaml"))
    assert gone.exit_code == 1 and "no such file" in one_error_line(gone)


def test_a_long_error_is_printed_once_and_never_wrapped(live_server: str) -> None:
    project = "a-project-with-a-rather-long-name-" + "x" * 40
    result = xcf(live_server, "state", "versions", "-p", project, "-s", "stack-with-a-long-name")
    assert result.exit_code == 1
    line = one_error_line(result)  # one line although far wider than the 80 columns of the runner
    assert len(line) > 80 and f"terraform/{project}/stack-with-a-long-name" in line
    assert result.stderr.count(project) == 2  # the message and the request, once each


# ---------------------------------------------------------------- sensitive values from stdin


def test_empty_stdin_for_a_sensitive_value_is_refused(live_server: str) -> None:
    assert xcf(live_server, "workspace", "create", "net/secret").exit_code == 0
    result = xcf(live_server, "workspace", "vars", "set", "net/secret", "token", "-", "--sensitive", input="")
    assert result.exit_code == 2 and "gave no value for sensitive variable token" in one_error_line(result)
    listed = json.loads(xcf(live_server, "workspace", "vars", "list", "net/secret", "-o", "json").stdout)
    assert listed == []  # nothing stored
    ok = xcf(
        live_server, "workspace", "vars", "set", "net/secret", "token", "-", "--sensitive", input="t0k\n"
    )
    assert ok.exit_code == 0, ok.output
    result = xcf(live_server, "secret", "set", "db", "password", input="\n")
    assert result.exit_code == 2 and "no value given for key password" in result.stderr
    result = xcf(live_server, "secret", "set", "db", "password", input="")  # end of input
    assert result.exit_code == 1 and "Aborted" in result.output
    assert "db" not in xcf(live_server, "secret", "list", "-o", "json").stdout


# ---------------------------------------------------------------- options: -o json, -f, --help


def _commands() -> list[tuple[str, typer.main.TyperCommand]]:
    root = typer.main.get_command(app)
    found: list[tuple[str, typer.main.TyperCommand]] = []

    def walk(command: object, path: list[str]) -> None:
        subs = getattr(command, "commands", None)
        if subs is None:
            found.append((" ".join(path), command))  # type: ignore[arg-type]
            return
        for name, sub in subs.items():
            walk(sub, [*path, name])

    walk(root, [])
    return found


# Commands that print no result object: they stream, write raw bytes, run a process or the server.
NO_JSON = {
    "server": "runs the server",
    "agent": "runs an agent",
    "terraform": "runs Terraform",
    "backend-config": "prints HCL",
    "state pull": "prints the state's bytes",
    "state export": "prints the state's bytes",
    "pulumi pull": "runs the pulumi CLI",
    "pulumi push": "runs the pulumi CLI",
    "db upgrade": "database migration, on the server's machine",
    "db current": "database migration, on the server's machine",
    "keys rotate": "on the server's machine",
    "keys status": "on the server's machine",
    "org create": "on the server's machine",
    "inventory rebuild": "on the server's machine",
    "inventory worker": "runs a worker",
    "run logs": "streams a log",
    "job logs": "streams a log",
    "conflux watch": "streams changes",
    "conflux diff": "prints a unified diff",
    "compose schema": "prints a JSON Schema (JSON already)",
    "provider install": "prints a CLI configuration block",
}


def test_every_command_that_prints_a_result_takes_output_json() -> None:
    missing = []
    for path, command in _commands():
        options = {o for p in command.params if p.param_type_name == "option" for o in p.opts}
        if path not in NO_JSON and "--output" not in options:
            missing.append(path)
        if "--output" in options:
            assert "-o" in options, path
    assert missing == []


def test_short_f_always_means_file() -> None:
    for path, command in _commands():
        for param in command.params:
            if "-f" in param.opts:
                assert "--file" in param.opts, f"xcf {path}: -f is {param.opts}"


def test_every_help_renders() -> None:
    for path, _ in _commands():
        if path == "terraform":
            continue  # --help goes to Terraform (tests/cli/test_terraform_cli.py)
        result = runner.invoke(app, [*path.split(), "--help"])
        assert result.exit_code == 0 and "Usage:" in result.output, (path, result.output)


def test_a_changeset_error_is_printed_once(capsys: pytest.CaptureFixture[str]) -> None:
    """A failed plan: the ChangeSet's error quotes its node's; the node's row does not repeat it."""
    from xcloudflow.cli.changeset_cmd import _show

    error = "Error: Invalid value for variable cidr in modules/network/main.tf line 3 (a long message)"
    cs = {
        "id": "0b7f6d2e-5c1a-4f4e-9d7b-2a1c3e4f5a6b",
        "kind": "apply",
        "environment": "dev",
        "commit": "a" * 40,
        "status": "failed",
        "summary": None,
        "error": f"planning failed: network/network: {error}",
        "nodes": [
            {"key": "network/network", "engine": "terraform", "layer": "foundation", "status": "failed"}
            | {"plan": None, "policy": [], "error": error, "waiting_for": None},
            {"key": "web/web", "engine": "terraform", "layer": "application", "status": "skipped"}
            | {"plan": None, "policy": [], "error": "network/network failed", "waiting_for": None},
        ],
    }
    _show(None, cs, "table")  # type: ignore[arg-type]
    said = capsys.readouterr()
    assert (said.out + said.err).count("Invalid value for variable cidr") == 1
    assert "network/network failed" in said.out  # an error of its own stays in its row
    assert said.err.strip() == cs["error"]  # one line, not wrapped
