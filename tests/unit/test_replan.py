"""Re-planning: the store makes stored plans due at once, and a plan made under another contact
policy is planned afresh, never sent at the time the old policy chose."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from channels.sandbox import SandboxChannel, load_outcome_script
from dispatcher.config.settings import LoadedConfig, load_config
from dispatcher.contact.account_facts import policy_of
from dispatcher.contact.decide import StoredPlan, plan_from_json, plan_to_json
from dispatcher.contact.engine import Engine
from dispatcher.contact.replan import replan_all
from dispatcher.domain.clock import sortable_utc
from dispatcher.domain.contact import Medium, Role, Target
from dispatcher.ingest.classify import classify
from dispatcher.store import AttemptRow, PlanRow, Store, StoreLocation, open_store
from schedules.planner import NoAttempt, PlannedAttempt
from tests.postgres import store_rows
from tests.support import evening_schedule

ROOT = Path(__file__).resolve().parents[2]
START = datetime(2026, 12, 7, 6, 0, tzinfo=UTC)  # Monday, before 08:00 in every US zone
CHICAGO = ZoneInfo("America/Chicago")
EVENING = ("18:00", "19:00")
MOVED = ("19:30", "20:30")


def config_in(folder: Path, evening: tuple[str, str] = EVENING, *, contact: str = "",
              extra: str = "") -> LoadedConfig:
    """The shipped config copied to `folder`, on a schedule that calls only in `evening`;
    `contact` goes into its [contact] table, `extra` after it."""
    shutil.copytree(ROOT / "config", folder, ignore=shutil.ignore_patterns("*.db"))
    (folder / "schedules" / "evening.toml").write_text(evening_schedule(*evening))
    path = folder / "dispatcher.toml"
    path.write_text(f'{path.read_text()}\n[contact]\nschedule = "evening"\n{contact}\n{extra}')
    return load_config(path, {})


def overdue(account: str, days: int = 8, at: datetime = START) -> bytes:
    return json.dumps({
        "schema": 1, "event_id": f"e-{account}", "type": "account.overdue",
        "occurred_at": at.isoformat(), "account_id": account,
        "data": {"days_past_due": days, "amount_due": "100.00", "currency": "USD",
                 "debtor": {"name": "Pat Doe", "timezone": "America/Chicago", "region": "US-TX",
                            "phones": [{"number": "+15125550100", "type": "mobile",
                                        "sms_consent": True, "call_consent": True}]}}}).encode()


def resolved(account: str, at: datetime) -> bytes:
    return json.dumps({"schema": 1, "event_id": f"r-{account}", "type": "account.resolved",
                       "occurred_at": at.isoformat(), "account_id": account,
                       "data": {"reason": "paid"}}).encode()


async def ingest(store: Store, *payloads: bytes, now: datetime = START) -> None:
    await store.record_batch([classify(p, "t", 65536) for p in payloads], now=now,
                             config_version="t")


def local(moment: datetime) -> str:
    """HH:MM in Chicago, where every debtor here lives."""
    return moment.astimezone(CHICAGO).strftime("%H:%M")


def _rows(path: StoreLocation, sql: str) -> list[Any]:
    return store_rows(path, sql)


def sandbox(folder: Path) -> SandboxChannel:
    path = folder / "outcomes.json"
    path.write_text("{}")
    return SandboxChannel(load_outcome_script(path))


# -- the store -------------------------------------------------------------------------------

def _planned(at: datetime) -> str:
    target = Target(Role.DEBTOR, "debtor", "+15125550100", "mobile", Medium.CALL)
    return plan_to_json(StoredPlan(PlannedAttempt(at, target, "middle", "evening",
                                                  "standard:middle:evening", "call_script")))


async def test_replan_makes_each_open_account_with_a_stored_plan_due_once(
        tmp_path: Path, store_at: StoreLocation) -> None:
    now = START + timedelta(hours=1)
    later, earlier = now + timedelta(hours=12), now - timedelta(minutes=5)
    nothing = plan_to_json(StoredPlan(NoAttempt(())))
    async with open_store(store_at) as store:
        await ingest(store, *(overdue(a) for a in ("A-1", "A-2", "A-3", "A-4", "A-5", "A-6")))
        await ingest(store, resolved("A-5", START + timedelta(minutes=1)))
        await store.record_decisions(
            attempts=[AttemptRow("at-4", "A-4", "debtor", Role.DEBTOR, "+15125550100",
                                 Medium.CALL, "middle", "evening", "r", "call_script", START)],
            plans=[PlanRow("A-1", _planned(later), later),
                   PlanRow("A-2", nothing, None),  # no attempt and no retry: a limit may lift
                   PlanRow("A-3", _planned(earlier), earlier),  # due already
                   PlanRow("A-4", _planned(later), later),  # its attempt awaits the outcome
                   PlanRow("A-5", nothing, None)],  # resolved
            audit=[], now=START, config_version="t")
        # A-6 was never decided: no stored plan, and due since it was ingested.
        assert await store.replan(now) == 2
        due = dict(_rows(store_at, "SELECT account_id, next_attempt_at FROM accounts"))
        assert await replan_all(store, now, why="again") == 0
    assert due == {"A-1": sortable_utc(now), "A-2": sortable_utc(now),
                   "A-3": sortable_utc(earlier), "A-4": sortable_utc(later), "A-5": None,
                   "A-6": sortable_utc(START)}


# -- the stored plan --------------------------------------------------------------------------

def test_a_stored_plan_keeps_the_policy_it_was_made_under() -> None:
    plan = PlannedAttempt(START, Target(Role.DEBTOR, "debtor", "+15125550100", "mobile",
                                        Medium.SMS), "early", "morning", "r", "reminder_sms")
    stored = StoredPlan(plan, "e-1", "abc")
    assert plan_from_json(plan_to_json(stored)) == stored
    written = json.loads(plan_to_json(stored))
    del written["policy_digest"]  # a plan stored before plans carried it
    assert plan_from_json(json.dumps(written)) == StoredPlan(plan, "e-1", None)


def test_the_policy_digest_changes_with_the_policy_not_with_service_settings(
        tmp_path: Path) -> None:
    first = policy_of(config_in(tmp_path / "first"))
    path = config_in(tmp_path / "service", contact="sweep_seconds = 5").path
    text = path.read_text()
    assert 'log_level = "info"' in text
    path.write_text(text.replace('log_level = "info"', 'log_level = "debug"'))
    service = policy_of(load_config(path, {}))
    assert service.config_version != first.config_version
    assert service.digest == first.digest
    changed = [
        config_in(tmp_path / "window", MOVED),
        config_in(tmp_path / "limit", extra="[compliance.limits]\ncalls_per_7_days = 5\n"),
        config_in(tmp_path / "business", contact='business = "Other Lending"'),
        config_in(tmp_path / "planner", extra="[planner]\nlearn_days = 14\n"),
    ]
    digests = {policy_of(c).digest for c in changed}
    assert len(digests) == len(changed)
    assert first.digest not in digests


# -- the engine ------------------------------------------------------------------------------

@pytest.mark.parametrize(("evening", "sent"), [
    (EVENING, 1),  # the same policy: the plan is sent at its time
    (MOVED, 0),
])
async def test_a_due_plan_made_under_another_policy_is_planned_again_not_sent(
        tmp_path: Path, evening: tuple[str, str], sent: int, store_at: StoreLocation) -> None:
    before = config_in(tmp_path / "before")
    after = config_in(tmp_path / "after", evening)
    async with open_store(store_at) as store:
        await ingest(store, overdue("A-1"))
        await Engine(store, sandbox(tmp_path), policy_of(before)).sweep(START)
        due = await store.next_due_at()
        assert due is not None
        assert EVENING[0] <= local(due) < EVENING[1]
        engine = Engine(store, sandbox(tmp_path), policy_of(after))
        stats = await engine.sweep(due)
        context = (await store.contexts(["A-1"], START))["A-1"]
        records = [r async for r in store.audit_records()]
    assert stats.sent == sent
    assert len([r for r in records if r["kind"] == "attempt"]) == sent
    stored = plan_from_json(context.plan_json)
    # Plans carry the policy and the answer model they were made under.
    assert stored.policy_digest == f"{engine.policy.digest}:{engine.model.version}"
    if not sent:
        assert isinstance(stored.plan, PlannedAttempt)
        assert stored.plan.at.date() == due.date()
        assert MOVED[0] <= local(stored.plan.at) < MOVED[1]
