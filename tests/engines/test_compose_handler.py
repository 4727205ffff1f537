"""The compose job kinds without a server: payload -> snapshot -> engine or check -> JobOutcome.

`fetch` stands for GET /jobs/{id}/compose-bundle (the lead's e2e tests drive the real endpoint);
everything after it is real: the safe extraction, ansible-playbook, /bin/sh and an HTTP server.
"""

from __future__ import annotations

import http.server
import io
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.engines.conftest import RecordingIO, tar_gz
from xcloudflow.agent.client import AgentApiError
from xcloudflow.agent.compose_handler import compose_handlers, run_check, run_exec, run_node, secret_values
from xcloudflow.agent.handlers import BUILTIN_HANDLERS

PLAYBOOK = """\
- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: config dir
      ansible.builtin.file:
        path: "{{ configDir }}"
        state: directory
    - name: app config
      ansible.builtin.copy:
        dest: "{{ configDir }}/app.conf"
        content: "db_password={{ db_password }}\\n"
"""
SECRET = "pa55-w0rd-xyz"
TOKEN = "job-token-abcdef"


def node_payload(out: Path, **extra: Any) -> dict[str, Any]:
    return {
        "changeset": "cs-1",
        "node": "app-config/app-config",
        "engine": "ansible",
        "ref": "playbooks/app-config.yml",
        "inputs": {"configDir": str(out), "db_password": SECRET},
        "timeout_seconds": 120,
        **extra,
    }


def test_the_kinds_are_registered() -> None:
    for kind in ("compose.plan", "compose.apply", "compose.exec"):
        assert kind in BUILTIN_HANDLERS
    assert sorted(compose_handlers(Path("/tmp"))) == ["compose.apply", "compose.exec", "compose.plan"]


