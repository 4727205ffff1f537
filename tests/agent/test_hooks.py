"""Run hooks of each kind: script, http (a local HTTP receiver that checks the HMAC), python."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from xcloudflow.agent.hooks import HookRunner, sign
from xcloudflow.agent.masking import Masker

SECRET = "hook-hmac-key"
CONTEXT = {"run_id": "r-9", "workspace": "proj/ws", "run_number": 9}

# ------------------------------------------------------------ python hooks (imported by target)

CALLS: list[dict[str, Any]] = []


def passing_hook(context: dict[str, Any]) -> None:
    CALLS.append(context)


def refusing_hook(context: dict[str, Any]) -> bool:
    return False


def raising_hook(context: dict[str, Any]) -> None:
    raise RuntimeError("policy says no")


def runner(tmp_path: Path, hooks: list[dict[str, Any]], **kw: Any) -> tuple[HookRunner, list[str]]:
    lines: list[str] = []
    kw.setdefault("masker", Masker(["top-secret"]))
    return HookRunner(hooks, workdir=tmp_path, env={"TF_VAR_x": "1"}, log=lines.append, **kw), lines


def hook(kind: str, target: str, stage: str = "pre_plan", **kw: Any) -> dict[str, Any]:
    return {"stage": stage, "kind": kind, "target": target, "mandatory": True, "timeout_seconds": 10, **kw}


def test_script_hook_gets_the_run_environment_and_its_output_is_masked(tmp_path: Path) -> None:
    script = 'echo "$XCF_RUN_ID $XCF_STAGE $XCF_WORKSPACE $TF_VAR_x"; echo top-secret; pwd; echo ok > marker'
    hooks, lines = runner(tmp_path, [hook("script", script)])
    assert hooks.run_stage("pre_plan", CONTEXT) is None
    assert "r-9 pre_plan proj/ws 1" in lines
    assert "***" in lines and "top-secret" not in "\n".join(lines)
    assert str(tmp_path) in lines
    assert (tmp_path / "marker").exists()
    # Hooks of other stages do not run.
    assert hooks.run_stage("post_plan", CONTEXT) is None


def test_failed_mandatory_script_fails_the_stage_and_optional_is_ignored(tmp_path: Path) -> None:
    hooks, lines = runner(
        tmp_path,
        [hook("script", "exit 3", mandatory=False), hook("script", "echo checking; exit 4")],
    )
    message = hooks.run_stage("pre_plan", CONTEXT)
    assert message is not None
    assert "mandatory script hook 'echo checking; exit 4' failed: exit code 4" in message
    assert any("failed (ignored): exit code 3" in line for line in lines)


def test_script_hook_timeout_kills_it(tmp_path: Path) -> None:
    hooks, _ = runner(tmp_path, [hook("script", "sleep 30", timeout_seconds=0.5)])
    message = hooks.run_stage("pre_plan", CONTEXT)
    assert message is not None and "timed out after 0.5s" in message


def test_cancel_stops_a_script_hook(tmp_path: Path) -> None:
    cancel = threading.Event()
    hooks, _ = runner(tmp_path, [hook("script", "sleep 30")], cancel=cancel)
    threading.Timer(0.3, cancel.set).start()
    message = hooks.run_stage("pre_plan", CONTEXT)
    assert message is not None and "canceled" in message


class Receiver(BaseHTTPRequestHandler):
    received: list[tuple[dict[str, str], bytes]] = []
    status = 204

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        good = hmac.compare_digest(self.headers.get("X-XCF-Signature", ""), expected)
        type(self).received.append((dict(self.headers), body))
        self.send_response(type(self).status if good else 401)
        self.end_headers()
        if not good:
            self.wfile.write(b"bad signature")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[str]:
    Receiver.received = []
    Receiver.status = 204
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        server.shutdown()
        server.server_close()


def test_http_hook_is_signed(tmp_path: Path, receiver: str) -> None:
    hooks, _ = runner(tmp_path, [hook("http", receiver, stage="post_plan", secret=SECRET)])
    assert hooks.run_stage("post_plan", {**CONTEXT, "has_changes": True}) is None
    headers, body = Receiver.received[0]
    assert headers["X-XCF-Event"] == "run.post_plan"
    assert json.loads(body) == {**CONTEXT, "has_changes": True, "stage": "post_plan"}
    assert headers["X-XCF-Signature"] == sign(SECRET, body)


def test_http_hook_with_a_wrong_secret_or_an_error_status_fails(tmp_path: Path, receiver: str) -> None:
    hooks, _ = runner(tmp_path, [hook("http", receiver, secret="wrong")])
    message = hooks.run_stage("pre_plan", CONTEXT)
    assert message is not None and "answered 401: bad signature" in message
    Receiver.status = 500
    hooks, _ = runner(tmp_path, [hook("http", receiver, secret=SECRET)])
    message = hooks.run_stage("pre_plan", CONTEXT)
    assert message is not None and "answered 500" in message


def test_http_hook_unreachable_optional_is_ignored(tmp_path: Path) -> None:
    hooks, lines = runner(
        tmp_path, [hook("http", "http://127.0.0.1:9/none", mandatory=False, timeout_seconds=2)]
    )
    assert hooks.run_stage("pre_plan", CONTEXT) is None
    assert any("(ignored)" in line for line in lines)


def test_python_hooks_name_only_modules_the_agents_operator_allows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a python hook runs in the agent's process: a writer must not pick any importable callable
    monkeypatch.delenv("XCF_AGENT_PYTHON_HOOKS", raising=False)
    CALLS.clear()
    for target in (f"{__name__}:passing_hook", "subprocess:Popen", "os:system", "builtins:exec"):
        hooks, _ = runner(tmp_path, [hook("python", target)])
        message = hooks.run_stage("pre_plan", CONTEXT)
        assert message is not None and "not allowed on this agent" in message, (target, message)
        assert "XCF_AGENT_PYTHON_HOOKS" in message and "allowed: none" in message
    assert CALLS == []
    monkeypatch.setenv("XCF_AGENT_PYTHON_HOOKS", "tests.agent, my_pkg")
    for target in ("os:system", "tests_agent_x:f", "tests.agentx:f"):  # a prefix is not a parent module
        hooks, _ = runner(tmp_path, [hook("python", target)])
        message = hooks.run_stage("pre_plan", CONTEXT)
        assert message is not None and "allowed: tests.agent, my_pkg" in message, (target, message)
    hooks, _ = runner(tmp_path, [hook("python", f"{__name__}:passing_hook")])
    assert hooks.run_stage("pre_plan", CONTEXT) is None and len(CALLS) == 1


def test_python_hooks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XCF_AGENT_PYTHON_HOOKS", f"{__name__},no_such_module_xcf")
    CALLS.clear()
    hooks, _ = runner(tmp_path, [hook("python", f"{__name__}:passing_hook", stage="pre_apply")])
    assert hooks.run_stage("pre_apply", CONTEXT) is None
    assert CALLS == [{**CONTEXT, "stage": "pre_apply"}]

    for target, why in [
        (f"{__name__}:refusing_hook", "returned False"),
        (f"{__name__}:raising_hook", "raised RuntimeError: policy says no"),
        (f"{__name__}:missing", "has no missing"),
        ("no_such_module_xcf:f", "cannot import no_such_module_xcf"),
        ("not-a-target", "is not of the form"),
    ]:
        hooks, _ = runner(tmp_path, [hook("python", target)])
        message = hooks.run_stage("pre_plan", CONTEXT)
        assert message is not None and why in message, (target, message)
        assert target in message  # the message names the hook


def test_unknown_kind_fails(tmp_path: Path) -> None:
    hooks, _ = runner(tmp_path, [hook("carrier-pigeon", "x")])
    message = hooks.run_stage("pre_plan", CONTEXT)
    assert message is not None and "unknown hook kind" in message


def test_a_failing_mandatory_hook_fails_the_run_stage(tmp_path: Path) -> None:
    from tests.agent.test_terraform_exec import RecordingIO, bundle
    from xcloudflow.agent.run_handler import Run

    b = bundle({"main.tf": 'resource "terraform_data" "a" {}\n'})
    b["hooks"] = [hook("script", "echo refusing; exit 1")]
    rio = RecordingIO()
    outcome = Run(bundle=b, io=rio, data_dir=tmp_path / "agent").plan()
    assert outcome.status == "failed"
    assert "pre_plan: the mandatory script hook 'echo refusing; exit 1' failed" in (outcome.error or "")
    assert "xcf: terraform init" not in rio.text  # Terraform never started
