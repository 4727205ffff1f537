"""Run hooks: the workspace's own checks and notifications around plan and apply, run by the agent.

Three kinds, all given the same context (run id, stage, workspace, and what the stage knows):
- `script`: `sh -c TARGET` in the run's working directory, with the workspace's env variables plus
  XCF_RUN_ID, XCF_STAGE, XCF_WORKSPACE; its output is logged (masked); a non-zero exit fails it.
- `http`: POST of the context as JSON to TARGET, signed with the hook's secret
  (`X-XCF-Signature: sha256=<hex HMAC-SHA256 of the body>`), `X-XCF-Event: run.<stage>`; 2xx passes.
- `python`: `package.module:function` (installed on the agent) called with the context dict;
  raising or returning False fails it. It runs inside the agent's process, not in the sandbox, so
  only the modules the agent's operator lists in XCF_AGENT_PYTHON_HOOKS (comma-separated; a module
  and its submodules) may be named: a workspace writer must not pick any importable callable.
A failed mandatory hook fails the stage with a message naming the hook; a failed optional hook is
logged and ignored. A hook never sees the agent's own XCF_* environment (its pool token), and a
script runs in the job's sandbox (xcloudflow.engines.sandbox): only the run directory is writable.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import importlib
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from xcloudflow.agent.masking import Masker
from xcloudflow.engines.sandbox import Sandbox, SandboxUnavailable, start

STAGES = ("pre_plan", "post_plan", "pre_apply", "post_apply")
DEFAULT_TIMEOUT = 300.0
SIGNATURE_HEADER = "X-XCF-Signature"
EVENT_HEADER = "X-XCF-Event"
LineSink = Callable[[str], None]


class HookError(Exception):
    """The hook did not pass; the message says why (already masked by the caller)."""


@dataclass(frozen=True)
class Hook:
    stage: str
    kind: str
    target: str
    mandatory: bool = True
    timeout_seconds: float = DEFAULT_TIMEOUT
    secret: str | None = None

    @classmethod
    def from_bundle(cls, raw: Mapping[str, Any]) -> Hook:
        timeout = raw.get("timeout_seconds")
        return cls(
            stage=str(raw.get("stage", "")),
            kind=str(raw.get("kind", "")),
            target=str(raw.get("target", "")),
            mandatory=bool(raw.get("mandatory", True)),
            timeout_seconds=float(timeout)
            if isinstance(timeout, int | float) and timeout > 0
            else DEFAULT_TIMEOUT,
            secret=raw.get("secret") or None,
        )

    @property
    def title(self) -> str:
        return f"{'mandatory' if self.mandatory else 'optional'} {self.kind} hook {self.target!r}"


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class HookRunner:
    """Runs the hooks of a run's stages; see the module docstring."""

    def __init__(
        self,
        hooks: Sequence[Mapping[str, Any]],
        *,
        workdir: Path,
        env: Mapping[str, str],
        log: LineSink,
        masker: Masker,
        cancel: threading.Event | None = None,
        sandbox: Sandbox | None = None,
    ) -> None:
        self.hooks = [Hook.from_bundle(h) for h in hooks if isinstance(h, Mapping)]
        self.workdir = workdir
        # A script hook runs sandboxed (default: bwrap, only the working directory writable).
        self.sandbox = (sandbox or Sandbox()).with_paths(writable=[workdir])
        self.env = dict(env)
        self.masker = masker
        self.log: LineSink = lambda line: log(masker.mask(line))  # every line, including our own
        self.cancel = cancel or threading.Event()

    def run_stage(self, stage: str, context: Mapping[str, Any]) -> str | None:
        """Run the stage's hooks in order; the failure message of a mandatory hook, else None."""
        ctx = {**context, "stage": stage}
        for hook in (h for h in self.hooks if h.stage == stage):
            if self.cancel.is_set():
                return f"{stage}: canceled before the {hook.title}"
            self.log(f"xcf: {stage}: running the {hook.title}")
            started = time.monotonic()
            try:
                self._run(hook, ctx)
            except HookError as exc:
                reason = str(exc)
                if hook.mandatory:
                    message = f"{stage}: the {hook.title} failed: {reason}"
                    self.log(f"xcf: {message}")
                    return self.masker.mask(message)
                self.log(f"xcf: {stage}: the {hook.title} failed (ignored): {reason}")
                continue
            self.log(f"xcf: {stage}: the {hook.title} passed in {time.monotonic() - started:.1f}s")
        return None

    def _run(self, hook: Hook, ctx: dict[str, Any]) -> None:
        if hook.kind == "script":
            self._script(hook, ctx)
        elif hook.kind == "http":
            self._http(hook, ctx)
        elif hook.kind == "python":
            self._python(hook, ctx)
        else:
            raise HookError(f"unknown hook kind {hook.kind!r}: script, http or python")

    # ------------------------------------------------------------ script

    def _script(self, hook: Hook, ctx: dict[str, Any]) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("XCF_")}
        env.update(self.env)
        env.update(
            {
                "XCF_RUN_ID": str(ctx.get("run_id", "")),
                "XCF_STAGE": str(ctx.get("stage", "")),
                "XCF_WORKSPACE": str(ctx.get("workspace", "")),
            }
        )
        try:
            child = start(["/bin/sh", "-c", hook.target], sandbox=self.sandbox, cwd=self.workdir, env=env)
        except SandboxUnavailable as exc:
            raise HookError(exc.message) from exc
        except OSError as exc:
            raise HookError(f"cannot start sh: {exc.strerror or exc}") from exc
        proc = child.popen

        def pump() -> None:
            assert proc.stdout is not None
            for raw in iter(proc.stdout.readline, b""):
                self.log(raw.decode("utf-8", "replace").rstrip("\r\n"))
            proc.stdout.close()

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        deadline = time.monotonic() + hook.timeout_seconds
        problem = None
        while True:
            try:
                code = proc.wait(timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                pass
            if self.cancel.is_set():
                problem = "canceled"
            elif time.monotonic() >= deadline:
                problem = f"timed out after {hook.timeout_seconds:g}s"
            if problem:
                child.signal(signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=5)
                break
        child.signal(signal.SIGKILL)
        proc.wait()
        reader.join(timeout=5)
        if problem:
            raise HookError(problem)
        if code != 0:
            raise HookError(f"exit code {code}")

    # ------------------------------------------------------------ http

    def _http(self, hook: Hook, ctx: dict[str, Any]) -> None:
        body = json.dumps(ctx, sort_keys=True, default=str).encode()
        headers = {
            "Content-Type": "application/json",
            EVENT_HEADER: f"run.{ctx.get('stage', '')}",
            "User-Agent": "xcloudflow-agent",
        }
        if hook.secret:
            headers[SIGNATURE_HEADER] = sign(hook.secret, body)
        try:
            resp = httpx.post(hook.target, content=body, headers=headers, timeout=hook.timeout_seconds)
        except httpx.HTTPError as exc:
            raise HookError(f"{exc.__class__.__name__}: {exc}") from exc
        if not 200 <= resp.status_code < 300:
            raise HookError(f"answered {resp.status_code}: {resp.text[:300].strip()}")

    # ------------------------------------------------------------ python

    def _python(self, hook: Hook, ctx: dict[str, Any]) -> None:
        func = _load(hook.target)
        outcome: dict[str, Any] = {}

        def call() -> None:
            try:
                outcome["value"] = func(dict(ctx))
            except BaseException as exc:
                outcome["error"] = exc

        # The function cannot be killed; on timeout it is abandoned (its thread is a daemon).
        thread = threading.Thread(target=call, name=f"hook-{hook.target}", daemon=True)
        thread.start()
        thread.join(hook.timeout_seconds)
        if thread.is_alive():
            raise HookError(f"timed out after {hook.timeout_seconds:g}s")
        if "error" in outcome:
            exc = outcome["error"]
            raise HookError(f"raised {exc.__class__.__name__}: {exc}")
        if outcome.get("value") is False:
            raise HookError("returned False")


PYTHON_HOOKS_ENV = "XCF_AGENT_PYTHON_HOOKS"


def allowed_python_modules() -> tuple[str, ...]:
    """The modules (with their submodules) whose functions python hooks may name on this agent."""
    return tuple(m.strip() for m in os.environ.get(PYTHON_HOOKS_ENV, "").split(",") if m.strip())


def _load(target: str) -> Callable[[dict[str, Any]], Any]:
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise HookError(f"{target!r} is not of the form package.module:function")
    allowed = allowed_python_modules()
    if not any(module_name == m or module_name.startswith(m + ".") for m in allowed):
        raise HookError(
            f"module {module_name} is not allowed on this agent: python hooks run in the agent's process, "
            f"so its operator lists their modules in {PYTHON_HOOKS_ENV} "
            f"(allowed: {', '.join(allowed) or 'none'})"
        )
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as exc:
        raise HookError(f"cannot import {module_name}: {exc.__class__.__name__}: {exc}") from exc
    for part in attr.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            raise HookError(f"{module_name} has no {attr}")
    if not callable(obj):
        raise HookError(f"{target} is not callable")
    func: Callable[[dict[str, Any]], Any] = obj
    return func
