"""The answer model: learned from a real store's call outcomes at the daily learning instant,
replaced only when it changed materially, kept in the store, printed by `answer-rates`, and the
same whether the engine runs in the daemon or in `simulate`."""

from __future__ import annotations

import asyncio
import io
import json
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest

from dispatcher.cli.main import main
from dispatcher.config.settings import PlannerSettings
from dispatcher.contact.learning import MATURE_CALLS, Learning, last_learning, stored_model
from dispatcher.domain.contact import Medium, Outcome, Role
from dispatcher.store import AttemptRow, OutcomeRow, StoreLocation, open_store
from schedules.answer_model import HOURS, MATERIAL_CHANGE, AnswerModel, hour_of_week
from tests.support import make_config, store_of

MONDAY = datetime(2026, 12, 7, 6, 0, tzinfo=UTC)


def test_learning_instants_are_daily_at_the_configured_utc_time() -> None:
    at = time(6, 0)
    assert last_learning(datetime(2026, 12, 7, 6, 0, tzinfo=UTC), at) == MONDAY
    assert last_learning(datetime(2026, 12, 7, 5, 59, tzinfo=UTC), at) == MONDAY - timedelta(
        days=1)
    assert last_learning(datetime(2026, 12, 7, 23, 0, tzinfo=UTC), at) == MONDAY


def test_hours_without_calls_take_the_average_and_chance_differences_are_drawn_in() -> None:
    counts = {hour_of_week(0, 9): (100, 10), hour_of_week(0, 18): (100, 60)}
    model = AnswerModel.learned(counts, MONDAY - timedelta(days=28), MONDAY)
    evening, morning, untried = model.rate(0, 18), model.rate(0, 9), model.rate(0, 13)
    assert evening > untried > morning
    # Neighbouring hours learn from each other; other weekdays from the same hour.
    assert model.rate(0, 17) > untried
    assert model.rate(3, 18) > model.rate(3, 13)
    # A few calls do not tell an hour apart.
    few = AnswerModel.learned({hour_of_week(0, 9): (3, 3)}, MONDAY, MONDAY)
    assert abs(few.rate(0, 9) - few.rate(0, 15)) < 0.05
    assert AnswerModel.from_json(model.to_json()) == model
    assert model.differs_materially(AnswerModel.prior())
    assert not model.differs_materially(AnswerModel.from_json(model.to_json()))


@pytest.mark.parametrize("text", ["", "[]", '{"calls": [1]}', json.dumps(
    {"calls": [1] * HOURS, "answered": [2] * HOURS, "learned_at": None, "since": None})])
def test_a_stored_model_that_is_not_one_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"answer model|answered calls"):
        AnswerModel.from_json(text)


async def _current(learning: Learning, now: datetime) -> tuple[AnswerModel, bool]:
    """The model in force at `now` for a store no other daemon shares: never held back."""
    found = await learning.current(now)
    assert found is not None
    return found


async def _calls(store: object, outcomes: list[tuple[datetime, int, Outcome, Role, Medium]]
                 ) -> None:
    rows = [AttemptRow(f"at-{n}", f"A-{n}", "debtor" if role is Role.DEBTOR else "c-1", role,
                       "+13125550100", medium, "late", "evening", "r", "t", at, slot)
            for n, (at, slot, _, role, medium) in enumerate(outcomes)]
    await store.record_decisions(attempts=rows, plans=[], audit=[], now=MONDAY,  # type: ignore[attr-defined]
                                 config_version="t")
    await store.record_outcomes(  # type: ignore[attr-defined]
        [OutcomeRow(f"at-{n}", outcome, at + timedelta(minutes=1), None)
         for n, (at, _, outcome, _, _) in enumerate(outcomes)],
        now=MONDAY, config_version="t", audit_for=lambda row, outcome: {
            "kind": "outcome", "attempt_id": row["attempt_id"], "account_id": row["account_id"],
            "status": outcome.outcome.value})


