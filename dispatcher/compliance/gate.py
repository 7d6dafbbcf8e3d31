"""The compliance gate: every contact rule as pure functions of one attempt and `now`.

`refusals()` lists every rule that forbids an attempt at an instant, each with its reason code
(docs/compliance.md lists them) and, where waiting helps, the earliest instant that rule could
allow it. The planner searches for a slot no rule refuses; the engine asks again at the moment
of sending.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import NamedTuple
from zoneinfo import ZoneInfo

from dispatcher.compliance.holiday_calendar import holiday_on
from dispatcher.compliance.policy import GuarantorRule, Limits
from dispatcher.compliance.quiet_hours import AMBIGUOUS, QUIET_HOURS, Window, check_hours
from dispatcher.domain.accounts import AccountState, AccountStatus
from dispatcher.domain.contact import (
    NOT_CONNECTED,
    Medium,
    NumberClaim,
    Outcome,
    PastAttempt,
    Role,
    Target,
)
from dispatcher.domain.events import Phone
from dispatcher.domain.phones import mask_number
from dispatcher.domain.zones import number_zones_for

RESOLVED = "resolved"
NOT_OVERDUE = "not_overdue"
PROMISE_PENDING = "promise_pending"
OPTED_OUT = "opted_out"
REVOCATION_REVIEW = "revocation_review"
NO_CONSENT = "no_consent"
WORK_NUMBER = "work_number"
NO_VALID_NUMBER = "no_valid_number"
THIRD_PARTY_LIMIT = "third_party_limit"
HOLIDAY = "holiday"
NO_CONTACT_DAY = "no_contact_day"
POST_CONVERSATION = "post_conversation"
CALL_CAP_7D = "call_cap_7d"
SMS_CAP_7D = "sms_cap_7d"
CONTACT_CAP_7D = "contact_cap_7d"
CONVERSATION_CAP = "conversation_cap"
DAILY_CAP = "daily_cap"
MIN_GAP = "min_gap"
NUMBER_DAILY_CAP = "number_daily_cap"
NUMBER_MIN_GAP = "number_min_gap"
NUMBER_TURN = "number_turn"
WEEK = timedelta(days=7)
_ONE_DAY = timedelta(days=1)
_SIX_DAYS = timedelta(days=6)
# Two instants this far apart are never on one local calendar day: UTC offsets lie strictly
# within a day of zero, so a local day spans less than three days of UTC.
NEVER_SAME_DAY = timedelta(days=3)
# An attempt this long before an instant is neither within the 7 days ending then (the 7 local
# days ending today start less than 7 days and 32 hours before it: UTC offsets, local mean time
# included, lie within 16 hours of zero) nor on its local day.
_NEVER_COUNTED = timedelta(days=9)
# Members bound once for the loops over an account's history: looked up on their enum class
# they cost a metaclass call each time.
_DEBTOR = Role.DEBTOR
_SMS = Medium.SMS
_CALL = Medium.CALL
_COMPLETED = Outcome.COMPLETED
_GUARANTOR = Role.GUARANTOR
_OPEN = AccountStatus.OPEN
_RESOLVED = AccountStatus.RESOLVED


class Refusal(NamedTuple):
    """One rule that forbids the attempt: its reason code, why, and when it could allow it."""

    # A named tuple, not a frozen dataclass (which costs three times as much to build):
    # the gate makes one for every rule that refuses a slot tried.

    reason: str
    detail: str
    retry_at: datetime | None = None


@dataclass(frozen=True)
class Facts:
    """What the store knows about an account at decision time."""

    state: AccountState
    zones: tuple[str, ...]  # every candidate zone of the debtor
    home_zone: str | None  # the zone whose calendar days and windows count
    holiday_region: str | None
    opted_out: frozenset[tuple[str, Medium]] = frozenset()
    invalid_numbers: frozenset[str] = frozenset()
    history: tuple[PastAttempt, ...] = ()  # oldest first
    refused_contacts: frozenset[str] = field(default_factory=frozenset)
    # Paused until a person reviews a reply from the number that might be a revocation.
    under_review: frozenset[tuple[str, Medium]] = frozenset()
    # Other accounts on this account's numbers: their recent attempts (oldest first) and their
    # planned ones. One number is one person, whichever accounts list it.
    number_history: tuple[PastAttempt, ...] = ()
    number_claims: tuple[NumberClaim, ...] = ()
    # The account's own last attempt on each number another account uses, however long ago:
    # whose turn it is.
    number_last_used: Mapping[str, datetime] = field(default_factory=dict)


@dataclass(frozen=True)
class Budget:
    """The stage's own per-day count and gap, never looser than the profile's."""

    attempts_per_day: int
    min_gap_minutes: int


@functools.lru_cache(maxsize=1 << 16)
def local_day(moment: datetime, zone: str | None) -> date:
    """The calendar day at `moment` in `zone` (UTC when the zone is unknown)."""
    return moment.astimezone(ZoneInfo(zone) if zone else UTC).date()


@functools.lru_cache(maxsize=1 << 14)
def local_midnight(day: date, zone: str | None) -> datetime:
    """00:00 of `day` in `zone`, as UTC."""
    return datetime.combine(day, time(0), ZoneInfo(zone) if zone else UTC).astimezone(UTC)


@functools.lru_cache(maxsize=1 << 14)
def _day_context(now: datetime, zone: str | None) -> tuple[date, datetime, datetime]:
    """Today in `zone` at `now`, the next local midnight, and the first midnight of the 7
    calendar days ending today (see `_in_week`): asked for every slot the planner tries."""
    today = local_day(now, zone)
    return (today, local_midnight(today + _ONE_DAY, zone),
            local_midnight(today - _SIX_DAYS, zone))


def account_refusals(facts: Facts, limits: Limits, now: datetime) -> list[Refusal]:
    """Rules about the account as a whole: resolved, holds, a pending promise."""
    state = facts.state
    if state.status is _RESOLVED:
        return [Refusal(RESOLVED, f"resolved ({state.resolved_reason})")]
    if state.status is not _OPEN:
        return [Refusal(NOT_OVERDUE, "no account.overdue event yet")]
    if not state.holds and state.promise is None:
        return []
    found = []
    today = local_day(now, facts.home_zone)
    for hold in state.holds:
        if hold.until is None or today < hold.until:
            retry = local_midnight(hold.until, facts.home_zone) if hold.until else None
            until = f" until {hold.until}" if hold.until else ""
            found.append(Refusal(f"hold:{hold.reason.value}", f"hold {hold.reason.value}{until}",
                                 retry))
    if state.promise is not None:
        resumes = state.promise.due_on + timedelta(days=limits.promise_grace_days)
        if today < resumes:
            found.append(Refusal(PROMISE_PENDING, f"promise to pay by {state.promise.due_on}; "
                                                  f"contact resumes {resumes}",
                                 local_midnight(resumes, facts.home_zone)))
    return found


def target_refusals(target: Target, facts: Facts, limits: Limits) -> list[Refusal]:
    """Rules about whom and how, whatever the time: opt-outs, consent, work numbers, 3rd parties."""
    found = []
    if target.number in facts.invalid_numbers:
        found.append(Refusal(NO_VALID_NUMBER, "number marked invalid"))
    # Both sets are mostly empty: then the (number, medium) key need not be built and hashed.
    if facts.opted_out and (target.number, target.medium) in facts.opted_out:
        found.append(Refusal(OPTED_OUT, f"opted out of {target.medium.value}"))
    if facts.under_review and (target.number, target.medium) in facts.under_review:
        found.append(Refusal(REVOCATION_REVIEW, "a reply from this number might revoke consent: "
                                                "paused until a person decides"))
    if target.role is _DEBTOR:
        phone = _debtor_phone(facts.state, target.number)
        if phone is None:
            found.append(Refusal(NO_VALID_NUMBER, "not one of the debtor's numbers"))
        else:
            consent = phone.sms_consent if target.medium is _SMS else phone.call_consent
            if not consent:
                found.append(Refusal(NO_CONSENT, f"no {target.medium.value} consent"))
            if phone.type == "work" and not limits.call_work_numbers:
                found.append(Refusal(WORK_NUMBER, "work number"))
    else:
        found.extend(_third_party_refusals(target, facts, limits))
    return found


def _third_party_refusals(target: Target, facts: Facts, limits: Limits) -> list[Refusal]:
    if target.medium is not Medium.CALL:
        return [Refusal(THIRD_PARTY_LIMIT, "third parties get calls only: no SMS, no voicemail")]
    if target.role is Role.GUARANTOR and limits.guarantors is GuarantorRule.NEVER:
        return [Refusal(THIRD_PARTY_LIMIT, "the profile allows no calls to guarantors")]
    if not is_unreachable(facts, limits):
        return [Refusal(THIRD_PARTY_LIMIT, "the debtor is not unreachable as the profile "
                                           "defines it: third parties only restore contact")]
    if target.person in facts.refused_contacts:
        return [Refusal(THIRD_PARTY_LIMIT, "the contact asked not to be called")]
    calls = [a for a in facts.history if a.person == target.person and a.counts_as_call]
    if target.role is Role.EMERGENCY and len(calls) >= limits.third_party_calls_per_contact:
        return [Refusal(THIRD_PARTY_LIMIT, f"{len(calls)} of "
                                           f"{limits.third_party_calls_per_contact} calls made")]
    return []


def is_unreachable(facts: Facts, limits: Limits) -> bool:
    """The profile's test for a debtor whose location is unknown: only then may a third party be
    called, for location information (15 USC 1692b, Reg F 1006.10)."""
    debtor = facts.state.debtor
    if debtor is None or not debtor.phones:
        return False
    invalid = facts.invalid_numbers
    if invalid and all(p.number in invalid for p in debtor.phones):
        return True
    # The debtor's unanswered calls since their last conversation, newest first.
    unanswered = []
    for attempt in reversed(facts.history):
        if attempt.role is not _DEBTOR:
            continue
        if attempt.is_conversation:
            break
        if attempt.unanswered:
            unanswered.append(attempt)
    if len(unanswered) < limits.unreachable_after_attempts:
        return False
    span = unanswered[0].at - unanswered[-1].at
    windows = {a.window for a in unanswered if a.window}
    return (span >= timedelta(days=limits.unreachable_after_days - 1)
            and len(windows) >= limits.unreachable_distinct_windows)


def _debtor_phone(state: AccountState, number: str) -> Phone | None:
    debtor = state.debtor
    if debtor is None:
        return None
    for phone in debtor.phones:
        if phone.number == number:
            return phone
    return None


class Counted(NamedTuple):
    """A person's history ready for `time_refusals` at instants from `since` on."""

    since: datetime
    # The attempts that can count at such an instant (oldest first): the others lie before
    # its 7 days and its local day.
    recent: list[PastAttempt]
    # The last conversation and the last attempt on each number, of the whole history.
    last_conversation: PastAttempt | None
    last_on: dict[str, PastAttempt]


