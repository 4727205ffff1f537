"""The agent's compose jobs: plan or apply one ChangeSet node with its engine, and run a node's checks.

`compose.plan` / `compose.apply` fetch the repository snapshot of the ChangeSet (GET
/jobs/{id}/compose-bundle with the job token), extract it safely into a fresh directory under the
agent's data dir, run the node's engine (ansible, kubernetes, pulumi: see xcloudflow.engines) and
report `{"plan": NodePlan}`. `compose.exec` runs a node's backup command or observation check: a
shell command in the snapshot, or an HTTP GET; an observation repeats every interval until it
passes or its window closes.

Everything sent back (log lines, results, error messages) goes through a Masker holding the job
token, the input values whose names look secret (password, token, secret, key...) and any value the
payload lists as "sensitive": this module never sends an input's value unmasked. The snapshot
directory is always removed at the end; nothing of a node stays on the agent.

The job-facing entry points are thin: `run_node` / `run_exec` take the payload, a log/cancel object
and a callable that fetches the snapshot, so they are tested without a server.
"""

from __future__ import annotations

import functools
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

import httpx

from xcloudflow.agent.client import AgentApiError, JobSpec
from xcloudflow.agent.masking import Masker
from xcloudflow.agent.run_handler import UnsafeArchive, safe_extract
from xcloudflow.agent.runner import Handler, JobIO, JobOutcome
from xcloudflow.agent.sandbox import job_sandbox
from xcloudflow.agent.terraform import default_data_dir
from xcloudflow.engines import AGENT_ENGINES, get_engine
from xcloudflow.engines.base import (
    EngineCanceled,
    EngineFailed,
    EngineSpec,
    EngineUnavailable,
    run_process,
    tool_environment,
)
from xcloudflow.engines.sandbox import Sandbox
from xcloudflow.errors import Invalid

DEFAULT_NODE_TIMEOUT = 1800.0
MAX_TIMEOUT = 24 * 3600.0
MAX_BUNDLE_BYTES = 512 * 1024 * 1024
SECRET_NAME = re.compile(
    r"pass(word|wd|phrase)?|secret|token|api[_-]?key|private[_-]?key|credential|auth", re.I
)
MIN_SECRET_CHARS = 4
BundleFetch = Callable[[], bytes]


class ComposeIO(Protocol):
    """What a compose job needs of its job: JobIO, or anything that logs and carries a cancel event."""

    cancelled: threading.Event

    def log(self, text: str) -> None: ...


# ------------------------------------------------------------ payloads


def _number(payload: Mapping[str, Any], key: str, default: float, *, low: float, high: float) -> float:
    value = payload.get(key, default)
    if value is None:
        value = default
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise Invalid(f"payload.{key} must be a number from {low:g} to {high:g}, not {value!r}")
    return float(value)


def _text(payload: Mapping[str, Any], key: str, *, required: bool = True) -> str | None:
    value = payload.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise Invalid(f"payload.{key} must be a non-empty string")
    return value


def _env(payload: Mapping[str, Any]) -> dict[str, str]:
    env = payload.get("env") or {}
    if not isinstance(env, Mapping) or not all(isinstance(k, str) for k in env):
        raise Invalid("payload.env must be an object of strings")
    return {k: str(v) for k, v in env.items()}


@dataclass(frozen=True)
class NodeJob:
    changeset: str
    node: str
    engine: str
    ref: str
    inputs: dict[str, Any]
    env: dict[str, str]
    timeout_seconds: float
    sensitive: tuple[str, ...] = ()

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> NodeJob:
        engine = _text(payload, "engine")
        if engine not in AGENT_ENGINES:
            raise Invalid(
                f"payload.engine {engine!r} is not run by compose jobs: one of {', '.join(AGENT_ENGINES)}"
            )
        inputs = payload.get("inputs") or {}
        if not isinstance(inputs, Mapping):
            raise Invalid("payload.inputs must be an object")
        return cls(
            changeset=str(payload.get("changeset") or ""),
            node=_text(payload, "node") or "",
            engine=engine,
            ref=_text(payload, "ref") or "",
            inputs=dict(inputs),
            env=_env(payload),
            timeout_seconds=_number(
                payload, "timeout_seconds", DEFAULT_NODE_TIMEOUT, low=1, high=MAX_TIMEOUT
            ),
            sensitive=_sensitive(payload),
        )


