"""Change windows: open/closed in the window's own time zone, windows across midnight, next opening."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from xcloudflow.compose.windows import is_open, next_open
from xcloudflow.errors import Invalid

WEEKNIGHTS = {
    "days": ["mon", "tue", "wed", "thu", "fri"],
    "start": "01:00",
    "end": "05:00",
    "timezone": "Asia/Shanghai",
}
LATE = {"days": ["fri"], "start": "22:00", "end": "02:00", "timezone": "UTC"}


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        ("2026-11-23T17:30:00", True),  # Tuesday 01:30 in Shanghai (UTC+8)
        ("2026-11-23T16:59:00", False),  # Tuesday 00:59 there
        ("2026-11-23T21:00:00", False),  # Tuesday 05:00 there: the end is not inside
        ("2026-11-21T18:00:00", False),  # Sunday 02:00 there
    ],
)
def test_a_window_is_read_in_its_time_zone(when: str, expected: bool) -> None:
    assert is_open(WEEKNIGHTS, at(when)) is expected


def test_a_window_across_midnight_belongs_to_the_day_it_starts() -> None:
    assert is_open(LATE, at("2026-11-27T23:00:00"))  # Friday night
    assert is_open(LATE, at("2026-11-28T01:59:00"))  # Saturday small hours: still Friday's window
    assert not is_open(LATE, at("2026-11-28T23:00:00"))  # Saturday night
    assert not is_open(LATE, at("2026-11-27T01:00:00"))  # Friday small hours belong to Thursday


def test_next_opening() -> None:
    now = at("2026-11-21T18:00:00")  # Sunday 02:00 in Shanghai
    assert next_open(WEEKNIGHTS, now) == at("2026-11-22T17:00:00")  # Monday 01:00 there
    inside = at("2026-11-23T17:30:00")
    assert next_open(WEEKNIGHTS, inside) == inside


@pytest.mark.parametrize(
    ("window", "message"),
    [
        ({"timezone": "Mars/Olympus"}, "unknown time zone"),
        ({"days": ["someday"]}, "unknown day"),
        ({"start": "25:00"}, "HH:MM"),
    ],
)
def test_bad_windows_say_what_is_wrong(window: dict[str, object], message: str) -> None:
    with pytest.raises(Invalid, match=message):
        is_open(window, at("2026-11-23T00:00:00"), name="w")