def counted_history(mine: Iterable[PastAttempt], since: datetime) -> Counted:
    """The person's history `mine` (oldest first) for asking `time_refusals` at many instants
    from `since` on: each then counts only the attempts that can still count."""
    cut = since - _NEVER_COUNTED
    recent = []
    last_conversation = None
    last_on = {}
    for attempt in mine:
        _, at, _, _, number, kind, _, _, outcome = attempt
        if at >= cut:
            recent.append(attempt)
        if kind is _CALL and outcome is _COMPLETED:
            last_conversation = attempt
        last_on[number] = attempt
    return Counted(since, recent, last_conversation, last_on)


def time_refusals(target: Target, facts: Facts, limits: Limits, budget: Budget,
                  now: datetime, *, mine: list[PastAttempt] | None = None,
                  history: Counted | None = None) -> list[Refusal]:
    """Rules about when: hours in every zone, holidays, cool-down, caps, daily count, gap.

    `mine` is the target person's own history, when the caller already has it; `history` is it
    `counted_history` from an instant no later than `now`, when the caller asks at many instants.
    """
    found = []
    zones = facts.zones if target.role is _DEBTOR else zones_for(target, facts)
    # Most slots lie inside the hours: only a refusal needs `_hours_refusal`'s full answer.
    if not (zones and _inside_hours(now, zones, limits.hours_start, limits.hours_end)):
        hours = _hours_refusal(zones, limits, now)
        if hours is not None:
            found.append(hours)
    debtor = facts.state.debtor
    if debtor is not None and debtor.avoid_hours:
        avoid = _avoid_refusal(facts, now)
        if avoid is not None:
            found.append(avoid)
    zone = facts.home_zone
    today, tomorrow, week_start = _day_context(now, zone)
    if not limits.contact_on_holidays and (name := holiday_on(today, facts.holiday_region)):
        found.append(Refusal(HOLIDAY, f"{today} is {name} in {facts.holiday_region}", tomorrow))
    if not limits.contact_on_sundays and today.weekday() == 6:
        found.append(Refusal(NO_CONTACT_DAY, "no contact on Sundays", tomorrow))
    if history is not None and now >= history.since:
        mine = history.recent
        counts = _count(mine, target, zone, now, today=today, week_start=week_start)
        counts = (*counts[:6], history.last_conversation, history.last_on.get(target.number))
    else:
        if mine is None:
            mine = [a for a in facts.history if a.person == target.person]
        counts = _count(mine, target, zone, now, today=today, week_start=week_start)
    _frequency_refusals(found, target, mine, counts, zone, limits=limits, budget=budget,
                        now=now, day=(today, tomorrow))
    if facts.number_history or facts.number_claims or limits.number_daily_cap < _per_day(
            limits, budget):
        found.extend(number_refusals(target, facts, limits, budget, now))
    return found


