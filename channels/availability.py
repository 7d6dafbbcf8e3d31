"""The sandbox's simulated people: when a debtor answers a call, by window or by probability.

Two models for the `call` rule of the outcomes file (docs/simulate.md): a daily window of local
time, optionally on some weekdays only, and a probability of answering by local hour and
weekday. Both read the debtor's home zone (`Delivery.local_zone`); the probabilistic one draws
its number from a hash of the seed, the attempt and the number, so that the same inputs give the
same answers in every run and every process.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any, TypeAlias
from zoneinfo import ZoneInfo

from dispatcher.domain.contact import Delivery, Outcome

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # datetime.weekday() order
EVERY_DAY = frozenset(range(7))
MAX_SEED = 2**53  # the largest integer every JSON reader holds exactly
_HOUR = re.compile(r"[01][0-9]|2[0-3]")  # [0-9], not \d: no other script's digits
_HH_MM = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])")
_DAYS = ", ".join(WEEKDAYS)


def local_moment(moment: datetime, zone: str) -> datetime:
    """`moment` on the wall clock of `zone`."""
    if moment.tzinfo is None:
        # astimezone() would read a naive time as the host's zone: not deterministic.
        raise ValueError("the moment of a call must be timezone-aware")
    return moment.astimezone(ZoneInfo(zone))


@dataclass(frozen=True)
class Availability:
    """A debtor who answers calls only inside a daily window [start, end) of local time."""

    start: time
    end: time
    otherwise: Outcome = Outcome.NO_ANSWER
    days: frozenset[int] = EVERY_DAY  # the weekdays (Monday 0) on which the window opens

    def answers_at(self, local: time) -> bool:
        """Whether a call at wall-clock time `local` falls inside the window."""
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end  # the window crosses midnight

    def answers_on(self, local: datetime) -> bool:
        """Whether a call at local date and time `local` falls inside a window that opened."""
        clock = local.time()
        if not self.answers_at(clock):
            return False
        opened = local.date()
        if self.start > self.end and clock < self.end:
            opened -= timedelta(days=1)  # after midnight: the window opened the day before
        return opened.weekday() in self.days

    def outcome_at(self, moment: datetime, zone: str) -> Outcome:
        """The outcome of a call placed at `moment` to a debtor living in `zone`."""
        answered = self.answers_on(local_moment(moment, zone))
        return Outcome.COMPLETED if answered else self.otherwise

    def outcome_for(self, delivery: Delivery) -> Outcome:
        """The outcome of the call `delivery`."""
        return self.outcome_at(delivery.at, delivery.local_zone)


def uniform_draw(seed: int, attempt_id: str, number: str) -> float:
    """A number in [0, 1) fixed by its inputs: the same in every run and every process."""
    material = json.dumps([seed, attempt_id, number], ensure_ascii=True).encode("ascii")
    return int.from_bytes(hashlib.sha256(material).digest()[:8], "big") / 2**64


@dataclass(frozen=True)
class AnswerProbability:
    """A debtor who answers a call with a probability set by local hour and weekday."""

    by_hour: tuple[float, ...]  # 24 probabilities, hour 00 first
    by_weekday: tuple[float, ...] = (1.0,) * 7  # multipliers, Monday first
    otherwise: Outcome = Outcome.NO_ANSWER
    seed: int = 0

    def __post_init__(self) -> None:
        if len(self.by_hour) != 24 or len(self.by_weekday) != 7:
            raise ValueError("by_hour needs 24 probabilities and by_weekday 7 multipliers")

    def probability_at(self, local: datetime) -> float:
        """The chance that a call at local date and time `local` is answered."""
        return self.by_hour[local.hour] * self.by_weekday[local.weekday()]

    def outcome_for(self, delivery: Delivery) -> Outcome:
        """The outcome of the call `delivery`: the same for the same seed, attempt and number."""
        chance = self.probability_at(local_moment(delivery.at, delivery.local_zone))
        drawn = uniform_draw(self.seed, delivery.attempt_id, delivery.to)
        return Outcome.COMPLETED if drawn < chance else self.otherwise


CallModel: TypeAlias = Availability | AnswerProbability

# --- reading a model from the outcomes file ------------------------------------------------------

Report: TypeAlias = Callable[[str, str], None]  # (key, reason): one problem of the file
ParseStatus: TypeAlias = Callable[[object, str], Outcome | None]  # a call status, or reported


def parse_call_model(value: dict[str, Any], key: str, report: Report,
                     status: ParseStatus) -> CallModel | None:
    """The availability model of a call rule, or None after reporting every problem."""
    if "answer_probability" in value:
        for name in value:
            if name != "answer_probability":
                report(child_key(key, name), "not allowed beside answer_probability "
                                          "(its otherwise and seed go inside it)")
        model = _parse_probability(value["answer_probability"],
                                   child_key(key, "answer_probability"), report, status)
        return model if len(value) == 1 else None
    return _parse_window_model(value, key, report, status)


def child_key(key: str, name: str) -> str:
    """The dotted key of `name` inside `key`, as problems name it."""
    return f"{key}.{name}" if key else name


def shown(value: object) -> str:
    """A value as the file wrote it, for a problem's reason."""
    return json.dumps(value, ensure_ascii=False)


def check_keys(obj: dict[str, Any], known: tuple[str, ...], key: str, report: Report) -> None:
    """Report every key of `obj` that is not one of `known`."""
    for name in obj:
        if name not in known:
            report(child_key(key, name), f"unknown key (expected one of: {', '.join(known)})")


