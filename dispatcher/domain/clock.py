"""Time as an injected dependency: the daemon uses the system clock, `simulate` a virtual one."""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Source of the current time, always timezone-aware UTC."""

    def now(self) -> datetime:
        """Return the current time in UTC."""
        ...


class SystemClock:
    """The wall clock."""

    def now(self) -> datetime:
        """Return the current time in UTC."""
        return datetime.now(UTC)


class VirtualClock:
    """A clock that only moves when told to."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("VirtualClock needs a timezone-aware start")
        self._now = start.astimezone(UTC)

    def now(self) -> datetime:
        """Return the virtual time."""
        return self._now

    def advance(self, delta: timedelta) -> None:
        """Move the clock forward by `delta`."""
        if delta < timedelta(0):
            raise ValueError("a clock never goes backwards")
        self._now += delta

    def set(self, when: datetime) -> None:
        """Move the clock forward to `when`."""
        self.advance(when.astimezone(UTC) - self._now)


def utc_rfc3339(moment: datetime) -> str:
    """Format an aware datetime as UTC RFC 3339 with milliseconds, e.g. 2026-12-01T14:00:00.000Z."""
    return utc_text_and_key(moment)[0]


def parse_rfc3339(text: str) -> datetime:
    """Parse an RFC 3339 timestamp (with offset or Z) into an aware UTC datetime."""
    return _parsed(text)


@functools.lru_cache(maxsize=1 << 14)
def _parsed(text: str) -> datetime:
    # Stored plans name the same few instants again and again; a datetime is immutable.
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError(f"not an ISO date or time: {text!r}") from None
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no UTC offset")
    return moment.astimezone(UTC)


def utc_text_and_key(moment: datetime) -> tuple[str, str]:
    """`(utc_rfc3339(moment), sortable_utc(moment))` from one formatting of the time."""
    if moment.tzinfo is not UTC:
        if moment.tzinfo is None:
            raise ValueError("naive datetimes are not allowed")
        moment = moment.astimezone(UTC)
    return _utc_texts(moment)


@functools.lru_cache(maxsize=1 << 14)
def _utc_texts(moment: datetime) -> tuple[str, str]:
    # Keyed by UTC datetimes only: two equal ones are one instant (equal local times in one
    # zone are not, across a fall-back hour). A batch formats its `now` and its slots many
    # times; isoformat costs twenty times a lookup.
    text = moment.isoformat(timespec="microseconds")
    # "YYYY-MM-DDTHH:MM:SS.ffffff+00:00": milliseconds are truncated, as isoformat does.
    return text[:23] + "Z", text[:-6] + "Z"


def sortable_utc(moment: datetime) -> str:
    """Fixed-width UTC text with microseconds, whose text order is its time order."""
    return utc_text_and_key(moment)[1]
