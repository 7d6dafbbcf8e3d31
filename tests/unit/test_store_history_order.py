"""An account's attempts come from the store oldest first, and by id at one instant."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from dispatcher.domain.contact import Medium, Role
from dispatcher.ingest.classify import classify
from dispatcher.store import AttemptRow, StoreLocation, open_store
from tests.unit.test_contact_engine import START, overdue


async def test_history_is_by_time_then_by_id(store_at: StoreLocation) -> None:
    now = datetime(2026, 12, 9, 18, 0, tzinfo=START.tzinfo)
    async with open_store(store_at) as store:
        events = [overdue(a, days=2, n=n) for n, a in enumerate(["A", "B"])]
        await store.record_batch([classify(json.dumps(e).encode(), "t", 65536) for e in events],
                                 now=START, config_version="t")

        def row(attempt_id: str, account_id: str, at: datetime) -> AttemptRow:
            return AttemptRow(attempt_id, account_id, "debtor", Role.DEBTOR, "+13125550100",
                              Medium.CALL, "early", "morning", None, None, at)

        # Stored in an order that is neither: two of A's at one instant, ids inserted backwards.
        same = now - timedelta(hours=2)
        made = [row("a-4", "A", now - timedelta(hours=1)), row("a-3", "A", same),
                row("b-1", "B", same), row("a-2", "A", same),
                row("a-1", "A", now - timedelta(hours=5))]
        await store.record_decisions(attempts=made, plans=[], audit=[], now=now,
                                     config_version="t")
        contexts = await store.contexts(["B", "A"], now - timedelta(days=35))
    assert [a.attempt_id for a in contexts["A"].history] == ["a-1", "a-2", "a-3", "a-4"]
    assert [a.attempt_id for a in contexts["B"].history] == ["b-1"]


async def test_third_party_calls_of_any_age_come_before_the_recent_attempts(
        store_at: StoreLocation) -> None:
    now = datetime(2026, 12, 9, 18, 0, tzinfo=START.tzinfo)
    since = now - timedelta(days=35)
    async with open_store(store_at) as store:
        events = [overdue(a, days=2, n=n) for n, a in enumerate(["A", "B"])]
        await store.record_batch([classify(json.dumps(e).encode(), "t", 65536) for e in events],
                                 now=START, config_version="t")

        def row(attempt_id: str, account_id: str, role: Role, at: datetime) -> AttemptRow:
            person = "debtor" if role is Role.DEBTOR else "c-1"
            return AttemptRow(attempt_id, account_id, person, role, "+13125550100",
                              Medium.CALL, "early", "morning", None, None, at)

        made = [row("recent", "A", Role.DEBTOR, now - timedelta(days=1)),
                row("old-debtor", "A", Role.DEBTOR, since - timedelta(days=1)),
                row("old-contact", "A", Role.EMERGENCY, since - timedelta(days=300)),
                row("contact", "A", Role.EMERGENCY, now - timedelta(days=2)),
                row("only-old-contact", "B", Role.GUARANTOR, since - timedelta(seconds=1))]
        await store.record_decisions(attempts=made, plans=[], audit=[], now=now,
                                     config_version="t")
        contexts = await store.contexts(["A", "B"], since)
    assert [a.attempt_id for a in contexts["A"].history] == ["old-contact", "contact", "recent"]
    assert [a.attempt_id for a in contexts["B"].history] == ["only-old-contact"]