def _per_day(limits: Limits, budget: Budget) -> int:
    """The person's attempts per local day: the profile's, or the stage's when lower."""
    profile, stage = limits.attempts_per_day, budget.attempts_per_day
    return stage if stage < profile else profile


def _hours_refusal(zones: tuple[str, ...], limits: Limits, now: datetime) -> Refusal | None:
    if zones and _inside_hours(now, zones, limits.hours_start, limits.hours_end):
        return None
    decision = check_hours(now, zones, Window(limits.hours_start, limits.hours_end))
    if decision.allowed:
        return None
    if decision.reason == AMBIGUOUS:
        return Refusal(AMBIGUOUS, "the allowed hours of the candidate zones "
                                  f"{list(zones)} never overlap")
    local = ", ".join(f"{z} {t[11:16]}" for z, t in decision.local_times.items())
    return Refusal(QUIET_HOURS, f"outside {limits.hours_start:%H:%M}-{limits.hours_end:%H:%M} "
                                f"({local})", decision.next_allowed)


@functools.lru_cache(maxsize=1 << 14)
def _inside_hours(now: datetime, zones: tuple[str, ...], start: time, end: time) -> bool:
    """Whether `now` lies inside start-end in every zone (slots are shared by many accounts)."""
    return all(start <= now.astimezone(ZoneInfo(z)).time() < end for z in zones)


