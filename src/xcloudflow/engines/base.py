"""What every engine returns and how engines run their tools: the normalized node plan and a child process.

An engine turns one module of a composition (a playbook, a kustomization, a Pulumi project) into a
`NodePlan` (what would change / what changed), in the same shape the lead builds from Terraform's
plan JSON, so the ChangeSet, the policies and the Markdown rendering see one format whatever the tool.

Engines are plain code over a directory: they never import the database, the server, the agent or
any domain (import-linter checks it), never read settings, and never log an input's value
themselves (the caller masks what the tools print). Failures are `EngineFailed` (the tool said no:
permanent), `EngineUnavailable` (the tool or what it needs is missing on this machine) or
`EngineCanceled` (the cancel event fired and the tool was stopped).

Every tool runs through `run_process` (or, for ansible-runner, `sandbox.wrap`) inside the spec's
sandbox with only the checkout and the scratch dir writable: a module is user code.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from xcloudflow.engines.sandbox import Child, Sandbox, SandboxUnavailable, start
from xcloudflow.errors import Invalid

LogSink = Callable[[str], None]
ACTIONS = ("create", "update", "delete", "read", "no-op")

# Variables of the agent itself (its pool token, its server) never reach a tool or user code.
AGENT_ENV_PREFIX = "XCF_"


class EngineFailed(Invalid):
    """The tool ran and reported a failure (a failing task, an invalid manifest): fix something first."""

    code = "engine_failed"


class EngineUnavailable(Invalid):
    """The engine cannot run here: its CLI is missing, or what it talks to (a cluster) is not configured."""

    code = "engine_unavailable"


class EngineCanceled(Exception):
    """The run was stopped because the cancel event fired."""


@dataclass(frozen=True)
class ResourceChange:
    address: str
    type: str
    actions: list[str]  # each one of ACTIONS
    detail: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"address": self.address, "type": self.type, "actions": list(self.actions)}
        if self.detail is not None:
            out["detail"] = self.detail
        return out


@dataclass(frozen=True)
class NodePlan:
    engine: str
    has_changes: bool
    summary: dict[str, int]  # {"add": n, "change": n, "destroy": n}
    resource_changes: list[ResourceChange]

    def to_json(self) -> dict[str, Any]:
        return {
            "engine": self.engine,
            "has_changes": self.has_changes,
            "summary": dict(self.summary),
            "resource_changes": [rc.to_json() for rc in self.resource_changes],
        }

    @classmethod
    def from_changes(cls, engine: str, changes: Sequence[ResourceChange]) -> NodePlan:
        """Counts like Terraform's: a replacement (delete + create) is one add and one destroy."""
        return cls(
            engine=engine,
            has_changes=any(a in ("create", "update", "delete") for rc in changes for a in rc.actions),
            summary=summarize(changes),
            resource_changes=list(changes),
        )


def summarize(changes: Sequence[ResourceChange]) -> dict[str, int]:
    add = sum(1 for rc in changes if "create" in rc.actions)
    destroy = sum(1 for rc in changes if "delete" in rc.actions)
    change = sum(1 for rc in changes if rc.actions == ["update"])
    return {"add": add, "change": change, "destroy": destroy}


@dataclass(frozen=True)
class EngineSpec:
    ref: str  # repo-relative module path / playbook
    inputs: dict[str, Any]
    env: dict[str, str]  # extra environment for the tool (already resolved)
    timeout_seconds: float
    # Where the engine may write its own files (ansible's private data dir, temp dirs); a fresh
    # system temp dir when None. Removed by whoever made it.
    scratch_dir: Path | None = None
    # Where the tool runs: bwrap unless the agent opted out; the engine adds the checkout and the
    # scratch dir as its only writable paths (see sandbox_for).
    sandbox: Sandbox = field(default_factory=Sandbox)


def sandbox_for(workdir: Path, spec: EngineSpec, *, readonly: Sequence[Path] = ()) -> Sandbox:
    """The spec's sandbox with the checkout and the scratch dir writable, plus `readonly` visible."""
    writable = [workdir, *([spec.scratch_dir] if spec.scratch_dir is not None else [])]
    return spec.sandbox.with_paths(writable=writable, readonly=readonly)


class Engine(Protocol):
    name: str

    def plan(self, workdir: Path, spec: EngineSpec, log: LogSink, cancel: threading.Event) -> NodePlan: ...

    def apply(self, workdir: Path, spec: EngineSpec, log: LogSink, cancel: threading.Event) -> NodePlan: ...


