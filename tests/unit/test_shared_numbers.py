"""One phone number, many accounts, through the real engine: the number is paced as one person,
and the accounts on it take turns, a day each."""

from __future__ import annotations

import itertools
import json
import re
import shutil
from collections import Counter
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from channels.sandbox import SandboxChannel
from dispatcher.config.settings import LoadedConfig, load_config
from dispatcher.contact.account_facts import policy_of
from dispatcher.contact.decide import StoredPlan, plan_from_json, plan_to_json
from dispatcher.contact.engine import Engine
from dispatcher.contact.explain import explain
from dispatcher.domain.clock import utc_rfc3339
from dispatcher.domain.contact import Medium, Outcome, Role, Target
from dispatcher.ingest.classify import classify
from dispatcher.store import AttemptRow, OutcomeRow, PlanRow, StoreLocation, open_store
from schedules.planner import PlannedAttempt
from tests.unit.test_contact_engine import (
    CHICAGO,
    SHIPPED,
    START,
    attempts,
    config,
    explained_after_a_day,
    load_outcome_script_empty,
    overdue,
    simulate,
)

__all__ = ["config"]  # the shipped config, a module-scoped fixture

SHARED = "+15125550100"
MASKED = "+15*******00"


def _phone(number: str) -> list[dict[str, Any]]:
    return [{"number": number, "type": "mobile", "sms_consent": True, "call_consent": True}]


def _sharing(count: int) -> list[dict[str, Any]]:
    """`count` accounts listing one mobile number, in every stage."""
    return [overdue(f"S-{i:03d}", days=2 + i % 25, n=i, phones=_phone(SHARED))
            for i in range(count)]


OWN = [overdue(f"O-{i}", days=2 + 7 * i, n=100 + i, phones=_phone(f"+1512555{2000 + i:04d}"))
       for i in range(3)]


def _day(record: dict[str, Any]) -> date:
    return datetime.fromisoformat(record["at"]).astimezone(CHICAGO).date()


@pytest.fixture(scope="module")
def unlearned(tmp_path_factory: pytest.TempPathFactory) -> LoadedConfig:
    """The shipped config with `[planner] learning` off: the answer model learned from every
    account's calls would otherwise tie the accounts' slots together."""
    folder = tmp_path_factory.mktemp("cfg") / "config"
    shutil.copytree(SHIPPED, folder, ignore=shutil.ignore_patterns("*.db"))
    path = folder / "dispatcher.toml"
    path.write_text(path.read_text() + "\n[planner]\nlearning = false\n")
    return load_config(path, {})


def _by_day(on_number: list[dict[str, Any]]) -> dict[date, list[str]]:
    """The accounts that used the number each local day, in order."""
    days: dict[date, list[str]] = {}
    for r in on_number:
        days.setdefault(_day(r), []).append(r["account_id"])
    return days


async def test_fifty_accounts_on_one_number_take_turns_within_its_caps(
        tmp_path: Path, unlearned: LoadedConfig) -> None:
    limits = unlearned.limits
    records = await simulate(tmp_path, unlearned, _sharing(50) + OWN, days=30)
    on_number = [r for r in attempts(records) if r["to"] == SHARED]
    # At most the number's cap each local day (unset: the profile's attempts_per_day), every
    # channel and every account counted, and never two within the gap.
    assert limits.attempts_per_number_per_day is None
    days = _by_day(on_number)
    assert max(len(used) for used in days.values()) <= limits.attempts_per_day
    gap = timedelta(minutes=limits.min_gap_minutes)
    times = [datetime.fromisoformat(r["at"]) for r in on_number]
    assert all(b - a >= gap for a, b in itertools.pairwise(times))
    # One account a day, and each day an account not yet served: a lawful day rarely goes
    # unused (holidays and Sundays do).
    assert all(len(set(used)) == 1 for used in days.values())
    served = [used[0] for used in days.values()]
    assert len(served) >= 20
    assert len(set(served)) == len(served)
    # Refusals are audited once, not at every sweep: at most one a day per account.
    suppressed = [r for r in records if r["kind"] == "suppressed"]
    per_account_day = Counter((r["account_id"], _day(r)) for r in suppressed)
    assert max(per_account_day.values()) == 1
    assert len(suppressed) <= 2 * 50
    assert all(SHARED not in r["detail"] for r in suppressed)
    # Accounts with numbers of their own are contacted as if the others did not exist.
    alone = await simulate(tmp_path, unlearned, OWN, days=30)
    mine = [(r["account_id"], r["at"], r["to"], r["channel"]) for r in attempts(records)
            if r["account_id"].startswith("O-")]
    assert mine == [(r["account_id"], r["at"], r["to"], r["channel"]) for r in attempts(alone)]
    assert mine


