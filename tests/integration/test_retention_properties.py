"""Retention as properties: over random histories, pruning runs and step sizes, the log always
verifies, nothing of an account active within the period is removed, and everything past the
period is."""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dispatcher.audit.keys import CheckpointSigner, new_private_key
from dispatcher.audit.retention import retention_cutoff
from dispatcher.audit.verify import verify_audit_log
from dispatcher.store import StoreLocation, open_store
from tests import postgres
from tests.postgres import store_execute, store_rows
from tests.support import STORES

START = datetime(2018, 1, 1, tzinfo=UTC)
KEY = CheckpointSigner.from_text(new_private_key())
YEARS = 5

# (day offset from START, account or None, kind)
entries = st.lists(st.tuples(st.integers(0, 12 * 365), st.sampled_from(["A", "B", "C", "D", None]),
                             st.sampled_from(["event", "attempt", "config", "dead_letter"])),
                   min_size=1, max_size=40)
prunes = st.lists(st.integers(5 * 365, 14 * 365), min_size=1, max_size=4)


def _rows(path: StoreLocation) -> list[dict[str, Any]]:
    return [json.loads(t) for (t,) in store_rows(path, "SELECT record FROM audit ORDER BY seq")]


Stores = Callable[[], AbstractContextManager[StoreLocation]]


@pytest.fixture(scope="module", params=STORES)
def fresh_store(request: pytest.FixtureRequest) -> Iterator[Stores]:
    """Makes an empty store for one example: a SQLite file, then the module's PostgreSQL schema
    emptied (a schema migrated per example would cost more than the example)."""
    url = ("" if request.param == "sqlite"
           else postgres.create_schema(request.getfixturevalue("postgres_database")))

    @contextmanager
    def made() -> Iterator[StoreLocation]:
        if not url:
            with tempfile.TemporaryDirectory() as folder:
                yield Path(folder) / "store.db"
            return
        tables = [name for (name,) in store_rows(url, "SELECT tablename FROM pg_tables WHERE "
                                                      "schemaname = current_schema()")
                  if name not in ("audit_head", "schema_version")]
        if tables:
            store_execute(url, f"TRUNCATE {', '.join(tables)}")
        yield url

    yield made
    if url:
        postgres.drop_schema(url)


async def _scenario(path: StoreLocation, history: list[tuple[int, str | None, str]],
                    runs: list[int], step: int) -> None:
    pending = sorted(history, key=lambda e: e[0])
    written: list[tuple[datetime, str | None, str]] = []
    gone: set[int] = set()  # pruned once: an account seen again later does not bring them back
    async with open_store(path) as store:
        for day in sorted(runs):
            now = START + timedelta(days=day)
            # Records are written as time passes: none is newer than the run that prunes.
            while pending and pending[0][0] <= day:
                offset, account, kind = pending.pop(0)
                at = START + timedelta(days=offset)
                if kind == "config":
                    account = None
                elif account is None:
                    kind = "dead_letter"
                await store.append_audit([{"kind": kind, "account_id": account,
                                           "n": len(written)}], now=at)
                written.append((at, account, kind))
            cutoff = retention_cutoff(now, YEARS)
            await store.prune_audit(cutoff=cutoff, now=now, retention_years=YEARS, signer=KEY,
                                    config_version="v", step_seqs=step)
            verdict = await verify_audit_log(store, (KEY.public_key,))
            assert verdict.ok, verdict.problem
            last: dict[str, datetime] = {}
            for at, account, _ in written:
                if account is not None:
                    last[account] = max(last.get(account, at), at)
            rows = _rows(path)
            present = {r["n"] for r in rows if "n" in r}
            head = rows[-1]["n"] if rows and "n" in rows[-1] else None
            for n, (at, account, kind) in enumerate(written):
                past = (kind != "config" and at < cutoff
                        and (account is None or last[account] < cutoff))
                if past and n == head:
                    continue  # the chain's head stays until a record follows it
                if past or n in gone:
                    assert n not in present, (n, written[n], cutoff)
                    gone.add(n)
                else:
                    assert n in present, (n, written[n], cutoff)


@settings(max_examples=150, deadline=None)
@given(history=entries, runs=prunes, step=st.integers(1, 6))
def test_pruning_keeps_exactly_what_the_period_requires_and_always_verifies(
        fresh_store: Stores, history: list[tuple[int, str | None, str]], runs: list[int],
        step: int) -> None:
    with fresh_store() as where:
        asyncio.run(_scenario(where, history, runs, step))