def zones_for(target: Target, facts: Facts) -> tuple[str, ...]:
    """The zones whose hours an attempt must respect: the debtor's candidates and, for a third
    party, who may live elsewhere, their own number's zones too."""
    if target.role is _DEBTOR:
        return facts.zones
    return tuple(dict.fromkeys((*facts.zones, *number_zones_for(target.number))))


def _avoid_refusal(facts: Facts, now: datetime) -> Refusal | None:
    """Hours the consumer said are inconvenient, in their home zone, honoured like quiet hours."""
    debtor = facts.state.debtor
    if debtor is None or not debtor.avoid_hours or facts.home_zone is None:
        return None
    zone = ZoneInfo(facts.home_zone)
    local = now.astimezone(zone)
    clock = local.strftime("%H:%M")
    for span in debtor.avoid_hours:
        crosses = span.start > span.end
        inside = (span.start <= clock < span.end if not crosses
                  else clock >= span.start or clock < span.end)
        if inside:
            end_day = local.date() + timedelta(days=1 if crosses and clock >= span.start else 0)
            end = datetime.combine(end_day, time.fromisoformat(span.end), zone)
            return Refusal(QUIET_HOURS, f"{span.start}-{span.end} local: hours the consumer "
                                        f"asked to avoid", end.astimezone(UTC))
    return None