def host_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A host directory the operator lets every job write (jobs are sandboxed: nothing else is)."""
    host = tmp_path / "host"
    host.mkdir()
    monkeypatch.setenv("XCF_AGENT_SANDBOX_WRITABLE", str(host))
    return host


def test_plan_then_apply_an_ansible_node_with_secrets_masked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = tar_gz({"playbooks/app-config.yml": PLAYBOOK, "README.md": "repo"})
    out = host_dir(tmp_path, monkeypatch) / "out"
    data_dir = tmp_path / "agent"
    rec = RecordingIO()
    outcome = run_node(
        "plan", node_payload(out), io=rec, fetch=lambda: bundle, data_dir=data_dir, secrets=[TOKEN]
    )
    assert outcome.status == "succeeded", outcome.error
    assert outcome.result is not None
    plan = outcome.result["plan"]
    assert plan["engine"] == "ansible" and plan["has_changes"] is True
    assert plan["summary"] == {"add": 2, "change": 0, "destroy": 0}
    assert not out.exists()
    assert "TASK [app config]" in rec.text
    # --diff prints the file's content: the password is masked in every line sent back.
    assert "db_password=***" in rec.text
    assert SECRET not in rec.text
    assert list((data_dir / "compose").iterdir()) == []  # the snapshot is gone

    rec = RecordingIO()
    applied = run_node("apply", node_payload(out), io=rec, fetch=lambda: bundle, data_dir=data_dir)
    assert applied.status == "succeeded", applied.error
    assert (out / "app.conf").read_text() == f"db_password={SECRET}\n"
    assert SECRET not in rec.text and SECRET not in str(applied.result)


def test_a_failing_node_fails_the_job_with_the_task(tmp_path: Path) -> None:
    failing = (
        PLAYBOOK + "    - name: verify\n      ansible.builtin.fail:\n        msg: 'bad {{ db_password }}'\n"
    )
    bundle = tar_gz({"playbooks/app-config.yml": failing})
    rec = RecordingIO()
    outcome = run_node("plan", node_payload(tmp_path / "o"), io=rec, fetch=lambda: bundle, data_dir=tmp_path)
    assert outcome.status == "failed"
    assert outcome.error is not None and "ansible task 'verify' failed on localhost" in outcome.error
    assert "bad ***" in outcome.error and SECRET not in outcome.error
    assert outcome.result is not None and outcome.result["error_class"] == "permanent"
    assert SECRET not in str(outcome.result)


def test_canceled_node(tmp_path: Path) -> None:
    rec = RecordingIO()
    rec.cancelled.set()
    outcome = run_node("apply", node_payload(tmp_path), io=rec, fetch=lambda: b"", data_dir=tmp_path)
    assert outcome.status == "canceled"


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"engine": "terraform"}, "payload.engine 'terraform' is not run by compose jobs"),
        ({"engine": None}, "payload.engine must be a non-empty string"),
        ({"ref": ""}, "payload.ref must be a non-empty string"),
        ({"inputs": [1]}, "payload.inputs must be an object"),
        ({"timeout_seconds": 0}, "payload.timeout_seconds must be a number from 1"),
        ({"timeout_seconds": "10"}, "payload.timeout_seconds must be a number"),
        ({"env": {"A": 1, 2: "b"}}, "payload.env must be an object of strings"),
    ],
)
def test_bad_node_payloads(tmp_path: Path, change: dict[str, Any], why: str) -> None:
    outcome = run_node(
        "plan", {**node_payload(tmp_path), **change}, io=RecordingIO(), fetch=lambda: b"", data_dir=tmp_path
    )
    assert outcome.status == "failed"
    assert outcome.error is not None and why in outcome.error


def test_a_missing_playbook_and_an_unreachable_server(tmp_path: Path) -> None:
    bundle = tar_gz({"other.yml": "- hosts: localhost\n"})
    outcome = run_node(
        "plan", node_payload(tmp_path), io=RecordingIO(), fetch=lambda: bundle, data_dir=tmp_path
    )
    assert outcome.status == "failed"
    assert outcome.error == "playbook 'playbooks/app-config.yml' does not exist in the repository snapshot"

    def down() -> bytes:
        raise AgentApiError(503, f"unavailable {TOKEN}")

    outcome = run_node(
        "plan", node_payload(tmp_path), io=RecordingIO(), fetch=down, data_dir=tmp_path, secrets=[TOKEN]
    )
    assert outcome.status == "failed" and outcome.retryable
    assert outcome.error == "cannot fetch the repository snapshot from the server: unavailable ***"

    def gone() -> bytes:
        raise AgentApiError(404, "no such changeset")

    outcome = run_node("plan", node_payload(tmp_path), io=RecordingIO(), fetch=gone, data_dir=tmp_path)
    assert outcome.status == "failed" and not outcome.retryable


# ------------------------------------------------------------ the snapshot is extracted safely


def _archive(*members: tuple[str, str, str]) -> bytes:
    """(name, kind, target/content) members: kind "file", "symlink" or "hardlink"."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, kind, value in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                data = value.encode()
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                info.type = tarfile.SYMTYPE if kind == "symlink" else tarfile.LNKTYPE
                info.linkname = value
                tar.addfile(info)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("members", "why"),
    [
        ([("../escape.txt", "file", "x")], "contains '..'"),
        ([("playbooks/../../escape.txt", "file", "x")], "contains '..'"),
        ([("/tmp/escape.txt", "file", "x")], "is an absolute path"),
        ([("playbooks/link", "symlink", "../../../etc")], "leads out of the tree"),
        ([("link", "symlink", "/etc/passwd")], "leads out of the tree"),
        ([("hard", "hardlink", "../outside")], "contains '..'"),
    ],
)
def test_unsafe_snapshots_are_refused(tmp_path: Path, members: list[tuple[str, str, str]], why: str) -> None:
    bundle = _archive(("playbooks/app-config.yml", "file", PLAYBOOK), *members)
    data_dir = tmp_path / "agent"
    rec = RecordingIO()
    outcome = run_node(
        "plan", node_payload(tmp_path / "out"), io=rec, fetch=lambda: bundle, data_dir=data_dir
    )
    assert outcome.status == "failed"
    assert outcome.error is not None and outcome.error.startswith("the repository snapshot was refused")
    assert why in outcome.error
    assert not (tmp_path / "escape.txt").exists() and not (data_dir / "escape.txt").exists()
    assert list((data_dir / "compose").iterdir()) == []
    assert "TASK" not in rec.text  # nothing ran


def test_links_inside_the_snapshot_are_fine(tmp_path: Path) -> None:
    bundle = _archive(
        ("playbooks/real.yml", "file", PLAYBOOK), ("playbooks/app-config.yml", "symlink", "real.yml")
    )
    outcome = run_node(
        "plan", node_payload(tmp_path / "out"), io=RecordingIO(), fetch=lambda: bundle, data_dir=tmp_path
    )
    assert outcome.status == "succeeded", outcome.error


def test_not_a_tarball(tmp_path: Path) -> None:
    outcome = run_node(
        "plan", node_payload(tmp_path), io=RecordingIO(), fetch=lambda: b"garbage", data_dir=tmp_path
    )
    assert outcome.status == "failed"
    assert outcome.error is not None and "not a readable .tar.gz" in outcome.error


