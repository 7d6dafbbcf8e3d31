"""The sandbox's simulated people: answering by probability, windows on some weekdays only."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from channels.availability import MAX_SEED, AnswerProbability, uniform_draw
from channels.sandbox import OutcomeScript, SandboxChannel, load_outcome_script
from dispatcher.domain.contact import Delivery, Medium, Outcome
from tests.unit.test_sandbox import problems_of

ROOT = Path(__file__).resolve().parents[2]
DANA = "+15125550100"
GAIL = "+15125550199"
CHICAGO = "America/Chicago"
MONDAY = datetime(2026, 12, 7, tzinfo=UTC)  # a Monday; Chicago is on CST (UTC-6) all month
DAY = timedelta(days=1)
# The example of docs/simulate.md.
EVENINGS: dict[str, Any] = {"by_hour": {"08": 0.05, "12": 0.3, "18": 0.6, "20": 0.4},
                            "by_weekday": {"sat": 0.5, "sun": 0.2},
                            "otherwise": "no-answer", "seed": 7}


def chicago(day: datetime, hour: int, minute: int = 0) -> datetime:
    """`day` (a UTC midnight) at `hour`:`minute` on Chicago's wall clock, in UTC."""
    return day + timedelta(hours=hour + 6, minutes=minute)


def delivery(at: datetime, attempt_id: str, to: str = DANA, medium: Medium = Medium.CALL,
             zone: str = CHICAGO) -> Delivery:
    return Delivery(attempt_id=attempt_id, medium=medium, to=to, body="Please call us.",
                    template="first_notice", local_zone=zone, at=at)


def many(at: datetime, n: int = 2000, to: str = DANA, zone: str = CHICAGO) -> list[Delivery]:
    """`n` calls at about `at` (one a minute from it), each its own attempt."""
    return [delivery(at + timedelta(minutes=i % 60), f"at-{i:06d}", to, zone=zone)
            for i in range(n)]


def write(folder: Path, data: object, name: str = "outcomes.json") -> Path:
    path = folder / name
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path


def script_of(folder: Path, data: object, name: str = "outcomes.json") -> OutcomeScript:
    return load_outcome_script(write(folder, data, name))


def probable(model: object, medium: str = "call") -> dict[str, Any]:
    """A script whose debtor answers calls with the probabilities of `model`."""
    return {"numbers": {DANA: {medium: {"answer_probability": model}}}}


def answers(channel: SandboxChannel, deliveries: list[Delivery]) -> list[Outcome | None]:
    return [channel.answer(d).outcome for d in deliveries]


def rate(outcomes: list[Outcome | None]) -> float:
    return outcomes.count(Outcome.COMPLETED) / len(outcomes)


# --- answering by probability ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("by_hour", "hour", "expected"),
    [
        ({"12": 1}, 12, Outcome.COMPLETED),
        ({"12": 1}, 11, Outcome.NO_ANSWER),  # an hour not listed is never answered
        ({"12": 1}, 13, Outcome.NO_ANSWER),
        ({"12": 0}, 12, Outcome.NO_ANSWER),
        ({"default": 1, "12": 0}, 12, Outcome.NO_ANSWER),
        ({"default": 1, "12": 0}, 23, Outcome.COMPLETED),  # "default" covers the hours not listed
        ({"default": 1, "12": 0}, 0, Outcome.COMPLETED),
        ([0.0] * 12 + [1.0] + [0.0] * 11, 12, Outcome.COMPLETED),  # a list: hour 00 first
        ([0.0] * 12 + [1.0] + [0.0] * 11, 13, Outcome.NO_ANSWER),
        ([1] * 23 + [0], 23, Outcome.NO_ANSWER),
        ([1] * 23 + [0], 22, Outcome.COMPLETED),
    ],
)
def test_certain_hours_are_always_or_never_answered(tmp_path: Path, by_hour: object, hour: int,
                                                    expected: Outcome) -> None:
    channel = SandboxChannel(script_of(tmp_path, probable({"by_hour": by_hour})))
    assert set(answers(channel, many(chicago(MONDAY, hour), 200))) == {expected}


