"""`xcf run ...` against a real server with its embedded agent running the real (embedded) Terraform.

The configuration has one `terraform_data` resource, so no provider is downloaded. Exit codes are
those of `terraform plan -detailed-exitcode`: 0 no changes or applied, 2 changes pending, 1 failed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from tests.conftest import ADMIN_TOKEN
from tests.jobs.conftest import job_settings, serve
from xcloudflow.cli.main import app
from xcloudflow.db import Database
from xcloudflow.settings import Settings

runner = CliRunner()
RUN_ID = re.compile(r"started: ([0-9a-f-]{36})")
CONFIG = """
resource "terraform_data" "one" {
  input = "%s"
}
output "value" {
  value = terraform_data.one.output
}
"""


def xcf(server: str, *args: str, token: str = ADMIN_TOKEN, input: str | None = None) -> Result:
    return runner.invoke(app, ["--server", server, "--token", token, *args], input=input)


def said(result: Result) -> str:
    """stdout and stderr with Rich's line wrapping undone."""
    return " ".join(result.output.split())


def run_id(result: Result) -> str:
    found = RUN_ID.search(said(result))
    assert found, result.output
    return found.group(1)


@pytest.fixture
def agent_server(settings: Settings, db: Database) -> Iterator[str]:
    """The server with its embedded agent (leases long enough for Terraform's init)."""
    base, stop = serve(settings, job_settings(job_lease_seconds=30.0), embedded_agent=True)
    yield base
    stop()


def _workspace(server: str, tmp_path: Path, value: str, address: str = "net/prod") -> Path:
    assert xcf(server, "workspace", "create", address).exit_code == 0
    return _upload(server, tmp_path, value, address)


def _upload(server: str, tmp_path: Path, value: str, address: str = "net/prod") -> Path:
    root = tmp_path / "config"
    root.mkdir(exist_ok=True)
    (root / "main.tf").write_text(CONFIG % value)
    result = xcf(server, "workspace", "upload", address, str(root))
    assert result.exit_code == 0, result.output
    return root


def test_plan_confirm_then_no_changes(agent_server: str, tmp_path: Path) -> None:
    _workspace(agent_server, tmp_path, "a")
    result = xcf(agent_server, "run", "plan", "net/prod", "-m", "first")
    assert result.exit_code == 2, result.output
    first = run_id(result)
    assert "terraform_data.one will be created" in said(result)  # the streamed log
    assert "planned: 1 to add, 0 to change, 0 to destroy" in said(result)
    assert f"xcf run confirm {first}" in said(result)

    result = xcf(agent_server, "run", "confirm", first)
    assert result.exit_code == 0, result.output
    assert "applied: 1 to add" in said(result) and 'value = "a"' in said(result)
    assert "terraform_data.one will be created" not in said(result)  # only the apply's log

    result = xcf(agent_server, "run", "plan", "net/prod", "-o", "json")
    assert result.exit_code == 0, result.output
    run = json.loads(result.stdout)  # stdout holds only the run; the log went to stderr
    assert run["stage"] == "planned_and_finished" and run["has_changes"] is False
    assert run["workspace"] == "net/prod" and run["kind"] == "plan" and run["number"] == 2
    assert "No changes" in result.stderr

    result = xcf(agent_server, "run", "logs", first)
    assert result.exit_code == 0 and "terraform_data.one will be created" in said(result)
    assert "Apply complete!" in said(result)
    result = xcf(agent_server, "run", "logs", first, "--follow")  # a finished run: prints and ends
    assert result.exit_code == 0 and "Apply complete!" in said(result)

    result = xcf(agent_server, "run", "show", first, "-o", "json")
    shown = json.loads(result.stdout)
    assert shown["stage"] == "applied" and shown["message"] == "first"
    assert shown["summary"]["add"] == 1 and shown["outputs"]["value"]["value"] == "a"
    assert [t["to"] for t in shown["transitions"]][-1] == "applied"
    result = xcf(agent_server, "run", "show", first)
    assert result.exit_code == 0 and "planned -> confirmed" in said(result)

    runs = json.loads(xcf(agent_server, "run", "list", "net/prod", "-o", "json").stdout)
    assert [(r["number"], r["stage"]) for r in runs] == [(2, "planned_and_finished"), (1, "applied")]
    runs = json.loads(xcf(agent_server, "run", "list", "--stage", "applied", "-o", "json").stdout)
    assert [r["id"] for r in runs] == [first]
    result = xcf(agent_server, "run", "list")
    assert result.exit_code == 0 and first in result.output


