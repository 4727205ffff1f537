"""In-process rate limits: token buckets per key, and a tally of authentication failures per address.

State lives in the server process: with several workers or replicas each counts on its own, so the
effective limit is the configured one times the number of processes behind the load balancer.
Memory is bounded: at most `max_keys` keys are remembered; past that, idle keys are forgotten first.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

Clock = Callable[[], float]


@dataclass
class _Bucket:
    tokens: float
    updated: float


class TokenBuckets:
    """`rate` requests per second per key with bursts of up to `burst`; rate 0 turns it off."""

    def __init__(self, rate: float, burst: int, *, max_keys: int = 100_000, clock: Clock = time.monotonic):
        self.rate = rate
        self.burst = float(burst)
        self.max_keys = max_keys
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def take(self, key: str) -> float:
        """0 when the request may go on, else the seconds until the key has a token again."""
        if self.rate <= 0:
            return 0.0
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            self._make_room(now)
            bucket = self._buckets[key] = _Bucket(self.burst, now)
        else:
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
            bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self.rate

    def _make_room(self, now: float) -> None:
        if len(self._buckets) < self.max_keys:
            return
        full_after = self.burst / self.rate  # a bucket idle this long is full again: forgetting it is free
        for key in [k for k, b in self._buckets.items() if now - b.updated >= full_after]:
            del self._buckets[key]
        if len(self._buckets) >= self.max_keys:
            self._buckets.clear()


@dataclass
class _Failures:
    window_start: float
    count: int
    blocked_until: float = 0.0


class FailureTally:
    """Addresses that sent `limit` requests with bad credentials within `window` seconds are blocked
    for `block` seconds. limit 0 turns it off."""

    def __init__(
        self,
        limit: int,
        window: float,
        block: float,
        *,
        max_keys: int = 100_000,
        clock: Clock = time.monotonic,
    ):
        self.limit = limit
        self.window = window
        self.block = block
        self.max_keys = max_keys
        self._clock = clock
        self._seen: dict[str, _Failures] = {}

    def blocked_for(self, address: str) -> float:
        """Seconds the address stays blocked (0: not blocked)."""
        entry = self._seen.get(address)
        if entry is None:
            return 0.0
        return max(0.0, entry.blocked_until - self._clock())

    def fail(self, address: str) -> bool:
        """Count one failure; True when this failure blocked the address."""
        if self.limit <= 0:
            return False
        now = self._clock()
        entry = self._seen.get(address)
        if entry is None or now - entry.window_start > self.window:
            if entry is None and len(self._seen) >= self.max_keys:
                self._forget(now)
            entry = self._seen[address] = _Failures(now, 0, entry.blocked_until if entry else 0.0)
        entry.count += 1
        if entry.count >= self.limit and entry.blocked_until <= now:
            entry.blocked_until = now + self.block
            entry.window_start, entry.count = now, 0
            return True
        return False

    def _forget(self, now: float) -> None:
        for key in [
            k for k, e in self._seen.items() if e.blocked_until <= now and now - e.window_start > self.window
        ]:
            del self._seen[key]
        if len(self._seen) >= self.max_keys:
            self._seen.clear()


def retry_after(seconds: float) -> str:
    """A Retry-After header value: whole seconds, at least 1."""
    return str(max(1, math.ceil(seconds)))
