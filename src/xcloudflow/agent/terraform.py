"""Terraform as a child process of the agent: run, stream, interrupt, and read what it leaves behind.

Every command runs in its own process group in the run directory, with a fixed automation
environment (no prompts, no colors, no version checks, a CLI config file with the agent's shared
provider plugin cache) and streams its output line by line, masked, to a callback. A cancel event
sends SIGINT to the whole group (Terraform's graceful stop: it finishes the current operations and
saves the state), then SIGKILL after the grace period. Terraform never runs inside the agent's
process: the embedded one is started as `python <...>/xcloudflow/agent/tfcli.py`.

The backend password (the job token) is only ever passed as TF_HTTP_PASSWORD in the child's
environment, never on a command line or in a file.

Every command runs in the job's sandbox (xcloudflow.engines.sandbox; XCF_AGENT_SANDBOX): only the run
directory and the shared plugin cache are writable, the CLI config, tfcli.py and a workspace's own
terraform_bin are visible read-only, and nothing else of the agent or the server is.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from xcloudflow.agent.masking import Masker
from xcloudflow.agent.sandbox import job_sandbox
from xcloudflow.engines.sandbox import Child, Sandbox, SandboxUnavailable, start

PLAN_FILE = "plan.bin"
ERRORED_STATE = "errored.tfstate"
ErrorClass = Literal["transient", "permanent"]
LineSink = Callable[[str], None]

# Variables of the agent itself (its pool token, its server) are never passed on to user code.
_AGENT_ENV_PREFIX = "XCF_"


def default_data_dir() -> Path:
    """The agent's data dir: XCF_AGENT_DATA_DIR, else ~/.xcf/agent (read when a job runs)."""
    configured = os.environ.get("XCF_AGENT_DATA_DIR")
    return Path(configured).expanduser() if configured else Path.home() / ".xcf" / "agent"


def cli_config(data_dir: Path) -> Path:
    """Write (once per call, atomically) the Terraform CLI config with the shared plugin cache."""
    cache = data_dir / "plugin-cache"
    cache.mkdir(parents=True, exist_ok=True)
    path = data_dir / "terraform.rc"
    text = (
        f"plugin_cache_dir = {json.dumps(str(cache))}\n"
        # Let the cache serve providers even when a lock file lacks this platform's checksum.
        "plugin_cache_may_break_dependency_lock_file = true\n"
    )
    if not path.exists() or path.read_text() != text:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
        tmp.write_text(text)
        tmp.replace(path)
    return path


def terraform_command(terraform_bin: str | None) -> list[str]:
    if terraform_bin:
        return [terraform_bin]
    # The module's file, not `-m`: importing the xcloudflow.agent package (httpx...) would add ~0.15 s
    # to every Terraform command.
    return [sys.executable, str(Path(__file__).with_name("tfcli.py"))]


@dataclass
class Completed:
    """What one Terraform command did."""

    args: list[str]
    exit_code: int
    lines: list[str] = field(default_factory=list)  # masked output lines (stdout+stderr, or stderr)
    stdout: str = ""  # captured (not streamed) stdout, for -json commands; NOT masked
    interrupted: bool = False  # the cancel event fired and SIGINT was sent
    killed: bool = False  # the grace period ran out and the group was SIGKILLed
    seconds: float = 0.0

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


@dataclass(frozen=True)
class Backend:
    """The HTTP backend settings of a run (the bundle's "backend" with the server URL prefixed)."""

    address: str
    lock_address: str
    unlock_address: str
    lock_method: str = "LOCK"
    unlock_method: str = "UNLOCK"
    username: str = "job"
    retry_max: int = 5

    @classmethod
    def from_bundle(cls, server_url: str, backend: Mapping[str, Any]) -> Backend:
        base = server_url.rstrip("/")

        def url(value: Any) -> str:
            text = str(value)
            return text if "://" in text else base + "/" + text.lstrip("/")

        address = url(backend["address"])
        return cls(
            address=address,
            lock_address=url(backend.get("lock_address") or address),
            unlock_address=url(backend.get("unlock_address") or address),
            lock_method=str(backend.get("lock_method") or "LOCK"),
            unlock_method=str(backend.get("unlock_method") or "UNLOCK"),
            username=str(backend.get("username") or "job"),
            retry_max=int(backend.get("retry_max") or 5),
        )

    def args(self) -> list[str]:
        pairs = {
            "address": self.address,
            "lock_address": self.lock_address,
            "unlock_address": self.unlock_address,
            "lock_method": self.lock_method,
            "unlock_method": self.unlock_method,
            "username": self.username,
            "retry_max": str(self.retry_max),
        }
        return [f"-backend-config={k}={v}" for k, v in pairs.items()]


