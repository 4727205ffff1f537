"""Config center benchmark: resolve throughput and latency, and watch notification latency.

Run: .venv/bin/python bench/conflux.py [--quick] [--database pg|sqlite] [--seconds N] [--watchers N]

In one invocation (every server is a child of this script):

1. A fresh `python -m xcloudflow server` on a scratch PostgreSQL database (default; `--database
   sqlite` for the embedded one), no embedded agent. One config `bench/app/prod/app.json` gets a
   JSON Schema, three versions (the first stable) and a policy of two rules (a `canary=true` label rule
   and a 10 % client-id bucket rule), so resolve evaluates real rules.
2. Baseline: 8 client threads, each on its own keep-alive connection, GET /healthz for N seconds
   (default 10, --quick 3): what the server does per request with no database and no auth. The
   clients are minimal raw-socket HTTP/1.1 clients (`--client httpx` for httpx ones): on 2 cores
   shared with the server, a heavier client measures itself more than the server.
3. Resolve: the same 8 threads GET `.../resolve` with the admin token for N seconds, each request with
   random labels (a quarter `canary=true`) and a random client id, so all three outcomes (canary rule,
   percentage rule, stable) are served. Printed: resolves/s, p50/p99 latency, and the ratio to the
   baseline. Goal: >= 3,000 resolves/s and p99 < 20 ms on 2 cores.
4. Watch: W watchers (default 500, --quick 100) long-poll `/api/v1/conflux/watch` for the environment
   (raw asyncio connections, one each: httpx's async pool
   itself takes seconds to serve 500 streams) from the current `last_id`; once they all wait,
   a publish with `is_stable=true` goes out and the time from sending the publish to each watcher's
   answer is taken. R rounds (default 5, --quick 2). Printed: p50/p99/max over all watchers and rounds.
   Goal: p99 < 500 ms.

The end of the output is a markdown block for docs/benchmarks.md with the machine's facts. Exits 1
when something failed (a watcher that did not see the publish, an error answer); a missed goal is
printed, not a failure. Machine facts, scratch space and the server runner come from the other benches.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import socket
import statistics
import sys
import threading
import time
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
from state_backend import BenchError, Scratch, log, machine_facts

from runs import Control

CFG = "/api/v1/conflux/configs/bench/app/prod/app.json"
ENV = {"tenant": "bench", "application": "app", "environment": "prod"}
THREADS = 8
SCHEMA = {
    "type": "object",
    "properties": {"pool": {"type": "integer", "minimum": 1}, "feature": {"type": "string"}},
    "required": ["pool"],
}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def call(
    client: httpx.Client, method: str, path: str, expect: tuple[int, ...] = (200, 201), **kw: Any
) -> Any:
    resp = client.request(method, path, **kw)
    if resp.status_code not in expect:
        raise BenchError(f"{method} {path}: {resp.status_code} {resp.text[:300]}")
    return resp.json()


def setup(client: httpx.Client) -> None:
    call(client, "PUT", CFG, json={"format": "json", "schema": json.dumps(SCHEMA)})
    for n in range(1, 4):
        content = json.dumps({"pool": 10 * n, "feature": "x" * 200}, indent=2)
        call(client, "POST", f"{CFG}/publish", json={"content": content, "is_stable": n == 1})
    rules = [
        {"name": "canary", "priority": 10, "version": 2, "labels": {"canary": "true"}},
        {"name": "ten-percent", "priority": 5, "version": 3, "percentage": 10},
    ]
    call(client, "PUT", f"{CFG}/policy", json={"rules": rules})


class RawClient:
    """A minimal HTTP/1.1 keep-alive GET client on one blocking socket: a request costs the client a
    few tens of microseconds (httpx costs several hundred, and 8 client threads sharing the server's 2
    cores and one GIL would measure the client more than the server)."""

    def __init__(self, url: str, token: str | None) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        auth = f"Authorization: Bearer {token}\r\n" if token else ""
        self.head = f"Host: {self.host}:{self.port}\r\n{auth}Connection: keep-alive\r\n\r\n".encode()
        self.sock = socket.create_connection((self.host, self.port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def get(self, path: str, params: dict[str, str]) -> tuple[int, bytes]:
        target = path + ("?" + urlencode(params) if params else "")
        self.sock.sendall(f"GET {target} HTTP/1.1\r\n".encode() + self.head)
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        while len(self.buf) < length:
            self._fill()
        body, self.buf = self.buf[:length], self.buf[length:]
        return status, body

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise BenchError("the server closed the connection")
        self.buf += chunk

    def close(self) -> None:
        self.sock.close()


class HttpxClient:
    def __init__(self, url: str, token: str | None) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.client = httpx.Client(base_url=url, headers=headers, timeout=30)

    def get(self, path: str, params: dict[str, str]) -> tuple[int, bytes]:
        resp = self.client.get(path, params=params)
        return resp.status_code, resp.content

    def close(self) -> None:
        self.client.close()


CLIENTS = {"raw": RawClient, "httpx": HttpxClient}


def hammer(url: str, token: str | None, path_of: Any, seconds: float, kind: str = "raw") -> dict[str, Any]:
    """THREADS threads GETting path_of(rng) for `seconds`, each on its own keep-alive connection;
    throughput and latency."""
    latencies: list[list[float]] = [[] for _ in range(THREADS)]
    errors: list[str] = []
    start = threading.Barrier(THREADS + 1)
    stop_at = [0.0]

    def worker(i: int) -> None:
        rng = random.Random(i)
        client = CLIENTS[kind](url, token)
        try:
            client.get("/healthz", {})  # connect before the clock runs
            start.wait()
            mine = latencies[i]
            while time.monotonic() < stop_at[0]:
                path, params = path_of(rng)
                t0 = time.perf_counter()
                status, body = client.get(path, params)
                mine.append(time.perf_counter() - t0)
                if status != 200:
                    errors.append(f"{status} {body[:200]!r}")
                    return
        finally:
            client.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    stop_at[0] = time.monotonic() + seconds
    began = time.monotonic()
    start.wait()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - began
    if errors:
        raise BenchError(f"{len(errors)} failed requests, first: {errors[0]}")
    flat = [x for chunk in latencies for x in chunk]
    return {
        "requests": len(flat),
        "rate": len(flat) / elapsed,
        "p50_ms": pct(flat, 50) * 1000,
        "p99_ms": pct(flat, 99) * 1000,
    }


def resolve_path(rng: random.Random) -> tuple[str, dict[str, str]]:
    labels = "canary=true,region=eu" if rng.random() < 0.25 else "region=eu"
    return f"{CFG}/resolve", {"labels": labels, "client_id": f"client-{rng.randrange(100000)}"}


async def _raw_watch(host: str, port: int, token: str, since: int) -> tuple[asyncio.StreamReader, Any]:
    """One watch request on a raw connection (httpx's async pool is the bottleneck at 500 streams)."""
    reader, writer = await asyncio.open_connection(host, port)
    query = "&".join(f"{k}={v}" for k, v in {**ENV, "since": since, "timeout": 60}.items())
    writer.write(
        f"GET /api/v1/conflux/watch?{query} HTTP/1.1\r\nHost: {host}\r\n"
        f"Authorization: Bearer {token}\r\nConnection: close\r\n\r\n".encode()
    )
    await writer.drain()
    return reader, writer


async def watch_round(
    url: str, token: str, watchers: int, since: int, publish: Any, settle: float
) -> list[float]:
    host, port = url.removeprefix("http://").split(":")
    arrived: list[float] = []

    async def one() -> None:
        reader, writer = await _raw_watch(host, int(port), token, since)
        status = await reader.readline()
        arrived.append(time.monotonic())
        body = await reader.read()
        writer.close()
        if b" 200 " not in status or b'"notifications":[{' not in body:
            raise BenchError(f"a watcher got {status!r} {body[-200:]!r}")

    tasks = [asyncio.create_task(one()) for _ in range(watchers)]
    await asyncio.sleep(settle)  # every watcher connected, authenticated and waiting
    if any(t.done() for t in tasks):
        raise BenchError("a watcher answered before the publish")
    sent = await asyncio.to_thread(publish)
    await asyncio.gather(*tasks)
    return [a - sent for a in arrived]


def bench_watch(
    url: str, token: str, client: httpx.Client, watchers: int, rounds: int, settle: float
) -> dict[str, Any]:
    delays: list[float] = []
    for r in range(rounds):
        since = call(client, "GET", "/api/v1/conflux/watch", params=ENV)["last_id"]

        def publish(r: int = r) -> float:
            sent = time.monotonic()
            body = {"content": json.dumps({"pool": 100 + r}), "is_stable": True}
            call(client, "POST", f"{CFG}/publish", json=body)
            return sent

        got = asyncio.run(watch_round(url, token, watchers, since, publish, settle))
        log(
            f"  round {r + 1}: {len(got)} watchers, p50 {pct(got, 50) * 1000:.0f} ms, max {max(got) * 1000:.0f} ms"
        )
        delays.extend(got)
    return {
        "watchers": watchers,
        "rounds": rounds,
        "p50_ms": pct(delays, 50) * 1000,
        "p99_ms": pct(delays, 99) * 1000,
        "max_ms": max(delays) * 1000,
        "mean_ms": statistics.fmean(delays) * 1000,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--database", choices=("pg", "sqlite"), default="pg")
    parser.add_argument("--seconds", type=float)
    parser.add_argument("--watchers", type=int)
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument(
        "--client",
        choices=tuple(CLIENTS),
        default="raw",
        help="load generator: raw sockets (default) or httpx",
    )
    parser.add_argument("--settle", type=float, help="seconds the watchers get to connect (default 2 + W/25)")
    args = parser.parse_args()
    seconds = args.seconds or (3.0 if args.quick else 10.0)
    watchers = args.watchers or (100 if args.quick else 500)
    rounds = args.rounds or (2 if args.quick else 5)
    settle = args.settle or 2.0 + watchers / 25
    scratch = Scratch(args.keep)
    try:
        facts = machine_facts(scratch)
        server = Control(scratch, args.database, embedded_agent=False).start()
        try:
            with server.client() as client:
                setup(client)
                log(f"baseline: GET /healthz, {THREADS} threads, {seconds:.0f} s")
                base = hammer(server.url, None, lambda rng: ("/healthz", {}), seconds, args.client)
                log(f"resolve: {THREADS} threads, {seconds:.0f} s")
                hammer(server.url, server.token, resolve_path, 1.0, args.client)  # warm caches and pools
                res = hammer(server.url, server.token, resolve_path, seconds, args.client)
                log(f"watch: {watchers} watchers, {rounds} rounds")
                watch = bench_watch(server.url, server.token, client, watchers, rounds, settle)
        finally:
            server.stop()
    except BenchError as exc:
        log(f"FAILED: {exc}")
        return 1
    finally:
        scratch.cleanup()
    ok_rate, ok_p99, ok_watch = res["rate"] >= 3000, res["p99_ms"] < 20, watch["p99_ms"] < 500
    print()
    print(f"### Conflux ({args.database}{', quick' if args.quick else ''})")
    print()
    print(
        f"Machine: {facts.get('cpu')}, {facts.get('nproc')} cores, {facts.get('memory')}; "
        f"PostgreSQL {facts.get('postgresql')}; Python {facts.get('python')}; xcloudflow {facts.get('xcloudflow')}"
    )
    print()
    print("| measure | result | goal |")
    print("| --- | --- | --- |")
    print(
        f"| baseline GET /healthz, {THREADS} threads ({args.client} client) | {base['rate']:.0f} req/s, p50 {base['p50_ms']:.1f} ms, "
        f"p99 {base['p99_ms']:.1f} ms | - |"
    )
    print(
        f"| resolve (auth + rules + cached content), {THREADS} threads ({args.client} client) | {res['rate']:.0f} req/s "
        f"({res['rate'] / base['rate']:.2f} x baseline), p50 {res['p50_ms']:.1f} ms, p99 {res['p99_ms']:.1f} ms "
        f"| >= 3,000/s {'met' if ok_rate else 'MISSED'}; p99 < 20 ms {'met' if ok_p99 else 'MISSED'} |"
    )
    print(
        f"| watch: publish -> {watch['watchers']} waiting watchers, {watch['rounds']} rounds | "
        f"p50 {watch['p50_ms']:.0f} ms, p99 {watch['p99_ms']:.0f} ms, max {watch['max_ms']:.0f} ms "
        f"| p99 < 500 ms {'met' if ok_watch else 'MISSED'} |"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
