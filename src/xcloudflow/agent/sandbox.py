"""Which sandbox this agent's jobs run in (XCF_AGENT_SANDBOX), built per job directory.

`XCF_AGENT_SANDBOX=bwrap` (the default) runs every command of a job (Terraform and what it starts,
hooks, engines, checks) in a bubblewrap sandbox where only the job's directory is writable and
nothing of the agent, the server or other jobs is visible (see xcloudflow.engines.sandbox).
`none` is an explicit opt-out, logged as a warning at every job: user code then runs as the agent's
user with everything it can read. Any other value is refused: a typo never turns the sandbox off.

An operator may give every job of an agent more writable host directories (a backup target, the
directories a localhost playbook manages) with XCF_AGENT_SANDBOX_WRITABLE (os.pathsep-separated,
existing directories; one that holds a protected path is refused).

The server's data directory (and whatever else the agent must never expose) reaches an agent as
XCF_AGENT_PROTECTED_PATHS (os.pathsep-separated); the embedded agent gets the server's.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

from xcloudflow.engines.sandbox import SANDBOX_MODES, Sandbox, SandboxMode

log = logging.getLogger("xcloudflow.agent")
SANDBOX_ENV = "XCF_AGENT_SANDBOX"
PROTECTED_ENV = "XCF_AGENT_PROTECTED_PATHS"
WRITABLE_ENV = "XCF_AGENT_SANDBOX_WRITABLE"
UNSANDBOXED_WARNING = (
    "WARNING: XCF_AGENT_SANDBOX=none: this job's code runs unsandboxed and can read everything the "
    "agent's user can (its data dir, other jobs, and on the server's host the server's keys)"
)


def sandbox_mode() -> SandboxMode:
    """XCF_AGENT_SANDBOX: 'bwrap' (default) or 'none'; ValueError for anything else."""
    value = os.environ.get(SANDBOX_ENV, "").strip().lower() or "bwrap"
    for mode in SANDBOX_MODES:
        if value == mode:
            return mode
    raise ValueError(f"{SANDBOX_ENV}={value!r} is not one of {', '.join(SANDBOX_MODES)}")


def _paths(variable: str) -> list[Path]:
    return [Path(p).expanduser() for p in os.environ.get(variable, "").split(os.pathsep) if p.strip()]


def protected_paths(data_dir: Path) -> tuple[Path, ...]:
    return (Path.home(), data_dir, *_paths(PROTECTED_ENV))


def job_sandbox(data_dir: Path, *, say: Callable[[str], None] | None = None) -> Sandbox:
    """The sandbox of one job of an agent whose data dir is `data_dir` (no writable path yet)."""
    mode = sandbox_mode()
    if mode == "none":
        log.warning(UNSANDBOXED_WARNING)
        if say is not None:
            say(f"xcf: {UNSANDBOXED_WARNING}")
    writable = [p for p in _paths(WRITABLE_ENV) if p.is_dir()]
    return Sandbox(mode=mode, protected=protected_paths(data_dir)).with_paths(writable=writable)