def _in_week(attempts: Iterable[PastAttempt], now: datetime,
             zone: str | None) -> list[PastAttempt]:
    """Attempts within the 7 consecutive days ending now: the 7 local calendar days ending today,
    or the last 7x24 h, whichever holds more (DST weeks are 167 or 169 hours)."""
    calendar = _day_context(now, zone)[2]
    rolling = now - WEEK
    return [a for a in attempts if a.at >= calendar or a.at > rolling]


def _released(counted: list[PastAttempt], cap: int, zone: str | None) -> datetime:
    """The first instant at which enough of `counted` (oldest first) have left the 7-day window
    (by calendar and by hours, see `_in_week`) for one more attempt."""
    oldest_to_drop = counted[len(counted) - cap]
    by_calendar = local_midnight(local_day(oldest_to_drop.at, zone) + WEEK, zone)
    return max(by_calendar, oldest_to_drop.at + WEEK)


# What the frequency rules count in one pass over the person's history (oldest first): the
# attempts within the 7-day window of `_in_week`, of them the calls and the texts, today's, of
# them the conversations and those by the target's medium; the last conversation and the last
# attempt on the target's number.
_Counts = tuple[int, int, int, int, int, int, PastAttempt | None, PastAttempt | None]


def _count(mine: list[PastAttempt], target: Target, zone: str | None, now: datetime, *,
           today: date, week_start: datetime) -> _Counts:
    recent = calls = texts = todays = talks_today = same_medium_today = 0
    last_conversation = last_on_number = None
    rolling = now - WEEK
    near_start, near_end = now - NEVER_SAME_DAY, now + NEVER_SAME_DAY
    medium, number = target.medium, target.number
    # The fields are unpacked and the properties (is_conversation, counts_as_call) spelt out:
    # this loop runs for every attempt of the person at every instant the gate is asked about.
    for attempt in mine:
        _, at, _, _, on, kind, _, _, outcome = attempt
        if on == number:
            last_on_number = attempt
        talk = kind is _CALL and outcome is _COMPLETED
        if talk:
            last_conversation = attempt
        if at < week_start and at <= rolling:
            continue  # outside the 7-day window of `_in_week`
        recent += 1
        if kind is _SMS:
            texts += 1
        elif kind is _CALL and outcome not in NOT_CONNECTED:
            calls += 1
        if near_start < at < near_end and local_day(at, zone) == today:
            todays += 1
            if talk:
                talks_today += 1
            if kind is medium:
                same_medium_today += 1
    return (recent, calls, texts, todays, talks_today, same_medium_today, last_conversation,
            last_on_number)


