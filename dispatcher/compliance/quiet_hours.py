"""The time-of-day rule: an attempt is allowed only inside the window in every candidate zone.

Pure: it takes `now` and the zones, and answers with the decision, the local time in each zone
(for the audit record's `local_times`) and the next instant at which every zone is inside.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

QUIET_HOURS = "quiet_hours"
AMBIGUOUS = "quiet_hours_ambiguous_tz"

Interval = tuple[datetime, datetime]  # UTC, [start, end)


@dataclass(frozen=True)
class Window:
    """Allowed local hours, [start, end), within one calendar day."""

    start: time
    end: time

    def __post_init__(self) -> None:
        if not self.start < self.end:
            raise ValueError(f"window start {self.start} must be before its end {self.end}")


@dataclass(frozen=True)
class HoursDecision:
    """Allowed or not, why not, the local times considered and when it would next be allowed."""

    allowed: bool
    reason: str | None
    local_times: dict[str, str] = field(default_factory=dict)
    next_allowed: datetime | None = None


def _local_day_intervals(zone: ZoneInfo, window: Window, first: date,
                         days: int) -> list[Interval]:
    intervals = []
    for offset in range(days):
        day = first + timedelta(days=offset)
        start = datetime.combine(day, window.start, zone).astimezone(UTC)
        end = datetime.combine(day, window.end, zone).astimezone(UTC)
        intervals.append((start, end))
    return intervals


def _intersect(a: list[Interval], b: list[Interval]) -> list[Interval]:
    out, i, j = [], 0, 0
    while i < len(a) and j < len(b):
        start, end = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if start < end:
            out.append((start, end))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


def allowed_intervals(now: datetime, zones: Sequence[str], window: Window,
                      horizon_days: int = 8) -> list[Interval]:
    """UTC intervals from the day before `now` on in which every zone is inside the window."""
    if not zones:
        return []
    first = (now.astimezone(UTC) - timedelta(days=2)).date()
    common: list[Interval] | None = None
    for name in zones:
        own = _local_day_intervals(ZoneInfo(name), window, first, horizon_days + 3)
        common = own if common is None else _intersect(common, own)
    return common or []


def check_hours(now: datetime, zones: Sequence[str], window: Window,
                horizon_days: int = 8) -> HoursDecision:
    """Decide the time-of-day rule at `now` for a debtor who may be in any of `zones`.

    No zone at all means the debtor's local time is unknown: refused as ambiguous.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    local_times = {name: now.astimezone(ZoneInfo(name)).isoformat(timespec="minutes")
                   for name in zones}
    upcoming = [(max(start, now), end) for start, end in allowed_intervals(
        now, zones, window, horizon_days) if end > now]
    if not upcoming:
        return HoursDecision(False, AMBIGUOUS, local_times)
    start, _ = upcoming[0]
    if start <= now:
        return HoursDecision(True, None, local_times, now)
    return HoursDecision(False, QUIET_HOURS, local_times, start)
