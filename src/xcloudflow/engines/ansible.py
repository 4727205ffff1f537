"""Playbooks through ansible-runner: plan = `ansible-playbook --check --diff`, apply = `--diff`.

The playbook runs against this machine (inventory `localhost ansible_connection=local`) with the
agent's own Python as the module interpreter and the `ansible-playbook` installed next to it (never
one found on PATH, which may be another version or none). Ansible is kept from reading the user's
configuration or writing under $HOME: every inherited ANSIBLE_* variable is dropped, ANSIBLE_CONFIG
points at a file of ours and ANSIBLE_HOME and the temp dirs live in the run's scratch dir.

Inputs become extra vars through ansible-runner's env/extravars file (not the command line, where
any process could read them). This module never logs an input's value; what ansible itself prints
(with --diff, file contents) is masked by the caller. Each changed task result becomes one
ResourceChange ("<host>/<task name>", the module name as its type); a failing task raises
EngineFailed naming the task, the host and ansible's message.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xcloudflow.engines.base import (
    EngineCanceled,
    EngineFailed,
    EngineSpec,
    EngineUnavailable,
    LogSink,
    NodePlan,
    ResourceChange,
    module_path,
    tool_environment,
)
from xcloudflow.engines.sandbox import SandboxUnavailable, wrap

ANSIBLE_CFG = "[defaults]\nretry_files_enabled = False\nnocolor = True\n"
# How often (seconds) ansible-runner's loop looks at the cancel callback while the playbook is quiet.
CANCEL_POLL_SECONDS = 0.5
# Every process of one run carries this variable (with the run's id) in its environment. Ansible's
# workers call setsid(), so killing ansible-playbook's process group (what ansible-runner does on
# cancel and timeout) leaves them and their tasks running; they are found by this mark instead.
RUN_MARK = "XCLOUDFLOW_ANSIBLE_RUN"


def ansible_playbook_path() -> Path:
    """The ansible-playbook of the agent's own environment (the script next to sys.executable)."""
    return Path(sys.executable).parent / "ansible-playbook"


def inventory_line() -> str:
    return f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}"


@dataclass
class _Failure:
    host: str
    task: str
    message: str
    unreachable: bool = False


@dataclass
class _Recorder:
    """Collects what the events say: changed results, failures, and the output lines."""

    log: LogSink
    changes: list[ResourceChange] = field(default_factory=list)
    failures: list[_Failure] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    _addresses: dict[str, int] = field(default_factory=dict)

    def __call__(self, event: Mapping[str, Any]) -> bool:
        stdout = str(event.get("stdout") or "")
        for line in stdout.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
            if line.strip():
                self.lines.append(line)
                self.log(line)
        name = str(event.get("event") or "")
        data = event.get("event_data") or {}
        if not isinstance(data, Mapping):
            return False
        res = data.get("res") if isinstance(data.get("res"), Mapping) else {}
        assert isinstance(res, Mapping)
        host = str(data.get("host") or "localhost")
        task = str(data.get("task") or "(unnamed task)")
        if name == "runner_on_ok" and res.get("changed"):
            self._changed(host, task, data, res)
        elif name == "runner_on_failed" and not data.get("ignore_errors"):
            self.failures.append(_Failure(host, task, _failure_message(res)))
        elif name == "runner_on_unreachable":
            self.failures.append(_Failure(host, task, _failure_message(res), unreachable=True))
        return False  # ansible-runner need not keep the event files: we keep what we need

    def _changed(self, host: str, task: str, data: Mapping[str, Any], res: Mapping[str, Any]) -> None:
        address = f"{host}/{task}"
        seen = self._addresses.get(address, 0) + 1
        self._addresses[address] = seen
        if seen > 1:  # two tasks of the same name: keep both, told apart
            address = f"{address} #{seen}"
        module = str(data.get("resolved_action") or data.get("task_action") or "unknown")
        action = _action_from_diff(res.get("diff"))
        detail: dict[str, Any] = {"host": host, "task": task}
        paths = _diff_paths(res.get("diff"))
        if paths:
            detail["paths"] = paths
        self.changes.append(ResourceChange(address=address, type=module, actions=[action], detail=detail))


def _diffs(diff: Any) -> list[Mapping[str, Any]]:
    if isinstance(diff, Mapping):
        return [diff]
    if isinstance(diff, list):
        return [d for d in diff if isinstance(d, Mapping)]
    return []


def _state(side: Any) -> str | None:
    return str(side.get("state")) if isinstance(side, Mapping) and side.get("state") is not None else None


