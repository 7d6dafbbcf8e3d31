"""The planner: from an account's state, its attempts so far and the schedule, the next attempt.

Pure: `plan_next(facts, schedule, limits, now)` answers with the next lawful attempt (when, whom,
which number and medium, which stage, window and rule) or every reason there is none. It asks
the compliance gate at each candidate slot, so whatever it plans the gate allows at that instant.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from dispatcher.compliance.gate import (
    NO_VALID_NUMBER,
    Budget,
    Facts,
    Refusal,
    account_refusals,
    is_unreachable,
    local_day,
    local_midnight,
    target_refusals,
    time_refusals,
)
from dispatcher.compliance.policy import GuarantorRule, Limits
from dispatcher.compliance.quiet_hours import AMBIGUOUS, QUIET_HOURS
from dispatcher.domain.accounts import AccountState
from dispatcher.domain.contact import Medium, Outcome, PastAttempt, Role, Target
from schedules.model import THIRD_PARTY_TEMPLATE, Schedule, Stage, TimeWindow

HORIZON_DAYS = 21
# Outcomes after which a number gives way to the debtor's others: nobody talked, or the line
# did not connect (disconnected, switched off) or the text did not arrive.
_MISSES = frozenset({Outcome.NO_ANSWER, Outcome.MACHINE, Outcome.BUSY, Outcome.FAILED,
                     Outcome.UNDELIVERED})
NO_STAGE = "no_stage"


@dataclass(frozen=True)
class PlannedAttempt:
    """The next attempt: when, to whom, and the rule that chose it."""

    at: datetime
    target: Target
    stage: str
    window: str
    rule: str
    template: str


@dataclass(frozen=True)
class NoAttempt:
    """No attempt can be planned: every reason, and when planning again could help."""

    reasons: tuple[Refusal, ...]
    retry_at: datetime | None = None


Plan = PlannedAttempt | NoAttempt


def days_past_due(state: AccountState, now: datetime, zone: str | None) -> int | None:
    """Days past due today: the last reported figure plus the local days since it was reported."""
    if state.days_past_due is None or state.days_past_due_as_of is None:
        return None
    elapsed = (local_day(now, zone) - local_day(state.days_past_due_as_of, zone)).days
    return state.days_past_due + max(elapsed, 0)


def van_der_corput(n: int) -> float:
    """0.5, 0.25, 0.75, 0.125, ...: each new try lands between the earlier ones."""
    value, denominator = 0.0, 1
    n += 1
    while n:
        denominator *= 2
        n, bit = divmod(n, 2)
        value += bit / denominator
    return value


def slot_time(window: TimeWindow, tries: int) -> time:
    """The local time of the `tries`-th attempt in `window` (0 = its middle)."""
    return _slot_time(window.start, window.minutes, tries)


@functools.lru_cache(maxsize=4096)
def _slot_time(window_start: time, minutes: int, tries: int) -> time:
    start = window_start.hour * 60 + window_start.minute
    offset = min(int(van_der_corput(tries) * minutes), minutes - 1)
    minute = start + offset
    return time(minute // 60, minute % 60)


def _mediums(stage: Stage, history: Sequence[PastAttempt]) -> list[Medium]:
    done = sum(1 for a in history if a.role is Role.DEBTOR and a.stage == stage.name)
    first = stage.channels[done % len(stage.channels)]
    return [first, *dict.fromkeys(m for m in stage.channels if m is not first)]


def _debtor_targets(facts: Facts, medium: Medium) -> list[Target]:
    debtor = facts.state.debtor
    if debtor is None:
        return []
    type_rank = {"mobile": 0, "home": 1, "work": 2}
    phones = sorted(enumerate(debtor.phones), key=lambda ip: (type_rank[ip[1].type], ip[0]))
    history = [a for a in facts.history if a.role is Role.DEBTOR]
    answered = [a.number for a in history if a.is_conversation]

    def rank(item: tuple[int, object]) -> tuple[int, int, int]:
        index, phone = item
        number = getattr(phone, "number", "")
        last_talk = answered[-1] if answered else None
        since = history
        if last_talk is not None:
            last = max(i for i, a in enumerate(history) if a.is_conversation)
            since = history[last + 1:]
        misses = sum(1 for a in since if a.number == number and a.outcome in _MISSES)
        # A number that answered last comes first; others take turns, two misses at a time.
        return (0 if number == last_talk else 1, misses // 2, index)

    ordered = sorted(phones, key=rank)
    return [Target(Role.DEBTOR, "debtor", p.number, p.type, medium) for _, p in ordered]


def _third_party_targets(facts: Facts, limits: Limits) -> list[Target]:
    targets = [Target(Role.EMERGENCY, c.contact_id, c.number, None, Medium.CALL)
               for c in facts.state.contacts if c.role == "emergency"]
    if limits.guarantors is GuarantorRule.WHEN_UNREACHABLE:
        targets += [Target(Role.GUARANTOR, c.contact_id, c.number, None, Medium.CALL)
                    for c in facts.state.contacts if c.role == "guarantor"]
    return targets


def _ranked_windows(stage: Stage, target: Target,
                    history: Sequence[PastAttempt], now: datetime) -> list[str]:
    mine = [a for a in history if a.person == target.person]
    talked = [a.window for a in mine if a.is_conversation and a.window in stage.windows]
    same = [a for a in mine if a.medium is target.medium and a.at >= now - timedelta(days=7)]

    def key(item: tuple[int, str]) -> tuple[int, int, datetime, int]:
        index, name = item
        used = [a.at for a in same if a.window == name]
        preferred = 0 if talked and talked[-1] == name else 1
        return (preferred, len(used), max(used) if used else datetime.min.replace(
            tzinfo=now.tzinfo), index)

    return [name for _, name in sorted(enumerate(stage.windows), key=key)]


def _find_slot(target: Target, stage: Stage, schedule: Schedule, *, facts: Facts,
               limits: Limits, now: datetime) -> tuple[datetime, str] | Refusal:
    zone = facts.home_zone
    assert zone is not None
    budget = Budget(stage.attempts_per_day, stage.min_gap_minutes)
    ranked = _ranked_windows(stage, target, facts.history, now)
    mine = [a for a in facts.history if a.person == target.person]
    tries = {name: sum(1 for a in mine if a.window == name) for name in ranked}
    today = local_day(now, zone)
    not_before = now
    last: Refusal | None = None
    for offset in range(HORIZON_DAYS):
        day = today + timedelta(days=offset)
        if local_midnight(day + timedelta(days=1), zone) <= not_before:
            continue  # a whole day the rules already ruled out
        for name in ranked:
            window = schedule.windows[name]
            if day.weekday() not in window.days:
                continue
            at = datetime.combine(day, slot_time(window, tries[name]), ZoneInfo(zone))
            at = at.astimezone(now.tzinfo)
            if at < not_before:
                continue
            found = time_refusals(target, facts, limits, budget, at, mine=mine)
            if not found:
                return at, name
            last = found[0]
            if any(r.retry_at is None for r in found):
                return found[0]
            # Hours refuse one time of day, not the earlier slots of this day that a
            # lower-ranked window may offer; every other rule holds until its retry time.
            lasting = [r.retry_at for r in found if r.retry_at and r.reason != QUIET_HOURS]
            if lasting:
                not_before = max(not_before, *lasting)
    return last or Refusal(NO_STAGE, f"stage {stage.name!r} has no window in the next "
                                     f"{HORIZON_DAYS} days")


def plan_next(facts: Facts, schedule: Schedule, limits: Limits, now: datetime) -> Plan:
    """The next lawful attempt for the account at or after `now`, or why there is none."""
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
    stage = schedule.stage_for(days) if days is not None else None
    if stage is None or days is None:
        return NoAttempt((Refusal(NO_STAGE, f"no stage of schedule {schedule.name!r} covers "
                                            f"{days} days past due"),))
    plan = _plan_in_stage(facts, schedule, stage, limits, now)
    high = stage.days_past_due[1]
    if isinstance(plan, PlannedAttempt) and high is not None:
        # The slot may fall in a later stage: plan from that stage's first day with its rules.
        boundary = local_day(now, zone) + timedelta(days=high + 1 - days)
        if local_day(plan.at, zone) >= boundary:
            later = schedule.stage_for(high + 1)
            start = datetime.combine(boundary, time(0), ZoneInfo(zone)).astimezone(now.tzinfo)
            if later is None:
                return NoAttempt((Refusal(NO_STAGE, f"no stage of schedule {schedule.name!r} "
                                                    f"covers {high + 1} days past due"),))
            return _plan_in_stage(facts, schedule, later, limits, max(now, start))
    return plan


def _plan_in_stage(facts: Facts, schedule: Schedule, stage: Stage, limits: Limits,
                   now: datetime) -> Plan:
    candidates: list[tuple[Target, str, str]] = []
    if is_unreachable(facts, limits):
        candidates += [(t, THIRD_PARTY_TEMPLATE, f"unreachable:{t.role.value}")
                       for t in _third_party_targets(facts, limits)]
    for medium in _mediums(stage, facts.history):
        template = stage.sms_template if medium is Medium.SMS else stage.call_template
        candidates += [(t, template, "") for t in _debtor_targets(facts, medium)]
    reasons: list[Refusal] = []
    for target, template, why in candidates:
        refused = target_refusals(target, facts, limits)
        if refused:
            reasons.extend(refused)
            continue
        slot = _find_slot(target, stage, schedule, facts=facts, limits=limits, now=now)
        if isinstance(slot, Refusal):
            reasons.append(slot)
            continue
        at, window = slot
        rule = ":".join(p for p in (schedule.name, stage.name, window, why) if p)
        return PlannedAttempt(at, target, stage.name, window, rule, template)
    if not reasons:
        reasons.append(Refusal(NO_VALID_NUMBER, "the debtor has no phone number"))
    unique = tuple({(r.reason, r.detail): r for r in reasons}.values())
    retries = [r.retry_at for r in unique if r.retry_at is not None]
    return NoAttempt(unique, min(retries) if retries else None)
