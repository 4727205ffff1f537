"""The attack on the server's secrets, replayed through real runs of a real `xcf server`.

A workspace's code is hostile: its main.tf reads the master key (by relative and absolute path), the
server's /proc/<pid>/environ, the SQLite file and another job's directory into plan outputs, and a
real script hook prints the same files and its environment into the run log. Whatever the run
shows (the plan JSON, its outputs decoded, the log) must hold none of the secrets' actual values.
A control output (the workspace's own main.tf) proves the outputs do carry what a file holds.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import XcfServer
from tests.e2e.runs_helpers import (
    log_text,
    start_agent,
    start_run,
    stop_agent,
    upload,
    wait_stage,
    wait_until,
    workspace,
)
from tests.jobs.conftest import pool_token

ATTACK = """
locals {
  here = abspath(path.root)
  ups  = [for i in range(1, 10) : join("/", [for j in range(i) : ".."])]
}
output "control" { value = filebase64("${local.here}/main.tf") }
output "key_relative" {
  value = [for up in local.ups : try(filebase64("${local.here}/${up}/master.key"), "denied")]
}
output "key_relative_data" {
  value = [for up in local.ups : try(filebase64("${local.here}/${up}/data/master.key"), "denied")]
}
output "key_absolute" { value = try(filebase64("@DATA@/master.key"), "denied") }
output "database" { value = try(filebase64("@DATA@/xcloudflow.db"), "denied") }
output "data_dir" { value = try(fileset("@DATA@", "**"), []) }
output "server_environ" { value = try(filebase64("/proc/@SERVER_PID@/environ"), "denied") }
output "agent_environ" { value = try(filebase64("/proc/@AGENT_PID@/environ"), "denied") }
output "init_environ" { value = try(filebase64("/proc/1/environ"), "denied") }
output "other_jobs" {
  value = [
    for f in try(fileset("${local.here}/../../..", "**/*.tf"), []) :
    try(filebase64("${local.here}/../../../${f}"), "denied")
  ]
}
output "agent_runs" {
  value = [for f in try(fileset("@AGENT_DIR@", "**"), []) : try(filebase64("@AGENT_DIR@/${f}"), f)]
}
"""

HOOK = (
    "env; cat /proc/1/environ; cat /proc/@SERVER_PID@/environ; cat /proc/@AGENT_PID@/environ; "
    "cat @DATA@/master.key; cat @DATA@/xcloudflow.db | head -c 64; ls -la @DATA@ @AGENT_DIR@/runs; "
    "cat ../../../*/src/*.tf; ls /proc; echo hook-ran-$((6*7)); exit 0"
)

VICTIM = 'resource "terraform_data" "v" {\n  input = "%s"\n}\n'


def _names() -> tuple[str, str]:
    suffix = secrets.token_hex(4)
    return f"sbx-{suffix}", f"ws-{suffix}"


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


def embedded_agent_pid(server: XcfServer) -> int:
    """The `xcf agent --token-stdin` child of the server process."""
    for pid in _children(server.process.pid):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"agent" in cmdline and b"--token-stdin" in cmdline:
            return pid
    raise AssertionError(f"no embedded agent process under the server (pid {server.process.pid})")


def server_secrets(server: XcfServer) -> list[bytes]:
    """The values an attacker is after (actual values, not error strings)."""
    values = [
        (server.data_dir / "master.key").read_text().strip().encode(),
        server.token.encode(),
        server.database_url.encode(),
        b"XCF_BOOTSTRAP_TOKEN",
        b"XCF_DATABASE_URL",
        b"XCF_DATA_DIR=",
    ]
    if server.backend == "sqlite":
        values.append(b"SQLite format 3")
    return values


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def revealed(api: httpx.Client, run_id: str) -> bytes:
    """Everything the run shows a reader: its log, its plan JSON and every base64 value in it decoded."""
    shown = [log_text(api, run_id).encode()]
    plan = api.get(f"/api/v1/runs/{run_id}/plan")
    if plan.status_code == 200:
        shown.append(plan.content)
        for text in _strings(plan.json()):
            try:
                shown.append(base64.b64decode(text, validate=True))
            except ValueError:
                continue
    return b"\n".join(shown)


def fill(template: str, server: XcfServer, agent_pid: int, agent_dir: Path) -> str:
    return (
        template.replace("@DATA@", str(server.data_dir))
        .replace("@SERVER_PID@", str(server.process.pid))
        .replace("@AGENT_PID@", str(agent_pid))
        .replace("@AGENT_DIR@", str(agent_dir))
    )


def add_hook(api: httpx.Client, project: str, name: str, stage: str, target: str) -> None:
    resp = api.post(
        f"/api/v1/workspaces/{project}/{name}/hooks",
        json={"stage": stage, "kind": "script", "target": target, "timeout_seconds": 120},
    )
    assert resp.status_code == 201, resp.text


def test_a_hostile_plan_and_hook_reveal_none_of_the_servers_secrets(
    xcf_server: XcfServer, api: httpx.Client
) -> None:
    agent_pid = embedded_agent_pid(xcf_server)
    agent_dir = Path.home() / ".xcf" / "agent"  # the embedded agent's default data dir

    # Another job running at the same time, with a secret in its code, waiting in its hook.
    victim_mark = "victim-" + secrets.token_hex(8)
    vproject, vname = _names()
    workspace(api, vproject, vname)
    upload(api, vproject, vname, {"main.tf": VICTIM % victim_mark})
    add_hook(api, vproject, vname, "pre_plan", "sleep 30")
    victim = start_run(api, vproject, vname, kind="plan")
    wait_until(lambda: "running the mandatory script hook" in log_text(api, victim["id"]), "the victim")

    project, name = _names()
    workspace(api, project, name)
    upload(api, project, name, {"main.tf": fill(ATTACK, xcf_server, agent_pid, agent_dir)})
    add_hook(api, project, name, "pre_plan", fill(HOOK, xcf_server, agent_pid, agent_dir))
    run = start_run(api, project, name, kind="plan")
    wait_stage(api, run["id"], "planned", "planned_and_finished", "errored")
    shown = revealed(api, run["id"])

    assert b"hook-ran-42" in shown, "the hook did not run"
    assert b'output "control"' in shown, "the plan outputs carry no file content: the test proves nothing"
    for value in server_secrets(xcf_server):
        assert value not in shown, f"the run revealed {value[:12]!r}..."
    assert victim_mark.encode() not in shown, "the run read another job's directory"
    # The server's and the agent's processes are not even visible: a fresh pid namespace.
    listed = log_text(api, run["id"]).splitlines()  # the hook's `ls /proc`: one entry a line
    assert "self" in listed and str(xcf_server.process.pid) not in listed and str(agent_pid) not in listed
    api.post(f"/api/v1/runs/{victim['id']}/cancel")


def test_agents_show_no_pid_and_the_embedded_agent_holds_no_server_secret(
    xcf_server: XcfServer, api: httpx.Client
) -> None:
    agent_pid = embedded_agent_pid(xcf_server)
    agents = api.get("/api/v1/agents")
    assert agents.status_code == 200, agents.text
    listed = agents.json()
    items = listed["items"] if isinstance(listed, dict) else listed
    embedded = [a for a in items if a["pool"] == "embedded"]
    assert embedded
    text = json.dumps(items)
    for pid in (xcf_server.process.pid, agent_pid):
        assert not re.search(rf"(?<![0-9a-f]){pid}(?![0-9a-f])", text), f"pid {pid} is shown: {text}"
    assert all(re.fullmatch(r"embedded-[0-9a-f]{8}", a["name"]) for a in embedded)

    environ = Path(f"/proc/{agent_pid}/environ").read_bytes()
    cmdline = Path(f"/proc/{agent_pid}/cmdline").read_bytes()
    for value in [*server_secrets(xcf_server), b"XCF_ENCRYPTION"]:
        assert value not in environ, f"the embedded agent's environment holds {value[:12]!r}"
    assert b"xcfa_" not in cmdline and b"--token\0" not in cmdline  # the pool token came over stdin
    # The agent's data dir is not inside the server's.
    assert not str(Path.home() / ".xcf" / "agent").startswith(str(xcf_server.data_dir))


READ_HOST_FILE = 'output "host" { value = try(file("@FILE@"), "denied") }\n'


@pytest.mark.parametrize("mode", ["", "bwrap", "none"])
def test_the_sandbox_is_off_only_when_xcf_agent_sandbox_says_none(
    xcf_server: XcfServer, api: httpx.Client, tmp_path: Path, mode: str
) -> None:
    marker = "host-file-" + secrets.token_hex(8)
    host_file = tmp_path / "host.txt"
    host_file.write_text(marker)
    pool = f"sbx-{secrets.token_hex(3)}"
    token = pool_token(api, pool)
    agent = start_agent(
        xcf_server, token, pool, tmp_path / "agent", **({"XCF_AGENT_SANDBOX": mode} if mode else {})
    )
    try:
        project, name = _names()
        workspace(api, project, name, agent_pool=pool)
        upload(api, project, name, {"main.tf": READ_HOST_FILE.replace("@FILE@", str(host_file))})
        run = start_run(api, project, name, kind="plan")
        wait_stage(api, run["id"], "planned", "planned_and_finished")
        shown = revealed(api, run["id"])
    finally:
        stop_agent(agent)
    if mode == "none":
        assert marker.encode() in shown  # unsandboxed: user code reads what the agent's user can
        assert b"XCF_AGENT_SANDBOX=none" in shown  # and the job log says so loudly
    else:
        assert marker.encode() not in shown and b"denied" in shown
