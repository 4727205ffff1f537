"""Inventory benchmark: full and incremental ingest, peak memory, blast radius.

Run: .venv/bin/python bench/inventory.py [--quick] [--resources N]

In one invocation, on SQLite and on PostgreSQL (XCF_BENCH_PG, default
postgresql://postgres@127.0.0.1:5432/postgres; a scratch database is created and dropped):
1. a Terraform state of N resources (default 10,000, about 30 MB) is stored, then a next version with
   1% of the resources changed; each version's ingest runs in a fresh child process, which reports
   its wall time and peak RSS growth. Printed: full and incremental seconds, their ratio (goal
   <= 0.1), and the ratio of the full ingest to a baseline measured in the same child: json.loads +
   one canonical json.dumps per resource of the same document (the least any ingest must do);
2. blast radius on a synthetic graph of 100,000 resources and 300,000 edges to depth 10 (PostgreSQL
   and SQLite): p50/p95 of 30 queries from random roots, printed against the time of a trivial
   primary-key lookup measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select, text
from sqlalchemy.engine import make_url

from xcloudflow.audit.schemas import AuditContext
from xcloudflow.db import Database, migrate
from xcloudflow.inventory import service as inventory
from xcloudflow.inventory.models import DependencyEdge, ResourceCurrent
from xcloudflow.keys.keyring import Keyring
from xcloudflow.server.app import prepare
from xcloudflow.settings import Settings
from xcloudflow.state import service as state
from xcloudflow.state.documents import StackRef, Upload

PG_ADMIN = os.environ.get("XCF_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
KEY = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="


def make_state(n: int, serial: int, changed: set[int], rng: random.Random) -> bytes:
    resources = []
    for i in range(n):
        chain = i // 100
        attrs: dict[str, Any] = {
            "id": f"i-{i:017x}",
            "arn": f"arn:aws:ec2:eu-west-1:123456789012:instance/i-{i:017x}",
            "ami": "ami-0abcdef1234567890",
            "instance_type": "m5.large" if i not in changed else "m5.xlarge",
            "tags": {"Name": f"web-{i}", "env": "prod", "team": f"t{i % 17}"},
            "user_data": rng.randbytes(1200).hex(),
            "subnet_id": f"subnet-{chain:017x}",
            "password": f"pw-{i}-{serial if i in changed else 0}",
        }
        resources.append(
            {
                "mode": "managed",
                "type": "aws_instance",
                "name": f"web{i}",
                "provider": 'provider["registry.terraform.io/hashicorp/aws"]',
                "instances": [
                    {
                        "schema_version": 1,
                        "attributes": attrs,
                        "sensitive_attributes": [],
                        "dependencies": [f"aws_instance.web{i - 1}"] if i % 100 else [],
                    }
                ],
            }
        )
    doc = {
        "version": 4,
        "terraform_version": "1.15.5",
        "serial": serial,
        "lineage": "bench",
        "outputs": {},
        "resources": resources,
    }
    return json.dumps(doc, indent=2).encode()


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _reset_peak() -> None:
    """Reset VmHWM (Linux): imports (the embedded Terraform library is mapped at import) must not
    count as the ingest's peak."""
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")


def _child_ingest(url: str, data_dir: str, version: int, raw_path: str, out: Any) -> None:
    settings = Settings(data_dir=Path(data_dir), database_url=url, encryption_key=KEY)
    db = Database(settings.resolved_database_url)
    keyring = Keyring.from_settings(settings, create=False)
    _reset_peak()
    rss_before = _status_kb("VmRSS")
    t0 = time.perf_counter()
    with db.write() as session:
        pending = state.pending_versions(session=session, head_id=1)
        sv = next(p for p in pending if p.version == version)
        events = inventory.ingest_version(session=session, keyring=keyring, sv=sv)
    seconds = time.perf_counter() - t0
    peak = _status_kb("VmHWM")
    # Baseline in the same process, after the measured ingest so it cannot inflate its peak: the
    # least an ingest must do with the document (parse it, serialize each resource once).
    raw = Path(raw_path).read_bytes()
    t0 = time.perf_counter()
    doc = json.loads(raw)
    for r in doc["resources"]:
        json.dumps(r["instances"][0]["attributes"], sort_keys=True)
    baseline = time.perf_counter() - t0
    out.put(
        {
            "seconds": seconds,
            "events": events,
            "baseline": baseline,
            "rss_growth_mb": (peak - rss_before) / 1024,
        }
    )
    db.dispose()


