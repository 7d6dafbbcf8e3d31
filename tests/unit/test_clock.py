"""The virtual clock and the UTC RFC 3339 format."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dispatcher.domain.clock import (
    SystemClock,
    VirtualClock,
    parse_rfc3339,
    sortable_utc,
    utc_rfc3339,
    utc_text_and_key,
)

START = datetime(2026, 12, 1, 9, 0, tzinfo=timezone(timedelta(hours=-5)))


def test_virtual_clock_starts_at_start_in_utc() -> None:
    clock = VirtualClock(START)
    assert clock.now() == datetime(2026, 12, 1, 14, 0, tzinfo=UTC)
    assert clock.now().utcoffset() == timedelta(0)


def test_virtual_clock_needs_an_aware_start() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        VirtualClock(datetime(2026, 12, 1, 9, 0))


def test_virtual_clock_only_moves_when_told() -> None:
    clock = VirtualClock(START)
    assert clock.now() == clock.now() == START
    clock.advance(timedelta(minutes=90))
    assert clock.now() == START + timedelta(minutes=90)
    clock.advance(timedelta(0))
    assert clock.now() == START + timedelta(minutes=90)


def test_virtual_clock_never_goes_backwards() -> None:
    clock = VirtualClock(START)
    with pytest.raises(ValueError, match="backwards"):
        clock.advance(timedelta(seconds=-1))
    assert clock.now() == START
    with pytest.raises(ValueError, match="backwards"):
        clock.set(START - timedelta(microseconds=1))
    assert clock.now() == START


def test_virtual_clock_set_moves_forward_to_a_moment() -> None:
    clock = VirtualClock(START)
    later = datetime(2026, 12, 2, 1, 0, tzinfo=timezone(timedelta(hours=8)))
    clock.set(later)
    assert clock.now() == later
    assert clock.now().tzinfo is UTC
    clock.set(later)
    assert clock.now() == later


def test_system_clock_is_aware_utc() -> None:
    now = SystemClock().now()
    assert now.utcoffset() == timedelta(0)
    assert abs(now - datetime.now(UTC)) < timedelta(seconds=5)


@pytest.mark.parametrize(
    ("moment", "text"),
    [
        (datetime(2026, 12, 1, 9, 0, 0, 123456, tzinfo=timezone(timedelta(hours=-5))),
         "2026-12-01T14:00:00.123Z"),
        (datetime(2026, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), "2026-12-31T23:59:59.999Z"),
        (datetime(2027, 1, 1, 5, 30, tzinfo=timezone(timedelta(hours=5, minutes=30))),
         "2027-01-01T00:00:00.000Z"),
    ],
)
def test_utc_rfc3339(moment: datetime, text: str) -> None:
    assert utc_rfc3339(moment) == text


def test_utc_rfc3339_refuses_naive_times() -> None:
    with pytest.raises(ValueError, match="naive"):
        utc_rfc3339(datetime(2026, 12, 1, 9, 0))


@pytest.mark.parametrize("text", ["2026-12-01T14:00:00.123Z", "2026-12-01T09:00:00.123-05:00",
                                  "2026-12-01T14:00:00.123z"])
def test_parse_rfc3339_round_trips(text: str) -> None:
    moment = parse_rfc3339(text)
    assert moment.tzinfo is UTC
    assert utc_rfc3339(moment) == "2026-12-01T14:00:00.123Z"


def test_parse_rfc3339_refuses_a_missing_offset() -> None:
    with pytest.raises(ValueError, match="offset"):
        parse_rfc3339("2026-12-01T14:00:00")


_ZONES = st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30)),
                          timezone(timedelta(hours=-8)), timezone(timedelta(hours=14))])


@given(st.datetimes(min_value=datetime(1000, 1, 2), max_value=datetime(9999, 12, 30),
                    timezones=_ZONES),
       st.datetimes(min_value=datetime(1000, 1, 2), max_value=datetime(9999, 12, 30),
                    timezones=_ZONES))
def test_sortable_utc_text_order_is_time_order(first: datetime, second: datetime) -> None:
    a, b = sortable_utc(first), sortable_utc(second)
    assert len(a) == len(b) == len("2026-12-01T14:00:00.000000Z")
    assert (a < b) == (first < second)
    assert (a == b) == (first == second)
    assert parse_rfc3339(a) == first


def test_sortable_utc_refuses_naive_times() -> None:
    with pytest.raises(ValueError, match="naive"):
        sortable_utc(datetime(2026, 12, 1, 9, 0))


@given(st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30),
                    timezones=_ZONES))
def test_utc_text_and_key_is_both_formats_at_once(moment: datetime) -> None:
    assert utc_text_and_key(moment) == (utc_rfc3339(moment), sortable_utc(moment))


def test_utc_text_and_key_refuses_naive_times() -> None:
    with pytest.raises(ValueError, match="naive"):
        utc_text_and_key(datetime(2026, 12, 1, 9, 0))
