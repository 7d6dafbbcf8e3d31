"""An account's history is read through index ranges, never by walking all its attempts: the
read must not grow with the age of an account that stays open for months.

SQLite only: the plan is SQLite's (the PostgreSQL store splits its read the same way).
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dispatcher.domain.contact import Medium, Role
from dispatcher.ingest.classify import classify
from dispatcher.store import AttemptRow, open_store
from tests.integration.test_inline_store import _connection
from tests.support import encode, overdue_event

pytestmark = pytest.mark.sqlite

NOW = datetime(2026, 12, 1, 15, tzinfo=UTC)


def _attempt(n: int, role: Role, at: datetime) -> AttemptRow:
    person = "debtor" if role is Role.DEBTOR else "c1"
    return AttemptRow(f"at-{n}", "A-000001", person, role, f"+1212555{n:04d}", Medium.CALL,
                      "late", "evening", "r", "t", at)


async def test_the_history_read_takes_index_ranges_and_keeps_old_third_party_calls(
        tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    since = NOW - timedelta(days=35)
    async with open_store(path, inline=True, durable=False) as store:
        event = overdue_event(1, "A-000001")
        await store.record_batch([classify(encode(event), "t", 65536)], now=NOW - timedelta(
            days=400), config_version="v")
        made = [_attempt(n, Role.EMERGENCY if n % 50 == 0 else Role.DEBTOR,
                         NOW - timedelta(days=n, hours=1)) for n in range(1, 301)]
        await store.record_decisions(attempts=made, plans=[], audit=[], now=NOW,
                                     config_version="v")
        statements: list[str] = []
        _connection(store).set_trace_callback(statements.append)
        contexts = await store.contexts(["A-000001"], since)
        _connection(store).set_trace_callback(None)
    history = contexts["A-000001"].history
    recent = [a.attempt_id for a in made if a.at >= since]
    old_third_party = [a.attempt_id for a in made if a.at < since and a.role is not Role.DEBTOR]
    assert {a.attempt_id for a in history} == {*recent, *old_third_party}
    assert [a.at for a in history] == sorted(a.at for a in history)
    reads = [s for s in statements if "FROM attempts WHERE account_id IN" in s]
    assert len(reads) == 2
    with sqlite3.connect(path) as db:
        plans = [" ".join(row[3] for row in db.execute(f"EXPLAIN QUERY PLAN {s}"))
                 for s in reads]
    # Each read is a range of (account, time) in its index, not every row of the account.
    assert all("account_id=? AND at" in plan for plan in plans), plans
    assert any("attempts_third_party" in plan for plan in plans), plans
