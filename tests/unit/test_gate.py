"""The compliance gate, rule by rule: one table per rule of docs/compliance.md, exact reason codes.

The debtor lives in Chicago (US-IL). Unless a row says otherwise, "now" is Thursday 2026-12-10
10:00 CST (16:00 UTC); the 7 consecutive days before it start at 2026-12-03 10:00 CST. Every
table loosens the limits it is not about, so that each row sees only its own rule.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from dispatcher.compliance.gate import (
    CALL_CAP_7D,
    CONTACT_CAP_7D,
    CONVERSATION_CAP,
    DAILY_CAP,
    HOLIDAY,
    MIN_GAP,
    NO_CONSENT,
    NO_CONTACT_DAY,
    NO_VALID_NUMBER,
    NOT_OVERDUE,
    OPTED_OUT,
    POST_CONVERSATION,
    PROMISE_PENDING,
    RESOLVED,
    SMS_CAP_7D,
    THIRD_PARTY_LIMIT,
    WORK_NUMBER,
    Budget,
    Facts,
    Refusal,
    account_refusals,
    counters,
    refusals,
    target_refusals,
    time_refusals,
)
from dispatcher.compliance.policy import Limits
from dispatcher.compliance.quiet_hours import AMBIGUOUS, QUIET_HOURS
from dispatcher.domain.accounts import AccountState, AccountStatus, Hold, Promise
from dispatcher.domain.contact import Medium, Outcome, PastAttempt, Role, Target
from dispatcher.domain.events import Contact, Debtor, HoldReason, Phone, ResolvedReason

CHICAGO, NEW_YORK, LOS_ANGELES = "America/Chicago", "America/New_York", "America/Los_Angeles"
KOLKATA, SHANGHAI = "Asia/Kolkata", "Asia/Shanghai"
MOBILE, HOME, WORK, STRANGER = "+13125550100", "+13125550101", "+13125550102", "+13125550177"
EMERGENCY, EMERGENCY_NUMBER = "C-E", "+13125550198"
GUARANTOR, GUARANTOR_NUMBER = "C-G", "+13125550199"
CALL, SMS = Medium.CALL, Medium.SMS
EPS = timedelta(microseconds=1)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def ct(text: str, zone: str = CHICAGO) -> datetime:
    """A wall-clock time in Chicago (or `zone`), aware."""
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone))


NOW = ct("2026-12-10T10:00")

# Every frequency limit as loose as the profile allows; each table tightens its own rule.
RELAXED: dict[str, Any] = {"attempts_per_day": 10, "calls_per_day": 10, "sms_per_day": 10,
                           "min_gap_minutes": 0,
                           "contacts_per_7_days": 100, "sms_per_7_days": 50,
                           "conversation_cooldown_days": 0, "conversations_per_day": 10}
LOOSE = Budget(attempts_per_day=10, min_gap_minutes=0)


def limits(**changes: Any) -> Limits:
    return Limits.model_validate({**RELAXED, **changes})


def phone(number: str, kind: Literal["mobile", "home", "work"] = "mobile", *,
          sms: bool = True, call: bool = True) -> Phone:
    return Phone(number=number, type=kind, sms_consent=sms, call_consent=call)


PHONES = (phone(MOBILE), phone(HOME, "home"), phone(WORK, "work"))


def hold(reason: HoldReason, until: date | None = None) -> Hold:
    return Hold(reason=reason, until=until, placed_at=utc("2026-12-01T15:00"),
                event_id=f"e-hold-{reason.value}")


def promise(due_on: date) -> Promise:
    return Promise(due_on=due_on, amount="50.00", made_at=utc("2026-12-01T15:00"),
                   event_id="e-promise")


def account(*, status: AccountStatus = AccountStatus.OPEN, phones: Sequence[Phone] = PHONES,
            debtor: bool = True, holds: Sequence[Hold] = (), promised: Promise | None = None,
            resolved: ResolvedReason | None = None) -> AccountState:
    return AccountState(
        account_id="A-1", status=status,
        debtor=Debtor(name="Dana Debtor", timezone=CHICAGO, region="US-IL",
                      phones=list(phones)) if debtor else None,
        contacts=(Contact(contact_id=EMERGENCY, name="Sam Sister", relation="sister",
                          number=EMERGENCY_NUMBER, role="emergency"),
                  Contact(contact_id=GUARANTOR, name="Gail Guarantor", relation="aunt",
                          number=GUARANTOR_NUMBER, role="guarantor")),
        holds=tuple(holds), promise=promised, resolved_reason=resolved)


def facts(state: AccountState | None = None, *, zones: tuple[str, ...] = (CHICAGO,),
          home_zone: str | None = CHICAGO, region: str | None = "US-IL",
          history: Sequence[PastAttempt] = (),
          opted_out: frozenset[tuple[str, Medium]] = frozenset(),
          invalid: frozenset[str] = frozenset()) -> Facts:
    # Refused contacts come from the history, as the engine's facts_for derives them.
    refused = frozenset(a.person for a in history if a.outcome is Outcome.REFUSED)
    return Facts(state=state or account(), zones=zones, home_zone=home_zone,
                 holiday_region=region, opted_out=opted_out, invalid_numbers=invalid,
                 history=tuple(history), refused_contacts=refused)


ROLES = {"debtor": Role.DEBTOR, EMERGENCY: Role.EMERGENCY, GUARANTOR: Role.GUARANTOR}
NUMBERS = {"debtor": MOBILE, EMERGENCY: EMERGENCY_NUMBER, GUARANTOR: GUARANTOR_NUMBER}


def attempt(medium: Medium, at: datetime, outcome: Outcome | None, *, person: str = "debtor",
            number: str | None = None) -> PastAttempt:
    number = number or NUMBERS[person]
    return PastAttempt(f"at-{person}-{number}-{at.isoformat()}", at, person, ROLES[person],
                       number, medium, "morning", "early", outcome)


def call(at: datetime, outcome: Outcome | None = Outcome.NO_ANSWER, *, person: str = "debtor",
         number: str | None = None) -> PastAttempt:
    return attempt(CALL, at, outcome, person=person, number=number)


def text(at: datetime, outcome: Outcome | None = Outcome.DELIVERED, *,
         number: str | None = None) -> PastAttempt:
    return attempt(SMS, at, outcome, number=number)


def daily_calls(outcomes: Sequence[Outcome | None], *, first: str = "2026-12-04",
                person: str = "debtor", number: str | None = None) -> list[PastAttempt]:
    """One call a day at 09:00 local from `first` on, with these outcomes."""
    start = ct(f"{first}T09:00")
    return [call(start + timedelta(days=i), o, person=person, number=number)
            for i, o in enumerate(outcomes)]


def to_debtor(medium: Medium = CALL, number: str = MOBILE) -> Target:
    kinds = {MOBILE: "mobile", HOME: "home", WORK: "work"}
    return Target(Role.DEBTOR, "debtor", number, kinds.get(number), medium)


def to_contact(person: str, medium: Medium = CALL) -> Target:
    return Target(ROLES[person], person, NUMBERS[person], None, medium)


def reasons(found: Sequence[Refusal]) -> list[str]:
    return [r.reason for r in found]


def retry_of(found: Sequence[Refusal], reason: str) -> datetime | None:
    matching = [r for r in found if r.reason == reason]
    assert len(matching) == 1, found
    return matching[0].retry_at


NA, MACHINE, TALK = Outcome.NO_ANSWER, Outcome.MACHINE, Outcome.COMPLETED


# --- Time of day: 08:00-21:00 in every candidate zone --------------------------------------


@pytest.mark.parametrize(
    ("now", "zones", "hours_end", "expected", "retry_at"),
    [
        # Chicago in winter (CST, UTC-6): the window is 14:00-03:00 UTC; its end is exclusive.
        pytest.param(utc("2026-12-01T14:00"), (CHICAGO,), 21, [], None, id="08:00-opens"),
        pytest.param(utc("2026-12-01T13:59"), (CHICAGO,), 21, [QUIET_HOURS],
                     utc("2026-12-01T14:00"), id="07:59-before"),
        pytest.param(utc("2026-12-02T02:59"), (CHICAGO,), 21, [], None, id="20:59-inside"),
        pytest.param(utc("2026-12-02T03:00"), (CHICAGO,), 21, [QUIET_HOURS],
                     utc("2026-12-02T14:00"), id="21:00-closed"),
        # New York and Los Angeles: allowed from 08:00 Pacific to 21:00 Eastern only.
        pytest.param(utc("2026-12-01T15:00"), (NEW_YORK,), 21, [], None, id="ny-alone-10:00"),
        pytest.param(utc("2026-12-01T15:00"), (NEW_YORK, LOS_ANGELES), 21, [QUIET_HOURS],
                     utc("2026-12-01T16:00"), id="ny-10:00-la-07:00"),
        pytest.param(utc("2026-12-01T16:00"), (NEW_YORK, LOS_ANGELES), 21, [], None,
                     id="ny-11:00-la-08:00"),
        pytest.param(utc("2026-12-02T01:59"), (NEW_YORK, LOS_ANGELES), 21, [], None,
                     id="ny-20:59-la-17:59"),
        pytest.param(utc("2026-12-02T02:00"), (NEW_YORK, LOS_ANGELES), 21, [QUIET_HOURS],
                     utc("2026-12-02T16:00"), id="ny-21:00-la-18:00"),
        # 08:00-19:00 in Kolkata (UTC+5:30) and Chicago: 11.5 h apart in winter, never both
        # inside; in summer (CDT) both are inside 13:00-13:30 UTC.
        pytest.param(utc("2026-12-01T14:30"), (KOLKATA, CHICAGO), 19, [AMBIGUOUS], None,
                     id="never-overlap"),
        pytest.param(utc("2026-07-01T12:00"), (KOLKATA, CHICAGO), 19, [QUIET_HOURS],
                     utc("2026-07-01T13:00"), id="overlap-later"),
        pytest.param(utc("2026-07-01T13:15"), (KOLKATA, CHICAGO), 19, [], None,
                     id="overlap-now"),
        pytest.param(utc("2026-12-01T16:00"), (), 21, [AMBIGUOUS], None, id="no-zone"),
        # DST starts 2026-03-08 (a Sunday): 08:00 is 14:00 UTC the day before, 13:00 UTC that
        # day; 21:00 CDT is 02:00 UTC.
        pytest.param(utc("2026-03-07T13:30"), (CHICAGO,), 21, [QUIET_HOURS],
                     utc("2026-03-07T14:00"), id="dst-start-eve-07:30-cst"),
        pytest.param(utc("2026-03-07T14:00"), (CHICAGO,), 21, [], None,
                     id="dst-start-eve-08:00-cst"),
        pytest.param(utc("2026-03-08T12:59"), (CHICAGO,), 21, [QUIET_HOURS],
                     utc("2026-03-08T13:00"), id="dst-start-07:59-cdt"),
        pytest.param(utc("2026-03-08T13:00"), (CHICAGO,), 21, [], None, id="dst-start-08:00"),
        pytest.param(utc("2026-03-09T01:59"), (CHICAGO,), 21, [], None, id="dst-start-20:59"),
        pytest.param(utc("2026-03-09T02:00"), (CHICAGO,), 21, [QUIET_HOURS],
                     utc("2026-03-09T13:00"), id="dst-start-21:00-cdt"),
        # DST ends 2026-11-01 (a Sunday): 08:00 is 13:00 UTC the day before, 14:00 UTC that day.
        pytest.param(utc("2026-10-31T13:30"), (CHICAGO,), 21, [], None,
                     id="dst-end-eve-08:30-cdt"),
        pytest.param(utc("2026-11-01T13:30"), (CHICAGO,), 21, [QUIET_HOURS],
                     utc("2026-11-01T14:00"), id="dst-end-07:30-cst"),
        pytest.param(utc("2026-11-01T14:00"), (CHICAGO,), 21, [], None, id="dst-end-08:00"),
    ],
)
def test_hours_in_every_candidate_zone(now: datetime, zones: tuple[str, ...], hours_end: int,
                                       expected: list[str], retry_at: datetime | None) -> None:
    rules = limits(hours_end=time(hours_end))
    found = time_refusals(to_debtor(), facts(zones=zones), rules, LOOSE, now)
    assert reasons(found) == expected
    if expected:
        assert retry_of(found, expected[0]) == retry_at


# --- Holidays and Sundays ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "zone", "region", "changes", "expected", "retry_at"),
    [
        pytest.param(ct("2026-12-25T10:00"), CHICAGO, "US-IL", {}, [HOLIDAY],
                     ct("2026-12-26T00:00"), id="christmas"),
        pytest.param(ct("2026-12-25T10:00"), CHICAGO, "US-IL", {"contact_on_holidays": True},
                     [], None, id="christmas-allowed-by-profile"),
        # The day is the debtor's: 20:30 CST on the 25th is already the 26th in UTC.
        pytest.param(ct("2026-12-25T20:30"), CHICAGO, "US-IL", {}, [HOLIDAY],
                     ct("2026-12-26T00:00"), id="christmas-evening-local"),
        pytest.param(ct("2026-12-24T20:30"), CHICAGO, "US-IL", {}, [], None,
                     id="christmas-eve-il-is-25th-utc"),
        # The region's own calendar: Christmas Eve is a Texas state holiday, not Illinois's.
        pytest.param(ct("2026-12-24T10:00"), CHICAGO, "US-TX", {}, [HOLIDAY],
                     ct("2026-12-25T00:00"), id="christmas-eve-tx"),
        pytest.param(ct("2026-12-25T10:00"), CHICAGO, None, {}, [], None, id="no-region"),
        pytest.param(ct("2026-10-01T10:00", SHANGHAI), SHANGHAI, "CN", {}, [HOLIDAY],
                     ct("2026-10-02T00:00", SHANGHAI), id="cn-national-day"),
        pytest.param(ct("2026-12-06T10:00"), CHICAGO, "US-IL", {"contact_on_sundays": False},
                     [NO_CONTACT_DAY], ct("2026-12-07T00:00"), id="sunday"),
        pytest.param(ct("2026-12-06T20:30"), CHICAGO, "US-IL", {"contact_on_sundays": False},
                     [NO_CONTACT_DAY], ct("2026-12-07T00:00"), id="sunday-evening-monday-utc"),
        pytest.param(ct("2026-12-05T20:30"), CHICAGO, "US-IL", {"contact_on_sundays": False},
                     [], None, id="saturday-evening-sunday-utc"),
        pytest.param(ct("2026-12-06T10:00"), CHICAGO, "US-IL", {"contact_on_sundays": True},
                     [], None, id="sunday-allowed-by-profile"),
    ],
)
def test_holidays_and_sundays(now: datetime, zone: str, region: str | None,
                              changes: dict[str, Any], expected: list[str],
                              retry_at: datetime | None) -> None:
    found = time_refusals(to_debtor(), facts(zones=(zone,), home_zone=zone, region=region),
                          limits(**changes), LOOSE, now)
    assert reasons(found) == expected
    if expected:
        assert retry_of(found, expected[0]) == retry_at


# --- 7 calls in 7 days, per person ---------------------------------------------------------


@pytest.mark.parametrize(
    ("history", "target", "expected", "retry_at"),
    [
        pytest.param(daily_calls([NA] * 6), to_debtor(), [], None, id="six"),
        # The oldest counted call (12-04 09:00) leaves the 7 days at 12-11 09:00.
        pytest.param(daily_calls([NA] * 7), to_debtor(), [CALL_CAP_7D],
                     ct("2026-12-11T09:00"), id="seven-no-answer"),
        *(pytest.param(daily_calls([NA] * 6 + [o]), to_debtor(), [], None,
                       id=f"not-connected-{o.value}")
          for o in (Outcome.BUSY, Outcome.FAILED, Outcome.CANCELED, Outcome.INVALID_NUMBER)),
        *(pytest.param(daily_calls([NA] * 6 + [o]), to_debtor(), [CALL_CAP_7D],
                       ct("2026-12-11T09:00"), id=f"counted-{o}")
          for o in (MACHINE, TALK, None)),
        # 7 calls on 12-03..12-09; the first is 7 days and 1 minute before now, before the
        # 7 calendar days (12-04..12-10) too: no longer counted.
        pytest.param([call(ct("2026-12-03T09:59")), *daily_calls([NA] * 6)], to_debtor(), [],
                     None, id="oldest-7d-1min-ago"),
        # 1 minute less than 7x24 h ago it still counts, though its calendar day 12-03 is not
        # among the last 7: the longer of the two windows applies.
        pytest.param([call(ct("2026-12-03T10:01")), *daily_calls([NA] * 6)], to_debtor(),
                     [CALL_CAP_7D], ct("2026-12-10T10:01"), id="oldest-6d23h59-ago"),
        # Per person across all numbers.
        pytest.param(daily_calls([NA] * 4) + daily_calls([NA] * 3, first="2026-12-08",
                                                         number=HOME),
                     to_debtor(), [CALL_CAP_7D], ct("2026-12-11T09:00"), id="two-numbers"),
        pytest.param(daily_calls([NA] * 4) + daily_calls([NA] * 3, first="2026-12-08",
                                                         number=HOME),
                     to_debtor(number=HOME), [CALL_CAP_7D], ct("2026-12-11T09:00"),
                     id="two-numbers-call-the-other"),
        pytest.param(daily_calls([NA] * 6) + daily_calls([NA] * 7, person=EMERGENCY),
                     to_debtor(), [], None, id="contact-calls-not-the-debtors"),
        # Texts are not calls.
        pytest.param([*daily_calls([NA] * 6), text(ct("2026-12-10T09:30"))], to_debtor(), [],
                     None, id="text-is-not-a-call"),
        pytest.param(daily_calls([NA] * 7), to_debtor(SMS), [], None, id="cap-is-for-calls"),
        # A guarantor's calls fall under guarantor_calls_per_7_days (2).
        pytest.param(daily_calls([NA], first="2026-12-08", person=GUARANTOR),
                     to_contact(GUARANTOR), [], None, id="guarantor-one"),
        pytest.param([call(ct("2026-12-05T09:00"), person=GUARANTOR),
                      call(ct("2026-12-08T09:00"), person=GUARANTOR)],
                     to_contact(GUARANTOR), [CALL_CAP_7D], ct("2026-12-12T09:00"),
                     id="guarantor-two"),
        pytest.param([call(ct("2026-12-05T09:00"), Outcome.BUSY, person=GUARANTOR),
                      call(ct("2026-12-08T09:00"), person=GUARANTOR)],
                     to_contact(GUARANTOR), [], None, id="guarantor-one-busy"),
        pytest.param([call(ct("2026-12-02T09:00"), person=GUARANTOR),
                      call(ct("2026-12-08T09:00"), person=GUARANTOR)],
                     to_contact(GUARANTOR), [], None, id="guarantor-one-old"),
    ],
)
def test_call_cap(history: list[PastAttempt], target: Target, expected: list[str],
                  retry_at: datetime | None) -> None:
    found = time_refusals(target, facts(history=history), limits(), LOOSE, NOW)
    assert reasons(found) == expected
    if expected:
        assert retry_of(found, CALL_CAP_7D) == retry_at


@pytest.mark.parametrize(("cap", "calls", "expected"), [
    (3, 2, []),
    (3, 3, [CALL_CAP_7D]),
    (1, 1, [CALL_CAP_7D]),
])
def test_guarantor_cap_comes_from_its_own_limit(cap: int, calls: int,
                                                expected: list[str]) -> None:
    history = daily_calls([NA] * calls, first="2026-12-07", person=GUARANTOR)
    rules = limits(guarantor_calls_per_7_days=cap, calls_per_7_days=7)
    found = time_refusals(to_contact(GUARANTOR), facts(history=history), rules, LOOSE, NOW)
    assert reasons(found) == expected


# --- 7-day cool-down after a conversation (its day is day 1) -------------------------------

TALKED = call(ct("2026-12-03T15:00"), TALK)


@pytest.mark.parametrize(
    ("history", "target", "now", "expected", "retry_at"),
    [
        pytest.param([TALKED], to_debtor(), ct("2026-12-03T18:00"), [POST_CONVERSATION],
                     ct("2026-12-10T00:00"), id="same-day"),
        pytest.param([TALKED], to_debtor(), ct("2026-12-09T20:59"), [POST_CONVERSATION],
                     ct("2026-12-10T00:00"), id="day-7"),
        pytest.param([TALKED], to_debtor(), ct("2026-12-10T08:00"), [], None, id="day-8"),
        pytest.param([TALKED], to_debtor(number=HOME), ct("2026-12-06T10:00"),
                     [POST_CONVERSATION], ct("2026-12-10T00:00"), id="any-number"),
        pytest.param([TALKED], to_debtor(SMS), ct("2026-12-04T10:00"), [], None,
                     id="sms-not-affected"),
        # 20:30 CST on 12-03 is 12-04 in UTC: day 1 is the debtor's 12-03 all the same.
        pytest.param([call(ct("2026-12-03T20:30"), TALK)], to_debtor(), ct("2026-12-09T20:00"),
                     [POST_CONVERSATION], ct("2026-12-10T00:00"), id="evening-talk-day-7"),
        pytest.param([call(ct("2026-12-03T20:30"), TALK)], to_debtor(), ct("2026-12-10T08:00"),
                     [], None, id="evening-talk-day-8"),
        # Unanswered calls after it do not move the end; a later conversation does.
        pytest.param([TALKED, call(ct("2026-12-05T09:00"))], to_debtor(),
                     ct("2026-12-09T10:00"), [POST_CONVERSATION], ct("2026-12-10T00:00"),
                     id="later-unanswered-call"),
        pytest.param([TALKED, call(ct("2026-12-06T09:00"), TALK)], to_debtor(), NOW,
                     [POST_CONVERSATION], ct("2026-12-13T00:00"), id="later-conversation"),
        pytest.param([call(ct("2026-12-03T15:00"), MACHINE)], to_debtor(),
                     ct("2026-12-04T10:00"), [], None, id="voicemail-is-no-conversation"),
        pytest.param([call(ct("2026-12-03T15:00"), TALK, person=EMERGENCY)], to_debtor(),
                     ct("2026-12-04T10:00"), [], None, id="contacts-conversation"),
    ],
)
def test_post_conversation_cooldown(history: list[PastAttempt], target: Target, now: datetime,
                                    expected: list[str], retry_at: datetime | None) -> None:
    rules = limits(conversation_cooldown_days=7)
    found = time_refusals(target, facts(history=history), rules, LOOSE, now)
    assert reasons(found) == expected
    if expected:
        assert retry_of(found, POST_CONVERSATION) == retry_at


# --- Attempts per day, gap on one number ---------------------------------------------------

TOMORROW = ct("2026-12-11T00:00")


@pytest.mark.parametrize(
    ("per_day", "budget", "history", "target", "expected"),
    [
        pytest.param(1, 10, [call(ct("2026-12-10T08:30"))], to_debtor(), [DAILY_CAP],
                     id="profile-1"),
        pytest.param(10, 1, [call(ct("2026-12-10T08:30"))], to_debtor(), [DAILY_CAP],
                     id="stage-1"),
        pytest.param(3, 2, [call(ct("2026-12-10T08:30")), call(ct("2026-12-10T09:00"))],
                     to_debtor(), [DAILY_CAP], id="min-of-3-and-2"),
        pytest.param(3, 3, [call(ct("2026-12-10T08:30")), call(ct("2026-12-10T09:00"))],
                     to_debtor(), [], id="two-of-three"),
        # Every channel and every outcome is an attempt.
        pytest.param(1, 1, [text(ct("2026-12-10T08:30"))], to_debtor(), [DAILY_CAP],
                     id="text-then-call"),
        pytest.param(1, 1, [call(ct("2026-12-10T08:30"), number=HOME)], to_debtor(SMS),
                     [DAILY_CAP], id="call-then-text"),
        pytest.param(1, 1, [call(ct("2026-12-10T08:30"), Outcome.BUSY)], to_debtor(),
                     [DAILY_CAP], id="busy-call"),
        # 23:30 CST on 12-09 is 12-10 in UTC: yesterday for the debtor.
        pytest.param(1, 1, [call(ct("2026-12-09T23:30"))], to_debtor(), [], id="local-yesterday"),
        pytest.param(1, 1, [call(ct("2026-12-10T08:30"), person=EMERGENCY)], to_debtor(), [],
                     id="someone-elses"),
    ],
)
def test_daily_cap(per_day: int, budget: int, history: list[PastAttempt], target: Target,
                   expected: list[str]) -> None:
    found = time_refusals(target, facts(history=history), limits(attempts_per_day=per_day),
                          Budget(attempts_per_day=budget, min_gap_minutes=0), NOW)
    assert reasons(found) == expected
    if expected:
        assert retry_of(found, DAILY_CAP) == TOMORROW


@pytest.mark.parametrize(("history", "target", "expected"), [
    pytest.param([call(ct("2026-12-10T08:30"))], to_debtor(), [DAILY_CAP], id="second-call"),
    pytest.param([call(ct("2026-12-10T08:30"))], to_debtor(SMS), [], id="text-beside-call"),
    pytest.param([text(ct("2026-12-10T08:30"))], to_debtor(), [],
                 id="call-beside-text"),
    pytest.param([text(ct("2026-12-10T08:30"))], to_debtor(SMS), [DAILY_CAP],
                 id="second-text"),
])
def test_calls_and_texts_have_their_own_daily_counts(history: list[PastAttempt], target: Target,
                                                     expected: list[str]) -> None:
    # Two attempts a day, but one call and one text: a text never takes the day's call.
    found = time_refusals(target, facts(history=history),
                          limits(attempts_per_day=2, calls_per_day=1, sms_per_day=1),
                          Budget(attempts_per_day=2, min_gap_minutes=0), NOW)
    assert reasons(found) == expected
    if expected:
        assert retry_of(found, DAILY_CAP) == TOMORROW
        assert "today (cap 1)" in found[0].detail


@pytest.mark.parametrize(
    ("gap", "budget_gap", "history", "target", "expected", "retry_at"),
    [
        pytest.param(240, 0, [call(ct("2026-12-10T06:01"))], to_debtor(), [MIN_GAP],
                     ct("2026-12-10T10:01"), id="3h59-ago"),
        pytest.param(240, 0, [call(ct("2026-12-10T06:00"))], to_debtor(), [], None,
                     id="4h-ago"),
        pytest.param(240, 0, [call(ct("2026-12-10T09:00"), number=HOME)], to_debtor(), [],
                     None, id="other-number"),
        pytest.param(240, 0, [text(ct("2026-12-10T09:00"))], to_debtor(), [MIN_GAP],
                     ct("2026-12-10T13:00"), id="text-then-call-same-number"),
        pytest.param(240, 300, [call(ct("2026-12-10T05:30"))], to_debtor(), [MIN_GAP],
                     ct("2026-12-10T10:30"), id="stage-gap-longer"),
        pytest.param(240, 60, [call(ct("2026-12-10T08:00"))], to_debtor(), [MIN_GAP],
                     ct("2026-12-10T12:00"), id="stage-gap-shorter"),
        pytest.param(240, 0, [call(ct("2026-12-10T03:00")), call(ct("2026-12-10T09:00"))],
                     to_debtor(), [MIN_GAP], ct("2026-12-10T13:00"), id="last-one-counts"),
    ],
)
def test_min_gap(gap: int, budget_gap: int, history: list[PastAttempt], target: Target,
                 expected: list[str], retry_at: datetime | None) -> None:
    found = time_refusals(target, facts(history=history), limits(min_gap_minutes=gap),
                          Budget(attempts_per_day=10, min_gap_minutes=budget_gap), NOW)
    assert reasons(found) == expected
    if expected:
        assert retry_of(found, MIN_GAP) == retry_at


# --- Texts, all contacts, conversations per day --------------------------------------------


def daily_texts(count: int, first: str = "2026-12-04") -> list[PastAttempt]:
    start = ct(f"{first}T09:00")
    return [text(start + timedelta(days=i)) for i in range(count)]


@pytest.mark.parametrize(
    ("cap", "history", "target", "expected", "retry_at"),
    [
        pytest.param(7, daily_texts(6), to_debtor(SMS), [], None, id="six"),
        pytest.param(7, daily_texts(7), to_debtor(SMS), [SMS_CAP_7D], ct("2026-12-11T09:00"),
                     id="seven"),
        pytest.param(7, daily_texts(7), to_debtor(), [], None, id="calls-not-capped-by-texts"),
        pytest.param(2, daily_texts(2, "2026-12-08"), to_debtor(SMS), [SMS_CAP_7D],
                     ct("2026-12-15T09:00"), id="two-of-two"),
        pytest.param(2, [text(ct("2026-12-03T09:00")), text(ct("2026-12-09T09:00"))],
                     to_debtor(SMS), [], None, id="one-out-of-the-window"),
        pytest.param(2, [*daily_calls([NA] * 6), text(ct("2026-12-09T09:00"))],
                     to_debtor(SMS), [], None, id="calls-are-not-texts"),
    ],
)
def test_sms_cap(cap: int, history: list[PastAttempt], target: Target, expected: list[str],
                 retry_at: datetime | None) -> None:
    found = time_refusals(target, facts(history=history), limits(sms_per_7_days=cap), LOOSE,
                          NOW)
    assert reasons(found) == expected
    if expected:
        assert retry_of(found, SMS_CAP_7D) == retry_at


MIXED = [call(ct("2026-12-08T09:00")), text(ct("2026-12-09T09:00")),
         call(ct("2026-12-10T08:00"), Outcome.BUSY)]


@pytest.mark.parametrize(
    ("history", "target", "expected", "retry_at"),
    [
        # 3 per 7 days across channels (New York City): busy calls are attempts too.
        pytest.param(MIXED, to_debtor(), [CONTACT_CAP_7D], ct("2026-12-15T09:00"), id="call"),
        pytest.param(MIXED, to_debtor(SMS), [CONTACT_CAP_7D], ct("2026-12-15T09:00"),
                     id="sms"),
        pytest.param(MIXED[1:], to_debtor(), [], None, id="two"),
        pytest.param([call(ct("2026-12-03T09:00")), *MIXED[1:]], to_debtor(), [], None,
                     id="oldest-out-of-the-window"),
        pytest.param([call(a.at, person=EMERGENCY) for a in MIXED], to_debtor(), [], None,
                     id="someone-elses"),
    ],
)
def test_contact_cap(history: list[PastAttempt], target: Target, expected: list[str],
                     retry_at: datetime | None) -> None:
    found = time_refusals(target, facts(history=history), limits(contacts_per_7_days=3), LOOSE,
                          NOW)
    assert reasons(found) == expected
    if expected:
        assert retry_of(found, CONTACT_CAP_7D) == retry_at


@pytest.mark.parametrize(
    ("per_day", "history", "target", "expected"),
    [
        pytest.param(1, [call(ct("2026-12-10T08:30"), TALK)], to_debtor(), [CONVERSATION_CAP],
                     id="one-today"),
        pytest.param(1, [call(ct("2026-12-10T08:30"), TALK)], to_debtor(SMS), [],
                     id="texts-not-capped"),
        pytest.param(1, [call(ct("2026-12-10T08:30"), MACHINE)], to_debtor(), [],
                     id="voicemail-today"),
        pytest.param(1, [call(ct("2026-12-09T23:30"), TALK)], to_debtor(), [],
                     id="local-yesterday"),
        pytest.param(2, [call(ct("2026-12-10T08:30"), TALK)], to_debtor(), [],
                     id="one-of-two"),
        pytest.param(2, [call(ct("2026-12-10T08:30"), TALK),
                         call(ct("2026-12-10T09:30"), TALK, number=HOME)], to_debtor(),
                     [CONVERSATION_CAP], id="two-of-two"),
    ],
)
def test_conversation_cap(per_day: int, history: list[PastAttempt], target: Target,
                          expected: list[str]) -> None:
    found = time_refusals(target, facts(history=history),
                          limits(conversations_per_day=per_day), LOOSE, NOW)
    assert reasons(found) == expected
    if expected:
        assert retry_of(found, CONVERSATION_CAP) == TOMORROW


# --- Consent, opt-out, work and invalid numbers --------------------------------------------


@pytest.mark.parametrize(
    ("known", "target", "rules", "expected"),
    [
        pytest.param(facts(account(phones=[phone(MOBILE, sms=False)])), to_debtor(SMS),
                     limits(), [NO_CONSENT], id="sms-without-sms-consent"),
        pytest.param(facts(account(phones=[phone(MOBILE, sms=False)])), to_debtor(), limits(),
                     [], id="call-without-sms-consent"),
        pytest.param(facts(account(phones=[phone(MOBILE, call=False)])), to_debtor(), limits(),
                     [NO_CONSENT], id="call-without-call-consent"),
        pytest.param(facts(account(phones=[phone(MOBILE, call=False)])), to_debtor(SMS),
                     limits(), [], id="sms-without-call-consent"),
        pytest.param(facts(opted_out=frozenset({(MOBILE, SMS)})), to_debtor(SMS), limits(),
                     [OPTED_OUT], id="sms-opted-out"),
        pytest.param(facts(opted_out=frozenset({(MOBILE, SMS)})), to_debtor(), limits(), [],
                     id="sms-opt-out-leaves-calls"),
        pytest.param(facts(opted_out=frozenset({(MOBILE, SMS)})), to_debtor(SMS, HOME),
                     limits(), [], id="sms-opt-out-leaves-other-numbers"),
        pytest.param(facts(opted_out=frozenset({(MOBILE, CALL)})), to_debtor(), limits(),
                     [OPTED_OUT], id="call-opted-out"),
        pytest.param(facts(), to_debtor(number=WORK), limits(), [WORK_NUMBER],
                     id="work-number"),
        pytest.param(facts(), to_debtor(number=WORK), limits(call_work_numbers=True), [],
                     id="work-number-allowed"),
        pytest.param(facts(invalid=frozenset({MOBILE})), to_debtor(), limits(),
                     [NO_VALID_NUMBER], id="invalid-number"),
        pytest.param(facts(invalid=frozenset({MOBILE})), to_debtor(number=HOME), limits(), [],
                     id="other-number-valid"),
        pytest.param(facts(), to_debtor(number=STRANGER), limits(), [NO_VALID_NUMBER],
                     id="not-the-debtors-number"),
        pytest.param(facts(account(debtor=False)), to_debtor(), limits(), [NO_VALID_NUMBER],
                     id="no-debtor"),
    ],
)
def test_consent_and_numbers(known: Facts, target: Target, rules: Limits,
                             expected: list[str]) -> None:
    assert reasons(target_refusals(target, known, rules)) == expected


# --- Holds, resolution, promises ------------------------------------------------------------


@pytest.mark.parametrize("reason", list(HoldReason))
def test_each_hold_stops_every_channel_and_person(reason: HoldReason) -> None:
    known = facts(account(holds=[hold(reason)]))
    for target in (to_debtor(), to_debtor(SMS), to_contact(EMERGENCY), to_contact(GUARANTOR)):
        found = refusals(target, known, limits(), LOOSE, NOW)
        assert f"hold:{reason.value}" in reasons(found)
        assert retry_of(found, f"hold:{reason.value}") is None


DUE = date(2026, 12, 10)


RESUMES = ct("2026-12-12T00:00")


@pytest.mark.parametrize(
    ("state", "grace", "now", "expected"),
    [
        # A hold until 12-12 ends at 00:00 local that day; 23:59 CST is already 12-12 in UTC.
        pytest.param(account(holds=[hold(HoldReason.DISPUTE, date(2026, 12, 12))]), 2,
                     ct("2026-12-11T23:59"), [("hold:dispute", RESUMES)], id="hold-until-eve"),
        pytest.param(account(holds=[hold(HoldReason.DISPUTE, date(2026, 12, 12))]), 2,
                     RESUMES, [], id="hold-until-day"),
        pytest.param(account(holds=[hold(HoldReason.CEASE),
                                    hold(HoldReason.HARDSHIP, date(2026, 12, 12))]), 2,
                     NOW, [("hold:cease", None), ("hold:hardship", RESUMES)], id="two-holds"),
        pytest.param(account(status=AccountStatus.RESOLVED, resolved=ResolvedReason.PAID,
                             holds=[hold(HoldReason.CEASE)]), 2, NOW, [(RESOLVED, None)],
                     id="resolved"),
        pytest.param(account(status=AccountStatus.UNKNOWN), 2, NOW, [(NOT_OVERDUE, None)],
                     id="not-overdue"),
        # A promise due 12-10 with 2 days' grace: contact resumes 12-12 00:00 local.
        pytest.param(account(promised=promise(DUE)), 2, ct("2026-12-11T23:59"),
                     [(PROMISE_PENDING, RESUMES)], id="promise-in-grace"),
        pytest.param(account(promised=promise(DUE)), 2, RESUMES, [], id="promise-grace-over"),
        pytest.param(account(promised=promise(DUE)), 0, ct("2026-12-09T20:00"),
                     [(PROMISE_PENDING, ct("2026-12-10T00:00"))], id="promise-no-grace"),
        pytest.param(account(promised=promise(DUE)), 0, ct("2026-12-10T00:00"), [],
                     id="promise-no-grace-due-day"),
    ],
)
def test_account_rules(state: AccountState, grace: int, now: datetime,
                       expected: list[tuple[str, datetime | None]]) -> None:
    found = account_refusals(facts(state), limits(promise_grace_days=grace), now)
    assert [(r.reason, r.retry_at) for r in found] == expected


# --- Third parties --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("per_contact", "history", "target", "expected"),
    [
        pytest.param(1, [], to_contact(EMERGENCY), [], id="first-call"),
        # Once per account, ever: a month ago still counts.
        pytest.param(1, [call(ct("2026-11-10T10:00"), person=EMERGENCY)], to_contact(EMERGENCY),
                     [THIRD_PARTY_LIMIT], id="called-once"),
        pytest.param(1, [call(ct("2026-11-10T10:00"), Outcome.BUSY, person=EMERGENCY)],
                     to_contact(EMERGENCY), [], id="busy-never-reached"),
        pytest.param(2, [call(ct("2026-11-10T10:00"), person=EMERGENCY)], to_contact(EMERGENCY),
                     [], id="one-of-two"),
        pytest.param(2, daily_calls([NA, NA], first="2026-11-10", person=EMERGENCY),
                     to_contact(EMERGENCY), [THIRD_PARTY_LIMIT], id="two-of-two"),
        pytest.param(3, [call(ct("2026-11-10T10:00"), Outcome.REFUSED, person=EMERGENCY)],
                     to_contact(EMERGENCY), [THIRD_PARTY_LIMIT], id="emergency-refused"),
        pytest.param(1, [call(ct("2026-11-10T10:00"), Outcome.REFUSED, person=GUARANTOR)],
                     to_contact(GUARANTOR), [THIRD_PARTY_LIMIT], id="guarantor-refused"),
        pytest.param(1, [call(ct("2026-11-10T10:00"), Outcome.REFUSED, person=GUARANTOR)],
                     to_contact(EMERGENCY), [], id="someone-else-refused"),
        # Guarantors are not limited to one call; their weekly cap is test_call_cap's.
        pytest.param(1, daily_calls([NA] * 3, first="2026-11-10", person=GUARANTOR),
                     to_contact(GUARANTOR), [], id="guarantor-called-before"),
        pytest.param(1, [], to_contact(EMERGENCY, SMS), [THIRD_PARTY_LIMIT],
                     id="sms-to-emergency"),
        pytest.param(1, [], to_contact(GUARANTOR, SMS), [THIRD_PARTY_LIMIT],
                     id="sms-to-guarantor"),
    ],
)
def test_third_parties(per_contact: int, history: list[PastAttempt], target: Target,
                       expected: list[str]) -> None:
    rules = limits(third_party_calls_per_contact=per_contact)
    # Third parties only restore contact: here every debtor number is known to be invalid.
    assert reasons(target_refusals(target, facts(history=history, invalid=_DEBTOR_NUMBERS),
                                   rules)) == expected


def _debtor_numbers() -> frozenset[str]:
    debtor = account().debtor
    return frozenset(p.number for p in debtor.phones) if debtor else frozenset()


_DEBTOR_NUMBERS = _debtor_numbers()


@pytest.mark.parametrize(("rules", "unreachable", "target", "expected"), [
    pytest.param(limits(), False, to_contact(EMERGENCY), [THIRD_PARTY_LIMIT],
                 id="debtor-reachable-emergency"),
    pytest.param(limits(), False, to_contact(GUARANTOR), [THIRD_PARTY_LIMIT],
                 id="debtor-reachable-guarantor"),
    pytest.param(limits(), True, to_contact(GUARANTOR), [], id="guarantor-when-unreachable"),
    pytest.param(limits(guarantors="never"), True, to_contact(GUARANTOR), [THIRD_PARTY_LIMIT],
                 id="guarantors-never"),
])
def test_third_parties_only_when_the_debtor_is_unreachable(
        rules: Limits, unreachable: bool, target: Target, expected: list[str]) -> None:
    invalid = _DEBTOR_NUMBERS if unreachable else frozenset()
    assert reasons(target_refusals(target, facts(invalid=invalid), rules)) == expected


# --- Every time-based refusal names the earliest instant its rule allows --------------------


@pytest.mark.parametrize(
    ("known", "target", "rules", "budget", "now", "reason"),
    [
        pytest.param(facts(), to_debtor(), limits(), LOOSE, ct("2026-12-10T07:00"),
                     QUIET_HOURS, id="quiet-hours"),
        pytest.param(facts(zones=(NEW_YORK, LOS_ANGELES)), to_debtor(), limits(), LOOSE,
                     utc("2026-12-10T15:00"), QUIET_HOURS, id="quiet-hours-two-zones"),
        pytest.param(facts(), to_debtor(), limits(), LOOSE, ct("2026-12-25T10:00"), HOLIDAY,
                     id="holiday"),
        pytest.param(facts(), to_debtor(), limits(contact_on_sundays=False), LOOSE,
                     ct("2026-12-06T10:00"), NO_CONTACT_DAY, id="sunday"),
        pytest.param(facts(history=[TALKED]), to_debtor(), limits(conversation_cooldown_days=7),
                     LOOSE, NOW - timedelta(days=2), POST_CONVERSATION, id="post-conversation"),
        pytest.param(facts(history=daily_calls([NA] * 7)), to_debtor(), limits(), LOOSE, NOW,
                     CALL_CAP_7D, id="call-cap"),
        pytest.param(facts(history=daily_calls([NA] * 2, person=GUARANTOR)),
                     to_contact(GUARANTOR), limits(), LOOSE, NOW, CALL_CAP_7D,
                     id="guarantor-call-cap"),
        pytest.param(facts(history=daily_texts(7)), to_debtor(SMS), limits(sms_per_7_days=7),
                     LOOSE, NOW, SMS_CAP_7D, id="sms-cap"),
        pytest.param(facts(history=MIXED), to_debtor(), limits(contacts_per_7_days=3), LOOSE,
                     NOW, CONTACT_CAP_7D, id="contact-cap"),
        pytest.param(facts(history=[call(ct("2026-12-10T08:30"), TALK)]), to_debtor(),
                     limits(conversations_per_day=1), LOOSE, NOW, CONVERSATION_CAP,
                     id="conversation-cap"),
        pytest.param(facts(history=[call(ct("2026-12-10T08:30"))]), to_debtor(),
                     limits(attempts_per_day=1), LOOSE, NOW, DAILY_CAP, id="daily-cap"),
        pytest.param(facts(history=[call(ct("2026-12-10T08:30"))]), to_debtor(),
                     limits(min_gap_minutes=240), LOOSE, NOW, MIN_GAP, id="min-gap"),
        pytest.param(facts(account(holds=[hold(HoldReason.DISPUTE, date(2026, 12, 12))])),
                     to_debtor(), limits(), LOOSE, NOW, "hold:dispute", id="hold-until"),
        pytest.param(facts(account(promised=promise(DUE))), to_debtor(), limits(), LOOSE, NOW,
                     PROMISE_PENDING, id="promise"),
    ],
)
def test_retry_at_is_the_earliest_allowed_instant(known: Facts, target: Target, rules: Limits,
                                                  budget: Budget, now: datetime,
                                                  reason: str) -> None:
    retry_at = retry_of(refusals(target, known, rules, budget, now), reason)
    assert retry_at is not None
    assert retry_at > now
    assert reason in reasons(refusals(target, known, rules, budget, retry_at - EPS))
    assert reason not in reasons(refusals(target, known, rules, budget, retry_at))


# --- Everything together --------------------------------------------------------------------


def test_a_lawful_attempt_has_no_refusals() -> None:
    known = facts(history=[call(ct("2026-12-09T10:00"))])
    assert refusals(to_debtor(), known, Limits(), Budget(1, 240), NOW) == []


def test_every_broken_rule_is_listed() -> None:
    state = account(phones=[phone(MOBILE, sms=False)], holds=[hold(HoldReason.ATTORNEY)])
    known = facts(state, history=daily_texts(7), opted_out=frozenset({(MOBILE, SMS)}))
    found = refusals(to_debtor(SMS), known, Limits(), Budget(1, 240), ct("2026-12-10T09:30"))
    assert reasons(found) == ["hold:attorney", OPTED_OUT, NO_CONSENT, SMS_CAP_7D, DAILY_CAP,
                              MIN_GAP]


# --- Counters for the audit record ----------------------------------------------------------

COUNTED = [
    call(ct("2026-12-03T09:00")),  # more than 7 days ago
    call(ct("2026-12-04T09:00")),
    call(ct("2026-12-06T09:00"), Outcome.BUSY),  # an attempt, not a call
    text(ct("2026-12-07T09:00")),
    call(ct("2026-12-09T23:30"), TALK),  # 12-10 in UTC
    text(ct("2026-12-10T08:00")),
    call(ct("2026-12-10T09:00"), None),  # in flight
    call(ct("2026-12-10T09:30"), person=EMERGENCY),
]


@pytest.mark.parametrize(
    ("target", "zone", "expected"),
    [
        pytest.param(to_debtor(), CHICAGO,
                     {"calls_7d": 3, "sms_7d": 2, "attempts_7d": 6, "attempts_today": 2},
                     id="debtor"),
        pytest.param(to_debtor(), None,
                     {"calls_7d": 3, "sms_7d": 2, "attempts_7d": 6, "attempts_today": 3},
                     id="debtor-utc-days"),
        pytest.param(to_contact(EMERGENCY), CHICAGO,
                     {"calls_7d": 1, "sms_7d": 0, "attempts_7d": 1, "attempts_today": 1},
                     id="emergency"),
        pytest.param(to_contact(GUARANTOR), CHICAGO,
                     {"calls_7d": 0, "sms_7d": 0, "attempts_7d": 0, "attempts_today": 0},
                     id="guarantor"),
    ],
)
def test_counters(target: Target, zone: str | None, expected: dict[str, int]) -> None:
    assert counters(target, COUNTED, zone, NOW) == expected


# Zones far from UTC either way, and one whose date once went back a day (Alaska, 1867).
FAR_ZONES = ("Pacific/Kiritimati", "Pacific/Pago_Pago", "America/Sitka", "Asia/Manila", CHICAGO,
             None)


@settings(max_examples=200, deadline=None, database=None, derandomize=True)
@given(st.lists(st.integers(-5 * 1440, 5 * 1440), max_size=8), st.sampled_from(FAR_ZONES),
       st.datetimes(min_value=datetime(1866, 1, 1), max_value=datetime(2040, 1, 1)))
# Sitka's 18 October 1867 lasted 48 hours: 47 hours earlier is still the same local date.
@example([-47 * 60, -20 * 60], "America/Sitka", datetime(1867, 10, 19, 9))
def test_today_counts_every_attempt_on_the_local_date_of_now(
        minutes: list[int], zone: str | None, moment: datetime) -> None:
    now = moment.replace(tzinfo=UTC)
    history = [call(now + timedelta(minutes=m)) for m in sorted(minutes)]
    local = ZoneInfo(zone) if zone else UTC
    today = [a for a in history if a.at.astimezone(local).date() == now.astimezone(local).date()]
    assert counters(to_debtor(), history, zone, now)["attempts_today"] == len(today)
    found = time_refusals(to_debtor(), facts(history=history, home_zone=zone),
                          limits(hours_start=time(0), hours_end=time(23, 59),
                                 attempts_per_day=1), LOOSE, now)
    assert (DAILY_CAP in reasons(found)) == bool(today)


def test_a_guarantor_never_gets_more_calls_than_the_general_cap() -> None:
    history = daily_calls([NA, NA], first="2026-12-08", person=GUARANTOR)
    rules = limits(calls_per_7_days=1, guarantor_calls_per_7_days=5)
    found = time_refusals(to_contact(GUARANTOR), facts(history=history), rules, LOOSE,
                          ct("2026-12-10T12:00"))
    assert CALL_CAP_7D in reasons(found)


@pytest.mark.parametrize(("number", "now", "expected"), [
    # A Los Angeles contact of a Chicago debtor: 08:30 in Chicago is 06:30 where they live.
    pytest.param("+14155550123", ct("2026-12-10T08:30"), [QUIET_HOURS], id="contact-asleep"),
    pytest.param("+14155550123", ct("2026-12-10T10:30"), [], id="contact-awake"),
    pytest.param("+13125550123", ct("2026-12-10T08:30"), [], id="contact-same-zone"),
])
def test_a_third_party_call_respects_the_hours_where_the_contact_lives(
        number: str, now: datetime, expected: list[str]) -> None:
    target = Target(Role.EMERGENCY, EMERGENCY, number, None, CALL)
    found = time_refusals(target, facts(), limits(), LOOSE, now)
    assert [r for r in reasons(found) if r == QUIET_HOURS] == expected
