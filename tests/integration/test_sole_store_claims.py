"""Claims on a store held exclusively (`simulate`'s throw-away store): kept by the store alone,
never written to the file, and still never handed out twice while held.

SQLite only: a durable SQLite store, like PostgreSQL, writes its leases for other daemons.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dispatcher.contact.decide import StoredPlan, plan_to_json
from dispatcher.ingest.classify import classify
from dispatcher.store import PlanRow, Store, open_store
from dispatcher.store.sqlite import SqliteStore
from tests.support import encode, overdue_event

pytestmark = pytest.mark.sqlite

NOW = datetime(2026, 12, 1, 15, tzinfo=UTC)
LEASE = timedelta(minutes=5)
ACCOUNTS = [f"A-{n}" for n in range(10)]


async def _due_accounts(store: Store) -> None:
    await store.record_batch([classify(encode(overdue_event(n, account)), "t", 65536)
                              for n, account in enumerate(ACCOUNTS)], now=NOW,
                             config_version="v")


async def _leases(store: Store) -> list[str | None]:
    assert isinstance(store, SqliteStore)
    # The store's own connection: a store held exclusively lets no other read the file.
    return [row[0] for row in await store._fetch(  # noqa: SLF001 - the test reads the file
        "SELECT lease_until FROM accounts ORDER BY account_id")]


@pytest.fixture
async def sole(tmp_path: Path) -> AsyncIterator[Store]:
    """A throw-away store (held exclusively, as `simulate` opens it) with ten due accounts."""
    async with open_store(tmp_path / "sim.db", durable=False, inline=True,
                          claim_lease=LEASE) as store:
        await _due_accounts(store)
        yield store


async def test_a_sole_store_hands_a_claimed_account_out_once_and_writes_no_lease(
        sole: Store) -> None:
    first = await sole.claim_due(NOW, 6)
    second = await sole.claim_due(NOW, 6)
    assert len(first) == 6
    assert sorted(first + second) == ACCOUNTS
    assert await sole.claim_due(NOW, 10) == []
    assert await _leases(sole) == [None] * len(ACCOUNTS)
    await sole.release_claims(first)
    assert sorted(await sole.claim_due(NOW, 10)) == sorted(first)


async def test_a_sole_store_claim_held_past_its_lease_is_claimable_again(sole: Store) -> None:
    held = await sole.claim_due(NOW, 4)
    second = await sole.claim_due(NOW + LEASE - timedelta(seconds=1), 4)
    assert second == sorted(set(ACCOUNTS) - set(held))[:4]
    again = await sole.claim_due(NOW + LEASE, 10)
    assert sorted(again) == sorted(set(ACCOUNTS) - set(second))


async def test_a_sole_store_records_the_decisions_of_its_claims(sole: Store) -> None:
    claimed = await sole.claim_due(NOW, 3)
    later = NOW + timedelta(hours=1)
    plan = plan_to_json(StoredPlan(None))
    await sole.record_decisions(attempts=[], plans=[PlanRow(a, plan, later) for a in claimed],
                                audit=[], now=NOW, config_version="v")
    assert await sole.claim_due(NOW, 10) == sorted(set(ACCOUNTS) - set(claimed))
    # The others' claims have run out by then: every account is due again.
    assert sorted(await sole.claim_due(later, 10)) == ACCOUNTS


async def test_a_durable_store_writes_its_leases_for_other_daemons(tmp_path: Path) -> None:
    async with open_store(tmp_path / "store.db", claim_lease=LEASE) as store:
        await _due_accounts(store)
        claimed = await store.claim_due(NOW, 4)
        leases = dict(zip(ACCOUNTS, await _leases(store), strict=True))
        assert {a for a, lease in leases.items() if lease is not None} == set(claimed)
