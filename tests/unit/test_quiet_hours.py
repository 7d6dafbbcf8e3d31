"""The time-of-day rule, as a table (DST included) and as a property over random zones."""

from __future__ import annotations

from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dispatcher.compliance.quiet_hours import AMBIGUOUS, QUIET_HOURS, Window, check_hours

US = Window(time(8), time(21))
INDIA = Window(time(8), time(19))


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "zones", "window", "allowed", "reason", "next_allowed"),
    [
        # Chicago in winter (CST, UTC-6): 08:00 local is 14:00 UTC.
        ("2026-12-01T14:00", ["America/Chicago"], US, True, None, "2026-12-01T14:00"),
        ("2026-12-01T13:59", ["America/Chicago"], US, False, QUIET_HOURS, "2026-12-01T14:00"),
        # 21:00 local is already outside: the window's end is exclusive.
        ("2026-12-02T03:00", ["America/Chicago"], US, False, QUIET_HOURS, "2026-12-02T14:00"),
        ("2026-12-02T02:59", ["America/Chicago"], US, True, None, "2026-12-02T02:59"),
        # DST starts in the US on 2026-03-08: 08:00 CDT is 13:00 UTC that day, 14:00 the day before.
        ("2026-03-08T13:00", ["America/Chicago"], US, True, None, "2026-03-08T13:00"),
        ("2026-03-08T12:59", ["America/Chicago"], US, False, QUIET_HOURS, "2026-03-08T13:00"),
        ("2026-03-07T13:30", ["America/Chicago"], US, False, QUIET_HOURS, "2026-03-07T14:00"),
        # DST ends on 2026-11-01: 07:30 CST is 13:30 UTC; the window opens at 14:00 UTC.
        ("2026-11-01T13:30", ["America/Chicago"], US, False, QUIET_HOURS, "2026-11-01T14:00"),
        ("2026-10-31T13:30", ["America/Chicago"], US, True, None, "2026-10-31T13:30"),
        # The UK moves to BST on 2026-03-29: 08:00 BST is 07:00 UTC.
        ("2026-03-29T07:00", ["Europe/London"], US, True, None, "2026-03-29T07:00"),
        ("2026-03-28T07:00", ["Europe/London"], US, False, QUIET_HOURS, "2026-03-28T08:00"),
        # New York and Los Angeles: the window is 08:00 Pacific to 21:00 Eastern.
        ("2026-12-01T15:00", ["America/New_York", "America/Los_Angeles"], US, False,
         QUIET_HOURS, "2026-12-01T16:00"),
        ("2026-12-01T16:00", ["America/New_York", "America/Los_Angeles"], US, True, None,
         "2026-12-01T16:00"),
        ("2026-12-02T02:00", ["America/New_York", "America/Los_Angeles"], US, False,
         QUIET_HOURS, "2026-12-02T16:00"),
        # Kolkata and Chicago (11.5 h apart in winter) never share an hour of 08:00-19:00:
        # ambiguous, not merely quiet. In summer (CDT) they share 13:00-13:30 UTC.
        ("2026-12-01T12:00", ["Asia/Kolkata", "America/Chicago"], INDIA, False, AMBIGUOUS,
         None),
        ("2026-07-01T12:00", ["Asia/Kolkata", "America/Chicago"], INDIA, False, QUIET_HOURS,
         "2026-07-01T13:00"),
        ("2026-07-01T13:15", ["Asia/Kolkata", "America/Chicago"], INDIA, True, None,
         "2026-07-01T13:15"),
        # India's 08:00-19:00 (IST, UTC+5:30, no DST).
        ("2026-12-01T13:29", ["Asia/Kolkata"], INDIA, True, None, "2026-12-01T13:29"),
        ("2026-12-01T13:30", ["Asia/Kolkata"], INDIA, False, QUIET_HOURS, "2026-12-02T02:30"),
        # Nothing known about where the debtor is: refused.
        ("2026-12-01T16:00", [], US, False, AMBIGUOUS, None),
    ],
)
def test_time_of_day_rule(now: str, zones: list[str], window: Window, allowed: bool,
                          reason: str | None, next_allowed: str | None) -> None:
    decision = check_hours(utc(now), zones, window)
    assert decision.allowed is allowed
    assert decision.reason == reason
    assert decision.next_allowed == (utc(next_allowed) if next_allowed else None)
    assert set(decision.local_times) == set(zones)


def test_local_times_name_each_zone() -> None:
    decision = check_hours(utc("2026-12-01T16:00"), ["America/New_York", "Asia/Kolkata"], US)
    assert decision.local_times == {"America/New_York": "2026-12-01T11:00-05:00",
                                    "Asia/Kolkata": "2026-12-01T21:30+05:30"}


def test_a_window_must_not_be_empty() -> None:
    with pytest.raises(ValueError, match="before its end"):
        Window(time(21), time(8))


ZONES = ["America/New_York", "America/Chicago", "America/Denver", "America/Phoenix",
         "America/Los_Angeles", "America/Anchorage", "Pacific/Honolulu", "Europe/London",
         "Asia/Kolkata", "Asia/Shanghai", "Australia/Sydney"]


@settings(max_examples=300, derandomize=True)
@given(
    now=st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2028, 12, 31),
                     timezones=st.just(UTC)),
    zones=st.lists(st.sampled_from(ZONES), min_size=1, max_size=3, unique=True),
    start=st.integers(min_value=6 * 60, max_value=10 * 60),
    length=st.integers(min_value=60, max_value=14 * 60),
)
def test_never_allowed_outside_the_window_in_any_zone(now: datetime, zones: list[str],
                                                      start: int, length: int) -> None:
    end = min(start + length, 23 * 60 + 59)
    window = Window(time(start // 60, start % 60), time(end // 60, end % 60))
    decision = check_hours(now, zones, window)
    for name in zones:
        local = now.astimezone(ZoneInfo(name)).time()
        inside = window.start <= local < window.end
        if decision.allowed:
            assert inside, (name, local)
    if decision.allowed:
        return
    assert any(not (window.start <= now.astimezone(ZoneInfo(z)).time() < window.end)
               for z in zones)
    if decision.next_allowed is not None:
        assert decision.next_allowed > now
        assert check_hours(decision.next_allowed, zones, window).allowed