def run_ingest(url: str, n: int, label: str) -> dict[str, Any]:
    rng = random.Random(7)
    changed = set(rng.sample(range(n), max(1, n // 100)))
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            data_dir=Path(tmp),
            database_url=url,
            encryption_key=KEY,
            bootstrap_token="xcf_bench_" + "b" * 20,
            state_max_bytes=1 << 30,
        )
        prepare(settings)
        db = Database(settings.resolved_database_url)
        keyring = Keyring.from_settings(settings, create=False)
        files = []
        for serial, ch in ((1, set()), (2, changed)):
            data = make_state(n, serial, ch, random.Random(7))
            path = Path(tmp) / f"v{serial}.json"
            path.write_bytes(data)
            files.append(path)
            with db.write() as session:
                state.write_state(
                    session=session,
                    keyring=keyring,
                    ctx=AuditContext(actor="bench", org_id=1),
                    org_id=1,
                    ref=StackRef("terraform", "bench", "big"),
                    upload=Upload.from_bytes(data, max_bytes=1 << 30),
                    lock_id=None,
                )
        size_mb = files[0].stat().st_size / 1e6
        db.dispose()
        results = []
        ctx = mp.get_context("spawn")
        for version, path in ((1, files[0]), (2, files[1])):
            q = ctx.Queue()
            p = ctx.Process(target=_child_ingest, args=(url, tmp, version, str(path), q))
            p.start()
            results.append(q.get(timeout=900))
            p.join()
    full, inc = results
    return {
        "label": label,
        "state_mb": size_mb,
        "full_s": full["seconds"],
        "full_events": full["events"],
        "inc_s": inc["seconds"],
        "inc_events": inc["events"],
        "baseline_s": full["baseline"],
        "peak_mb": full["rss_growth_mb"],
        "inc_peak_mb": inc["rss_growth_mb"],
    }


def seed_graph(db: Database, nodes: int, edges: int) -> list[uuid.UUID]:
    rng = random.Random(11)
    uids = [uuid.UUID(int=rng.getrandbits(128)) for _ in range(nodes)]
    run = uuid.uuid4()
    with db.write() as session:
        rows = [
            {
                "org_id": 1,
                "stable_uid": u,
                "head_id": 1 + i // 1000,
                "tool": "terraform",
                "project": "g",
                "stack": f"s{i // 1000}",
                "kind": "managed",
                "provider": "aws",
                "resource_type": "aws_thing",
                "addr": f"aws_thing.n{i}",
                "attrs": {},
                "attrs_hash": "x",
                "source_hash": "x",
                "last_run_id": run,
                "state_version": 1,
            }
            for i, u in enumerate(uids)
        ]
        for i in range(0, len(rows), 5000):
            session.execute(insert(ResourceCurrent), rows[i : i + 5000])
        seen: set[tuple[int, int]] = set()
        while len(seen) < edges:
            a = rng.randrange(nodes)
            b = min(nodes - 1, a + rng.randint(1, 50))  # mostly layered, like real infrastructure
            if a != b:
                seen.add((a, b))
        erows = [{"org_id": 1, "src_uid": uids[a], "dst_uid": uids[b], "kind": "depends_on"} for a, b in seen]
        for i in range(0, len(erows), 5000):
            session.execute(insert(DependencyEdge), erows[i : i + 5000])
    return uids


def run_blast(url: str, label: str, nodes: int, edges: int, queries: int) -> dict[str, Any]:
    from xcloudflow.inventory import graph as q  # the API's own query

    db = Database(url)
    migrate.upgrade(db)
    uids = seed_graph(db, nodes, edges)
    if not db.is_sqlite:
        with db.engine.begin() as conn:
            conn.execute(text("ANALYZE"))
    rng = random.Random(3)
    lookups, blasts, reached = [], [], []
    for _ in range(queries):
        root = uids[rng.randrange(nodes // 2)]
        with db.read() as session:
            t0 = time.perf_counter()
            session.execute(
                select(ResourceCurrent.addr).where(
                    ResourceCurrent.org_id == 1, ResourceCurrent.stable_uid == root
                )
            ).all()
            lookups.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            result = q.blast_radius(session=session, org_id=1, uid=root, direction="upstream", max_depth=10)
            blasts.append(time.perf_counter() - t0)
            reached.append(len(result.items) - 1)
    db.dispose()
    p50 = statistics.median(blasts)
    return {
        "label": label,
        "p50_ms": p50 * 1000,
        "p95_ms": statistics.quantiles(blasts, n=20)[18] * 1000,
        "lookup_ms": statistics.median(lookups) * 1000,
        "ratio": p50 / statistics.median(lookups),
        "reached": statistics.median(reached),
    }


def pg_database(tag: str) -> tuple[str, Any]:
    import psycopg

    name = f"xcf_bench_{tag}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = make_url(PG_ADMIN.replace("postgresql://", "postgresql+psycopg://", 1)).set(database=name)

    def drop() -> None:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return url.render_as_string(hide_password=False), drop


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, to check the script runs")
    parser.add_argument("--resources", type=int, default=None)
    parser.add_argument("--only", choices=["ingest", "blast"], default=None, help="run one part only")
    args = parser.parse_args()
    n = args.resources or (500 if args.quick else 10_000)
    nodes, edges, nq = (5_000, 15_000, 10) if args.quick else (100_000, 300_000, 30)

    print(f"machine: {os.cpu_count()} cpus, python {sys.version.split()[0]}")
    if args.only in (None, "ingest"):
        ingest = []
        with tempfile.TemporaryDirectory() as tmp:
            ingest.append(run_ingest(f"sqlite:///{tmp}/bench.db", n, "SQLite"))
        url, drop = pg_database("ing")
        try:
            ingest.append(run_ingest(url, n, "PostgreSQL"))
        finally:
            drop()
        print(f"\n### Inventory ingest ({n} resources)\n")
        print(
            "| database | state MB | full ingest s | events | incremental s (1% changed) | events | incremental/full | "
            "full/baseline | peak RSS growth MB (x state) |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        for r in ingest:
            print(
                f"| {r['label']} | {r['state_mb']:.1f} | {r['full_s']:.2f} | {r['full_events']} | {r['inc_s']:.2f} | "
                f"{r['inc_events']} | {r['inc_s'] / r['full_s']:.3f} | {r['full_s'] / r['baseline_s']:.1f} | "
                f"{r['peak_mb']:.0f} ({r['peak_mb'] / r['state_mb']:.1f}x) |",
                flush=True,
            )
    if args.only in (None, "blast"):
        blast = []
        with tempfile.TemporaryDirectory() as tmp:
            blast.append(run_blast(f"sqlite:///{tmp}/graph.db", "SQLite", nodes, edges, nq))
        url, drop = pg_database("graph")
        try:
            blast.append(run_blast(url, "PostgreSQL", nodes, edges, nq))
        finally:
            drop()
        print(f"\n### Blast radius ({nodes} resources, {edges} edges, depth 10, {nq} random roots)\n")
        print("| database | p50 ms | p95 ms | resources reached (median) | PK lookup ms | p50/lookup |")
        print("|---|---|---|---|---|---|")
        for r in blast:
            print(
                f"| {r['label']} | {r['p50_ms']:.1f} | {r['p95_ms']:.1f} | {r['reached']:.0f} | "
                f"{r['lookup_ms']:.2f} | {r['ratio']:.0f} |"
            )


if __name__ == "__main__":
    main()