def _action_from_diff(diff: Any) -> str:
    """create when the diff says the thing did not exist before, delete when it will not after."""
    entries = _diffs(diff)
    if not entries:
        return "update"
    for entry in entries:
        before, after = entry.get("before"), entry.get("after")
        if _state(before) == "absent" and _state(after) not in (None, "absent"):
            return "create"
        if _state(after) == "absent" and _state(before) not in (None, "absent"):
            return "delete"
        # A text diff of a new file (copy, template): no before header, empty before.
        if "after_header" in entry and "before_header" not in entry and not before:
            return "create"
    return "update"


def _diff_paths(diff: Any) -> list[str]:
    paths: list[str] = []
    for entry in _diffs(diff):
        for key in ("after_header", "before_header"):
            value = entry.get(key)
            if isinstance(value, str) and value.startswith("/") and value not in paths:
                paths.append(value)
        for side in ("after", "before"):
            value = entry.get(side)
            if (
                isinstance(value, Mapping)
                and isinstance(value.get("path"), str)
                and value["path"] not in paths
            ):
                paths.append(str(value["path"]))
    return paths


def _failure_message(res: Mapping[str, Any]) -> str:
    parts: list[str] = []
    msg = res.get("msg")
    if msg:
        parts.append(str(msg).strip())
    if res.get("rc") not in (None, 0):
        parts.append(f"rc={res.get('rc')}")
    for key in ("stderr", "module_stderr", "stdout"):
        value = str(res.get(key) or "").strip()
        if value and value not in parts:
            parts.append(value[-500:])
            break
    return "; ".join(parts) or "the task failed without a message"


def _tail(lines: list[str], n: int = 6) -> str:
    useful = [line.strip() for line in lines if line.strip() and not set(line.strip()) <= {"*", " "}]
    text = " | ".join(useful[-n:])
    return text[-1200:]


class AnsibleEngine:
    name = "ansible"

    def plan(self, workdir: Path, spec: EngineSpec, log: LogSink, cancel: threading.Event) -> NodePlan:
        return self._run(workdir, spec, log, cancel, check=True)

    def apply(self, workdir: Path, spec: EngineSpec, log: LogSink, cancel: threading.Event) -> NodePlan:
        return self._run(workdir, spec, log, cancel, check=False)

    def _run(
        self, workdir: Path, spec: EngineSpec, log: LogSink, cancel: threading.Event, *, check: bool
    ) -> NodePlan:
        playbook = module_path(workdir, spec.ref, what="playbook")
        if not playbook.is_file():
            raise EngineFailed(f"playbook {spec.ref!r} is not a file")
        binary = ansible_playbook_path()
        if not binary.is_file():
            raise EngineUnavailable(
                f"ansible-playbook is not installed next to the agent's Python ({binary}); "
                "install ansible-core into the agent's environment"
            )
        try:
            from ansible_runner.interface import init_runner
        except ImportError as exc:  # pragma: no cover - a dependency of the package
            raise EngineUnavailable(f"ansible-runner is not importable on this agent: {exc}") from exc

        if cancel.is_set():
            raise EngineCanceled("canceled before ansible-playbook started")
        recorder = _Recorder(log)
        mode = "check mode (plan)" if check else "apply"
        log(f"xcf: ansible-playbook {spec.ref} in {mode}")
        with _scratch(spec) as scratch:
            private = scratch / "ansible"
            private.mkdir()
            (private / "ansible.cfg").write_text(ANSIBLE_CFG)
            flags = ["--check", "--diff"] if check else ["--diff"]
            runner = init_runner(
                private_data_dir=str(private),
                project_dir=str(workdir),
                # With `binary` set ansible-runner runs it as given and appends no playbook: it goes
                # on the command line, after the flags.
                binary=str(binary),
                cmdline=" ".join([*flags, shlex.quote(str(playbook))]),
                inventory=inventory_line(),
                extravars=dict(spec.inputs) or None,
                envvars=_ansible_env(scratch, private),
                settings={"pexpect_timeout": CANCEL_POLL_SECONDS, "suppress_ansible_output": True},
                timeout=max(1, int(spec.timeout_seconds)),
                quiet=True,
                event_handler=recorder,
                cancel_callback=cancel.is_set,
            )
            # ansible-runner starts from the whole os.environ: drop the agent's own variables and
            # any ANSIBLE_* the agent's user set (ours were put back by envvars above).
            own = _ansible_env(scratch, private)
            runner.config.env = {
                k: v
                for k, v in runner.config.env.items()
                if not k.startswith("XCF_") and (not k.startswith("ANSIBLE_") or k in own or _runner_key(k))
            }
            runner.config.env.update({str(k): str(v) for k, v in spec.env.items()})
            mark = uuid.uuid4().hex
            runner.config.env[RUN_MARK] = mark
            # ansible-playbook (and every task it runs) in the job's sandbox: the checkout and the
            # scratch dir writable, nothing else of the agent visible. pexpect starts bwrap with the
            # job's environment only.
            try:
                runner.config.command = wrap(
                    runner.config.command,
                    sandbox=spec.sandbox.with_paths(writable=[workdir, scratch]),
                    cwd=Path(runner.config.cwd or workdir),
                    env=runner.config.env,
                )
            except SandboxUnavailable as exc:
                raise EngineUnavailable(exc.message) from exc
            try:
                status, rc = runner.run()
            finally:
                if runner.status != "successful":
                    stopped = kill_marked(mark)
                    if stopped:
                        log(f"xcf: stopped {stopped} processes the playbook left running")

        if status == "canceled":
            raise EngineCanceled(f"ansible-playbook {spec.ref} was canceled and stopped")
        if status == "timeout":
            raise EngineFailed(
                f"ansible-playbook {spec.ref} did not finish within {spec.timeout_seconds:g}s and was stopped",
                details={"playbook": spec.ref, "timeout_seconds": spec.timeout_seconds},
            )
        if recorder.failures:
            first = recorder.failures[0]
            what = "could not reach" if first.unreachable else "failed on"
            raise EngineFailed(
                f"ansible task {first.task!r} {what} {first.host} in {spec.ref}: {first.message}",
                details={
                    "playbook": spec.ref,
                    "failures": [
                        {"task": f.task, "host": f.host, "message": f.message, "unreachable": f.unreachable}
                        for f in recorder.failures
                    ],
                },
            )
        if status != "successful":
            raise EngineFailed(
                f"ansible-playbook {spec.ref} failed (exit code {rc}): {_tail(recorder.lines) or 'no output'}",
                details={"playbook": spec.ref, "exit_code": rc},
            )
        plan = NodePlan.from_changes(self.name, recorder.changes)
        counts = plan.summary
        log(
            f"xcf: ansible {'would change' if check else 'changed'} {len(recorder.changes)} task results "
            f"({counts['add']} to add, {counts['change']} to change, {counts['destroy']} to destroy)"
        )
        return plan


