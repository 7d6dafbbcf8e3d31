"""The planner's shortcuts answer exactly as the plain definitions they stand for."""

from __future__ import annotations

import itertools
from dataclasses import fields, replace
from datetime import UTC, date, datetime, time, timedelta

from hypothesis import example, given, settings
from hypothesis import strategies as st

from dispatcher.compliance.gate import Facts, local_day
from dispatcher.compliance.policy import Limits
from dispatcher.domain.accounts import AccountState, AccountStatus
from dispatcher.domain.contact import Medium, Outcome, PastAttempt, Role, Target
from schedules.model import Stage
from schedules.planner import (
    _BOUND,
    PlannedAttempt,
    _best_first,
    _minute_of_day,
    _near,
    _person_calls,
    _room_for_two,
    _Specs,
    text_owed,
)
from schedules.slots import (
    CELLS,
    MOST_NUDGED,
    Slot,
    WindowSpec,
    _lattice_last,
    cell_of,
    personal_score,
)

AROUND = [datetime(2026, 3, 8, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC),
          datetime(2026, 4, 5, tzinfo=UTC), datetime(2026, 12, 10, tzinfo=UTC)]
ZONES = ["America/Chicago", "Australia/Lord_Howe", "Pacific/Kiritimati", "Pacific/Pago_Pago"]
PEOPLE = {"debtor": Role.DEBTOR, "C-E": Role.EMERGENCY}


@st.composite
def _history(draw: st.DrawFn, days: int = 5) -> list[PastAttempt]:
    around = draw(st.sampled_from(AROUND))
    attempts = []
    for n in range(draw(st.integers(0, 25))):
        at = around + timedelta(minutes=draw(st.integers(-days * 24 * 60, days * 24 * 60)))
        person = draw(st.sampled_from(sorted(PEOPLE)))
        attempts.append(PastAttempt(f"a{n}", at, person, PEOPLE[person], "+13125550100",
                                    draw(st.sampled_from([Medium.CALL, Medium.SMS])), None,
                                    None, draw(st.sampled_from([None, *Outcome]))))
    return attempts


@settings(max_examples=200, deadline=None)
@given(_history(), st.sampled_from(ZONES), st.sampled_from(sorted(PEOPLE)))
def test_person_calls_are_the_persons_attempts_and_call_minutes(
        history: list[PastAttempt], zone: str, person: str) -> None:
    mine = [a for a in history if a.person == person]
    talks = sorted(_minute_of_day(a.at, zone) for a in mine if a.is_conversation)
    misses = sorted(_minute_of_day(a.at, zone) for a in mine
                    if not a.is_conversation and a.unanswered)
    assert _person_calls(history, person, zone) == (mine, tuple(misses), tuple(talks))


def _stage(per_day: int) -> Stage:
    return Stage(name="s", days_past_due=(1, None), channels=(Medium.CALL, Medium.SMS),
                 attempts_per_day=per_day, min_gap_minutes=0, windows=("all",))


@settings(max_examples=200, deadline=None)
@given(_history(days=2), st.sampled_from(ZONES), st.integers(-2, 2), st.integers(1, 10))
def test_room_for_two_counts_the_debtors_attempts_of_the_local_day(
        history: list[PastAttempt], zone: str, shift: int, per_day: int) -> None:
    facts = Facts(state=AccountState(account_id="A-1", status=AccountStatus.OPEN),
                  zones=(zone,), home_zone=zone, holiday_region=None, history=tuple(history))
    day = (history[0].at.date() if history else date(2026, 3, 8)) + timedelta(days=shift)
    limits = Limits.model_validate({"attempts_per_day": 10})
    done = sum(1 for a in history if a.role is Role.DEBTOR and local_day(a.at, zone) == day)
    assert _room_for_two(facts, _stage(per_day), limits, day) == (
        done + 2 <= min(limits.attempts_per_day, per_day))


def test_specs_hash_and_compare_as_their_tuple() -> None:
    plain: tuple[WindowSpec, ...] = (("morning", 480, 660, (0, 1, 2)),
                                     ("evening", 1020, 1320, (5, 6)))
    specs = _Specs(plain)
    assert specs == plain
    assert hash(specs) == hash(plain)
    kept: dict[tuple[WindowSpec, ...], int] = {plain: 1}
    assert kept[specs] == 1


def test_a_moved_plan_is_the_plan_at_another_instant() -> None:
    planned = PlannedAttempt(datetime(2026, 12, 10, 15, tzinfo=UTC),
                             Target(Role.DEBTOR, "debtor", "+13125550100", "mobile", Medium.CALL),
                             "early", "morning", "standard:early:morning", "call_script", 0.25,
                             "population 0.25")
    at = datetime(2026, 12, 10, 15, 7, tzinfo=UTC)
    moved = planned.moved(at)
    # Every field is copied: one added to PlannedAttempt must be added to `moved` too.
    assert [f.name for f in fields(PlannedAttempt)] == [
        "at", "target", "stage", "window", "rule", "template", "estimate", "basis"]
    assert [getattr(moved, f.name) for f in fields(PlannedAttempt)] == [
        getattr(replace(planned, at=at), f.name) for f in fields(PlannedAttempt)]


