"""The embedded agent of `xcf server`: an `xcf agent` child process with a clean environment.

The server mints a pool token for its `embedded` pool and starts `python -m xcloudflow agent
--token-stdin ...`; the token goes over the child's stdin (never its command line or a file), and
the pipe stays open: when the server goes away, even by SIGKILL, the agent sees EOF and stops.
The child's environment is an allowlist (`agent_environment`): none of the server's secrets
(XCF_DATABASE_URL, XCF_BOOTSTRAP_TOKEN, XCF_ENCRYPTION_KEY, XCF_ENCRYPTION_OLD_KEYS...) and none of
its other variables reach it, so neither it nor the jobs it runs can read them, even with the
sandbox turned off. The server's data directory is handed over as a protected path (never bound
into a job's sandbox).

This module never imports the server or the database; it only starts and stops a process.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from xcloudflow.agent.sandbox import PROTECTED_ENV

log = logging.getLogger("xcloudflow.server")

# What the agent process needs of the server's environment: where things are, the locale, the
# proxies and CA bundles to reach clouds, and the agent's own settings. Nothing else.
PASSED_VARIABLES = frozenset(
    {
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "LANG",
        "LANGUAGE",
        "TZ",
        "TMPDIR",
        "PYTHONPATH",
        "PYTHONUNBUFFERED",
        "PYTHONDONTWRITEBYTECODE",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
        "http_proxy",
        "https_proxy",
        "no_proxy",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "REQUESTS_CA_BUNDLE",
        "KUBECONFIG",
        "XCF_AGENT_DATA_DIR",
        "XCF_AGENT_SANDBOX",
        "XCF_AGENT_SANDBOX_WRITABLE",
        "XCF_AGENT_PYTHON_HOOKS",
    }
)


def agent_environment(
    source: Mapping[str, str], *, protected: Sequence[Path], data_dir: Path
) -> dict[str, str]:
    """The embedded agent's whole environment: the allowlisted variables of `source`, and the paths
    its jobs must never see."""
    env = {k: v for k, v in source.items() if k in PASSED_VARIABLES or k.startswith("LC_")}
    env["XCF_AGENT_DATA_DIR"] = str(data_dir)
    env[PROTECTED_ENV] = os.pathsep.join(dict.fromkeys(str(p) for p in protected))
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def default_agent_data_dir(source: Mapping[str, str]) -> Path:
    configured = source.get("XCF_AGENT_DATA_DIR")
    return Path(configured).expanduser() if configured else Path.home() / ".xcf" / "agent"


class EmbeddedAgent:
    """One `xcf agent` child process; `stop()` ends it (and it ends by itself if this process dies)."""

    def __init__(
        self,
        *,
        server_url: str,
        token: str,
        name: str,
        pool: str,
        concurrency: int,
        protected: Sequence[Path],
        source_env: Mapping[str, str] | None = None,
        poll_wait: float = 5.0,
    ) -> None:
        env = dict(os.environ if source_env is None else source_env)
        self.data_dir = default_agent_data_dir(env).resolve()
        for path in protected:
            resolved = path.resolve()
            if resolved == self.data_dir or resolved in self.data_dir.parents:
                raise ValueError(
                    f"the embedded agent's data dir {self.data_dir} is inside the server's {resolved}: "
                    "set XCF_AGENT_DATA_DIR to a directory outside it (jobs must never share a tree "
                    "with the server's keys and database)"
                )
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.name = name
        argv = [
            sys.executable,
            "-m",
            "xcloudflow",
            "agent",
            "--server",
            server_url,
            "--pool",
            pool,
            "--concurrency",
            str(concurrency),
            "--name",
            name,
            "--poll-wait",
            f"{poll_wait:g}",
            "--token-stdin",
        ]
        self.process = subprocess.Popen(
            argv,
            env=agent_environment(env, protected=protected, data_dir=self.data_dir),
            cwd=self.data_dir,
            stdin=subprocess.PIPE,
        )
        assert self.process.stdin is not None
        self.process.stdin.write(token.encode() + b"\n")
        self.process.stdin.flush()  # kept open: its EOF tells the agent the server is gone

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self, *, grace: float = 15.0) -> int | None:
        """Ask the agent to stop (its jobs are canceled), wait `grace` seconds, then kill it."""
        if self.process.poll() is None:
            with contextlib.suppress(OSError):
                self.process.terminate()
            try:
                self.process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                log.warning("embedded agent %s did not stop within %gs: killing it", self.name, grace)
                self.process.kill()
                self.process.wait()
        if self.process.stdin is not None:
            with contextlib.suppress(OSError):
                self.process.stdin.close()
        return self.process.returncode