@dataclass(frozen=True)
class ExecJob:
    changeset: str
    node: str
    purpose: Literal["backup", "observe"]
    command: str | None
    url: str | None
    window_seconds: float
    interval_seconds: float
    timeout_seconds: float
    env: dict[str, str]
    sensitive: tuple[str, ...] = ()

    @property
    def repeat(self) -> bool:
        return self.purpose == "observe"

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> ExecJob:
        purpose = payload.get("purpose")
        if purpose not in ("backup", "observe"):
            raise Invalid(f"payload.purpose must be 'backup' or 'observe', not {purpose!r}")
        command = _text(payload, "command", required=False)
        url = _text(payload, "url", required=False)
        if (command is None) == (url is None):
            raise Invalid("payload needs exactly one of command and url")
        if url is not None:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise Invalid(f"payload.url {url!r} must be an http:// or https:// URL with a host")
        return cls(
            changeset=str(payload.get("changeset") or ""),
            node=str(payload.get("node") or ""),
            purpose=purpose,
            command=command,
            url=url,
            window_seconds=_number(payload, "window_seconds", 300, low=0, high=MAX_TIMEOUT),
            interval_seconds=_number(payload, "interval_seconds", 10, low=0.05, high=MAX_TIMEOUT),
            timeout_seconds=_number(payload, "timeout_seconds", 600, low=0.1, high=MAX_TIMEOUT),
            env=_env(payload),
            sensitive=_sensitive(payload),
        )


def _sensitive(payload: Mapping[str, Any]) -> tuple[str, ...]:
    values = payload.get("sensitive") or []
    return tuple(str(v) for v in values if isinstance(v, str | int | float) and not isinstance(v, bool))


def secret_values(values: Mapping[str, Any], *, under_secret: bool = False) -> list[str]:
    """The values (at any depth) whose key looks secret, as text; short or boolean values are left out."""
    found: list[str] = []
    for key, value in values.items():
        secret = under_secret or bool(SECRET_NAME.search(str(key)))
        if isinstance(value, Mapping):
            found += secret_values(value, under_secret=secret)
        elif isinstance(value, list):
            found += secret_values({str(i): v for i, v in enumerate(value)}, under_secret=secret)
        elif secret and isinstance(value, str | int | float) and not isinstance(value, bool):
            text = str(value)
            if len(text) >= MIN_SECRET_CHARS:
                found.append(text)
    return found


# ------------------------------------------------------------ the snapshot


def _fetch_failure(masker: Masker, exc: AgentApiError) -> JobOutcome:
    retryable = exc.status == 0 or exc.status >= 500
    return JobOutcome.failure(
        masker.mask(f"cannot fetch the repository snapshot from the server: {exc.message}"),
        result={"error_class": "transient" if retryable else "permanent"},
        retryable=retryable,
    )


def _job_root(data_dir: Path | None, node: str) -> Path:
    base = (data_dir or default_data_dir()) / "compose"
    base.mkdir(parents=True, exist_ok=True)
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", node)[:48] or "node"
    return Path(tempfile.mkdtemp(prefix=f"{safe}-", dir=base))


def checkout(archive: bytes, root: Path) -> Path:
    """Extract the snapshot into root/repo (refusing unsafe members, see safe_extract); the repo dir."""
    repo = root / "repo"
    repo.mkdir()
    try:
        safe_extract(archive, repo, max_bytes=MAX_BUNDLE_BYTES)
    except UnsafeArchive as exc:
        raise Invalid(f"the repository snapshot was refused: {exc}") from exc
    return repo


# ------------------------------------------------------------ compose.plan / compose.apply