@settings(max_examples=200, deadline=None)
@given(_history(), st.sampled_from([(Medium.CALL, Medium.CALL, Medium.SMS),
                                    (Medium.SMS, Medium.CALL), (Medium.CALL,), (Medium.SMS,)]),
       st.sampled_from([None, "s", "t"]))
def test_text_owed_counts_the_debtors_calls_and_texts_of_the_stage(
        history: list[PastAttempt], channels: tuple[Medium, ...], stage_of: str | None) -> None:
    history = [a._replace(stage=stage_of if n % 2 else "s") for n, a in enumerate(history)]
    stage = Stage(name="s", days_past_due=(1, None), channels=channels, attempts_per_day=2,
                  min_gap_minutes=0, windows=("all",))
    mine = [a for a in history if a.role is Role.DEBTOR and a.stage == "s"]
    calls = sum(1 for a in mine if a.medium is Medium.CALL)
    texts = sum(1 for a in mine if a.medium is Medium.SMS)
    if Medium.SMS not in channels:
        owed = False
    elif Medium.CALL not in channels:
        owed = True
    else:
        positions = [i for i, m in enumerate(channels) if m is Medium.CALL]
        cycles, nth = divmod(calls, len(positions))
        owed = texts < (cycles * channels.count(Medium.SMS)
                        + channels[:positions[nth]].count(Medium.SMS))
    assert text_owed(stage, history) is owed


@given(st.lists(st.integers(0, 24 * 60 - 1)), st.integers(0, 24 * 60 - 1))
def test_near_counts_the_minutes_within_an_hour(minutes: list[int], minute: int) -> None:
    minutes.sort()
    assert _near(minutes, minute) == sum(1 for m in minutes if abs(m - minute) <= 60)


@given(st.integers(0, 2**32 - 1), st.integers(0, 20), st.integers(1, 24 * 4))
def test_lattice_last_is_its_formula(seed: int, start_hour: int, quarters: int) -> None:
    first = start_hour * 60
    end = min(first + quarters * 15, 24 * 60 - 1)
    hours = (time(first // 60, first % 60), time(end // 60, end % 60))
    span = 120
    starts = max(end - first - span, 0)
    points = starts // span + 1
    phases = max((points * span - starts) // 15, 1)
    assert _lattice_last(seed, hours) == (end - span + points * span - starts - 15
                                          - seed % phases * 15)


_SOME_DAY = datetime(2026, 12, 7, 13, tzinfo=UTC)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 12), st.integers(0, 3), st.integers(0, 95),
                          st.sampled_from(["a", "b"])), max_size=40),
       st.integers(0, 41))
# Equal keys and minutes: the slot whose key is still a bound is worked out before the other
# is taken, so that the two leave in the order of the slots themselves.
@example([(0, 1, 0, "b"), (0, 0, 0, "a")], 1)
def test_best_first_ranks_as_sorted_however_far_it_is_read(
        drawn: list[tuple[int, int, int, str]], taken: int) -> None:
    # Few distinct keys and minutes, so that ties on the key, and on key and minute, are common.
    keys: dict[Slot, float] = {}
    bounds: list[tuple[float, int, int, Slot]] = []
    for key, below, quarter, window in drawn:
        slot = Slot(_SOME_DAY + timedelta(minutes=quarter * 15), quarter * 15, window)
        # A slot drawn twice has one key (a key is a function of the slot), two bounds.
        keys.setdefault(slot, key / 4)
        bounds.append((keys[slot] - below / 4, slot.minute, _BOUND, slot))
    expected = sorted((keys[slot], slot.minute, slot) for *_, slot in bounds)
    lowest = {slot: min(b for b, *_, s in bounds if s == slot) for *_, slot in bounds}
    asked = []

    def key_of(slot: Slot) -> float:
        asked.append(slot)
        return keys[slot]

    ranked = list(itertools.islice(_best_first(bounds, key_of), taken))
    assert ranked == expected[:taken]
    # A key is worked out only for a slot whose bound is no higher than the last key taken.
    if ranked:
        assert all(lowest[s] <= ranked[-1][0] for s in asked)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(0, 5), min_size=CELLS, max_size=CELLS),
       st.integers(0, 2**32 - 1), st.lists(st.integers(0, 24 * 60 - 1), max_size=12),
       st.integers(0, 24 * 60 - 1))
def test_the_tie_break_never_raises_a_factor_above_most_nudged(
        factors: list[float], seed: int, misses: list[int], minute: int) -> None:
    misses.sort()
    assert personal_score(minute, factors, seed, misses) <= (
        factors[cell_of(minute)] * MOST_NUDGED)
