"""The compliance report's figures, each a pure function of audit records."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from dispatcher.report.attempt_log import Attempt, Record, local

WEEK = timedelta(days=7)
CHANNELS = ("call", "sms")


@dataclass(frozen=True)
class HeatCell:
    """Attempts at one local weekday (0 = Monday) and hour."""

    weekday: int
    hour: int
    count: int


@dataclass(frozen=True)
class Figures:
    """Everything the report shows except the rule check and the chain verdict."""

    kinds: dict[str, int]  # records in the window by kind
    attempts_by_day: dict[date, dict[str, int]]  # UTC day -> channel -> attempts
    heatmap: tuple[HeatCell, ...]
    zones_disagree: int  # attempts whose candidate zones gave different local hours
    suppressions: dict[str, int]  # first reason -> suppressed records
    call_peaks: dict[str, int]  # account -> most debtor calls in any 7 days ending in the window
    not_sent: int
    third_party: tuple[Attempt, ...]
    opt_outs: tuple[Record, ...]

    @property
    def records(self) -> int:
        """Records in the window."""
        return sum(self.kinds.values())

    @property
    def attempts(self) -> int:
        """Attempt records in the window."""
        return self.kinds.get("attempt", 0)


def compute_figures(window: Sequence[Record], attempts: Sequence[Attempt], since: datetime,
                    until: datetime) -> Figures:
    """The figures of the records written in [since, until).

    `window` are exactly the records `audit export --since --until` prints; `attempts` are the
    attempt records read (those before `since` too, for the 7-day call counts) with outcomes.
    """
    inside = [a for a in attempts if since <= a.at < until]
    return Figures(
        kinds=dict(Counter(str(r.get("kind")) for r in window)),
        attempts_by_day=attempts_by_day(inside, since, until),
        heatmap=heatmap(inside),
        zones_disagree=sum(1 for a in inside if len({_hour_key(a, z) for z in a.zones}) > 1),
        suppressions=dict(Counter(str(r.get("reason")) for r in window
                                  if r.get("kind") == "suppressed").most_common()),
        call_peaks=call_peaks(attempts, since, until),
        not_sent=sum(1 for a in inside if not a.sent),
        third_party=tuple(a for a in inside if a.party != "debtor"),
        opt_outs=tuple(r for r in window if r.get("kind") == "opt_out"),
    )


def attempts_by_day(attempts: Iterable[Attempt], since: datetime,
                    until: datetime) -> dict[date, dict[str, int]]:
    """Attempts per UTC day and channel, with every day of the window present."""
    days: dict[date, dict[str, int]] = {}
    day = since.astimezone(UTC).date()
    last = (until.astimezone(UTC) - timedelta(microseconds=1)).date()
    while day <= last and len(days) < 3660:
        days[day] = dict.fromkeys(CHANNELS, 0)
        day += timedelta(days=1)
    for a in attempts:
        counts = days.setdefault(a.at.astimezone(UTC).date(), dict.fromkeys(CHANNELS, 0))
        counts[a.channel] = counts.get(a.channel, 0) + 1
    return dict(sorted(days.items()))


def _hour_key(a: Attempt, zone: str) -> tuple[int, int]:
    wall = local(a.at, zone)
    return wall.weekday(), wall.hour


def debtor_local(a: Attempt) -> datetime:
    """The attempt's local time for the heatmap: when its candidate zones disagree, the earliest
    wall-clock time among them (the one nearest the morning limit)."""
    return min((local(a.at, z) for z in a.zones), key=lambda t: t.replace(tzinfo=None))


def heatmap(attempts: Iterable[Attempt]) -> tuple[HeatCell, ...]:
    """Attempts by local weekday and hour, every one of the 7 x 24 cells present."""
    counts = Counter((t.weekday(), t.hour) for t in map(debtor_local, attempts))
    return tuple(HeatCell(d, h, counts.get((d, h), 0)) for d in range(7) for h in range(24))


def call_peaks(attempts: Sequence[Attempt], since: datetime, until: datetime) -> dict[str, int]:
    """For every debt with a debtor attempt in the window: the most calls to the debtor that
    count toward the cap in any 7 x 24 hours ending at a call in the window (calls before the
    window count too)."""
    calls: dict[str, list[datetime]] = defaultdict(list)
    peaks: dict[str, int] = {}
    for a in attempts:
        if a.person != "debtor":
            continue
        if since <= a.at < until:
            peaks.setdefault(a.account_id, 0)
        if a.counts_as_call and a.at < until:
            calls[a.account_id].append(a.at)
    for account in peaks:
        times = sorted(calls[account])
        peaks[account] = max((sum(1 for s in times if t - WEEK < s <= t)
                              for t in times if t >= since), default=0)
    return dict(sorted(peaks.items()))


def peak_histogram(peaks: dict[str, int], cap: int) -> dict[int, int]:
    """Number of debts by their 7-day peak, from 0 to at least one over the cap."""
    counts = Counter(peaks.values())
    top = max([cap + 1, *counts])
    return {n: counts.get(n, 0) for n in range(top + 1)}
