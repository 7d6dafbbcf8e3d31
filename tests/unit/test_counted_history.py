"""A history `counted` once for many instants: the gate answers exactly as from the whole history.

The planner asks `time_refusals` at many slots of one plan, passing the person's history
`counted` from the plan's start; every answer must equal the one counted from the whole
history, across local midnights, the 7-day window's edges and DST days, in any order.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from dispatcher.compliance.gate import (
    Budget,
    Facts,
    counted_history,
    counters,
    local_day,
    local_midnight,
    time_refusals,
)
from dispatcher.compliance.policy import Limits
from dispatcher.domain.accounts import AccountState, AccountStatus
from dispatcher.domain.contact import Medium, Outcome, PastAttempt, Role, Target
from dispatcher.domain.events import Debtor, Phone

MOBILE, HOME = "+13125550100", "+13125550101"
# Days on which clocks change in the zones below (and one on which none does).
DST_DAYS = [datetime(2026, 3, 8, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC),
            datetime(2026, 3, 29, tzinfo=UTC), datetime(2026, 10, 25, tzinfo=UTC),
            datetime(2026, 4, 5, tzinfo=UTC), datetime(2026, 12, 10, tzinfo=UTC)]
ZONES = ["America/Chicago", "Europe/London", "Australia/Lord_Howe", "Pacific/Chatham",
         "Pacific/Kiritimati", "Pacific/Pago_Pago", None]


def _account() -> AccountState:
    phones = [Phone(number=MOBILE, type="mobile", sms_consent=True, call_consent=True),
              Phone(number=HOME, type="home", sms_consent=True, call_consent=True)]
    return AccountState(account_id="A-1", status=AccountStatus.OPEN,
                        debtor=Debtor(name="Dana Debtor", timezone="America/Chicago",
                                      region="US-IL", phones=phones))


ACCOUNT = _account()


@st.composite
def _attempt(draw: st.DrawFn, around: datetime) -> PastAttempt:
    at = around + timedelta(minutes=draw(st.integers(-16 * 24 * 60, 24 * 60)))
    medium = draw(st.sampled_from([Medium.CALL, Medium.SMS]))
    outcome = draw(st.sampled_from([None, *Outcome]))
    number = draw(st.sampled_from([MOBILE, HOME]))
    return PastAttempt(f"at-{at.isoformat()}-{number}", at, "debtor", Role.DEBTOR, number,
                       medium, "morning", "early", outcome)


@st.composite
def _case(draw: st.DrawFn) -> tuple[Facts, Limits, datetime, list[datetime], list[PastAttempt]]:
    around = draw(st.sampled_from(DST_DAYS))
    zone = draw(st.sampled_from(ZONES))
    mine = draw(st.lists(_attempt(around), max_size=30))
    if draw(st.booleans()):
        mine.sort(key=lambda a: a.at)  # the store's order; the rest are in any order
    since = around + timedelta(minutes=draw(st.integers(-2 * 24 * 60, 2 * 24 * 60)))
    later = draw(st.lists(st.integers(0, 12 * 24 * 60), min_size=1, max_size=6))
    instants = [since + timedelta(minutes=m) for m in later]
    limits = Limits.model_validate({
        "attempts_per_day": draw(st.integers(1, 3)), "calls_per_day": draw(st.integers(1, 3)),
        "sms_per_day": draw(st.integers(1, 3)), "calls_per_7_days": draw(st.integers(0, 7)),
        "sms_per_7_days": draw(st.integers(0, 7)), "contacts_per_7_days": draw(st.integers(0, 14)),
        "conversation_cooldown_days": draw(st.integers(0, 3)),
        "conversations_per_day": draw(st.integers(1, 3)),
        "min_gap_minutes": draw(st.sampled_from([0, 60, 240])),
        "contact_on_holidays": True, "contact_on_sundays": True})
    facts = Facts(state=ACCOUNT, zones=(zone,) if zone else (), home_zone=zone,
                  holiday_region=None, history=tuple(mine))
    return facts, limits, since, instants, mine


@settings(max_examples=400, deadline=None)
@given(_case(), st.sampled_from([Medium.CALL, Medium.SMS]), st.sampled_from([MOBILE, HOME]),
       st.integers(1, 3))
def test_counted_history_answers_as_the_whole_history(
        case: tuple[Facts, Limits, datetime, list[datetime], list[PastAttempt]],
        medium: Medium, number: str, per_day: int) -> None:
    facts, limits, since, instants, mine = case
    target = Target(Role.DEBTOR, "debtor", number, "mobile", medium)
    budget = Budget(per_day, 240)
    history = counted_history(mine, since)
    for now in instants:
        assert (time_refusals(target, facts, limits, budget, now, history=history)
                == time_refusals(target, facts, limits, budget, now, mine=mine)
                == time_refusals(target, facts, limits, budget, now))


def test_counted_history_keeps_only_what_can_count_and_the_last_of_each() -> None:
    since = datetime(2026, 12, 10, 16, tzinfo=UTC)
    old_talk = PastAttempt("a1", since - timedelta(days=20), "debtor", Role.DEBTOR, HOME,
                           Medium.CALL, "morning", "early", Outcome.COMPLETED)
    week = PastAttempt("a2", since - timedelta(days=8), "debtor", Role.DEBTOR, MOBILE,
                       Medium.CALL, "morning", "early", Outcome.NO_ANSWER)
    history = counted_history([old_talk, week], since)
    assert history.recent == [week]
    assert history.last_conversation == old_talk
    assert history.last_on == {HOME: old_talk, MOBILE: week}


def test_an_instant_before_the_count_uses_the_whole_history() -> None:
    since = datetime(2026, 12, 10, 16, tzinfo=UTC)
    old = [PastAttempt(f"a{i}", since - timedelta(days=10, hours=i), "debtor", Role.DEBTOR,
                       MOBILE, Medium.CALL, "morning", "early", Outcome.NO_ANSWER)
           for i in range(3)]
    facts = Facts(state=ACCOUNT, zones=("America/Chicago",), home_zone="America/Chicago",
                  holiday_region=None, history=tuple(old))
    limits = Limits.model_validate({"calls_per_7_days": 3})
    target = Target(Role.DEBTOR, "debtor", MOBILE, "mobile", Medium.CALL)
    earlier = since - timedelta(days=5)
    assert (time_refusals(target, facts, limits, Budget(1, 240), earlier,
                          history=counted_history(old, since))
            == time_refusals(target, facts, limits, Budget(1, 240), earlier, mine=old))


@settings(max_examples=200, deadline=None)
@given(_case())
def test_counters_count_as_their_definition(
        case: tuple[Facts, Limits, datetime, list[datetime], list[PastAttempt]]) -> None:
    facts, _, _, instants, mine = case
    target = Target(Role.DEBTOR, "debtor", MOBILE, "mobile", Medium.CALL)
    for now in instants:
        zone = facts.home_zone
        today = local_day(now, zone)
        week = [a for a in mine if a.at >= local_midnight(today - timedelta(days=6), zone)
                or a.at > now - timedelta(days=7)]
        assert counters(target, mine, zone, now) == {
            "calls_7d": sum(1 for a in week if a.counts_as_call),
            "sms_7d": sum(1 for a in week if a.medium is Medium.SMS),
            "attempts_7d": len(week),
            "attempts_today": sum(1 for a in mine if local_day(a.at, zone) == today)}
