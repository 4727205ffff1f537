"""Peak memory of the test process, for the bounded-input tests (the server runs in-process)."""

from __future__ import annotations

import resource
from collections.abc import Iterator
from contextlib import contextmanager

MiB = 1024 * 1024


class PeakGrowth:
    mib: float = 0.0


@contextmanager
def peak_rss_growth() -> Iterator[PeakGrowth]:
    """How much the process's peak RSS rose inside the block (ru_maxrss, KiB on Linux)."""
    growth = PeakGrowth()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    yield growth
    growth.mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