async def test_the_account_whose_last_attempt_is_oldest_goes_first(
        tmp_path: Path, unlearned: LoadedConfig) -> None:
    records = await simulate(tmp_path, unlearned, _sharing(4), days=16)
    days = _by_day([r for r in attempts(records) if r["to"] == SHARED])
    assert all(len(set(used)) == 1 for used in days.values()), "one account a day"
    served = [used[0] for used in days.values()]
    assert len(served) >= 9
    first = served[:4]
    assert sorted(first) == ["S-000", "S-001", "S-002", "S-003"]
    # Then round after round in the same order: whoever waited longest.
    assert served[4:8] == first
    assert served[8] == first[0]


def _plan(config: LoadedConfig, at: datetime) -> str:
    stage = next(s for s in config.schedule.stages if s.name == "early")
    target = Target(Role.DEBTOR, "debtor", SHARED, "mobile", Medium.SMS)
    return plan_to_json(StoredPlan(PlannedAttempt(at, target, stage.name, "morning",
                                                  "standard:early:morning",
                                                  stage.sms_template)))


@pytest.mark.parametrize(("used_before", "first", "second"), [
    pytest.param(None, "A-1", "A-2", id="neither-used-it"),
    pytest.param("A-1", "A-2", "A-1", id="a-1-used-it-before"),
])
async def test_two_accounts_due_in_one_sweep_batch_get_one_attempt(
        tmp_path: Path, unlearned: LoadedConfig, used_before: str | None, first: str,
        second: str, store_at: StoreLocation) -> None:
    async with open_store(store_at) as store:
        events = [overdue(a, days=2, n=n, phones=_phone(SHARED))
                  for n, a in enumerate(["A-1", "A-2"])]
        await store.record_batch([classify(json.dumps(e).encode(), "t", 65536) for e in events],
                                 now=START, config_version="t")
        if used_before is not None:
            await store.record_decisions(attempts=[AttemptRow(
                "at-old", used_before, "debtor", Role.DEBTOR, SHARED, Medium.CALL, "early",
                "morning", None, None, START - timedelta(days=60))], plans=[], audit=[],
                now=START, config_version="t")
        channel = SandboxChannel(load_outcome_script_empty(tmp_path))
        engine = Engine(store, channel, policy_of(unlearned))
        # The engine plans one of them; the other gets the very same plan: both are due at the
        # same instant, and one sweep batch decides both.
        await store.record_decisions(attempts=[], plans=[
            PlanRow("A-2", plan_to_json(StoredPlan(None)), None)], audit=[], now=START,
            config_version="t")
        await engine.sweep(START)
        [planned] = (await store.contexts(["A-1"], START)).values()
        assert planned.plan_json
        plan = plan_from_json(planned.plan_json).plan
        assert isinstance(plan, PlannedAttempt)
        at = plan.at
        await store.record_decisions(
            attempts=[], plans=[PlanRow(a, planned.plan_json, at) for a in ("A-1", "A-2")],
            audit=[], now=START, config_version="t")
        stats = await engine.sweep(at)
        assert stats.sent == 1
        # The rest of the day: nothing more on the number, and no refusal audited twice.
        now = at
        while (due := await store.next_due_at()) is not None and due < at + timedelta(hours=14):
            now = max(due, now + timedelta(minutes=1))
            await engine.sweep(now)
        records = [r async for r in store.audit_records()]
        text, found = await explain(store, unlearned, second, at + timedelta(minutes=5))
    [sent] = attempts(records)
    assert sent["account_id"] == first
    assert [d.to for d in channel.sent] == [SHARED]
    [refused] = [r for r in records if r["kind"] == "suppressed"]
    assert refused["account_id"] == second
    # The shipped cap (attempts_per_day, 2) is not reached, but the day is the other's.
    assert refused["reason"] == "number_turn"
    assert refused["planned_at"] == utc_rfc3339(at)
    assert MASKED in refused["detail"]
    assert SHARED not in refused["detail"]
    # explain names the rule and, masked, the number.
    assert found
    assert "not sooner, because of other accounts on the number:" in text
    assert f"number_turn: another account used {MASKED} today at {at:%H:%M}Z" in text
    assert f"shared: another account's last attempt {utc_rfc3339(at)}" in text
    assert SHARED not in text