def module_path(workdir: Path, ref: str, *, what: str = "module") -> Path:
    """workdir/ref, refusing absolute paths, '..' and links leading out of the checkout."""
    posix = PurePosixPath(ref.replace("\\", "/"))
    if not ref or posix.is_absolute() or ".." in posix.parts or ref.startswith("~"):
        raise Invalid(f"{what} ref {ref!r} must be a relative path inside the repository")
    target = workdir.joinpath(*[p for p in posix.parts if p not in ("", ".")])
    root = workdir.resolve()
    resolved = target.resolve()
    if resolved != root and root not in resolved.parents:
        raise Invalid(f"{what} ref {ref!r} leads out of the repository")
    if not target.exists():
        raise Invalid(f"{what} {ref!r} does not exist in the repository snapshot")
    return target


def tool_environment(extra: Mapping[str, str], *, drop_prefixes: Sequence[str] = ()) -> dict[str, str]:
    """The agent's environment without its own XCF_* variables (and any other prefix asked), plus extra."""
    prefixes = (AGENT_ENV_PREFIX, *drop_prefixes)
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    env.update({str(k): str(v) for k, v in extra.items()})
    return env


# ------------------------------------------------------------ child processes


@dataclass
class ProcessResult:
    argv: list[str]
    exit_code: int
    lines: list[str] = field(default_factory=list)  # streamed output (stderr when stdout is captured)
    stdout: str = ""  # captured stdout, when asked
    canceled: bool = False
    timed_out: bool = False
    seconds: float = 0.0

    def tail(self, n: int = 5, *, limit: int = 800) -> str:
        text = " | ".join(line.strip() for line in self.lines[-n:] if line.strip())
        return text if len(text) <= limit else "..." + text[-(limit - 3) :]


def run_process(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    log: LogSink,
    cancel: threading.Event,
    timeout_seconds: float,
    stdin: bytes | None = None,
    capture_stdout: bool = False,
    grace_seconds: float = 10.0,
    sandbox: Sandbox | None = None,
) -> ProcessResult:
    """Run one command in its own process group, streaming its lines to `log`.

    The cancel event (or the timeout) sends SIGINT to the group, then SIGKILL after `grace_seconds`;
    whatever the command left running in its group ends with it. A command that cannot start gives
    exit code 127 and the reason as its only line. It runs in `sandbox` (default: bwrap with only
    `cwd` writable).
    """
    started = time.monotonic()
    result = ProcessResult(argv=list(argv), exit_code=-1)
    try:
        child: Child = start(
            argv,
            sandbox=sandbox if sandbox is not None else Sandbox().with_paths(writable=[cwd]),
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stderr=subprocess.PIPE if capture_stdout else subprocess.STDOUT,
        )
    except (OSError, SandboxUnavailable) as exc:
        reason = exc.message if isinstance(exc, SandboxUnavailable) else exc.strerror or str(exc)
        line = f"cannot start {argv[0]}: {reason}"
        result.exit_code, result.lines = 127, [line]
        log(line)
        return result
    proc = child.popen

    captured: list[bytes] = []

    def pump(stream: Any) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            result.lines.append(line)
            log(line)
        stream.close()

    def collect(stream: Any) -> None:
        captured.append(stream.read())
        stream.close()

    readers = [
        threading.Thread(target=pump, args=(proc.stderr if capture_stdout else proc.stdout,), daemon=True)
    ]
    if capture_stdout:
        readers.append(threading.Thread(target=collect, args=(proc.stdout,), daemon=True))
    for reader in readers:
        reader.start()
    if stdin is not None:
        assert proc.stdin is not None
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.write(stdin)
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.close()

    deadline = started + timeout_seconds
    while True:
        try:
            result.exit_code = proc.wait(timeout=0.2)
            break
        except subprocess.TimeoutExpired:
            pass
        if cancel.is_set() or time.monotonic() > deadline:
            result.canceled = cancel.is_set()
            result.timed_out = not result.canceled
            child.signal(signal.SIGINT)
            try:
                result.exit_code = proc.wait(timeout=grace_seconds)
            except subprocess.TimeoutExpired:
                child.signal(signal.SIGKILL)
                result.exit_code = proc.wait()
            break
    child.signal(signal.SIGKILL)
    for reader in readers:
        reader.join(timeout=10)
    result.stdout = b"".join(captured).decode("utf-8", "replace")
    result.seconds = time.monotonic() - started
    return result
