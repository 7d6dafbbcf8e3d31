"""The planner's search of the lawful day: misses count against their neighbourhood, answers
and the learned model draw the next attempt, zones that overlap briefly are planned inside the
overlap, and zones that never overlap say so."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from dispatcher.compliance.gate import Facts
from dispatcher.compliance.policy import Limits
from dispatcher.compliance.quiet_hours import AMBIGUOUS
from dispatcher.config.settings import load_config
from dispatcher.domain.accounts import AccountState, AccountStatus
from dispatcher.domain.contact import Medium, Outcome, PastAttempt, Role
from dispatcher.domain.events import Debtor, Phone
from schedules.answer_model import AnswerModel, hour_of_week
from schedules.model import Schedule
from schedules.planner import NoAttempt, PlannedAttempt, plan_next

CONFIG = Path(__file__).resolve().parents[2] / "config" / "dispatcher.toml"
CHICAGO = "America/Chicago"
NUMBER = "+13125550100"


@pytest.fixture(scope="module")
def schedule() -> Schedule:
    return load_config(CONFIG, {}).schedule


def _facts(history: tuple[PastAttempt, ...] = (), *, zone: str = CHICAGO,
           number: str = NUMBER, zones: tuple[str, ...] | None = None,
           as_of: datetime | None = None, account: str = "A-1") -> Facts:
    debtor = Debtor(name="Pat Doe", timezone=zone,
                    phones=[Phone(number=number, type="mobile", sms_consent=True,
                                  call_consent=True)])
    state = AccountState(account_id=account, status=AccountStatus.OPEN, debtor=debtor,
                         days_past_due=25,
                         days_past_due_as_of=as_of or datetime(2026, 12, 1, tzinfo=UTC),
                         amount_due="100.00", currency="USD")
    return Facts(state=state, zones=zones or (zone,), home_zone=zone, holiday_region=None,
                 history=history)


def _call(at: datetime, outcome: Outcome, n: int) -> PastAttempt:
    return PastAttempt(f"at-{n}", at.astimezone(UTC), "debtor", Role.DEBTOR, NUMBER, Medium.CALL,
                       "morning", "late", outcome)


def _local(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 12, day, hour, minute, tzinfo=ZoneInfo(CHICAGO))


def _minutes(plan: PlannedAttempt) -> int:
    local = plan.at.astimezone(ZoneInfo(CHICAGO))
    return local.hour * 60 + local.minute


@pytest.mark.parametrize("account", ["A-1", "A-2", "A-3", "B-7", "Z-99"])
def test_unanswered_calls_tile_the_lawful_day(schedule: Schedule, account: str) -> None:
    # One call a day, every one unanswered: the planner must spread the tries over the day, not
    # circle a few windows, so a debtor answering in any two hours of it is found.
    history: list[PastAttempt] = []
    now = _local(7, 5)  # Monday
    placed: list[int] = []
    for n in range(7):
        plan = plan_next(_facts(tuple(history), account=account), schedule, Limits(), now)
        assert isinstance(plan, PlannedAttempt), plan
        minute = _minutes(plan)
        if n < 6:
            assert all(abs(minute - earlier) >= 90 for earlier in placed), (minute, placed)
        placed.append(minute)
        history.append(_call(plan.at, Outcome.NO_ANSWER, n))
        now = plan.at + timedelta(minutes=5)
    assert all(8 * 60 <= m < 21 * 60 for m in placed)
    # Every two-hour stretch starting 08:00-19:00 holds a call.
    uncovered = [start for start in range(8 * 60, 19 * 60 + 1)
                 if not any(start <= m < start + 120 for m in placed)]
    assert not uncovered, (placed, uncovered[:3])


def test_every_lawful_slot_of_today_is_considered_before_tomorrow(schedule: Schedule) -> None:
    # Missed at 09:00 today with the daily count still open: the same day's afternoon, not
    # tomorrow's morning.
    limits = Limits(attempts_per_day=2, calls_per_day=2)
    history = (_call(_local(7, 9), Outcome.NO_ANSWER, 0),)
    plan = plan_next(_facts(history), schedule, limits, _local(7, 9, 5))
    assert isinstance(plan, PlannedAttempt), plan
    local = plan.at.astimezone(ZoneInfo(CHICAGO))
    assert local.day == 7
    assert local.hour * 60 + local.minute >= 13 * 60  # the 4-hour gap on the number


def test_a_conversation_makes_its_time_of_day_preferred(schedule: Schedule) -> None:
    history = (_call(_local(1, 18, 30), Outcome.COMPLETED, 0),
               _call(_local(2, 9), Outcome.NO_ANSWER, 1))
    # After the 7-day cool-down the next call goes back near the time that answered.
    plan = plan_next(_facts(history), schedule, Limits(), _local(9, 5))
    assert isinstance(plan, PlannedAttempt), plan
    assert abs(_minutes(plan) - (18 * 60 + 30)) <= 60


def test_a_debtor_resting_after_a_conversation_is_planned_when_the_rest_ends(
        schedule: Schedule) -> None:
    # Planned again the next morning (as at each refresh of the answer model): the first slot
    # tried is refused until the rest ends, which rules out the whole day and the days up to it.
    history = (_call(_local(1, 18, 30), Outcome.COMPLETED, 0),)
    plan = plan_next(_facts(history), schedule, Limits(), _local(2, 5))
    assert isinstance(plan, PlannedAttempt), plan
    assert plan.at.astimezone(ZoneInfo(CHICAGO)).date() == date(2026, 12, 8)
    assert abs(_minutes(plan) - (18 * 60 + 30)) <= 60


def test_the_learned_model_draws_a_new_debtor_to_the_hours_people_answer(
        schedule: Schedule) -> None:
    monday = 0
    counts = {hour_of_week(day, hour): (400, 300 if hour == 19 else 20)
              for day in range(7) for hour in range(8, 21)}
    model = AnswerModel.learned(counts, datetime(2026, 11, 1, tzinfo=UTC),
                                datetime(2026, 12, 7, 6, tzinfo=UTC))
    assert model.rate(monday, 19) > 0.6
    plan = plan_next(_facts(), schedule, Limits(), _local(7, 5), model)
    assert isinstance(plan, PlannedAttempt), plan
    assert plan.at.astimezone(ZoneInfo(CHICAGO)).hour == 19
    assert plan.estimate is not None
    assert plan.estimate > 0.6
    assert "Mon 19h" in plan.basis
    assert "300 answered of 400 calls" in plan.basis
    # Without the model the same debtor is planned elsewhere: the model decided.
    prior = plan_next(_facts(), schedule, Limits(), _local(7, 5))
    assert isinstance(prior, PlannedAttempt)
    assert prior.estimate == pytest.approx(0.25)


def test_new_debtors_are_spread_over_the_day_not_all_called_at_one_time(
        schedule: Schedule) -> None:
    hours = {plan.at.astimezone(ZoneInfo(CHICAGO)).hour
             for n in range(40)
             if isinstance(plan := plan_next(_facts(account=f"A-{n}"), schedule, Limits(),
                                             _local(7, 5)), PlannedAttempt)}
    assert len(hours) >= 5


def test_zones_that_never_overlap_are_refused_as_ambiguous_at_once(schedule: Schedule) -> None:
    # Shanghai and New York share 00:00-02:00 UTC in December; London is asleep then.
    now = datetime(2026, 12, 7, 1, tzinfo=UTC)
    facts = _facts(zone="Asia/Shanghai", number="+12125550187",
                   zones=("Asia/Shanghai", "America/New_York", "Europe/London"), as_of=now)
    plan = plan_next(facts, schedule, Limits(), now)
    assert isinstance(plan, NoAttempt), plan
    assert [r.reason for r in plan.reasons] == [AMBIGUOUS]
    assert "never overlap" in plan.reasons[0].detail


@pytest.mark.parametrize("now", [datetime(2026, 12, 7, 3, tzinfo=UTC),  # after the overlap
                                 datetime(2026, 6, 8, 1, 30, tzinfo=UTC)])
def test_zones_that_overlap_briefly_are_planned_inside_the_overlap(schedule: Schedule,
                                                                   now: datetime) -> None:
    # A Shanghai debtor with a New York number: 08:00-21:00 in both is two hours a day in
    # December (Shanghai 08:00-10:00), and two separate hours in June (New York keeps summer
    # time: Shanghai 08:00-09:00 and 20:00-21:00).
    facts = _facts(zone="Asia/Shanghai", number="+12125550187",
                   zones=("Asia/Shanghai", "America/New_York"), as_of=now)
    plan = plan_next(facts, schedule, Limits(), now)
    assert isinstance(plan, PlannedAttempt), plan
    assert plan.at - now < timedelta(days=1), plan
    for zone in ("Asia/Shanghai", "America/New_York"):
        local = plan.at.astimezone(ZoneInfo(zone))
        assert 8 <= local.hour < 21, (zone, local)
