"""Change windows: when a node whose route names a window may start.

A window is `{days: [mon..sun], start: "HH:MM", end: "HH:MM", timezone: "Area/City"}` in local time of
its zone; an `end` before `start` crosses midnight (the part after midnight belongs to the day it
started on). Pure functions over timezone-aware datetimes.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from xcloudflow.errors import Invalid

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _parse(window: dict[str, Any], name: str) -> tuple[set[int], time, time, ZoneInfo]:
    try:
        zone = ZoneInfo(str(window.get("timezone") or "UTC"))
    except (ZoneInfoNotFoundError, ValueError):
        raise Invalid(f"change window {name}: unknown time zone {window.get('timezone')!r}") from None
    days = window.get("days") or list(DAYS)
    unknown = [d for d in days if str(d).lower()[:3] not in DAYS]
    if unknown:
        raise Invalid(f"change window {name}: unknown day {unknown[0]!r} (mon..sun)")
    try:
        start = time.fromisoformat(str(window.get("start") or "00:00"))
        end = time.fromisoformat(str(window.get("end") or "23:59"))
    except ValueError as exc:
        raise Invalid(f"change window {name}: start/end must be HH:MM ({exc})") from None
    return {DAYS.index(str(d).lower()[:3]) for d in days}, start, end, zone


def is_open(window: dict[str, Any], now: datetime, *, name: str = "window") -> bool:
    days, start, end, zone = _parse(window, name)
    local = now.astimezone(zone)
    t = local.time().replace(tzinfo=None)
    if start <= end:
        return local.weekday() in days and start <= t < end
    # Crosses midnight: evening part on a listed day, or the small hours after a listed day.
    if t >= start and local.weekday() in days:
        return True
    return t < end and (local.weekday() - 1) % 7 in days


def next_open(window: dict[str, Any], now: datetime, *, name: str = "window") -> datetime:
    """The first moment at or after `now` the window is open (minute resolution, at most 8 days on)."""
    days, start, _end, zone = _parse(window, name)
    if is_open(window, now, name=name):
        return now
    local = now.astimezone(zone)
    for offset in range(8):
        day = (local + timedelta(days=offset)).date()
        candidate = datetime.combine(day, start, tzinfo=zone)
        if candidate >= local and candidate.weekday() in days:
            return candidate.astimezone(now.tzinfo)
    raise Invalid(f"change window {name} never opens (no days listed?)")
