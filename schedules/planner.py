"""The planner: from an account's state, its attempts so far and the schedule, the next attempt.

Pure: `plan_next(facts, schedule, limits, now, model)` answers with the next lawful attempt (when,
whom, which number and medium, which stage, window and rule) or every reason there is none. It
takes the first day with a lawful slot, and in that day the slot most likely to be answered
(schedules/slots.py scores them), asking the compliance gate at each slot it tries, so whatever
it plans the gate allows at that instant.
"""

from __future__ import annotations

import bisect
import functools
import heapq
import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import NamedTuple
from zoneinfo import ZoneInfo

from dispatcher.compliance.gate import (
    NEVER_SAME_DAY,
    NO_VALID_NUMBER,
    Budget,
    Counted,
    Facts,
    Refusal,
    account_refusals,
    counted_history,
    is_unreachable,
    local_day,
    local_midnight,
    target_refusals,
    time_refusals,
    zones_for,
)
from dispatcher.compliance.policy import GuarantorRule, Limits
from dispatcher.compliance.quiet_hours import AMBIGUOUS, QUIET_HOURS, Window, allowed_intervals
from dispatcher.domain.accounts import AccountState
from dispatcher.domain.contact import UNANSWERED, Medium, Outcome, PastAttempt, Role, Target
from dispatcher.domain.events import Phone
from schedules.answer_model import AnswerModel, hour_of_week
from schedules.model import THIRD_PARTY_TEMPLATE, PerSchedule, Schedule, Stage
from schedules.slots import (
    LATTICE_FIRST,
    MOST_NUDGED,
    REACH_MINUTES,
    Slot,
    WindowSpec,
    account_seed,
    cell_of,
    day_slots,
    lattice_points,
    personal_factors,
    personal_score,
    scored_minutes,
    slot_now,
    window_specs,
)

HORIZON_DAYS = 21
_DAYS = tuple(timedelta(days=n) for n in range(HORIZON_DAYS + 1))  # built once, not per day
_Ranked = tuple[float, int, Slot]
# Outcomes after which a number gives way to the debtor's others: nobody talked, or the line
# did not connect (disconnected, switched off) or the text did not arrive.
_MISSES = frozenset({Outcome.NO_ANSWER, Outcome.MACHINE, Outcome.BUSY, Outcome.FAILED,
                     Outcome.UNDELIVERED})
NO_STAGE = "no_stage"
# Members bound once for the loops over an account's history: looked up on their enum class
# they cost a metaclass call each time.
_DEBTOR = Role.DEBTOR
_CALL = Medium.CALL
_SMS = Medium.SMS
_COMPLETED = Outcome.COMPLETED


@dataclass(frozen=True)
class PlannedAttempt:
    """The next attempt: when, to whom, the rule that chose it and why this time."""

    at: datetime
    target: Target
    stage: str
    window: str
    rule: str
    template: str
    # The estimated chance it is answered, and what that rests on (shown by `explain`).
    estimate: float | None = field(default=None, compare=False)
    basis: str = field(default="", compare=False)

    def moved(self, at: datetime) -> PlannedAttempt:
        """The same attempt at `at` (`dataclasses.replace` without its look at every field)."""
        return PlannedAttempt(at, self.target, self.stage, self.window, self.rule, self.template,
                              self.estimate, self.basis)


class Slotted(NamedTuple):
    """A slot found for one target: when, in which window, and its estimate."""

    at: datetime
    window: str
    estimate: float
    basis: str


class NoAttempt(NamedTuple):
    """No attempt can be planned: every reason, and when planning again could help."""

    # A named tuple, not a frozen dataclass (which costs three times as much to build):
    # the engine makes one whenever it waits for an outcome.

    reasons: tuple[Refusal, ...]
    retry_at: datetime | None = None


Plan = PlannedAttempt | NoAttempt


def days_past_due(state: AccountState, now: datetime, zone: str | None) -> int | None:
    """Days past due today: the last reported figure plus the local days since it was reported."""
    if state.days_past_due is None or state.days_past_due_as_of is None:
        return None
    elapsed = (local_day(now, zone) - local_day(state.days_past_due_as_of, zone)).days
    return state.days_past_due + max(elapsed, 0)