def run_node(
    operation: Literal["plan", "apply"],
    payload: Mapping[str, Any],
    *,
    io: ComposeIO,
    fetch: BundleFetch,
    data_dir: Path | None = None,
    secrets: Iterable[str] = (),
) -> JobOutcome:
    masker = Masker(secrets)
    try:
        job = NodeJob.from_payload(payload)
    except Invalid as exc:
        return JobOutcome.failure(masker.mask(f"bad compose.{operation} payload: {exc.message}"))
    masker = Masker([*secrets, *job.sensitive, *secret_values(job.inputs), *secret_values(job.env)])

    def say(text: str) -> None:
        io.log(masker.mask(text))

    if io.cancelled.is_set():
        return JobOutcome.canceled(f"canceled before the {operation} of {job.node}")
    try:
        archive = fetch()
    except AgentApiError as exc:
        return _fetch_failure(masker, exc)
    root = _job_root(data_dir, job.node)
    try:
        try:
            repo = checkout(archive, root)
        except Invalid as exc:
            say(f"xcf: {exc.message}")
            return JobOutcome.failure(masker.mask(exc.message), result={"error_class": "permanent"})
        say(f"xcf: {operation} of node {job.node} ({job.engine} {job.ref}) for changeset {job.changeset}")
        spec = EngineSpec(
            ref=job.ref,
            inputs=job.inputs,
            env=job.env,
            timeout_seconds=job.timeout_seconds,
            scratch_dir=root / "scratch",
            sandbox=job_sandbox(data_dir or default_data_dir(), say=say),
        )
        engine = get_engine(job.engine)
        started = time.monotonic()
        try:
            plan = (engine.plan if operation == "plan" else engine.apply)(repo, spec, say, io.cancelled)
        except EngineCanceled as exc:
            say(f"xcf: {exc}")
            return JobOutcome.canceled(masker.mask(str(exc)))
        except EngineUnavailable as exc:
            say(f"xcf: {exc.message}")
            return JobOutcome.failure(
                masker.mask(exc.message), result={"error_class": "permanent", "unavailable": True}
            )
        except (EngineFailed, Invalid) as exc:
            say(f"xcf: {exc.message}")
            result: dict[str, Any] = {"error_class": "permanent"}
            if exc.details is not None:
                result["details"] = masker.mask_value(exc.details)
            return JobOutcome.failure(masker.mask(exc.message), result=result)
        except Exception as exc:  # a tool library's own error: report it masked, not as a raw traceback
            message = f"the {job.engine} engine raised {exc.__class__.__name__}: {exc}"
            say(f"xcf: {message}")
            return JobOutcome.failure(masker.mask(message), result={"error_class": "permanent"})
        say(f"xcf: {operation} finished in {time.monotonic() - started:.1f}s")
        return JobOutcome.success({"plan": masker.mask_value(plan.to_json())})
    finally:
        shutil.rmtree(root, ignore_errors=True)


# ------------------------------------------------------------ compose.exec


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    attempts: int
    last: str
    canceled: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "attempts": self.attempts, "last": self.last}


def _command_attempt(
    command: str,
    *,
    cwd: Path,
    env: Mapping[str, str],
    log: Callable[[str], None],
    cancel: threading.Event,
    timeout: float,
    sandbox: Sandbox,
) -> tuple[bool, str, bool]:
    done = run_process(
        ["/bin/sh", "-c", command],
        cwd=cwd,
        env=tool_environment(env),
        log=log,
        cancel=cancel,
        timeout_seconds=timeout,
        grace_seconds=5,
        sandbox=sandbox.with_paths(writable=[cwd]),
    )
    if done.canceled:
        return False, "canceled", True
    if done.timed_out:
        return (
            False,
            f"timed out after {timeout:g}s" + (f": {done.tail(3, limit=500)}" if done.lines else ""),
            False,
        )
    if done.exit_code == 0:
        return True, "exit 0", False
    tail = done.tail(3, limit=500)
    return False, f"exit {done.exit_code}" + (f": {tail}" if tail else ""), False


def _url_attempt(url: str, *, timeout: float) -> tuple[bool, str]:
    try:
        with httpx.Client(timeout=timeout, follow_redirects=True) as http:
            resp = http.get(url)
    except httpx.HTTPError as exc:
        return False, f"GET failed: {exc.__class__.__name__}: {exc}"
    return 200 <= resp.status_code < 300, f"HTTP {resp.status_code}"


def run_check(
    *,
    command: str | None,
    url: str | None,
    cwd: Path | None,
    repeat: bool,
    window_seconds: float,
    interval_seconds: float,
    timeout_seconds: float,
    log: Callable[[str], None],
    cancel: threading.Event,
    env: Mapping[str, str] | None = None,
    sandbox: Sandbox | None = None,
) -> CheckResult:
    """Try a command (exit 0) or a URL (2xx) once, or, with `repeat`, every interval until it passes or
    the window closes (an attempt is only started while the window is open; the first always is)."""
    if (command is None) == (url is None):
        raise Invalid("a check needs exactly one of command and url")
    deadline = time.monotonic() + window_seconds
    attempts = 0
    last = "not tried"
    while True:
        if cancel.is_set():
            return CheckResult(False, attempts, last, canceled=True)
        attempts += 1
        remaining = deadline - time.monotonic()
        timeout = min(timeout_seconds, max(remaining, 1.0)) if repeat else timeout_seconds
        if command is not None:
            assert cwd is not None
            ok, last, canceled = _command_attempt(
                command,
                cwd=cwd,
                env=env or {},
                log=log,
                cancel=cancel,
                timeout=timeout,
                sandbox=sandbox or Sandbox(),
            )
            if canceled:
                return CheckResult(False, attempts, last, canceled=True)
        else:
            assert url is not None
            ok, last = _url_attempt(url, timeout=timeout)
        log(f"xcf: attempt {attempts}: {last}")
        if ok or not repeat:
            return CheckResult(ok, attempts, last)
        if time.monotonic() + interval_seconds > deadline:
            log(f"xcf: the window of {window_seconds:g}s closed after {attempts} attempts")
            return CheckResult(False, attempts, last)
        if cancel.wait(interval_seconds):
            return CheckResult(False, attempts, last, canceled=True)