def test_an_unanswered_call_gets_otherwise(tmp_path: Path) -> None:
    script = script_of(tmp_path, probable({"by_hour": {"18": 0.5}, "otherwise": "machine"}))
    outcomes = answers(SandboxChannel(script), many(chicago(MONDAY, 18), 400))
    assert set(outcomes) == {Outcome.COMPLETED, Outcome.MACHINE}


@pytest.mark.parametrize(("hour", "chance"), list(EVENINGS["by_hour"].items()))
def test_the_answer_rate_at_an_hour_is_its_probability(tmp_path: Path, hour: str,
                                                       chance: float) -> None:
    model = {**EVENINGS, "by_weekday": {}}
    channel = SandboxChannel(script_of(tmp_path, probable(model)))
    observed = rate(answers(channel, many(chicago(MONDAY, int(hour)))))
    # 2000 draws: one standard deviation is at most 0.011; the bound is over four of them.
    assert abs(observed - chance) < 0.045, (hour, observed)


@pytest.mark.parametrize(
    ("day", "chance"),
    [(MONDAY, 0.6), (MONDAY + 3 * DAY, 0.6),  # a day not listed multiplies by 1
     (MONDAY + 5 * DAY, 0.6 * 0.5), (MONDAY + 6 * DAY, 0.6 * 0.2)],  # Saturday, Sunday
)
def test_weekday_multipliers_scale_the_hour(tmp_path: Path, day: datetime,
                                            chance: float) -> None:
    channel = SandboxChannel(script_of(tmp_path, probable(EVENINGS)))
    observed = rate(answers(channel, many(chicago(day, 18))))
    assert abs(observed - chance) < 0.045, (day, observed)


def test_hour_and_weekday_are_the_debtors_own(tmp_path: Path) -> None:
    model = {"by_hour": {"18": 1}, "by_weekday": {"sun": 0}}
    channel = SandboxChannel(script_of(tmp_path, probable(model)))
    saturday_evening = chicago(MONDAY - 2 * DAY, 18, 30)  # Sunday 00:30 in UTC
    # 18:30 on Saturday in Chicago, 19:30 in New York, 16:30 in Los Angeles.
    assert answers(channel, [delivery(saturday_evening, "a-1", zone=zone) for zone in
                             (CHICAGO, "America/New_York", "America/Los_Angeles")]) == [
        Outcome.COMPLETED, Outcome.NO_ANSWER, Outcome.NO_ANSWER]
    sunday_evening = saturday_evening + DAY
    assert set(answers(channel, many(sunday_evening, 100))) == {Outcome.NO_ANSWER}


def test_a_whole_population_can_share_the_model(tmp_path: Path) -> None:
    script = script_of(tmp_path, {"default": {"call": {"answer_probability": EVENINGS}},
                                  "numbers": {GAIL: {"call": "busy"}}})
    channel = SandboxChannel(script)
    at = chicago(MONDAY, 12, 15)
    crowd = [delivery(at, "at-same", f"+1312555{n:04d}") for n in range(2000)]
    assert abs(rate(answers(channel, crowd)) - 0.3) < 0.045  # each number draws its own
    assert answers(channel, [delivery(at, "at-g", GAIL)]) == [Outcome.BUSY]


def test_texts_are_not_affected_by_a_call_model(tmp_path: Path) -> None:
    channel = SandboxChannel(script_of(tmp_path, probable({"by_hour": {"default": 1}})))
    texts = [delivery(chicago(MONDAY, 12), f"at-{i}", medium=Medium.SMS) for i in range(5)]
    assert answers(channel, texts) == [Outcome.DELIVERED] * 5


# --- the draw is reproducible ------------------------------------------------------------------


