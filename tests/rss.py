"""Peak memory of the test process, for the bounded-input tests (the server runs in-process).

The peak is reset before the measured block (Linux `clear_refs`), so a block is measured on its own,
whatever earlier tests in the same process peaked at.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

MiB = 1024 * 1024


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/self/status")


def reset_peak_rss() -> int:
    """Reset this process's peak RSS to its current RSS (Linux clear_refs); returns the RSS in bytes."""
    Path("/proc/self/clear_refs").write_text("5")
    return _status_kib("VmRSS") * 1024


def peak_rss() -> int:
    return _status_kib("VmHWM") * 1024


class PeakGrowth:
    mib: float = 0.0


@contextmanager
def peak_rss_growth() -> Iterator[PeakGrowth]:
    """How far the process's RSS peaked above its RSS at the start of the block."""
    growth = PeakGrowth()
    before = reset_peak_rss()
    yield growth
    growth.mib = (peak_rss() - before) / MiB