async def test_explain_says_an_account_waits_its_turn(tmp_path: Path, unlearned: LoadedConfig,
                                                      store_at: StoreLocation) -> None:
    events_path = tmp_path / "events.jsonl"
    events_path.write_text("\n".join(json.dumps(e) for e in _sharing(30)))
    [(text, found)] = await explained_after_a_day(tmp_path, store_at, unlearned, events_path,
                                                  ("S-029", START + timedelta(hours=23)))
    assert found
    # 29 accounts wait longer than S-029 (none used the number, the ids are smaller): no plan
    # within the planner's 21 days, and explain names the number rules whatever the planner's
    # last refusal was.
    assert "none. Every reason:" in text
    assert f"  other accounts on {MASKED}:" in text
    assert re.search(rf"  - number_turn: another account used {re.escape(MASKED)} today at "
                     r"\d\d:\d\dZ", text), text
    assert re.search(r"shared: \d+ other account\(s\) planned on it, the next 2026-12-08T", text)
    assert SHARED not in text


async def test_the_store_reads_other_accounts_on_the_numbers(
        tmp_path: Path, config: LoadedConfig, store_at: StoreLocation) -> None:
    now = datetime(2026, 12, 9, 18, 0, tzinfo=START.tzinfo)
    other = "+15125559999"
    async with open_store(store_at) as store:
        events = [overdue(a, days=2, n=n, phones=_phone(number)) for n, (a, number) in
                  enumerate([("A", SHARED), ("B", SHARED), ("C", other), ("D", SHARED)])]
        await store.record_batch([classify(json.dumps(e).encode(), "t", 65536) for e in events],
                                 now=START, config_version="t")

        def row(attempt_id: str, account_id: str, at: datetime,
                number: str = SHARED) -> AttemptRow:
            return AttemptRow(attempt_id, account_id, "debtor", Role.DEBTOR, number,
                              Medium.CALL, "early", "morning", None, None, at)

        made = [row("a-own", "A", now - timedelta(days=1)),
                row("b-recent", "B", now - timedelta(hours=2)),
                row("b-not-sent", "B", now - timedelta(hours=1)),
                # C no longer lists the number, but called it yesterday: it counts.
                row("c-old-number", "C", now - timedelta(hours=30)),
                row("d-long-ago", "D", now - timedelta(days=100)),
                row("c-own", "C", now - timedelta(hours=3), other)]
        plans = [PlanRow("B", _plan(config, now + timedelta(days=1)), now + timedelta(days=1)),
                 PlanRow("D", _plan(config, now + timedelta(days=2)), now + timedelta(days=2))]
        await store.record_decisions(attempts=made, plans=plans, audit=[], now=now,
                                     config_version="t")
        await store.record_outcomes([OutcomeRow("b-not-sent", Outcome.NOT_SENT, now)], now=now,
                                    config_version="t", audit_for=lambda row, o: {
                                        "kind": "outcome", "attempt_id": o.attempt_id})
        contexts = await store.contexts(["A"], now - timedelta(days=35),
                                        number_since=now - timedelta(days=2))
    context = contexts["A"]
    assert [a.attempt_id for a in context.number_history] == ["c-old-number", "b-recent"]
    assert [(c.account_id, c.planned_at, c.last_used) for c in context.number_claims] == [
        ("B", now + timedelta(days=1), now - timedelta(hours=2)),
        ("D", now + timedelta(days=2), now - timedelta(days=100))]
    assert context.number_last_used == {SHARED: now - timedelta(days=1)}
    assert [a.attempt_id for a in context.history] == ["a-own"]
