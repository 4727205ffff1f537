"""`xcf conflux ...` against a live server: publish (creating the config), resolve, policy, history,
diff, rollback, get, and a watch that sees a publish."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from typer.testing import CliRunner

from tests.conftest import ADMIN_TOKEN
from xcloudflow.cli.main import app

runner = CliRunner()
ADDR = "default/app-a/production/app.yaml"


def xcf(server: str, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["--server", server, "--token", ADMIN_TOKEN, *args])
    return result.exit_code, result.output


def test_conflux_cli(live_server: str, tmp_path: Path) -> None:
    v1 = tmp_path / "v1.yaml"
    v1.write_text("pool: 10\n")
    v2 = tmp_path / "v2.yaml"
    v2.write_text("pool: 20\n")
    code, output = xcf(live_server, "conflux", "publish", ADDR, str(v1), "--format", "yaml", "--stable")
    assert code == 0 and "version 1" in output and "stable: 1" in output, output
    code, output = xcf(live_server, "conflux", "publish", ADDR, str(v2), "--idempotency-key", "k")
    assert code == 0 and "version 2" in output, output
    code, output = xcf(live_server, "conflux", "publish", ADDR, str(v2), "--idempotency-key", "k")
    assert code == 0 and "replayed" in output, output
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1\n")
    code, output = xcf(live_server, "conflux", "publish", ADDR, str(bad))
    assert code == 1 and "422" in output and "invalid yaml" in output, output
    code, output = xcf(live_server, "conflux", "publish", ADDR, str(v2), "--expected-version", "1")
    assert code == 1 and "409" in output
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - {name: canary, priority: 10, version: 2, labels: {canary: 'true'}}\n")
    code, output = xcf(live_server, "conflux", "policy", ADDR, "--file", str(rules), "-o", "json")
    assert code == 0 and json.loads(output)["rules"][0]["version"] == 2, output
    code, output = xcf(live_server, "conflux", "resolve", ADDR, "-l", "canary=true")
    assert code == 0 and output.startswith("pool: 20\n"), output
    code, output = xcf(live_server, "conflux", "resolve", ADDR, "-o", "json")
    assert code == 0 and json.loads(output)["version"] == 1
    code, output = xcf(live_server, "conflux", "history", ADDR)
    assert code == 0 and "Effective now" in output and "STABLE" in output and "canary" in output, output
    code, output = xcf(live_server, "conflux", "diff", ADDR, "1", "2")
    assert code == 0 and "-pool: 10" in output and "+pool: 20" in output
    code, output = xcf(live_server, "conflux", "get", ADDR, "--version", "1")
    assert code == 0 and output == "pool: 10\n"
    code, output = xcf(live_server, "conflux", "get", ADDR, "-o", "json")
    assert code == 0 and json.loads(output)["latest_version"] == 2

    found: dict[str, str] = {}

    def watch() -> None:
        found["out"] = xcf(
            live_server, "conflux", "watch", "default/app-a/production", "--since", "0", "--once"
        )[1]

    thread = threading.Thread(target=watch)
    thread.start()
    thread.join(timeout=30)
    assert '"kind": "release"' in found["out"], found
    code, output = xcf(live_server, "conflux", "rollback", ADDR, "2", "-m", "try v2", "-o", "json")
    assert code == 0 and json.loads(output)["version"] == 2
    code, output = xcf(live_server, "conflux", "policy", ADDR, "--clear")
    assert code == 0 and "no rules" in output
    code, output = xcf(live_server, "conflux", "get", "not/an/address")
    assert code == 2
