"""Prometheus metrics shared by the server and the domains' API layers (no logic here)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

HTTP_REQUESTS = Counter("xcf_http_requests_total", "HTTP requests", ["method", "route", "status"])
HTTP_LATENCY = Histogram(
    "xcf_http_request_duration_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
STATE_WRITES = Counter("xcf_state_writes_total", "State versions written", ["tool", "source"])
STATE_WRITE_BYTES = Counter("xcf_state_write_bytes_total", "Bytes of state written", ["tool"])
STATE_LOCK_CONFLICTS = Counter(
    "xcf_state_lock_conflicts_total", "Lock or write refused: held by another", ["tool"]
)