def test_apply_asks_then_auto_approve(agent_server: str, tmp_path: Path) -> None:
    _workspace(agent_server, tmp_path, "a")
    result = xcf(agent_server, "run", "apply", "net/prod")  # stdin is no terminal: cannot ask
    assert result.exit_code == 2, result.output
    waiting = run_id(result)
    assert f"xcf run confirm {waiting}" in said(result)
    result = xcf(agent_server, "run", "discard", waiting, "-o", "json")
    assert result.exit_code == 0 and json.loads(result.stdout)["stage"] == "discarded"
    result = xcf(agent_server, "run", "confirm", waiting)
    assert result.exit_code == 1 and "409" in said(result) and "discarded" in said(result)

    result = xcf(agent_server, "run", "apply", "net/prod", "--auto-approve", "-o", "json")
    assert result.exit_code == 0, result.output
    run = json.loads(result.stdout)
    assert run["stage"] == "applied" and run["confirmed_by"] and run["outputs"]["value"]["value"] == "a"
    assert "Apply complete!" in result.stderr


def test_failures_exit_1_with_the_message(agent_server: str, tmp_path: Path) -> None:
    assert xcf(agent_server, "workspace", "create", "net/empty").exit_code == 0
    result = xcf(agent_server, "run", "plan", "net/empty")
    assert result.exit_code == 1, result.output
    assert "errored" in said(result) and "upload a code version" in said(result)

    result = xcf(agent_server, "run", "plan", "net/empty", "--no-wait", "-o", "json")
    assert result.exit_code == 0 and json.loads(result.stdout)["kind"] == "plan"
    result = xcf(agent_server, "run", "plan", "net/empty", "--destroy", "--refresh-only")
    assert result.exit_code == 2
    result = xcf(agent_server, "run", "plan", "net/missing")
    assert result.exit_code == 1 and "404" in said(result) and "net/missing" in said(result)
    result = xcf(agent_server, "run", "show", "00000000-0000-0000-0000-000000000000")
    assert result.exit_code == 1 and "404" in said(result)
    result = xcf(agent_server, "run", "cancel", "not-a-uuid")
    assert result.exit_code == 1 and "422" in said(result)
    result = xcf(agent_server, "run", "list", token="xcf_nope")
    assert result.exit_code == 1 and "401" in said(result)


def test_sse_parsing() -> None:
    import httpx

    from xcloudflow.cli.run_cmd import _sse, summary_text

    body = (
        b'event: stage\ndata: {"stage": "planning"}\n\n'
        b": keep-alive\n\n"
        b'id: plan:1\nevent: log\ndata: {"text": "a\\n",\ndata:  "cursor": "plan:1"}\n\n'
        b'event: end\ndata: {"stage": "planned"}\n\n'
    )
    events = list(_sse(httpx.Response(200, content=body)))
    assert [(e, i) for e, _, i in events] == [("stage", None), ("log", "plan:1"), ("end", None)]
    assert json.loads(events[1][1]) == {"text": "a\n", "cursor": "plan:1"}
    assert summary_text({"summary": {"add": 1, "change": 0, "destroy": 2, "import": 3}}) == (
        "1 to add, 0 to change, 2 to destroy, 3 to import"
    )
    assert summary_text({"summary": None}) == ""
