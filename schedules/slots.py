"""Where in a day an attempt may go, and how likely each place is to be answered.

Pure. A day's slots are the quarter hours of the debtor's local day that lie inside one of the
stage's windows and inside the allowed hours of every candidate zone. Each slot is scored by the
population's answer rate at that hour times the debtor's own factor: a person is modelled as
answering within an hour either side of some preferred time; an unanswered call makes the times
around it unlikely to be that preferred time, a conversation makes them likely.
"""

from __future__ import annotations

import bisect
import functools
import zlib
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import NamedTuple
from zoneinfo import ZoneInfo

from schedules.model import TimeWindow

GRID_MINUTES = 15
CELLS = 24 * 60 // GRID_MINUTES
# A person answers within an hour either side of their preferred time: (t - 60, t + 60].
REACH_MINUTES = 60
_BEFORE = REACH_MINUTES // GRID_MINUTES - 1  # grid cells strictly inside the hour before
_AFTER = REACH_MINUTES // GRID_MINUTES  # grid cells up to and including the hour after
# After an unanswered call the times around it keep this much of their weight (a person can be
# busy at their usual time); after a conversation they weigh this many times more.
MISS_KEEPS = 0.1
TALK_WEIGHS = 5.0
# Added to the score of a lattice point to rank it before every other slot (the estimate times
# the tie-break is at most 1 + TIE_BREAK).
LATTICE_FIRST = 2.0
# Near-equal slots are told apart by at most this share: for a debtor never called, by a
# per-account jitter, so that new debtors are spread over the day instead of all called at one
# time; after unanswered calls, by closeness to them, so that tries tile the day two hours apart
# instead of leaving stretches too short for another try.
TIE_BREAK = 0.15
# The most the tie-break multiplies a debtor's factor by (`personal_score`'s nudge is below it).
MOST_NUDGED = 1 + TIE_BREAK * 1.0

WindowSpec = tuple[str, int, int, tuple[int, ...]]  # name, start and end minute, weekdays


class Slot(NamedTuple):
    """A place in a local day: its instant, its minute of the day and its window."""

    at: datetime  # UTC
    minute: int
    window: str