async def test_the_model_is_learned_from_debtor_calls_and_replaced_only_on_material_change(
        tmp_path: Path, store_at: StoreLocation) -> None:
    evening = hour_of_week(0, 18)
    sunday = MONDAY - timedelta(hours=12)
    counted = [(sunday, evening, Outcome.COMPLETED if n % 2 else Outcome.NO_ANSWER, Role.DEBTOR,
                Medium.CALL) for n in range(80)]
    ignored = ([(sunday, evening, Outcome.FAILED, Role.DEBTOR, Medium.CALL)] * 30
               + [(sunday, evening, Outcome.COMPLETED, Role.EMERGENCY, Medium.CALL)] * 30
               + [(sunday, evening, Outcome.DELIVERED, Role.DEBTOR, Medium.SMS)] * 30
               + [(MONDAY + timedelta(hours=1), evening, Outcome.COMPLETED, Role.DEBTOR,
                   Medium.CALL)] * 30)  # after the learning instant
    async with open_store(store_at) as store:
        await _calls(store, counted + ignored)
        assert await store.call_answer_counts(MONDAY - timedelta(days=28), MONDAY) == {
            evening: (80, 40)}
        learning = Learning(store, PlannerSettings())
        model, changed = await _current(learning, MONDAY + timedelta(minutes=5))
        assert changed
        assert model.calls[evening] == 80
        assert model.rate(0, 18) > model.rate(0, 10)
        # Later the same day: the model in force, nothing learned again.
        assert await _current(learning, MONDAY + timedelta(hours=3)) == (model, False)
        # The next day counts the 30 answered calls placed after Monday's instant.
        tuesday, changed = await _current(learning, MONDAY + timedelta(days=1, minutes=1))
        assert changed
        assert tuesday.calls[evening] == 110
        # Nothing new by Wednesday: the same rates, no change, no re-plan.
        assert await _current(learning, MONDAY + timedelta(days=2, minutes=1)) == (tuesday, False)
        # A fresh engine (a restart) finds the model in force in the store.
        restarted = Learning(store, PlannerSettings())
        assert (await _current(restarted, MONDAY + timedelta(days=2, minutes=2)))[0] == tuesday
        assert await stored_model(store, PlannerSettings(learning=False)) == AnswerModel.prior()
    assert MATERIAL_CHANGE > 0


def _cli(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    return main(list(argv), out=out), out.getvalue()


def test_answer_rates_prints_the_model_in_force(tmp_path: Path, store_url: str) -> None:
    config = make_config(tmp_path, "mqtt://127.0.0.1:1", store_url=store_url)
    learned = AnswerModel.learned({hour_of_week(1, 19): (500, 300)}, MONDAY, MONDAY)

    async def keep() -> None:
        async with open_store(store_of(config)) as store:
            await store.save_answer_model(learned.to_json(), MONDAY)

    async def create() -> None:
        async with open_store(store_of(config)):
            pass

    asyncio.run(create())
    code, text = _cli("answer-rates", "--config", str(config))
    assert code == 0, text
    assert "nothing learned yet" in text
    asyncio.run(keep())
    code, text = _cli("answer-rates", "--config", str(config))
    assert code == 0, text
    assert "300 answered of 500 calls" in text
    row = next(line for line in text.splitlines() if line.startswith("19h"))
    assert f"{learned.rate(1, 19):6.1%}" in row
    code, text = _cli("answer-rates", "--config", str(config), "--format", "json")
    assert AnswerModel.from_json(text) == learned


async def test_a_model_resting_on_many_calls_is_learned_again_weekly(
        tmp_path: Path, store_at: StoreLocation) -> None:
    evening = hour_of_week(6, 18)
    sunday = MONDAY - timedelta(hours=12)
    async with open_store(store_at) as store:
        mature = AnswerModel.learned({evening: (MATURE_CALLS, MATURE_CALLS // 2)},
                                     MONDAY - timedelta(days=28), MONDAY)
        await store.save_answer_model(mature.to_json(), MONDAY)
        # Calls that would change the model a lot, placed after the model was learned.
        await _calls(store, [(sunday + timedelta(days=1), hour_of_week(0, 9), Outcome.COMPLETED,
                              Role.DEBTOR, Medium.CALL)] * 500)
        learning = Learning(store, PlannerSettings(learn_every_days=7))
        for day in range(1, 7):
            model, changed = await _current(learning, MONDAY + timedelta(days=day, minutes=1))
            assert (model, changed) == (mature, False), day
        model, changed = await _current(learning, MONDAY + timedelta(days=7, minutes=1))
        assert changed
        assert model.calls[hour_of_week(0, 9)] == 500
