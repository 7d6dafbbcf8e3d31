"""What the console lists from the store, on both stores: the agenda and account search."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dispatcher.compliance.gate import Refusal
from dispatcher.console.sources import PlannedAgenda
from dispatcher.contact.decide import StoredPlan, plan_to_json
from dispatcher.domain.contact import Medium, Role, Target
from dispatcher.ingest.classify import classify
from dispatcher.store import PlanRow, StoreLocation, open_store
from schedules.planner import NoAttempt, PlannedAttempt
from tests.support import encode, overdue_event

NOW = datetime(2026, 12, 1, 15, tzinfo=UTC)
ACCOUNTS = ("A-1", "A-10", "A-2", "B-1", "a-1", "A-1é", "A_1", "A%1")


def _attempt(at: datetime, number: str) -> str:
    target = Target(Role.DEBTOR, "debtor", number, "mobile", Medium.CALL)
    return plan_to_json(StoredPlan(PlannedAttempt(at, target, "early", "evening",
                                                  "standard:early:evening", "call-1")))


async def test_accounts_from_lists_ids_by_prefix_in_code_point_order(
        store_at: StoreLocation) -> None:
    async with open_store(store_at) as store:
        await store.record_batch([classify(encode(overdue_event(n, a)), "t", 65536)
                                  for n, a in enumerate(ACCOUNTS)], now=NOW, config_version="v")
        assert await store.accounts_from("A-1", 10) == ["A-1", "A-10", "A-1é"]
        assert await store.accounts_from("A-1", 2) == ["A-1", "A-10"]
        assert await store.accounts_from("A_", 10) == ["A_1"]  # no wildcard
        assert await store.accounts_from("A%", 10) == ["A%1"]
        assert await store.accounts_from("a", 10) == ["a-1"]
        assert await store.accounts_from("", 3) == ["A%1", "A-1", "A-10"]
        assert await store.accounts_from("Z", 10) == []


async def test_the_console_agenda_is_the_agenda_modules_planned_attempts_in_its_range(
        store_at: StoreLocation) -> None:
    async with open_store(store_at) as store:
        await store.record_batch([classify(encode(overdue_event(n, a)), "t", 65536)
                                  for n, a in enumerate(("A-1", "A-2", "A-3", "A-4", "A-5"))],
                                 now=NOW, config_version="v")
        later, sooner = NOW + timedelta(hours=5), NOW + timedelta(hours=1)
        none = plan_to_json(StoredPlan(NoAttempt((Refusal("hold:dispute", "on hold", None),),
                                                 NOW + timedelta(hours=3))))
        await store.record_decisions(attempts=[], audit=[], now=NOW, config_version="v", plans=[
            PlanRow("A-1", _attempt(later, "+15125550100"), later),
            PlanRow("A-2", _attempt(sooner, "+15125550111"), sooner),
            PlanRow("A-3", none, NOW + timedelta(hours=3)),  # nothing to send: not listed
            PlanRow("A-4", _attempt(NOW + timedelta(days=61), "+15125550122"),
                    NOW + timedelta(days=61)),  # further than the console looks
            PlanRow("A-5", _attempt(NOW - timedelta(hours=2), "+15125550133"),
                    NOW - timedelta(hours=2))])  # due, not yet swept
        agenda = PlannedAgenda(store)
        rows = await agenda.agenda(NOW, 10)
        assert [await agenda.agenda(NOW, 1)] == [rows[:1]]
    assert [(r.account_id, r.at, r.channel, r.role, r.number, r.stage, r.rule) for r in rows] == [
        ("A-5", NOW - timedelta(hours=2), "call", "debtor", "+15*******33", "early",
         "standard:early:evening"),
        ("A-2", sooner, "call", "debtor", "+15*******11", "early", "standard:early:evening"),
        ("A-1", later, "call", "debtor", "+15*******00", "early", "standard:early:evening")]
    assert all(r.zone and r.local_time for r in rows)