def run_exec(
    payload: Mapping[str, Any],
    *,
    io: ComposeIO,
    fetch: BundleFetch,
    data_dir: Path | None = None,
    secrets: Iterable[str] = (),
) -> JobOutcome:
    masker = Masker(secrets)
    try:
        job = ExecJob.from_payload(payload)
    except Invalid as exc:
        return JobOutcome.failure(masker.mask(f"bad compose.exec payload: {exc.message}"))
    masker = Masker([*secrets, *job.sensitive, *secret_values(job.env)])

    def say(text: str) -> None:
        io.log(masker.mask(text))

    what = f"{job.purpose} check of node {job.node}"
    if io.cancelled.is_set():
        return JobOutcome.canceled(f"canceled before the {what}")
    root: Path | None = None
    try:
        repo: Path | None = None
        if job.command is not None:  # a URL check needs no files
            try:
                archive = fetch()
            except AgentApiError as exc:
                return _fetch_failure(masker, exc)
            root = _job_root(data_dir, job.node)
            try:
                repo = checkout(archive, root)
            except Invalid as exc:
                say(f"xcf: {exc.message}")
                return JobOutcome.failure(masker.mask(exc.message), result={"error_class": "permanent"})
        target = f"GET {job.url}" if job.url is not None else "the command"
        mode = f" every {job.interval_seconds:g}s for up to {job.window_seconds:g}s" if job.repeat else ""
        say(f"xcf: {what}: {target}{mode}")
        result = run_check(
            command=job.command,
            url=job.url,
            cwd=repo,
            repeat=job.repeat,
            window_seconds=job.window_seconds,
            interval_seconds=job.interval_seconds,
            timeout_seconds=job.timeout_seconds,
            log=say,
            cancel=io.cancelled,
            env=job.env,
            sandbox=job_sandbox(data_dir or default_data_dir(), say=say),
        )
    finally:
        if root is not None:
            shutil.rmtree(root, ignore_errors=True)
    body = masker.mask_value(result.to_json())
    if result.canceled:
        return JobOutcome.canceled(masker.mask(f"the {what} was canceled after {result.attempts} attempts"))
    if not result.ok:
        return JobOutcome.failure(
            masker.mask(f"the {what} failed after {result.attempts} attempts: {result.last}"), result=body
        )
    return JobOutcome.success(body)


# ------------------------------------------------------------ job handlers


def _node_handler(
    job: JobSpec, io: JobIO, *, operation: Literal["plan", "apply"], data_dir: Path | None
) -> JobOutcome:
    return run_node(
        operation,
        job.payload,
        io=io,
        fetch=lambda: io.client.compose_bundle(job),
        data_dir=data_dir,
        secrets=[job.token],
    )


def _exec_handler(job: JobSpec, io: JobIO, *, data_dir: Path | None) -> JobOutcome:
    return run_exec(
        job.payload,
        io=io,
        fetch=lambda: io.client.compose_bundle(job),
        data_dir=data_dir,
        secrets=[job.token],
    )


def compose_handlers(data_dir: Path | None = None) -> dict[str, Handler]:
    """The three job kinds with a given agent data dir (default: `default_data_dir()` when a job runs)."""
    return {
        "compose.plan": functools.partial(_node_handler, operation="plan", data_dir=data_dir),
        "compose.apply": functools.partial(_node_handler, operation="apply", data_dir=data_dir),
        "compose.exec": functools.partial(_exec_handler, data_dir=data_dir),
    }


def compose_plan(job: JobSpec, io: JobIO) -> JobOutcome:
    return _node_handler(job, io, operation="plan", data_dir=None)


def compose_apply(job: JobSpec, io: JobIO) -> JobOutcome:
    return _node_handler(job, io, operation="apply", data_dir=None)


def compose_exec(job: JobSpec, io: JobIO) -> JobOutcome:
    return _exec_handler(job, io, data_dir=None)