def _frequency_refusals(found: list[Refusal], target: Target, mine: list[PastAttempt],
                        counts: _Counts, zone: str | None, *, limits: Limits, budget: Budget,
                        now: datetime, day: tuple[date, datetime]) -> None:
    """Add to `found` the refusals of the person's counts (`_count`'s of `mine`, which holds
    every attempt within the 7 days) and gap; `day` is today and the next local midnight."""
    today, tomorrow = day
    (recent, calls, texts, todays, talks_today, same_medium_today, last_conversation,
     last_on_number) = counts
    if target.medium is _CALL:
        talked = last_conversation if limits.conversation_cooldown_days else None
        if talked is not None:
            last = local_day(talked.at, zone)
            resumes = last + timedelta(days=limits.conversation_cooldown_days)
            if today < resumes:
                found.append(Refusal(POST_CONVERSATION, f"conversation on {last}; calls resume "
                                                        f"{resumes}",
                                     local_midnight(resumes, zone)))
        # A guarantor is a person on the debt too: never more than the general cap.
        cap = (min(limits.guarantor_calls_per_7_days, limits.calls_per_7_days)
               if target.role is _GUARANTOR else limits.calls_per_7_days)
        if calls >= cap:
            counted = [a for a in _in_week(mine, now, zone) if a.counts_as_call] if cap else []
            found.append(Refusal(CALL_CAP_7D, f"{calls} calls in 7 days (cap {cap})",
                                 _released(counted, cap, zone) if cap else None))
        if talks_today >= limits.conversations_per_day:  # a conversation is a call
            found.append(Refusal(CONVERSATION_CAP, f"{talks_today} conversations today",
                                 tomorrow))
    elif texts >= limits.sms_per_7_days:
        cap = limits.sms_per_7_days
        counted = [a for a in _in_week(mine, now, zone) if a.medium is _SMS] if cap else []
        found.append(Refusal(SMS_CAP_7D, f"{texts} texts in 7 days (cap {cap})",
                             _released(counted, cap, zone) if cap else None))
    if recent >= limits.contacts_per_7_days:
        cap = limits.contacts_per_7_days
        found.append(Refusal(CONTACT_CAP_7D, f"{recent} attempts in 7 days (cap {cap})",
                             _released(_in_week(mine, now, zone), cap, zone) if cap else None))
    per_day = _per_day(limits, budget)
    if todays >= per_day:
        found.append(Refusal(DAILY_CAP, f"{todays} attempts today (cap {per_day})", tomorrow))
    else:
        # Calls and texts each have their own daily count too: a text never takes a call's day.
        medium_cap = limits.calls_per_day if target.medium is _CALL else limits.sms_per_day
        if same_medium_today >= medium_cap:
            noun = "calls" if target.medium is _CALL else "texts"
            found.append(Refusal(DAILY_CAP, f"{same_medium_today} {noun} today "
                                            f"(cap {medium_cap})", tomorrow))
    if last_on_number is not None:
        gap = _minutes(max(limits.min_gap_minutes, budget.min_gap_minutes))
        if now - last_on_number.at < gap:
            found.append(_min_gap_refusal(last_on_number.at, last_on_number.at.tzinfo, gap))


@functools.lru_cache(maxsize=256)
def _minutes(minutes: int) -> timedelta:
    return timedelta(minutes=minutes)


@functools.lru_cache(maxsize=1 << 12)
def _min_gap_refusal(last: datetime, zone: tzinfo | None, gap: timedelta) -> Refusal:
    """The person's gap refusal, the same for every slot tried within the gap of `last`
    (`zone` is in the key because equal instants in two zones print differently)."""
    del zone
    return Refusal(MIN_GAP, f"last attempt on this number at {last:%Y-%m-%dT%H:%MZ}", last + gap)


def turn_key(last_used: datetime | None, account_id: str) -> tuple[datetime, str]:
    """Who goes first on a shared number: the account whose own last attempt on it is oldest
    (never counts as oldest), then the smaller account id."""
    return (last_used or datetime.min.replace(tzinfo=UTC), account_id)


def last_used(facts: Facts, number: str) -> datetime | None:
    """The account's own last attempt on `number`, as far back as the facts know."""
    recent = [a.at for a in facts.history if a.number == number]
    known = facts.number_last_used.get(number)
    return max([*recent, *([known] if known else [])], default=None)