def text_owed(stage: Stage, history: Sequence[PastAttempt]) -> bool:
    """Whether the stage's pattern owes the debtor a text: the pattern's texts that come before
    its next call outnumber the texts sent in this stage. Calls alone move the pattern on, so a
    text never takes a call's place."""
    pattern = stage.channels
    if Medium.SMS not in pattern:
        return False
    if Medium.CALL not in pattern:
        return True
    name = stage.name
    calls = texts = 0
    for _, _, _, role, _, medium, _, in_stage, _ in history:  # every plan asks: one pass
        if role is _DEBTOR and in_stage == name:
            if medium is _CALL:
                calls += 1
            elif medium is _SMS:
                texts += 1
    call_positions = [i for i, m in enumerate(pattern) if m is Medium.CALL]
    cycles, nth = divmod(calls, len(call_positions))
    owed = cycles * pattern.count(Medium.SMS) + pattern[:call_positions[nth]].count(Medium.SMS)
    return texts < owed


def _mediums(stage: Stage, owed: bool) -> tuple[Medium, ...]:
    return _mediums_of(stage.channels, owed)


@functools.lru_cache(maxsize=1 << 8)
def _mediums_of(channels: tuple[Medium, ...], owed: bool) -> tuple[Medium, ...]:
    first = Medium.SMS if owed else Medium.CALL
    if first not in channels:
        first = channels[0]
    return (first, *dict.fromkeys(m for m in channels if m is not first))


def _day(plan: PlannedAttempt, facts: Facts) -> date:
    return local_day(plan.at, facts.home_zone)


def _room_for_two(facts: Facts, stage: Stage, limits: Limits, day: date) -> bool:
    """Whether the day's count still allows a call and a text after it."""
    zone = facts.home_zone
    midnight = local_midnight(day, zone)
    # Only an attempt near the day's midnight can lie on that local day: its local day is asked
    # of those alone.
    near_start, near_end = midnight - NEVER_SAME_DAY, midnight + NEVER_SAME_DAY
    done = sum(1 for a in facts.history if a.role is _DEBTOR and near_start < a.at < near_end
               and local_day(a.at, zone) == day)
    return done + 2 <= min(limits.attempts_per_day, stage.attempts_per_day)


