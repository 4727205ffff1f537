"""The token buckets and the failure tally on their own, with a clock the test moves."""

from __future__ import annotations

from xcloudflow.server.ratelimit import FailureTally, TokenBuckets, retry_after


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_allows_its_burst_then_refills_at_its_rate() -> None:
    clock = Clock()
    buckets = TokenBuckets(2.0, 4, clock=clock)
    assert [buckets.take("a") for _ in range(4)] == [0.0] * 4
    assert buckets.take("a") == 0.5  # one token comes back in half a second
    assert buckets.take("b") == 0.0  # keys are independent
    clock.now += 0.5
    assert buckets.take("a") == 0.0
    clock.now += 100
    assert [buckets.take("a") for _ in range(4)] == [0.0] * 4  # never more than the burst
    assert buckets.take("a") > 0


def test_rate_zero_is_off() -> None:
    buckets = TokenBuckets(0, 1)
    assert all(buckets.take("a") == 0 for _ in range(1000))


def test_memory_is_bounded() -> None:
    clock = Clock()
    buckets = TokenBuckets(1.0, 1, max_keys=100, clock=clock)
    for i in range(10_000):
        buckets.take(f"k{i}")
        clock.now += 0.001
    assert len(buckets._buckets) <= 100
    tally = FailureTally(5, 60, 300, max_keys=100, clock=clock)
    for i in range(10_000):
        tally.fail(f"a{i}")
    assert len(tally._seen) <= 100


def test_failures_block_within_the_window_only() -> None:
    clock = Clock()
    tally = FailureTally(3, 60, 300, clock=clock)
    assert [tally.fail("x") for _ in range(2)] == [False, False]
    clock.now += 61  # the window passed: the count starts again
    assert [tally.fail("x") for _ in range(2)] == [False, False]
    assert tally.blocked_for("x") == 0
    assert tally.fail("x") is True
    assert tally.blocked_for("x") == 300
    assert tally.blocked_for("y") == 0
    clock.now += 299
    assert tally.blocked_for("x") == 1
    assert tally.fail("x") is False  # already blocked: no second block, no second audit record
    clock.now += 1
    assert tally.blocked_for("x") == 0


def test_retry_after_is_whole_seconds_at_least_one() -> None:
    assert retry_after(0.01) == "1"
    assert retry_after(2.2) == "3"
