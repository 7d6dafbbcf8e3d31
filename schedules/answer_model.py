"""The population's answer rates by local weekday and hour, learned from call outcomes.

Pure: the counts come from the store, the prior from here. Each hour of the day has a rate over
every day of the week, (answered + prior rate x prior weight) / (calls + prior weight), with its
neighbouring hours' calls counting half; each of the week's 168 hours has its own rate, drawn
toward its hour's the same way. An hour with few calls stays near what is known around it, an
hour with many speaks for itself.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

import orjson

from dispatcher.domain.clock import parse_rfc3339, utc_rfc3339

HOURS = 7 * 24
# Without outcomes every hour is as likely as any other: the search alone spreads the tries.
PRIOR_RATE = 0.25
# The prior weighs as much as this many calls against all the calls learned from.
PRIOR_CALLS = 20
# An hour's rate is drawn toward the average hour as if this many calls had been placed at it
# with the average result, and a weekday's hour toward its hour the same way with WEEKDAY_CALLS:
# a few hundred calls must disagree before an hour is told apart from the others, so chance
# differences between hours do not move the tries off their even spread.
HOUR_CALLS = 200
WEEKDAY_CALLS = 100
# A newly learned model replaces the one in force (and every stored plan is made again) only
# when some hour's rate over the week moved by at least this much (a weekday's hour: twice this);
# smaller moves change no decision worth a re-plan of every account.
MATERIAL_CHANGE = 0.05
DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def hour_of_week(weekday: int, hour: int) -> int:
    """The index of a local weekday (Monday 0) and hour in the model's 168 hours."""
    return weekday * 24 + hour