def _debtor_phones(facts: Facts) -> list[Phone]:
    """The debtor's numbers in the order to try them."""
    debtor = facts.state.debtor
    if debtor is None:
        return []
    if len(debtor.phones) < 2:  # nothing to order or take turns with
        return list(debtor.phones)
    type_rank = {"mobile": 0, "home": 1, "work": 2}
    phones = sorted(enumerate(debtor.phones), key=lambda ip: (type_rank[ip[1].type], ip[0]))
    history = [a for a in facts.history if a.role is _DEBTOR]
    last = next((i for i in range(len(history) - 1, -1, -1) if history[i].is_conversation), None)
    last_talk = history[last].number if last is not None else None
    since = history[last + 1:] if last is not None else history

    def rank(item: tuple[int, object]) -> tuple[int, int, int]:
        index, phone = item
        number = getattr(phone, "number", "")
        misses = sum(1 for a in since if a.number == number and a.outcome in _MISSES)
        # A number that answered last comes first; others take turns, two misses at a time.
        return (0 if number == last_talk else 1, misses // 2, index)

    return [p for _, p in sorted(phones, key=rank)]


class _Person(NamedTuple):
    """One person's attempts (oldest first) and the minutes of day of their calls."""

    mine: list[PastAttempt]
    misses: tuple[int, ...]
    talks: tuple[int, ...]
    factors: tuple[float, ...]
    counted: Counted


class _Known:
    """What one plan works out from the facts once and reuses in each of its searches (calls,
    texts, a later stage): whether the debtor is unreachable, the order of the debtor's numbers,
    each person's attempts."""

    __slots__ = ("_people", "_phones", "_targets", "_unreachable", "facts", "hours", "limits",
                 "seed", "since")

    def __init__(self, facts: Facts, limits: Limits, since: datetime) -> None:
        self.facts = facts
        self.limits = limits
        self.since = since  # no search of the plan starts earlier
        self.hours = (limits.hours_start, limits.hours_end)
        self.seed = account_seed(facts.state.account_id)
        self._unreachable: bool | None = None
        self._phones: list[Phone] | None = None
        self._targets: dict[Medium, list[Target]] = {}
        self._people: dict[str, _Person] = {}

    def unreachable(self) -> bool:
        """`is_unreachable` of the facts."""
        if self._unreachable is None:
            self._unreachable = is_unreachable(self.facts, self.limits)
        return self._unreachable

    def debtor_targets(self, medium: Medium) -> list[Target]:
        """The debtor's numbers by `medium`, in the order to try them."""
        kept = self._targets.get(medium)
        if kept is None:
            if self._phones is None:
                self._phones = _debtor_phones(self.facts)
            kept = self._targets[medium] = [Target(_DEBTOR, "debtor", p.number, p.type, medium)
                                            for p in self._phones]
        return kept


    def person(self, person: str, zone: str) -> _Person:
        """The person's attempts, and their calls as minutes of the local day and factors."""
        kept = self._people.get(person)
        if kept is None:
            mine, misses, talks = _person_calls(self.facts.history, person, zone)
            kept = self._people[person] = _Person(mine, misses, talks,
                                                  personal_factors(misses, talks, self.hours),
                                                  counted_history(mine, self.since))
        return kept


@functools.lru_cache(maxsize=1 << 8)
def _budget(attempts_per_day: int, min_gap_minutes: int) -> Budget:
    """A stage's `Budget`: immutable, so one for each pair of values."""
    return Budget(attempts_per_day, min_gap_minutes)


def _third_party_targets(facts: Facts, limits: Limits) -> list[Target]:
    targets = [Target(Role.EMERGENCY, c.contact_id, c.number, None, Medium.CALL)
               for c in facts.state.contacts if c.role == "emergency"]
    if limits.guarantors is GuarantorRule.WHEN_UNREACHABLE:
        targets += [Target(Role.GUARANTOR, c.contact_id, c.number, None, Medium.CALL)
                    for c in facts.state.contacts if c.role == "guarantor"]
    return targets


def _lawful_anywhere(zones: tuple[str, ...], hours: tuple[time, time], today: date) -> bool:
    """Whether the allowed hours of every candidate zone overlap at all around `today`."""
    return _overlap(zones, hours, today.toordinal() // 7)


@functools.lru_cache(maxsize=1 << 12)
def _overlap(zones: tuple[str, ...], hours: tuple[time, time], week: int) -> bool:
    monday = date.fromordinal(week * 7 + 1)
    at = datetime.combine(monday, time(12), UTC)
    return bool(allowed_intervals(at, zones, Window(*hours), horizon_days=9))


class _Specs(tuple[WindowSpec, ...]):
    """Window specs that hash as fast as a number: they key the day-slot cache at every day
    searched, and a nested tuple is hashed afresh each time."""

    _hash: int

    def __new__(cls, specs: tuple[WindowSpec, ...]) -> _Specs:
        made = super().__new__(cls, specs)
        made._hash = tuple.__hash__(made)
        return made

    def __hash__(self) -> int:
        return self._hash


_SPECS: PerSchedule[tuple[tuple[str, ...], tuple[time, time]],
                    tuple[tuple[WindowSpec, ...], frozenset[int]]] = PerSchedule()


def _window_specs(stage: Stage, schedule: Schedule,
                  hours: tuple[time, time]) -> tuple[tuple[WindowSpec, ...], frozenset[int]]:
    """`window_specs` of the stage and their `scored_minutes`, kept per schedule."""
    kept = _SPECS.of(schedule)
    key = (tuple(stage.windows), hours)
    found = kept.get(key)
    if found is None:
        if len(kept) > 256:  # hours of many profiles
            kept.clear()
        specs = _Specs(window_specs(key[0], schedule.windows))
        found = kept[key] = (specs, scored_minutes(hours, specs))
    return found


_STAGES: PerSchedule[int, Stage | None] = PerSchedule()


def _stage_for(schedule: Schedule, days: int) -> Stage | None:
    """`schedule.stage_for(days)`, kept per schedule."""
    kept = _STAGES.of(schedule)
    if days in kept:
        return kept[days]
    if len(kept) > 4096:  # days past due only grow: the old ones are not asked again
        kept.clear()
    stage = kept[days] = schedule.stage_for(days)
    return stage


class _DaySlots(NamedTuple):
    """A day's slots (`day_slots`), split into the lattice's points and the rest."""

    every: tuple[Slot, ...]
    points: tuple[Slot, ...]
    rest: tuple[Slot, ...]
    earliest: datetime | None
    # The instants of `every` when they rise with it (they do unless clocks go back between
    # two windows' slots), else None.
    rising: tuple[datetime, ...] | None

    def first_from(self, moment: datetime) -> Slot | None:
        """The first of `every` at or after `moment`."""
        if self.rising is None:
            return next((s for s in self.every if s.at >= moment), None)
        index = bisect.bisect_left(self.rising, moment)
        return self.every[index] if index < len(self.every) else None


@functools.lru_cache(maxsize=1 << 14)
def _day_slots(day: date, zone: str, zones: tuple[str, ...], hours: tuple[time, time],
               specs: tuple[WindowSpec, ...], *, lattice: frozenset[int]) -> _DaySlots:
    every = day_slots(day, zone, zones, hours, specs)
    instants = tuple(s.at for s in every)
    rising = instants if all(a < b for a, b in itertools.pairwise(instants)) else None
    return _DaySlots(every, tuple(s for s in every if s.minute in lattice),
                     tuple(s for s in every if s.minute not in lattice),
                     min(instants, default=None), rising)


def _person_calls(history: Sequence[PastAttempt], person: str, zone: str) -> tuple[
        list[PastAttempt], tuple[int, ...], tuple[int, ...]]:
    """The person's attempts, and the minutes of the local day of their unanswered and answered
    calls, in one pass over the account's history."""
    mine, misses, talks = [], [], []
    # Unpacked, with the properties of PastAttempt (is_conversation, unanswered) spelt out: this
    # loop runs for every attempt of the account in every plan.
    for attempt in history:
        _, at, who, _, _, kind, _, _, outcome = attempt
        if who != person:
            continue
        mine.append(attempt)
        if kind is not _CALL:
            continue
        if outcome is _COMPLETED:
            talks.append(_minute_of_day(at, zone))
        elif outcome in UNANSWERED:
            misses.append(_minute_of_day(at, zone))
    return mine, tuple(sorted(misses)), tuple(sorted(talks))


@functools.lru_cache(maxsize=1 << 16)
def _minute_of_day(moment: datetime, zone: str) -> int:
    local = moment.astimezone(ZoneInfo(zone))
    return local.hour * 60 + local.minute


def _near(minutes: Sequence[int], minute: int) -> int:
    """How many of `minutes` (sorted) lie within an hour of `minute`: a run of them."""
    return (bisect.bisect_right(minutes, minute + REACH_MINUTES)
            - bisect.bisect_left(minutes, minute - REACH_MINUTES))


def _basis(model: AnswerModel, factors: Sequence[float], slot: Slot, weekday: int, *,
           misses: Sequence[int], talks: Sequence[int]) -> str:
    # `misses` and `talks` are sorted (`_person_calls`).
    if misses or talks:
        own = factors[cell_of(slot.minute)]
        mine = (f"this debtor x{own:.2f} ({_near(misses, slot.minute)} unanswered and "
                f"{_near(talks, slot.minute)} answered of {len(misses)} unanswered and "
                f"{len(talks)} answered calls within an hour)")
    else:
        mine = "this debtor: no calls yet"
    return f"population {model.basis(weekday, slot.minute // 60)}; {mine}"


# In `_best_first`'s heap, a slot's bound comes before its key when the two are equal.
_BOUND, _KEY = 0, 1


def _best_first(bounds: list[tuple[float, int, int, Slot]],
                key: Callable[[Slot], float]) -> Iterator[_Ranked]:
    """The slots of `bounds` ranked by `key` then minute, as `sorted` would rank them; `bounds`
    holds a key no greater than each slot's own, so that a slot's own key is worked out only
    when every slot that might rank before it has been taken (most searches take the first)."""
    heapq.heapify(bounds)
    while bounds:
        ranked, minute, kind, slot = bounds[0]
        if kind == _KEY:
            heapq.heappop(bounds)
            yield ranked, minute, slot
        else:
            heapq.heapreplace(bounds, (key(slot), minute, _KEY, slot))


def _rank(slots: Sequence[Slot], base: int, lattice: float, *, rates: Sequence[float],
          factors: Sequence[float], score: Callable[[int], float]) -> Iterator[_Ranked]:
    """Best first: the highest estimate (the rate of the hour of the week from `base` times the
    debtor's `score` of the minute), then the earliest; a lattice point (`lattice` is
    LATTICE_FIRST) before every other slot."""
    # The tie-break raises the debtor's factor by at most MOST_NUDGED times: that bounds each
    # slot's key from below until its own score is worked out.
    return _best_first(
        [(-rates[base + s.minute // 60] * (factors[cell_of(s.minute)] * MOST_NUDGED)
          - lattice, s.minute, _BOUND, s) for s in slots],
        lambda s: -rates[base + s.minute // 60] * score(s.minute) - lattice)


def _later(ranking: Callable[[], Iterator[_Ranked]]) -> Iterator[_Ranked]:
    """`ranking()`, ranked only when the first of it is asked for."""
    yield from ranking()


def _lasting(found: Sequence[Refusal]) -> list[datetime]:
    """The retry times of the rules that hold until then: hours refuse one time of day only."""
    return [r.retry_at for r in found if r.retry_at and r.reason != QUIET_HOURS]


def _furthest(last: Refusal | None, found: Sequence[Refusal]) -> Refusal:
    """Of the refusals met so far, the one that holds the longest: what to say when no slot is
    found within the horizon (a turn on a shared number weeks away, not the last holiday)."""
    latest = max(found, key=lambda r: r.retry_at or datetime.max.replace(tzinfo=UTC))
    if last is None or (latest.retry_at or datetime.max.replace(tzinfo=UTC)) >= (
            last.retry_at or datetime.max.replace(tzinfo=UTC)):
        return latest
    return last


def _open_slots(slots: _DaySlots, not_before: datetime, soon: Slot | None,
                lattice: frozenset[int]) -> tuple[Sequence[Slot], Sequence[Slot]]:
    """The day's slots from `not_before` on, and `soon`: the lattice's points and the rest."""
    points: Sequence[Slot] = slots.points
    rest: Sequence[Slot] = slots.rest
    if slots.earliest is not None and slots.earliest < not_before:
        points = [s for s in points if s.at >= not_before]
        rest = [s for s in rest if s.at >= not_before]
    if soon is not None:
        if soon.minute in lattice:
            points = [*points, soon]
        else:
            rest = [*rest, soon]
    return points, rest


def _find_slot(target: Target, stage: Stage, schedule: Schedule, *, known: _Known,
               now: datetime, model: AnswerModel) -> Slotted | Refusal:
    facts, limits, hours = known.facts, known.limits, known.hours
    zone = facts.home_zone
    assert zone is not None
    zones = zones_for(target, facts)
    today = local_day(now, zone)
    if not _lawful_anywhere(zones, hours, today):
        return Refusal(AMBIGUOUS, f"the allowed hours {limits.hours_start:%H:%M}-"
                                  f"{limits.hours_end:%H:%M} of the candidate zones "
                                  f"{list(zones)} never overlap")
    budget = _budget(stage.attempts_per_day, stage.min_gap_minutes)
    mine, misses, talks, factors, history = known.person(target.person, zone)
    seed = known.seed
    specs, scored = _window_specs(stage, schedule, hours)
    # Until a conversation says when this debtor answers, the points of the account's two-hour
    # lattice come first.
    first_points = frozenset() if talks else lattice_points(seed, hours)
    # The debtor's own score of a minute of the day is the same on every day searched.
    scores: dict[int, float] = {}

    def score(minute: int) -> float:
        kept = scores.get(minute)
        if kept is None:
            kept = scores[minute] = (personal_score(minute, factors, seed, misses)
                                     if minute in scored else factors[cell_of(minute)])
        return kept

    rank = functools.partial(_rank, rates=model.rates, factors=factors, score=score)

    not_before = now
    last: Refusal | None = None
    tried_today = bool(mine) and local_day(mine[-1].at, zone) == today
    for offset in range(HORIZON_DAYS):
        day = today + _DAYS[offset]
        end_of_day = local_midnight(today + _DAYS[offset + 1], zone)
        if end_of_day <= not_before:
            continue  # a whole day the rules already ruled out
        weekday = day.weekday()
        hour_base = hour_of_week(weekday, 0)
        slots = _day_slots(day, zone, zones, hours, specs, lattice=first_points)
        if offset == 0 and tried_today:
            # Tried today already: a rule that rules out the rest of the day (the day's count)
            # is found at the first open slot, before the day's slots are ranked.
            first = slots.first_from(not_before)
            found = [] if first is None else time_refusals(target, facts, limits, budget,
                                                           first.at, history=history)
            lasting = _lasting(found)
            if lasting and max(lasting) >= end_of_day:
                last = _furthest(last, found)
                not_before = max(not_before, *lasting)
                continue
        soon = slot_now(not_before, zone, zones, hours, specs) if offset == 0 else None
        points, rest = _open_slots(slots, not_before, soon, first_points)
        # The lattice's points are ranked, and tried, before the rest is ranked at all: most
        # plans end at one of them. (A slot from `slot_now` may lie between the scored minutes.)
        ranked = itertools.chain(rank(points, hour_base, LATTICE_FIRST),
                                 _later(functools.partial(rank, rest, hour_base, 0.0)))
        for *_, slot in ranked:
            if slot.at < not_before:
                continue
            found = time_refusals(target, facts, limits, budget, slot.at, history=history)
            if not found:
                chance = round(model.rates[hour_base + slot.minute // 60]
                               * factors[cell_of(slot.minute)], 4)
                return Slotted(slot.at, slot.window, chance,
                               _basis(model, factors, slot, weekday,
                                      misses=misses, talks=talks))
            last = _furthest(last, found)
            if any(r.retry_at is None for r in found):
                return found[0]
            lasting = _lasting(found)
            if lasting:
                not_before = max(not_before, *lasting)
                if not_before >= end_of_day and (soon is None or soon.at < not_before):
                    break  # every slot left of the day lies before it: none is ranked
    return last or Refusal(NO_STAGE, f"stage {stage.name!r} has no window in the next "
                                     f"{HORIZON_DAYS} days")


def plan_next(facts: Facts, schedule: Schedule, limits: Limits, now: datetime,
              model: AnswerModel | None = None) -> Plan:
    """The next lawful attempt for the account at or after `now`, or why there is none; slots
    are ranked by `model`'s answer rates (the prior when there is none)."""
    model = model or AnswerModel.prior()
    blocked = account_refusals(facts, limits, now)
    if blocked:
        retries = [r.retry_at for r in blocked]
        retry = None if any(r is None for r in retries) else max(r for r in retries if r)
        return NoAttempt(tuple(blocked), retry)
    zone = facts.home_zone
    if not facts.zones or zone is None:
        return NoAttempt((Refusal(AMBIGUOUS, "no time zone, region or geographic number tells "
                                             "the debtor's local time"),))
    days = days_past_due(facts.state, now, zone)
    stage = _stage_for(schedule, days) if days is not None else None
    if stage is None or days is None:
        return NoAttempt((Refusal(NO_STAGE, f"no stage of schedule {schedule.name!r} covers "
                                            f"{days} days past due"),))
    known = _Known(facts, limits, now)
    plan = _plan_in_stage(known, schedule, stage, now=now, model=model)
    high = stage.days_past_due[1]
    if isinstance(plan, PlannedAttempt) and high is not None:
        # The slot may fall in a later stage: plan from that stage's first day with its rules.
        boundary = local_day(now, zone) + timedelta(days=high + 1 - days)
        if local_day(plan.at, zone) >= boundary:
            later = _stage_for(schedule, high + 1)
            start = datetime.combine(boundary, time(0), ZoneInfo(zone)).astimezone(now.tzinfo)
            if later is None:
                return NoAttempt((Refusal(NO_STAGE, f"no stage of schedule {schedule.name!r} "
                                                    f"covers {high + 1} days past due"),))
            return _plan_in_stage(known, schedule, later, now=max(now, start), model=model)
    return plan


def _plan_in_stage(known: _Known, schedule: Schedule, stage: Stage, *, now: datetime,
                   model: AnswerModel) -> Plan:
    facts, limits = known.facts, known.limits
    owed = text_owed(stage, facts.history)
    reasons: list[Refusal] = []
    if owed and Medium.CALL in stage.channels:
        # A text owed on a day that has room for a call and a text follows that day's call, so
        # it never takes the call's best time.
        call = _first_slot(_candidates(known, stage, owed=False), known, stage, schedule,
                           now=now, model=model, reasons=[])
        if (call is not None and call.target.medium is Medium.CALL
                and _room_for_two(facts, stage, limits, _day(call, facts))):
            if _day(call, facts) == local_day(now, facts.home_zone):
                return call  # nothing can come before a call today
            text = _first_slot(_candidates(known, stage, owed=True), known, stage, schedule,
                               now=now, model=model, reasons=reasons)
            return call if text is None or _day(call, facts) <= _day(text, facts) else text
    found = _first_slot(_candidates(known, stage, owed=owed), known, stage, schedule, now=now,
                        model=model, reasons=reasons)
    if found is not None:
        return found
    if not reasons:
        reasons.append(Refusal(NO_VALID_NUMBER, "the debtor has no phone number"))
    unique = tuple({(r.reason, r.detail): r for r in reasons}.values())
    retries = [r.retry_at for r in unique if r.retry_at is not None]
    return NoAttempt(unique, min(retries) if retries else None)


def _candidates(known: _Known, stage: Stage, *, owed: bool) -> Iterator[tuple[Target, str, str]]:
    """Whom to try, in order: third parties when the debtor is unreachable, then the debtor's
    numbers by the medium the pattern calls for next, then by the others (each worked out only
    when the ones before it are refused)."""
    # Whether the debtor is unreachable matters only when there is a third party to call.
    third_parties = _third_party_targets(known.facts, known.limits)
    if third_parties and known.unreachable():
        for target in third_parties:
            yield target, THIRD_PARTY_TEMPLATE, f"unreachable:{target.role.value}"
    for medium in _mediums(stage, owed):
        template = stage.sms_template if medium is Medium.SMS else stage.call_template
        for target in known.debtor_targets(medium):
            yield target, template, ""


def _first_slot(candidates: Iterable[tuple[Target, str, str]], known: _Known, stage: Stage,
                schedule: Schedule, *, now: datetime, model: AnswerModel,
                reasons: list[Refusal]) -> PlannedAttempt | None:
    """The first candidate's slot; the reasons of every candidate refused go into `reasons`."""
    for target, template, why in candidates:
        refused = target_refusals(target, known.facts, known.limits)
        if refused:
            reasons.extend(refused)
            continue
        slot = _find_slot(target, stage, schedule, known=known, now=now, model=model)
        if isinstance(slot, Refusal):
            reasons.append(slot)
            continue
        rule = ":".join(p for p in (schedule.name, stage.name, slot.window, why) if p)
        return PlannedAttempt(slot.at.astimezone(now.tzinfo), target, stage.name, slot.window,
                              rule, template, slot.estimate, slot.basis)
    return None