def week_of_calls() -> list[Delivery]:
    return [delivery(chicago(MONDAY + d * DAY, hour, 7 * d), f"at-{d}-{hour}", to)
            for d in range(7) for hour in range(8, 21) for to in (DANA, GAIL)]


def test_two_fresh_channels_answer_alike(tmp_path: Path) -> None:
    first = SandboxChannel(script_of(tmp_path, probable(EVENINGS), "one.json"))
    second = SandboxChannel(script_of(tmp_path, probable(EVENINGS), "two.json"))
    calls = week_of_calls()
    assert [first.answer(d) for d in calls] == [second.answer(d) for d in calls]
    # The order of the calls does not matter either: each draw depends on its own call only.
    again = SandboxChannel(script_of(tmp_path, probable(EVENINGS), "three.json"))
    assert [again.answer(d) for d in reversed(calls)] == [first.answer(d) for d in reversed(calls)]


def test_different_seeds_answer_differently(tmp_path: Path) -> None:
    calls = many(chicago(MONDAY, 18), 300)
    runs = [answers(SandboxChannel(script_of(tmp_path, probable({**EVENINGS, "seed": seed}))),
                    calls) for seed in (7, 8, 0)]
    assert runs[0] != runs[1]
    assert runs[0] != runs[2]
    assert runs[1] != runs[2]
    assert all(abs(rate(run) - 0.6) < 0.1 for run in runs)


def test_the_draw_depends_on_seed_attempt_and_number() -> None:
    base = uniform_draw(7, "at-1", DANA)
    assert 0 <= base < 1
    assert base == uniform_draw(7, "at-1", DANA)
    assert base not in {uniform_draw(8, "at-1", DANA), uniform_draw(7, "at-2", DANA),
                        uniform_draw(7, "at-1", GAIL), uniform_draw(0, "at-1", DANA)}
    # Joining the parts without a separator would make these two the same.
    assert uniform_draw(7, "at-1", "2" + DANA) != uniform_draw(7, "at-12", DANA)


_OTHER_PROCESS = """
import json, sys
from channels.availability import uniform_draw
print(json.dumps([uniform_draw(seed, f"at-{n}", "+15125550100")
                  for seed in (0, 7, 2**53) for n in range(50)]))
"""


def test_the_draw_is_the_same_in_every_process() -> None:
    mine = [uniform_draw(seed, f"at-{n}", DANA) for seed in (0, 7, 2**53) for n in range(50)]
    for hash_seed in ("1", "2"):  # str hashes differ between these; the draw must not
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        done = subprocess.run([sys.executable, "-c", _OTHER_PROCESS], cwd=ROOT, env=env,
                              capture_output=True, text=True, check=True, timeout=60)
        assert json.loads(done.stdout) == mine


def test_the_model_refuses_a_naive_time_and_wrong_lengths() -> None:
    model = AnswerProbability((1.0,) * 24)
    with pytest.raises(ValueError, match="timezone-aware"):
        model.outcome_for(delivery(datetime(2026, 12, 7, 18), "at-1"))
    with pytest.raises(ValueError, match="24 probabilities"):
        AnswerProbability((1.0,) * 23)
    with pytest.raises(ValueError, match="7 multipliers"):
        AnswerProbability((1.0,) * 24, (1.0,) * 6)


# --- a window on some weekdays only ------------------------------------------------------------