@dataclass(frozen=True)
class AnswerModel:
    """Answer rates by local hour of the week, the counts they came from, and when learned."""

    calls: tuple[int, ...] = (0,) * HOURS
    answered: tuple[int, ...] = (0,) * HOURS
    learned_at: datetime | None = None  # None: the prior alone, nothing learned yet
    since: datetime | None = None  # the outcomes counted are from [since, learned_at)
    rates: tuple[float, ...] = field(init=False, repr=False, compare=False)
    # A short digest of the rates: plans made under equal rates are equal.
    version: str = field(init=False, repr=False, compare=False)
    _bases: dict[tuple[int, int], str] = field(init=False, repr=False, compare=False,
                                               default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.calls) != HOURS or len(self.answered) != HOURS:
            raise ValueError(f"an answer model has {HOURS} hours")
        if any(a < 0 or c < a for c, a in zip(self.calls, self.answered, strict=True)):
            raise ValueError("answered calls must be between 0 and the calls placed")
        by_hour = self.hour_rates()
        rates = tuple(round((self.answered[i] + by_hour[i % 24] * WEEKDAY_CALLS)
                            / (self.calls[i] + WEEKDAY_CALLS), 4) for i in range(HOURS))
        object.__setattr__(self, "rates", rates)
        # Read at every decision (plans carry it): hashed once here.
        object.__setattr__(self, "version",
                           hashlib.sha256(orjson.dumps(rates)).hexdigest()[:12])

    def hour_rates(self) -> tuple[float, ...]:
        """Each hour's rate over every day of the week, its neighbours' calls counting half (a
        person who answers at 18:00 often answers at 17:00 or 19:00), near the prior when few
        calls were placed."""
        calls = [sum(self.calls[day * 24 + hour] for day in range(7)) for hour in range(24)]
        answered = [sum(self.answered[day * 24 + hour] for day in range(7))
                    for hour in range(24)]

        def pooled(values: list[int], hour: int) -> float:
            near = [values[h] for h in (hour - 1, hour + 1) if 0 <= h < 24]
            return values[hour] + sum(near) / 2

        # An hour nobody was called at is as good as the average hour, not as the prior: else
        # untried hours would look better than every hour tried.
        overall = (sum(answered) + PRIOR_RATE * PRIOR_CALLS) / (sum(calls) + PRIOR_CALLS)
        return tuple((pooled(answered, h) + overall * HOUR_CALLS)
                     / (pooled(calls, h) + HOUR_CALLS) for h in range(24))

    @classmethod
    def prior(cls) -> AnswerModel:
        """The model of a deployment that has learned nothing yet."""
        return _PRIOR

    @classmethod
    def learned(cls, counts: Mapping[int, tuple[int, int]], since: datetime,
                learned_at: datetime) -> AnswerModel:
        """The model from (calls, answered) per hour of the week; other hours have none."""
        calls = [0] * HOURS
        answered = [0] * HOURS
        for index, (placed, talked) in counts.items():
            if 0 <= index < HOURS:
                calls[index], answered[index] = placed, min(talked, placed)
        return cls(tuple(calls), tuple(answered), learned_at, since)

    def rate(self, weekday: int, hour: int) -> float:
        """The estimated share of calls answered at this local weekday and hour."""
        return self.rates[hour_of_week(weekday, hour)]

    def basis(self, weekday: int, hour: int) -> str:
        """What the rate of this hour rests on, in words."""
        # Every plan states it: the 168 sentences of a model are written once each.
        kept = self._bases.get((weekday, hour))
        if kept is None:
            kept = self._bases[weekday, hour] = self._basis(weekday, hour)
        return kept

    def _basis(self, weekday: int, hour: int) -> str:
        index = hour_of_week(weekday, hour)
        placed, talked = self.calls[index], self.answered[index]
        when = f"{DAY_NAMES[weekday]} {hour:02d}h"
        every_day = sum(self.calls[day * 24 + hour] for day in range(7))
        answered_every_day = sum(self.answered[day * 24 + hour] for day in range(7))
        if every_day == 0 and self.learned_at is None:
            return f"{when}: {self.rates[index]:.1%}, the prior (nothing learned yet)"
        return (f"{when}: {self.rates[index]:.1%} ({talked} answered of {placed} calls on "
                f"{DAY_NAMES[weekday]}s, {answered_every_day} of {every_day} at {hour:02d}h on "
                f"every day, neighbouring hours and a prior of {PRIOR_RATE:.0%})")

    def differs_materially(self, other: AnswerModel) -> bool:
        """True when some hour's rate over the week differs by at least MATERIAL_CHANGE, or some
        weekday's hour by twice that (fewer calls: more chance in it)."""
        return (any(abs(a - b) >= MATERIAL_CHANGE
                    for a, b in zip(self.hour_rates(), other.hour_rates(), strict=True))
                or any(abs(a - b) >= 2 * MATERIAL_CHANGE
                       for a, b in zip(self.rates, other.rates, strict=True)))

    def to_json(self) -> str:
        """The model as the store keeps it."""
        return orjson.dumps({
            "calls": self.calls, "answered": self.answered,
            "learned_at": utc_rfc3339(self.learned_at) if self.learned_at else None,
            "since": utc_rfc3339(self.since) if self.since else None}).decode()

    @classmethod
    def from_json(cls, text: str) -> AnswerModel:
        """Read a stored model back; ValueError when it is not one."""
        try:
            body = orjson.loads(text)
            learned = body["learned_at"]
            since = body["since"]
            return cls(tuple(int(n) for n in body["calls"]),
                       tuple(int(n) for n in body["answered"]),
                       parse_rfc3339(learned) if learned else None,
                       parse_rfc3339(since) if since else None)
        except (orjson.JSONDecodeError, KeyError, TypeError) as error:
            raise ValueError(f"not an answer model: {error}") from None

    def table(self) -> list[str]:
        """The rates as a text table: one row per hour, one column per weekday."""
        learned = (f"learned {utc_rfc3339(self.learned_at)} from call outcomes since "
                   f"{utc_rfc3339(self.since)}" if self.learned_at and self.since
                   else "nothing learned yet")
        total_calls, total_answered = sum(self.calls), sum(self.answered)
        lines = [f"answer rates by the debtor's local hour ({learned}; {total_answered} answered "
                 f"of {total_calls} calls; prior {PRIOR_RATE:.0%} weighing {PRIOR_CALLS} calls "
                 f"per hour)",
                 "hour  " + "  ".join(f"{d:>12}" for d in DAY_NAMES)]
        for hour in range(24):
            cells = []
            for day in range(7):
                index = hour_of_week(day, hour)
                cells.append(f"{self.rates[index]:6.1%} {self.calls[index]:>5}")
            lines.append(f"{hour:02d}h   " + "  ".join(cells))
        lines.append("each cell: estimated answer rate, and the calls placed in that hour")
        return lines


_PRIOR = AnswerModel()