class Terraform:
    """Runs Terraform commands for one run directory; see the module docstring."""

    def __init__(
        self,
        *,
        workdir: Path,
        data_dir: Path,
        on_line: LineSink,
        masker: Masker,
        env: Mapping[str, str] | None = None,
        password: str | None = None,
        terraform_bin: str | None = None,
        cancel: threading.Event | None = None,
        grace_seconds: float = 20.0,
        root: Path | None = None,
        sandbox: Sandbox | None = None,
    ) -> None:
        self.workdir = workdir
        self.data_dir = data_dir
        self.on_line = on_line
        self.masker = masker
        self.command = terraform_command(terraform_bin)
        self.cancel = cancel or threading.Event()
        self.grace_seconds = grace_seconds
        self.env = self._environment(env or {}, password)
        # Only the run's own directory and the shared plugin cache are writable; the CLI config and a
        # workspace's own terraform_bin (a file on this agent) are visible read-only.
        readonly = [Path(self.env["TF_CLI_CONFIG_FILE"]), Path(__file__).with_name("tfcli.py")]
        if terraform_bin and Path(terraform_bin).is_absolute() and Path(terraform_bin).is_file():
            readonly.append(Path(terraform_bin))
        base = sandbox if sandbox is not None else job_sandbox(data_dir, say=on_line)
        self.sandbox = base.with_paths(
            writable=[root or workdir, data_dir / "plugin-cache"], readonly=readonly
        )

    def _environment(self, extra: Mapping[str, str], password: str | None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(_AGENT_ENV_PREFIX)}
        env.update({str(k): str(v) for k, v in extra.items()})
        env.update(
            {
                "TF_IN_AUTOMATION": "1",
                "TF_INPUT": "0",
                "CHECKPOINT_DISABLE": "1",
                "NO_COLOR": "1",
                "TF_CLI_CONFIG_FILE": str(cli_config(self.data_dir)),
            }
        )
        env.pop("TF_HTTP_PASSWORD", None)
        if password is not None:
            env["TF_HTTP_PASSWORD"] = password
        return env

    # ------------------------------------------------------------ the process

    def run(self, *args: str, capture_stdout: bool = False, log: bool = True) -> Completed:
        """Run one command; streams masked lines to `on_line` (stderr only when capturing stdout)."""
        argv = [*self.command, *args]
        started = time.monotonic()
        done = Completed(args=list(args), exit_code=-1)
        try:
            # Its own process group (in its sandbox): signals reach provisioners' children too.
            child = start(
                argv,
                sandbox=self.sandbox,
                cwd=self.workdir,
                env=self.env,
                stderr=subprocess.PIPE if capture_stdout else subprocess.STDOUT,
            )
        except (OSError, SandboxUnavailable) as exc:
            reason = exc.message if isinstance(exc, SandboxUnavailable) else exc.strerror or str(exc)
            line = self.masker.mask(f"Error: cannot start {self.command[0]}: {reason}")
            done.exit_code, done.lines = 127, [line]
            self.on_line(line)
            return done
        proc = child.popen
        stdout_parts: list[bytes] = []
        readers: list[threading.Thread] = []

        def pump(stream: Any) -> None:
            for raw in iter(stream.readline, b""):
                line = self.masker.mask(raw.decode("utf-8", "replace").rstrip("\r\n"))
                done.lines.append(line)
                if log:
                    self.on_line(line)
            stream.close()

        def collect(stream: Any) -> None:
            stdout_parts.append(stream.read())
            stream.close()

        if capture_stdout:
            readers.append(threading.Thread(target=collect, args=(proc.stdout,), daemon=True))
            readers.append(threading.Thread(target=pump, args=(proc.stderr,), daemon=True))
        else:
            readers.append(threading.Thread(target=pump, args=(proc.stdout,), daemon=True))
        for reader in readers:
            reader.start()

        done.exit_code, done.interrupted, done.killed = self._wait(child)
        # Whatever the command left running in its group (a provisioner's background child) ends with it.
        child.signal(signal.SIGKILL)
        for reader in readers:
            reader.join(timeout=10)
        done.stdout = b"".join(stdout_parts).decode("utf-8", "replace")
        done.seconds = time.monotonic() - started
        return done

    def _wait(self, child: Child) -> tuple[int, bool, bool]:
        proc = child.popen
        while True:
            try:
                return proc.wait(timeout=0.2), False, False
            except subprocess.TimeoutExpired:
                pass
            if self.cancel.is_set():
                break
        self.on_line(f"xcf: cancel requested: interrupting Terraform (grace {self.grace_seconds:g}s)")
        child.signal(signal.SIGINT)
        try:
            return proc.wait(timeout=self.grace_seconds), True, False
        except subprocess.TimeoutExpired:
            pass
        self.on_line(f"xcf: Terraform did not stop within {self.grace_seconds:g}s: killing it")
        child.signal(signal.SIGKILL)
        return proc.wait(), True, True

    # ------------------------------------------------------------ commands

    def init(self, backend: Backend | None = None) -> Completed:
        args = ["init", "-input=false", "-no-color"]
        if backend is not None:
            args += backend.args()
        return self.run(*args)

    def plan(
        self,
        *,
        mode: str = "normal",
        targets: Sequence[str] = (),
        out: str = PLAN_FILE,
        detailed_exitcode: bool = True,
    ) -> Completed:
        args = ["plan", f"-out={out}", "-input=false", "-no-color"]
        if detailed_exitcode:
            args.append("-detailed-exitcode")
        if mode == "destroy":
            args.append("-destroy")
        elif mode == "refresh-only":
            args.append("-refresh-only")
        elif mode != "normal":
            raise ValueError(f"unknown plan mode {mode!r}: normal, destroy or refresh-only")
        args += [f"-target={t}" for t in targets]
        return self.run(*args)

    def show_json(self, plan: str = PLAN_FILE) -> tuple[Completed, dict[str, Any] | None]:
        done = self.run("show", "-json", "-no-color", plan, capture_stdout=True)
        return done, _json_document(done)

    def apply(self, plan: str = PLAN_FILE) -> Completed:
        return self.run("apply", "-input=false", "-no-color", "-auto-approve", plan)

    def output_json(self) -> tuple[Completed, dict[str, Any] | None]:
        done = self.run("output", "-json", "-no-color", capture_stdout=True)
        return done, _json_document(done)

    def backup_errored_state(self, run_id: str) -> Path | None:
        """Terraform writes errored.tfstate when it cannot save the state: keep it out of the run dir."""
        errored = self.workdir / ERRORED_STATE
        if not errored.is_file():
            return None
        backups = self.data_dir / "backups"
        backups.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        target = backups / f"{_safe_name(run_id)}-{stamp}.tfstate"
        shutil.copyfile(errored, target)
        target.chmod(0o600)
        return target