def kill_marked(mark: str, *, rounds: int = 5) -> int:
    """SIGKILL every process of ours whose environment holds RUN_MARK=mark (Linux /proc); how many."""
    needle = f"{RUN_MARK}={mark}".encode() + b"\0"
    proc = Path("/proc")
    if not proc.is_dir():
        return 0
    killed: set[int] = set()
    for _ in range(rounds):  # a dying worker may have forked a child meanwhile
        found = False
        for entry in proc.iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                environ = (entry / "environ").read_bytes()
            except OSError:
                continue
            if needle in environ:
                found = True
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(int(entry.name), signal.SIGKILL)
                    killed.add(int(entry.name))
        if not found:
            break
        time.sleep(0.05)
    return len(killed)


# Variables ansible-runner itself sets for its callback plugin and event stream: keep them.
_RUNNER_KEYS = (
    "ANSIBLE_CALLBACK_PLUGINS",
    "ANSIBLE_STDOUT_CALLBACK",
    "ANSIBLE_RETRY_FILES_ENABLED",
    "ANSIBLE_HOST_KEY_CHECKING",
    "ANSIBLE_CACHE_PLUGIN",
    "ANSIBLE_CACHE_PLUGIN_CONNECTION",
    "ANSIBLE_ROLES_PATH",
)


def _runner_key(key: str) -> bool:
    return key in _RUNNER_KEYS


def _ansible_env(scratch: Path, private: Path) -> dict[str, str]:
    tmp = scratch / "tmp"
    bin_dir = str(Path(sys.executable).parent)
    path = tool_environment({}).get("PATH", "")
    return {
        "ANSIBLE_CONFIG": str(private / "ansible.cfg"),
        "ANSIBLE_HOME": str(scratch / "ansible-home"),
        "ANSIBLE_LOCAL_TEMP": str(tmp / "local"),
        "ANSIBLE_REMOTE_TEMP": str(tmp / "remote"),
        "ANSIBLE_PERSISTENT_CONTROL_PATH_DIR": str(tmp / "pc"),
        "ANSIBLE_SSH_CONTROL_PATH_DIR": str(tmp / "cp"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "ANSIBLE_LOCALHOST_WARNING": "0",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0",
        "ANSIBLE_DEPRECATION_WARNINGS": "0",
        # The agent's environment first, so anything a task runs (ansible-galaxy...) is ours too.
        "PATH": f"{bin_dir}:{path}" if path else bin_dir,
    }


@contextmanager
def _scratch(spec: EngineSpec) -> Iterator[Path]:
    if spec.scratch_dir is not None:
        spec.scratch_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="xcf-ansible-", dir=spec.scratch_dir) as path:
        yield Path(path)
