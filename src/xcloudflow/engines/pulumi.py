"""Pulumi projects through the pulumi CLI: `pulumi preview --json --diff` to plan, `pulumi up --yes` to apply.

The CLI runs in the module directory (the one holding Pulumi.yaml) against the stack named by
PULUMI_STACK in the module's env (default "xcf"; selected, and created when missing, first). Where
the state lives and how secrets are encrypted is the CLI's business, given through the env
(PULUMI_BACKEND_URL, PULUMI_CONFIG_PASSPHRASE, PULUMI_ACCESS_TOKEN...). Scalar inputs become
`--config key=value`; a nested input is refused (Pulumi needs --config-path for those).

`parse_preview` reads Pulumi's documented preview JSON (the PreviewDigest: `steps[]` with `op`,
`urn`, `oldState`/`newState`, `changeSummary`, `diagnostics`) into a NodePlan; it is pure, so it is
tested on documents in that format without the CLI. The stack resource itself and provider
resources are not listed: they are Pulumi's bookkeeping, not infrastructure.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xcloudflow.engines.base import (
    EngineCanceled,
    EngineFailed,
    EngineSpec,
    EngineUnavailable,
    LogSink,
    NodePlan,
    ProcessResult,
    ResourceChange,
    module_path,
    run_process,
    sandbox_for,
    tool_environment,
)
from xcloudflow.errors import Invalid

DEFAULT_STACK = "xcf"
# Pulumi's step ops -> our actions. A replacement is reported by Pulumi as up to three steps
# (create-replacement, replace, delete-replaced) for one URN; they fold into one change.
_OPS: dict[str, list[str]] = {
    "same": ["no-op"],
    "create": ["create"],
    "update": ["update"],
    "delete": ["delete"],
    "replace": ["delete", "create"],
    "create-replacement": ["delete", "create"],
    "delete-replaced": ["delete", "create"],
    "read": ["read"],
    "read-replacement": ["read"],
    "refresh": ["read"],
    "import": ["no-op"],
    "import-replacement": ["delete", "create"],
    "discard": ["no-op"],
    "discard-replaced": ["no-op"],
    "remove-pending-replace": ["no-op"],
}
_REPLACE_OPS = frozenset({"replace", "create-replacement", "delete-replaced", "import-replacement"})


def _type_from_urn(urn: str) -> str:
    # urn:pulumi:<stack>::<project>::<parent$type>::<name>
    parts = urn.split("::")
    return parts[2].split("$")[-1] if len(parts) >= 4 else ""


def _is_bookkeeping(type_: str) -> bool:
    return type_ == "pulumi:pulumi:Stack" or type_.startswith("pulumi:providers:")


def parse_preview(document: Mapping[str, Any] | str) -> NodePlan:
    """A `pulumi preview --json` document (or its text) -> NodePlan; malformed input -> Invalid."""
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except ValueError as exc:
            raise Invalid(f"pulumi preview output is not JSON: {exc}") from exc
    if not isinstance(document, Mapping):
        raise Invalid("pulumi preview output is not a JSON object")
    steps = document.get("steps") or []
    if not isinstance(steps, list):
        raise Invalid("pulumi preview output: 'steps' is not a list")

    order: list[str] = []
    ops: dict[str, list[str]] = {}
    types: dict[str, str] = {}
    reasons: dict[str, list[str]] = {}
    for index, step in enumerate(steps):
        if not isinstance(step, Mapping):
            raise Invalid(f"pulumi preview output: steps[{index}] is not an object")
        op, urn = step.get("op"), step.get("urn")
        if not isinstance(urn, str) or not urn:
            raise Invalid(f"pulumi preview output: steps[{index}] has no urn")
        if op not in _OPS:
            raise Invalid(f"pulumi preview output: steps[{index}] ({urn}) has an unknown op {op!r}")
        state = step.get("newState") or step.get("oldState") or {}
        type_ = str(state.get("type") or "") if isinstance(state, Mapping) else ""
        if urn not in ops:
            order.append(urn)
            ops[urn] = []
        ops[urn].append(str(op))
        types[urn] = type_ or types.get(urn) or _type_from_urn(urn)
        for key in ("diffReasons", "replaceReasons"):
            for reason in step.get(key) or []:
                if str(reason) not in reasons.setdefault(urn, []):
                    reasons[urn].append(str(reason))

    changes: list[ResourceChange] = []
    for urn in order:
        if _is_bookkeeping(types[urn]):
            continue
        urn_ops = ops[urn]
        if any(op in _REPLACE_OPS for op in urn_ops):
            creates_first = "create-replacement" in urn_ops and (
                "delete-replaced" not in urn_ops
                or urn_ops.index("create-replacement") < urn_ops.index("delete-replaced")
            )
            actions = ["create", "delete"] if creates_first else ["delete", "create"]
        else:
            actions = list(_OPS[urn_ops[-1]])
        detail: dict[str, Any] = {"urn": urn, "ops": urn_ops}
        if reasons.get(urn):
            detail["reasons"] = reasons[urn]
        changes.append(ResourceChange(address=urn, type=types[urn], actions=actions, detail=detail))
    return NodePlan.from_changes("pulumi", changes)


def preview_errors(document: Mapping[str, Any]) -> list[str]:
    """The error diagnostics of a preview document, as text."""
    out = []
    for diag in document.get("diagnostics") or []:
        if isinstance(diag, Mapping) and diag.get("severity") == "error":
            message = str(diag.get("message") or "").strip()
            out.append(f"{diag.get('urn') or 'stack'}: {message}" if message else str(diag.get("urn")))
    return out


def config_args(inputs: Mapping[str, Any]) -> list[str]:
    args: list[str] = []
    for key, value in inputs.items():
        if isinstance(value, dict | list):
            raise EngineFailed(
                f"pulumi input {key!r} is a {type(value).__name__}; only scalar inputs become stack config"
            )
        text = json.dumps(value) if not isinstance(value, str) else value
        args += ["--config", f"{key}={text}"]
    return args


@dataclass(frozen=True)
class _Stack:
    """The pulumi CLI bound to one module: its project directory, environment, stack and sandbox."""

    cli: str
    project: Path
    env: dict[str, str]
    name: str
    workdir: Path
    spec: EngineSpec
    log: LogSink
    cancel: threading.Event

    def run(self, *args: str, capture_stdout: bool = False) -> ProcessResult:
        return run_process(
            [self.cli, *args],
            cwd=self.project,
            env=self.env,
            log=self.log,
            cancel=self.cancel,
            timeout_seconds=self.spec.timeout_seconds,
            capture_stdout=capture_stdout,
            sandbox=sandbox_for(self.workdir, self.spec, readonly=[Path(self.cli).parent]),
        )


class PulumiEngine:
    name = "pulumi"

    def plan(self, workdir: Path, spec: EngineSpec, log: LogSink, cancel: threading.Event) -> NodePlan:
        stack = self._prepare(workdir, spec, log, cancel)
        done = stack.run(
            "preview",
            "--json",
            "--diff",
            "--non-interactive",
            "--stack",
            stack.name,
            *config_args(spec.inputs),
            capture_stdout=True,
        )
        if done.canceled:
            raise EngineCanceled("canceled during pulumi preview")
        document: Any = None
        try:
            document = json.loads(done.stdout) if done.stdout.strip() else None
        except ValueError:
            document = None
        if done.exit_code != 0 or done.timed_out or not isinstance(document, dict):
            errors = preview_errors(document) if isinstance(document, dict) else []
            reason = "; ".join(errors) or done.tail() or "no output"
            raise EngineFailed(
                f"pulumi preview of {spec.ref} failed (exit code {done.exit_code}): {reason}",
                details={"module": spec.ref},
            )
        return parse_preview(document)

    def apply(self, workdir: Path, spec: EngineSpec, log: LogSink, cancel: threading.Event) -> NodePlan:
        # Preview first: its steps are what `up` will do, in the format we parse; then `up` applies.
        plan = self.plan(workdir, spec, log, cancel)
        stack = self._prepare(workdir, spec, log, cancel, select=False)
        done = stack.run(
            "up",
            "--yes",
            "--skip-preview",
            "--non-interactive",
            "--stack",
            stack.name,
            *config_args(spec.inputs),
        )
        if done.canceled:
            raise EngineCanceled("canceled during pulumi up")
        if done.exit_code != 0 or done.timed_out:
            raise EngineFailed(
                f"pulumi up of {spec.ref} failed (exit code {done.exit_code}): {done.tail() or 'no output'}",
                details={"module": spec.ref},
            )
        return plan

    def _prepare(
        self, workdir: Path, spec: EngineSpec, log: LogSink, cancel: threading.Event, *, select: bool = True
    ) -> _Stack:
        project = module_path(workdir, spec.ref)
        if not project.is_dir() or not any((project / n).is_file() for n in ("Pulumi.yaml", "Pulumi.yml")):
            raise EngineFailed(f"pulumi module {spec.ref!r} is not a directory with a Pulumi.yaml")
        env = tool_environment(spec.env)
        env.setdefault("PULUMI_SKIP_UPDATE_CHECK", "true")
        cli = shutil.which("pulumi", path=env.get("PATH"))
        if cli is None:
            raise EngineUnavailable(
                f"pulumi CLI not found on agent {os.uname().nodename}; install it or route this module to "
                "another engine"
            )
        stack = _Stack(
            cli, project, env, env.get("PULUMI_STACK") or DEFAULT_STACK, workdir, spec, log, cancel
        )
        if select:
            done = stack.run("stack", "select", "--create", "--non-interactive", stack.name)
            if done.canceled:
                raise EngineCanceled("canceled during pulumi stack select")
            if done.exit_code != 0:
                raise EngineFailed(
                    f"pulumi stack select {stack.name} in {spec.ref} failed (exit code {done.exit_code}): "
                    f"{done.tail()}",
                    details={"module": spec.ref},
                )
        return stack