@functools.lru_cache(maxsize=1 << 14)
def day_slots(day: date, home: str, zones: tuple[str, ...], hours: tuple[time, time],
              windows: tuple[WindowSpec, ...]) -> tuple[Slot, ...]:
    """The quarter hours of `day` in `home` inside a window and inside `hours` in every zone."""
    home_zone = ZoneInfo(home)
    slots = []
    # The quarter hours, and the start of every window (one shorter than a quarter hour, or
    # starting between two, still has a slot).
    minutes = sorted({*range(0, 24 * 60, GRID_MINUTES), *(first for _, first, _, _ in windows)})
    for minute in minutes:
        window = _window_at(windows, minute, day.weekday())
        if window is None:
            continue
        local = datetime.combine(day, time(minute // 60, minute % 60), home_zone)
        if local.astimezone(home_zone).time() != local.time():
            continue  # a time the clocks skip
        at = local.astimezone(UTC)
        if _inside_hours(at, zones, hours):
            slots.append(Slot(at, minute, window))
    return tuple(slots)


def _window_at(windows: tuple[WindowSpec, ...], minute: int, weekday: int) -> str | None:
    """The first window holding this minute of the day on this weekday, if any."""
    return next((name for name, first, last, days in windows
                 if first <= minute < last and weekday in days), None)


def _inside_hours(at: datetime, zones: tuple[str, ...], hours: tuple[time, time]) -> bool:
    """Whether `at` lies inside `hours` in every zone."""
    start, end = hours
    return all(start <= at.astimezone(ZoneInfo(z)).time() < end for z in zones)


def slot_now(now: datetime, home: str, zones: tuple[str, ...], hours: tuple[time, time],
             windows: tuple[WindowSpec, ...]) -> Slot | None:
    """The next whole minute from `now`, as a slot, when it lies inside one of the windows and
    inside `hours` in every zone: a window open now is usable now, between its quarter hours."""
    at = now.astimezone(UTC)
    if at.second or at.microsecond:
        at = at.replace(second=0, microsecond=0) + timedelta(minutes=1)
    local = at.astimezone(ZoneInfo(home))
    minute = local.hour * 60 + local.minute
    window = _window_at(windows, minute, local.weekday())
    if window is None or not _inside_hours(at, zones, hours):
        return None
    return Slot(at, minute, window)


def window_specs(names: Sequence[str],
                 windows: Mapping[str, TimeWindow]) -> tuple[WindowSpec, ...]:
    """A stage's windows as plain values (first named first), for `day_slots`."""
    return tuple((name, windows[name].start.hour * 60 + windows[name].start.minute,
                  windows[name].end.hour * 60 + windows[name].end.minute,
                  tuple(int(d) for d in windows[name].days)) for name in names)


@functools.lru_cache(maxsize=1 << 12)
def personal_factors(misses: tuple[int, ...], talks: tuple[int, ...],
                     hours: tuple[time, time]) -> tuple[float, ...]:
    """For each quarter hour of the day, the debtor's own factor: how much of the hour around it
    could still be their preferred time, given the calls missed and answered (minutes of day);
    0 outside `hours`."""
    first = (hours[0].hour * 60 + hours[0].minute + GRID_MINUTES - 1) // GRID_MINUTES
    last = (hours[1].hour * 60 + hours[1].minute) // GRID_MINUTES  # exclusive
    weight = [0.0] * CELLS
    weight[first:last] = [1.0] * (last - first)
    for minutes, factor in ((misses, MISS_KEEPS), (talks, TALK_WEIGHS)):
        for minute in minutes:
            # The preferred times t with t - 60 < minute <= t + 60, on the grid.
            low = (minute - REACH_MINUTES) // GRID_MINUTES + 1
            high = min((minute + REACH_MINUTES) // GRID_MINUTES, last - 1)
            for cell in range(max(low, first), high + 1):
                weight[cell] *= factor
    width = _BEFORE + _AFTER + 1
    factors = [0.0] * CELLS
    for cell in range(first, last):
        low, high = max(cell - _BEFORE, first), min(cell + _AFTER + 1, last)
        inside = high - low
        # A preferred time outside the allowed hours counts half: such people exist (they answer
        # at the edges), but a try at the edge of the day reaches fewer people than one inside.
        factors[cell] = sum(weight[low:high]) / (inside + (width - inside) / 2)
    return tuple(factors)


@functools.lru_cache(maxsize=1 << 16)
def account_seed(account_id: str) -> int:
    """The number an account's jitter is drawn from."""
    return zlib.crc32(account_id.encode("utf-8", "surrogatepass"))


def on_lattice(minute: int, seed: int, hours: tuple[time, time]) -> bool:
    """Whether `minute` is on the account's two-hour lattice. Its points are two hours apart,
    as few as cover every two hours of the allowed day (one try at each point meets anyone who
    answers in some two hours of it), and shifted by account within the slack that leaves, so
    that accounts are not all called at the same instants: for 08:00-21:00, six points, the last
    between 19:00 and 19:45."""
    return (_lattice_last(seed, hours) - minute) % (2 * REACH_MINUTES) == 0


def _lattice_last(seed: int, hours: tuple[time, time]) -> int:
    """A minute on the account's lattice: its last point before the end of the allowed day."""
    latest, phases = _lattice_shape(hours)
    return latest - seed % phases * GRID_MINUTES


@functools.lru_cache(maxsize=1 << 8)
def _lattice_shape(hours: tuple[time, time]) -> tuple[int, int]:
    """The latest last point of a lattice within `hours`, and how many quarter hours earlier
    it may lie (accounts are spread over them)."""
    first = hours[0].hour * 60 + hours[0].minute
    end = hours[1].hour * 60 + hours[1].minute
    span = 2 * REACH_MINUTES
    starts = max(end - first - span, 0)  # the latest start of a two-hour stretch, from `first`
    points = starts // span + 1
    phases = max((points * span - starts) // GRID_MINUTES, 1)
    return end - span + points * span - starts - GRID_MINUTES, phases


def scored_minutes(hours: tuple[time, time], windows: tuple[WindowSpec, ...]) -> frozenset[int]:
    """The slot minutes that `personal_score` nudges by the tie-break: the quarter hours inside
    `hours` and the windows' starts; a minute between them keeps the debtor's bare factor."""
    return _scored_minutes(hours, tuple(start for _, start, _, _ in windows))


@functools.lru_cache(maxsize=1 << 8)
def _scored_minutes(hours: tuple[time, time], starts: tuple[int, ...]) -> frozenset[int]:
    first = hours[0].hour * 60 + hours[0].minute
    last = hours[1].hour * 60 + hours[1].minute
    return frozenset({*range(first - first % GRID_MINUTES, last, GRID_MINUTES),
                      *(start for start in starts if first <= start < last)})


def personal_score(minute: int, factors: Sequence[float], seed: int,
                   misses: Sequence[int]) -> float:
    """The debtor's own factor at a scored slot minute nudged by the tie-break, which times the
    population's rate ranks the slots. The tie-break, in [0, 1]: for a debtor never called, a
    per-account jitter; after unanswered calls (`misses`, sorted), two hours from the nearest,
    so tries tile the day."""
    jitter = ((minute * 2654435761) ^ seed) % 65521 / 65521
    if not misses:
        liked = jitter
    else:
        at = bisect.bisect_left(misses, minute)  # the misses before this minute
        nearest = min(minute - misses[at - 1] if at else 24 * 60,
                      misses[at] - minute if at < len(misses) else 24 * 60)
        beyond = nearest - 2 * REACH_MINUTES
        liked = (0.98 if beyond <= 0 else max(0.0, 1 - beyond / (2 * REACH_MINUTES)) * 0.98
                 ) + 0.02 * jitter
    return factors[minute // GRID_MINUTES] * (1 + TIE_BREAK * liked)


def lattice_points(seed: int, hours: tuple[time, time]) -> frozenset[int]:
    """The minutes of the day on the account's lattice (`on_lattice`)."""
    # Accounts share a handful of lattices: they are cached by where the lattice lies.
    return _points_every_span(_lattice_last(seed, hours) % (2 * REACH_MINUTES))


@functools.lru_cache(maxsize=1 << 8)
def _points_every_span(offset: int) -> frozenset[int]:
    """The quarter hours of the day that lie a whole number of two-hour spans from `offset`."""
    return frozenset(m for m in range(offset, 24 * 60, 2 * REACH_MINUTES) if m % GRID_MINUTES == 0)


def cell_of(minute: int) -> int:
    """The quarter hour of the day a minute of the day falls in."""
    return minute // GRID_MINUTES