def test_secret_values_by_name() -> None:
    values = {
        "db_password": "hunter22",
        "api_key": 12345,
        "auth": {"user": "bob-the-user", "list": ["tok-one"]},
        "region": "eu-west-1",
        "token_enabled": True,
        "pin": "1",
        "secret": "ab",
    }
    assert sorted(secret_values(values)) == ["12345", "bob-the-user", "hunter22", "tok-one"]


# ------------------------------------------------------------ compose.exec: commands


def exec_payload(**extra: Any) -> dict[str, Any]:
    return {
        "changeset": "cs-1",
        "node": "db/db",
        "purpose": "observe",
        "command": None,
        "url": None,
        "window_seconds": 10,
        "interval_seconds": 0.2,
        "timeout_seconds": 10,
        **extra,
    }


def test_a_backup_command_runs_once_in_the_snapshot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bundle = tar_gz({"scripts/backup.sh": "echo backing up $1\nexit 0\n"})
    out = host_dir(tmp_path, monkeypatch) / "backup.txt"
    rec = RecordingIO()
    outcome = run_exec(
        exec_payload(purpose="backup", command=f"sh scripts/backup.sh db > {out}; cat {out}"),
        io=rec,
        fetch=lambda: bundle,
        data_dir=tmp_path / "agent",
    )
    assert outcome.status == "succeeded", outcome.error
    assert outcome.result == {"ok": True, "attempts": 1, "last": "exit 0"}
    assert out.read_text() == "backing up db\n"
    assert "backing up db" in rec.text
    assert list((tmp_path / "agent" / "compose").iterdir()) == []


def test_a_failing_backup_is_not_repeated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    counter = host_dir(tmp_path, monkeypatch) / "count"
    command = f"echo x >> {counter}; echo 'pg_dump: connection refused' >&2; exit 3"
    outcome = run_exec(
        exec_payload(purpose="backup", command=command),
        io=RecordingIO(),
        fetch=lambda: tar_gz({}),
        data_dir=tmp_path,
    )
    assert outcome.status == "failed"
    assert outcome.result == {"ok": False, "attempts": 1, "last": "exit 3: pg_dump: connection refused"}
    assert (
        outcome.error
        == "the backup check of node db/db failed after 1 attempts: exit 3: pg_dump: connection refused"
    )
    assert counter.read_text() == "x\n"


def test_an_observation_repeats_until_it_passes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    counter = host_dir(tmp_path, monkeypatch) / "count"
    command = f'echo x >> {counter}; test "$(wc -l < {counter})" -ge 3'
    outcome = run_exec(
        exec_payload(command=command), io=RecordingIO(), fetch=lambda: tar_gz({}), data_dir=tmp_path
    )
    assert outcome.status == "succeeded", outcome.error
    assert outcome.result == {"ok": True, "attempts": 3, "last": "exit 0"}


def test_an_observation_gives_up_when_the_window_closes(tmp_path: Path) -> None:
    started = time.monotonic()
    outcome = run_exec(
        exec_payload(command="exit 1", window_seconds=1.0, interval_seconds=0.3),
        io=RecordingIO(),
        fetch=lambda: tar_gz({}),
        data_dir=tmp_path,
    )
    elapsed = time.monotonic() - started
    assert outcome.status == "failed"
    assert outcome.result is not None and outcome.result["ok"] is False and outcome.result["last"] == "exit 1"
    assert 3 <= outcome.result["attempts"] <= 4
    assert elapsed < 3


def test_a_zero_window_observation_tries_once(tmp_path: Path) -> None:
    outcome = run_exec(
        exec_payload(command="exit 2", window_seconds=0),
        io=RecordingIO(),
        fetch=lambda: tar_gz({}),
        data_dir=tmp_path,
    )
    assert outcome.result == {"ok": False, "attempts": 1, "last": "exit 2"}


def test_a_hanging_command_times_out(tmp_path: Path) -> None:
    started = time.monotonic()
    outcome = run_exec(
        exec_payload(purpose="backup", command="sleep 30", timeout_seconds=0.5),
        io=RecordingIO(),
        fetch=lambda: tar_gz({}),
        data_dir=tmp_path,
    )
    assert outcome.status == "failed"
    assert outcome.result is not None and outcome.result["last"].startswith("timed out after 0.5s")
    assert time.monotonic() - started < 8