def _json_document(done: Completed) -> dict[str, Any] | None:
    if done.exit_code != 0:
        return None
    try:
        value = json.loads(done.stdout)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", text) or "run"


# ------------------------------------------------------------ plan files and plan JSON


def plan_prior_state(plan_file: Path) -> tuple[int | None, str | None]:
    """(serial, lineage) of the state the plan was made against; (None, None) when there was none.

    A Terraform plan file is a zip whose `tfstate` member is the prior state.
    """
    try:
        with zipfile.ZipFile(plan_file) as archive:
            state = json.loads(archive.read("tfstate"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None, None
    lineage = state.get("lineage") or None
    serial = state.get("serial")
    if lineage is None:
        return None, None
    return (int(serial) if isinstance(serial, int) else None), str(lineage)


def plan_lock_file(plan_file: Path) -> bytes | None:
    """The dependency lock file the plan was made with (init must pick the same providers)."""
    try:
        with zipfile.ZipFile(plan_file) as archive:
            return archive.read(".terraform.lock.hcl")
    except (OSError, KeyError, zipfile.BadZipFile):
        return None


@dataclass(frozen=True)
class PlanSummary:
    add: int = 0
    change: int = 0
    destroy: int = 0
    import_: int = 0
    output_changes: list[dict[str, Any]] = field(default_factory=list)
    resource_drift: list[dict[str, Any]] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {"add": self.add, "change": self.change, "destroy": self.destroy, "import": self.import_}


def summarize_plan(plan: Mapping[str, Any]) -> PlanSummary:
    """Counts as Terraform prints them ("N to add, M to change, K to destroy"), plus imports.

    A replacement counts once as add and once as destroy; an import is counted on its own and,
    when it also updates the resource, as a change.
    """
    add = change = destroy = imports = 0
    for rc in plan.get("resource_changes") or []:
        if not isinstance(rc, dict) or rc.get("mode", "managed") != "managed":
            continue
        ch = rc.get("change") or {}
        actions = list(ch.get("actions") or [])
        if ch.get("importing") is not None:
            imports += 1
        if "create" in actions:
            add += 1
        if "delete" in actions:
            destroy += 1
        if actions == ["update"]:
            change += 1
    output_changes = [
        {"name": name, "actions": list((ch or {}).get("actions") or [])}
        for name, ch in sorted((plan.get("output_changes") or {}).items())
        if list((ch or {}).get("actions") or []) != ["no-op"]
    ]
    drift = [
        {"address": d.get("address"), "actions": list((d.get("change") or {}).get("actions") or [])}
        for d in plan.get("resource_drift") or []
        if isinstance(d, dict)
    ]
    return PlanSummary(add, change, destroy, imports, output_changes, drift)


# ------------------------------------------------------------ failures

_STALE = re.compile(r"Saved plan is stale", re.I)
_PERMANENT = re.compile(
    "|".join(
        [
            r"No value for required variable",
            r"Unsupported (argument|block type|attribute)",
            r"Missing required (argument|provider)",
            r"Invalid (value|reference|expression|function|block|resource|character|syntax|for_each|count)",
            r"Reference to undeclared",
            r"Argument or block definition required",
            r"Unclosed configuration block",
            r"Variables not allowed",
            r"Duplicate (resource|variable|output|provider)",
            r"Failed to query available provider packages",
            r"Module not installed",
            r"Backend initialization required",
            r"Saved plan is stale",
            r"HTTP remote state endpoint requires auth",
            r"HTTP remote state endpoint invalid auth",
            r"\b(?:status(?: code)?|response code|HTTP(?:/[\d.]+)?)[: ]+40[13]\b",
            r"\b401 Unauthorized\b",
            r"\b403 Forbidden\b",
            r"AccessDenied|UnauthorizedOperation|AuthorizationFailed|InvalidClientTokenId",
        ]
    ),
    re.I,
)
_TRANSIENT = re.compile(
    "|".join(
        [
            r"connection refused",
            r"connection reset",
            r"broken pipe",
            r"i/o timeout",
            r"timed? ?out",
            r"deadline exceeded",
            r"TLS handshake",
            r"no such host",
            r"temporary failure in name resolution",
            r"network is unreachable",
            r"unexpected EOF",
            r"Too Many Requests",
            r"Throttl",
            r"Rate ?exceeded",
            r"Internal Server Error",
            r"Bad Gateway",
            r"Service Unavailable",
            r"Gateway Timeout",
            r"\b(?:status(?: code)?|response code|HTTP(?:/[\d.]+)?)[: ]+(?:429|5\d\d)\b",
            r"Error acquiring the state lock",
            r"Error releasing the state lock",
            r"Failed to (?:persist|save) state",
            r"Failed to load state",
            r"Error refreshing state",
        ]
    ),
    re.I,
)


def is_stale(text: str) -> bool:
    return bool(_STALE.search(text))


def classify(text: str) -> ErrorClass:
    """Transient (worth retrying: the network, the server, a lock) or permanent (fix something first).

    A configuration or authorization error wins over a network one seen in the same output;
    anything unrecognized is permanent, so nothing is repeated blindly.
    """
    if _PERMANENT.search(text):
        return "permanent"
    if _TRANSIENT.search(text):
        return "transient"
    return "permanent"


def error_summary(lines: Sequence[str], *, limit: int = 1500) -> str:
    """Terraform's error diagnostics ("Error: ..." and their detail) as one paragraph."""
    blocks: list[list[str]] = []
    current: list[str] | None = None
    for raw in lines:
        line = raw.strip().lstrip("│╷╵").strip()
        if line.startswith("Error: "):
            current = [line]
            blocks.append(current)
        elif current is not None:
            if line.startswith(("Warning: ", "xcf: ")):
                current = None
            elif line:
                current.append(line)
    seen: set[str] = set()
    parts: list[str] = []
    for block in blocks:
        text = " ".join(block)
        if text not in seen:
            seen.add(text)
            parts.append(text)
    summary = " ".join(parts) if parts else " ".join(line.strip() for line in lines[-5:] if line.strip())
    return summary if len(summary) <= limit else summary[: limit - 3] + "..."