@pytest.mark.parametrize(
    ("window", "days", "at", "expected"),
    [
        (["18:00", "20:00"], ["mon", "fri"], chicago(MONDAY, 18, 30), Outcome.COMPLETED),
        (["18:00", "20:00"], ["mon", "fri"], chicago(MONDAY + DAY, 18, 30), Outcome.NO_ANSWER),
        (["18:00", "20:00"], ["mon", "fri"], chicago(MONDAY + 4 * DAY, 19), Outcome.COMPLETED),
        (["18:00", "20:00"], ["mon", "fri"], chicago(MONDAY + 4 * DAY, 20), Outcome.NO_ANSWER),
        # 18:30 Monday in Chicago is already Tuesday in UTC: the day is the debtor's.
        (["18:00", "20:00"], ["tue"], chicago(MONDAY, 18, 30), Outcome.NO_ANSWER),
        # A window across midnight belongs to the day it opens.
        (["22:00", "06:00"], ["fri"], chicago(MONDAY + 4 * DAY, 23), Outcome.COMPLETED),
        (["22:00", "06:00"], ["fri"], chicago(MONDAY + 5 * DAY, 1), Outcome.COMPLETED),
        (["22:00", "06:00"], ["fri"], chicago(MONDAY + 5 * DAY, 23), Outcome.NO_ANSWER),
        (["22:00", "06:00"], ["fri"], chicago(MONDAY + 4 * DAY, 1), Outcome.NO_ANSWER),
        (["22:00", "06:00"], ["fri"], chicago(MONDAY + 4 * DAY, 12), Outcome.NO_ANSWER),
    ],
)
def test_a_window_may_open_on_some_weekdays_only(tmp_path: Path, window: list[str],
                                                 days: list[str], at: datetime,
                                                 expected: Outcome) -> None:
    data = {"numbers": {DANA: {"call": {"answers_between": window, "days": days}}}}
    channel = SandboxChannel(script_of(tmp_path, data))
    assert answers(channel, [delivery(at, "at-1")]) == [expected]


def test_a_window_without_days_opens_every_day(tmp_path: Path) -> None:
    data = {"numbers": {DANA: {"call": {"answers_between": ["18:00", "20:00"]}}}}
    channel = SandboxChannel(script_of(tmp_path, data))
    week = [delivery(chicago(MONDAY + d * DAY, 19), f"at-{d}") for d in range(7)]
    assert answers(channel, week) == [Outcome.COMPLETED] * 7


# --- invalid models ----------------------------------------------------------------------------




MODEL = f"numbers.{DANA}.call.answer_probability"
HOURS = f"{MODEL}.by_hour"


def hours(by_hour: object) -> dict[str, Any]:
    return probable({"by_hour": by_hour})


def with_(**changes: object) -> dict[str, Any]:
    return probable({"by_hour": {"18": 0.5}, **changes})