def _parse_window_model(value: dict[str, Any], key: str, report: Report,
                        status: ParseStatus) -> Availability | None:
    check_keys(value, ("answers_between", "days", "otherwise", "answer_probability"), key,
                report)
    window_key = child_key(key, "answers_between")
    if "answers_between" not in value:
        report(window_key, 'missing: an availability model needs ["HH:MM", "HH:MM"] '
                           '(or is an answer_probability model)')
        window = None
    else:
        window = _parse_window(value["answers_between"], window_key, report)
    days = _parse_days(value["days"], child_key(key, "days"), report) if "days" in value \
        else EVERY_DAY
    otherwise = status(value.get("otherwise", Outcome.NO_ANSWER.value), child_key(key, "otherwise"))
    if window is None or days is None or otherwise is None:
        return None
    return Availability(*window, otherwise, days)


def _parse_window(value: object, key: str, report: Report) -> tuple[time, time] | None:
    if not (isinstance(value, list) and len(value) == 2):
        report(key, 'expected [start, end] as two "HH:MM" local times')
        return None
    start, end = (_parse_clock_time(v, f"{key}[{i}]", report) for i, v in enumerate(value))
    if start is None or end is None:
        return None
    if start == end:
        report(key, "start and end are the same: the window is empty")
        return None
    return start, end


def _parse_clock_time(value: object, key: str, report: Report) -> time | None:
    match = _HH_MM.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        report(key, f'{shown(value)} is not a 24-hour "HH:MM" time')
        return None
    return time(int(match[1]), int(match[2]))


def _parse_days(value: object, key: str, report: Report) -> frozenset[int] | None:
    if not (isinstance(value, list) and value):
        report(key, f"expected a non-empty list of weekdays (of: {_DAYS})")
        return None
    days: list[int] = []
    for i, name in enumerate(value):
        if not (isinstance(name, str) and name in WEEKDAYS):
            report(f"{key}[{i}]", f"{shown(name)} is not a weekday (expected one of: {_DAYS})")
        elif WEEKDAYS.index(name) in days:
            report(f"{key}[{i}]", f"{shown(name)} is listed twice")
        else:
            days.append(WEEKDAYS.index(name))
    return frozenset(days) if len(days) == len(value) else None


def _parse_probability(value: object, key: str, report: Report,
                       status: ParseStatus) -> AnswerProbability | None:
    if not isinstance(value, dict):
        report(key, 'expected an object with "by_hour" and optionally "by_weekday", '
                    '"otherwise" and "seed"')
        return None
    check_keys(value, ("by_hour", "by_weekday", "otherwise", "seed"), key, report)
    if "by_hour" not in value:
        report(child_key(key, "by_hour"), "missing: the probability of answering by local hour")
        by_hour = None
    else:
        by_hour = _parse_by_hour(value["by_hour"], child_key(key, "by_hour"), report)
    by_weekday = _parse_by_weekday(value.get("by_weekday", {}), child_key(key, "by_weekday"),
                                   report)
    otherwise = status(value.get("otherwise", Outcome.NO_ANSWER.value), child_key(key, "otherwise"))
    seed = _parse_seed(value.get("seed", 0), child_key(key, "seed"), report)
    if by_hour is None or by_weekday is None or otherwise is None or seed is None:
        return None
    return AnswerProbability(by_hour, by_weekday, otherwise, seed)


def _parse_by_hour(value: object, key: str, report: Report) -> tuple[float, ...] | None:
    if isinstance(value, list):
        if len(value) != 24:
            report(key, f"a list needs 24 probabilities, hour 00 first (this one has "
                        f"{len(value)})")
            return None
        return _all_or_none([_parse_probability_value(v, f"{key}[{i}]", report)
                             for i, v in enumerate(value)])
    if not isinstance(value, dict):
        report(key, 'expected an object keyed by hour "00" to "23" (and optionally "default"), '
                    "or a list of 24 probabilities")
        return None
    if not value:
        report(key, 'empty: give at least one hour or "default" (a debtor who never answers '
                    'is the status "no-answer")')
        return None
    default = _parse_probability_value(value["default"], child_key(key, "default"), report) \
        if "default" in value else 0.0
    hours: list[float | None] = [default] * 24
    known = True
    for name, given in value.items():
        if _HOUR.fullmatch(name):
            hours[int(name)] = _parse_probability_value(given, child_key(key, name), report)
        elif name != "default":
            report(child_key(key, name), 'not an hour (expected two digits, "00" to "23", '
                                      'or "default")')
            known = False
    return _all_or_none(hours) if known else None


def _parse_by_weekday(value: object, key: str, report: Report) -> tuple[float, ...] | None:
    if not isinstance(value, dict):
        report(key, f"expected an object keyed by weekday (of: {_DAYS})")
        return None
    days: list[float | None] = [1.0] * 7
    known = True
    for name, given in value.items():
        if name in WEEKDAYS:
            days[WEEKDAYS.index(name)] = _parse_probability_value(given, child_key(key, name),
                                                                  report)
        else:
            report(child_key(key, name), f"not a weekday (expected one of: {_DAYS})")
            known = False
    return _all_or_none(days) if known else None


def _parse_probability_value(value: object, key: str, report: Report) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        report(key, f"{shown(value)} is not a number (expected a probability from 0 to 1)")
        return None
    if not 0 <= value <= 1:  # also NaN, which compares false with everything
        report(key, f"{shown(value)} is not a probability (expected a number from 0 to 1)")
        return None
    return float(value)


def _parse_seed(value: object, key: str, report: Report) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SEED:
        report(key, f"{shown(value)} is not a seed (expected a whole number from 0 to "
                    f"{MAX_SEED})")
        return None
    return value


def _all_or_none(values: list[float | None]) -> tuple[float, ...] | None:
    found = tuple(v for v in values if v is not None)
    return found if len(found) == len(values) else None