def number_refusals(target: Target, facts: Facts, limits: Limits, budget: Budget,
                    now: datetime) -> list[Refusal]:
    """Rules about the number across accounts: its daily cap, the gap, and whose turn it is."""
    others = ([a for a in facts.number_history if a.number == target.number]
              if facts.number_history else [])
    claims = ([c for c in facts.number_claims if c.number == target.number]
              if facts.number_claims else [])
    cap = limits.number_daily_cap
    per_day = _per_day(limits, budget)
    if not others and not claims and cap >= per_day:
        return []  # no other account on the number: the account's own caps say it all
    zone = facts.home_zone
    today = local_day(now, zone)
    tomorrow = local_midnight(today + timedelta(days=1), zone)
    number = mask_number(target.number)
    own = [a for a in facts.history if a.number == target.number]
    others_today = [a for a in others if local_day(a.at, zone) == today]
    used = sum(1 for a in own if local_day(a.at, zone) == today) + len(others_today)
    person_today = sum(1 for a in facts.history
                       if a.person == target.person and local_day(a.at, zone) == today)
    found = []
    # Without another account's attempt, a cap no lower than the account's own adds nothing
    # to `daily_cap`, which then refuses too, until the same midnight.
    if used >= cap and (others_today or person_today < per_day):
        found.append(Refusal(NUMBER_DAILY_CAP, f"{used} attempts on {number} today, every "
                                               f"account on the number counted (cap {cap})",
                             tomorrow))
    elif others_today:
        last = others_today[-1].at.astimezone(UTC)
        found.append(Refusal(NUMBER_TURN, f"another account used {number} today at "
                                          f"{last:%H:%MZ}: accounts on one number take turns, "
                                          f"a day each", tomorrow))
    elif claims:
        mine = turn_key(last_used(facts, target.number), facts.state.account_id)
        taken = {local_day(c.planned_at, zone) for c in claims
                 if turn_key(c.last_used, c.account_id) < mine}
        if today in taken:
            free = today + timedelta(days=1)
            while free in taken:
                free += timedelta(days=1)
            found.append(Refusal(NUMBER_TURN, f"{len(taken)} other account(s) waiting longer "
                                              f"for {number} are planned on it, one today: "
                                              f"accounts on one number take turns, a day each",
                                 local_midnight(free, zone)))
    gap = timedelta(minutes=max(limits.min_gap_minutes, budget.min_gap_minutes))
    if others and now - others[-1].at < gap:
        found.append(Refusal(NUMBER_MIN_GAP, f"another account's attempt on {number} at "
                                             f"{others[-1].at.astimezone(UTC):%Y-%m-%dT%H:%MZ}",
                             others[-1].at + gap))
    return found


def refusals(target: Target, facts: Facts, limits: Limits, budget: Budget,
             now: datetime) -> list[Refusal]:
    """Every rule that forbids reaching `target` at `now`; empty means the attempt is lawful."""
    found = account_refusals(facts, limits, now)
    found += target_refusals(target, facts, limits)
    found += time_refusals(target, facts, limits, budget, now)
    return found


def counters(target: Target, history: Iterable[PastAttempt], zone: str | None,
             now: datetime) -> dict[str, int]:
    """The counter values at decision time, for the audit record."""
    today, _, week_start = _day_context(now, zone)
    rolling = now - WEEK
    near_start, near_end = now - NEVER_SAME_DAY, now + NEVER_SAME_DAY
    person = target.person
    calls = texts = recent = todays = 0
    # Unpacked, with `counts_as_call` spelt out, as in `_count`.
    for _, at, who, _, _, kind, _, _, outcome in history:
        if who != person:
            continue
        if at >= week_start or at > rolling:
            recent += 1
            if kind is _CALL and outcome not in NOT_CONNECTED:
                calls += 1
            elif kind is _SMS:
                texts += 1
        if near_start < at < near_end and local_day(at, zone) == today:
            todays += 1
    return {"calls_7d": calls, "sms_7d": texts, "attempts_7d": recent, "attempts_today": todays}