@pytest.mark.parametrize(
    ("data", "key", "reason"),
    [
        (probable(EVENINGS, "sms"), f"numbers.{DANA}.sms", "for calls only"),
        ({"default": {"sms": {"answer_probability": EVENINGS}}}, "default.sms",
         "for calls only"),
        ({"default": {"call": {"answer_probability": {"by_hour": {"18": 2}}}}},
         "default.call.answer_probability.by_hour.18", "is not a probability"),
        (probable(0.5), MODEL, 'expected an object with "by_hour"'),
        (probable(None), MODEL, 'expected an object with "by_hour"'),
        (probable({}), f"{MODEL}.by_hour", "missing"),
        (probable({"by_weekday": {"sat": 0.5}}), f"{MODEL}.by_hour", "missing"),
        (with_(zone=CHICAGO), f"{MODEL}.zone", "unknown key"),
        ({"numbers": {DANA: {"call": {"answer_probability": {"by_hour": {"18": 1}},
                                      "otherwise": "busy"}}}},
         f"numbers.{DANA}.call.otherwise", "not allowed beside answer_probability"),
        ({"numbers": {DANA: {"call": {"answer_probability": {"by_hour": {"18": 1}},
                                      "answers_between": ["18:00", "20:00"]}}}},
         f"numbers.{DANA}.call.answers_between", "not allowed beside answer_probability"),
        ({"numbers": {DANA: {"call": {"answer_probabilty": {"by_hour": {"18": 1}}}}}},
         f"numbers.{DANA}.call.answer_probabilty", "unknown key"),
        # hours
        (hours({"24": 0.5}), f"{HOURS}.24", 'not an hour (expected two digits, "00" to "23"'),
        (hours({"8": 0.5}), f"{HOURS}.8", "not an hour"),
        (hours({"ab": 0.5}), f"{HOURS}.ab", "not an hour"),
        (hours({"": 0.5}), f"{HOURS}.", "not an hour"),
        (hours({"-1": 0.5}), f"{HOURS}.-1", "not an hour"),
        (hours({"08:00": 0.5}), f"{HOURS}.08:00", "not an hour"),
        (hours({"\u0660\u0668": 0.5}), f"{HOURS}.\u0660\u0668", "not an hour"),  # Arabic-Indic
        (hours({"Default": 0.5}), f"{HOURS}.Default", "not an hour"),
        (hours({}), HOURS, "empty"),
        (hours("18"), HOURS, 'expected an object keyed by hour "00" to "23"'),
        (hours(0.5), HOURS, "or a list of 24 probabilities"),
        (hours([0.5] * 23), HOURS, "a list needs 24 probabilities, hour 00 first"),
        (hours([0.5] * 25), HOURS, "(this one has 25)"),
        (hours([]), HOURS, "a list needs 24 probabilities"),
        (hours([0.5] * 3 + [True] + [0.5] * 20), f"{HOURS}[3]", "true is not a number"),
        (hours([0.5] * 23 + [1.01]), f"{HOURS}[23]", "1.01 is not a probability"),
        # probabilities
        (hours({"18": 1.5}), f"{HOURS}.18", "1.5 is not a probability (expected a number "
                                            "from 0 to 1)"),
        (hours({"18": -0.1}), f"{HOURS}.18", "is not a probability"),
        (hours({"18": -0.0001}), f"{HOURS}.18", "is not a probability"),
        (hours({"18": 2}), f"{HOURS}.18", "2 is not a probability"),
        (hours({"18": 10**400}), f"{HOURS}.18", "is not a probability"),
        (hours({"18": math.nan}), f"{HOURS}.18", "NaN is not a probability"),
        (hours({"18": math.inf}), f"{HOURS}.18", "Infinity is not a probability"),
        (hours({"18": -math.inf}), f"{HOURS}.18", "is not a probability"),
        (hours({"18": "0.5"}), f"{HOURS}.18", '"0.5" is not a number'),
        (hours({"18": True}), f"{HOURS}.18", "true is not a number"),
        (hours({"18": False}), f"{HOURS}.18", "false is not a number"),
        (hours({"18": None}), f"{HOURS}.18", "null is not a number"),
        (hours({"18": [0.5]}), f"{HOURS}.18", "is not a number"),
        (hours({"18": {"p": 0.5}}), f"{HOURS}.18", "is not a number"),
        (hours({"default": 1.5}), f"{HOURS}.default", "is not a probability"),
        (hours({"default": "all"}), f"{HOURS}.default", "is not a number"),
        # weekdays
        (with_(by_weekday={"saturday": 0.5}), f"{MODEL}.by_weekday.saturday", "not a weekday"),
        (with_(by_weekday={"Sat": 0.5}), f"{MODEL}.by_weekday.Sat", "not a weekday"),
        (with_(by_weekday={"7": 0.5}), f"{MODEL}.by_weekday.7",
         "expected one of: mon, tue, wed, thu, fri, sat, sun"),
        (with_(by_weekday={"sat": 1.5}), f"{MODEL}.by_weekday.sat", "is not a probability"),
        (with_(by_weekday={"sat": math.nan}), f"{MODEL}.by_weekday.sat", "is not a probability"),
        (with_(by_weekday={"sat": True}), f"{MODEL}.by_weekday.sat", "is not a number"),
        (with_(by_weekday=[1] * 7), f"{MODEL}.by_weekday", "expected an object keyed by weekday"),
        (with_(by_weekday=None), f"{MODEL}.by_weekday", "expected an object keyed by weekday"),
        # otherwise and seed
        (with_(otherwise="delivered"), f"{MODEL}.otherwise", '"delivered" is not an allowed call'),
        (with_(otherwise=None), f"{MODEL}.otherwise", "null is not an allowed call status"),
        (with_(seed="7"), f"{MODEL}.seed", '"7" is not a seed (expected a whole number from 0 to'),
        (with_(seed=7.5), f"{MODEL}.seed", "is not a seed"),
        (with_(seed=7.0), f"{MODEL}.seed", "is not a seed"),
        (with_(seed=-1), f"{MODEL}.seed", "is not a seed"),
        (with_(seed=True), f"{MODEL}.seed", "true is not a seed"),
        (with_(seed=None), f"{MODEL}.seed", "is not a seed"),
        (with_(seed=MAX_SEED + 1), f"{MODEL}.seed", "is not a seed"),
        (with_(seed=math.nan), f"{MODEL}.seed", "is not a seed"),
        # the days of a window
        ({"numbers": {DANA: {"call": {"answers_between": ["18:00", "20:00"], "days": "mon"}}}},
         f"numbers.{DANA}.call.days", "expected a non-empty list of weekdays"),
        ({"numbers": {DANA: {"call": {"answers_between": ["18:00", "20:00"], "days": []}}}},
         f"numbers.{DANA}.call.days", "expected a non-empty list of weekdays"),
        ({"numbers": {DANA: {"call": {"answers_between": ["18:00", "20:00"],
                                      "days": ["mon", "monday"]}}}},
         f"numbers.{DANA}.call.days[1]", '"monday" is not a weekday'),
        ({"numbers": {DANA: {"call": {"answers_between": ["18:00", "20:00"], "days": [0]}}}},
         f"numbers.{DANA}.call.days[0]", "0 is not a weekday"),
        ({"numbers": {DANA: {"call": {"answers_between": ["18:00", "20:00"],
                                      "days": ["fri", "sat", "fri"]}}}},
         f"numbers.{DANA}.call.days[2]", '"fri" is listed twice'),
        ({"numbers": {DANA: {"call": {"days": ["fri"]}}}},
         f"numbers.{DANA}.call.answers_between", "missing"),
    ],
)
def test_each_problem_of_a_model_is_named_by_key_and_reason(tmp_path: Path, data: object,
                                                            key: str, reason: str) -> None:
    problems = problems_of(write(tmp_path, data))
    assert any(k == key and reason in r for k, r in problems), problems