def test_cancel_stops_an_observation(tmp_path: Path) -> None:
    rec = RecordingIO()
    threading.Timer(0.5, rec.cancelled.set).start()
    started = time.monotonic()
    outcome = run_exec(
        exec_payload(command="sleep 20", window_seconds=60, timeout_seconds=30),
        io=rec,
        fetch=lambda: tar_gz({}),
        data_dir=tmp_path,
    )
    assert outcome.status == "canceled"
    assert time.monotonic() - started < 8


def test_commands_do_not_see_the_agents_variables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XCF_AGENT_TOKEN", "pool-secret")
    # The job's env reaches the command; the agent's own XCF_* variables do not.
    payload = exec_payload(purpose="backup", command='test -z "$XCF_AGENT_TOKEN" && test "$GREETING" = hi')
    outcome = run_exec(
        {**payload, "env": {"GREETING": "hi"}}, io=RecordingIO(), fetch=lambda: tar_gz({}), data_dir=tmp_path
    )
    assert outcome.status == "succeeded", outcome.result


# ------------------------------------------------------------ compose.exec: URLs


class _Health(http.server.BaseHTTPRequestHandler):
    failures_left = 0
    hits = 0

    def do_GET(self) -> None:
        cls = type(self)
        cls.hits += 1
        if self.path != "/healthz":
            self.send_response(404)
        elif cls.failures_left > 0:
            cls.failures_left -= 1
            self.send_response(503)
        else:
            self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def health() -> Iterator[tuple[str, type[_Health]]]:
    handler = type("Health", (_Health,), {"failures_left": 0, "hits": 0})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()


def _no_bundle() -> bytes:
    raise AssertionError("a URL check must not fetch the snapshot")


def test_a_url_observation_repeats_until_2xx(health: tuple[str, type[_Health]]) -> None:
    base, handler = health
    handler.failures_left = 2
    rec = RecordingIO()
    outcome = run_exec(exec_payload(url=f"{base}/healthz"), io=rec, fetch=_no_bundle)
    assert outcome.status == "succeeded", outcome.error
    assert outcome.result == {"ok": True, "attempts": 3, "last": "HTTP 200"}
    assert handler.hits == 3
    assert "attempt 1: HTTP 503" in rec.text


def test_a_url_that_stays_down_fails_with_the_last_status(health: tuple[str, type[_Health]]) -> None:
    base, handler = health
    handler.failures_left = 1000
    outcome = run_exec(
        exec_payload(url=f"{base}/healthz", window_seconds=0.8, interval_seconds=0.2),
        io=RecordingIO(),
        fetch=_no_bundle,
    )
    assert outcome.status == "failed"
    assert (
        outcome.result is not None
        and outcome.result["last"] == "HTTP 503"
        and outcome.result["attempts"] >= 3
    )
    not_found = run_exec(
        exec_payload(purpose="backup", url=f"{base}/nope"), io=RecordingIO(), fetch=_no_bundle
    )
    assert not_found.result == {"ok": False, "attempts": 1, "last": "HTTP 404"}


def test_a_url_nobody_listens_on(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    outcome = run_exec(
        exec_payload(purpose="backup", url=f"http://127.0.0.1:{port}/healthz", timeout_seconds=2),
        io=RecordingIO(),
        fetch=_no_bundle,
    )
    assert outcome.status == "failed"
    assert outcome.result is not None and outcome.result["last"].startswith("GET failed: ConnectError")


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"command": "true", "url": "http://x/"}, "exactly one of command and url"),
        ({}, "exactly one of command and url"),
        ({"url": "file:///etc/passwd"}, "must be an http:// or https:// URL"),
        ({"url": "http:///nohost"}, "must be an http:// or https:// URL"),
        ({"command": "true", "purpose": "deploy"}, "payload.purpose must be 'backup' or 'observe'"),
        ({"command": "true", "interval_seconds": 0}, "payload.interval_seconds must be a number"),
        ({"command": "true", "window_seconds": -1}, "payload.window_seconds must be a number"),
        ({"command": "  "}, "payload.command must be a non-empty string"),
    ],
)
def test_bad_exec_payloads(change: dict[str, Any], why: str) -> None:
    outcome = run_exec(exec_payload(**change), io=RecordingIO(), fetch=_no_bundle)
    assert outcome.status == "failed"
    assert outcome.error is not None and why in outcome.error


def test_run_check_needs_one_target() -> None:
    from xcloudflow.errors import Invalid

    with pytest.raises(Invalid):
        run_check(
            command=None,
            url=None,
            cwd=None,
            repeat=False,
            window_seconds=1,
            interval_seconds=1,
            timeout_seconds=1,
            log=print,
            cancel=threading.Event(),
        )