def test_every_problem_of_a_model_is_reported_at_once(tmp_path: Path) -> None:
    data = probable({"by_hour": {"08": 0.1, "24": 0.5, "12": 1.5, "default": "x"},
                     "by_weekday": {"sat": -1, "sunday": 0.5},
                     "otherwise": "delivered", "seed": -3, "salt": 1})
    assert [k for k, _ in problems_of(write(tmp_path, data))] == [
        f"{MODEL}.salt",
        f"{HOURS}.default",
        f"{HOURS}.24",
        f"{HOURS}.12",
        f"{MODEL}.by_weekday.sat",
        f"{MODEL}.by_weekday.sunday",
        f"{MODEL}.otherwise",
        f"{MODEL}.seed",
    ]


def test_the_docs_example_loads(tmp_path: Path) -> None:
    model = script_of(tmp_path, probable(EVENINGS)).rule_for(DANA, Medium.CALL)
    assert isinstance(model, AnswerProbability)
    assert model.by_hour[8] == 0.05
    assert model.by_hour[18] == 0.6
    assert model.by_hour[9] == 0.0
    assert model.by_weekday == (1.0, 1.0, 1.0, 1.0, 1.0, 0.5, 0.2)
    assert (model.otherwise, model.seed) == (Outcome.NO_ANSWER, 7)
    assert model.probability_at(datetime(2026, 12, 12, 18, 59)) == pytest.approx(0.3)  # Sat
