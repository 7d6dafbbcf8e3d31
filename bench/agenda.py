"""Agenda benchmark: `read_agenda` over a store of many open accounts with a planned attempt.

Run: `.venv/bin/python -m bench.agenda [--accounts 50000] [--postgres]`. It stores the
accounts' overdue events and a plan each (spread over a week), then times, in the same run:
`explain` of one account (the baseline: what an operator ran before), the agenda of the next 24
hours capped at 1,000 rows, the same for one account, and for one stage. SQLite, and with
`--postgres` a fresh database on the test server (tests/postgres.py), dropped after.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from dispatcher.config.settings import load_config
from dispatcher.contact.agenda import read_agenda
from dispatcher.contact.decide import StoredPlan, plan_to_json
from dispatcher.contact.explain import explain
from dispatcher.domain.contact import Medium, Role, Target
from dispatcher.ingest.classify import classify
from dispatcher.store import AgendaQuery, PlanRow, StoreLocation, open_store
from schedules.planner import PlannedAttempt
from tests import postgres
from tests.support import encode, make_config, overdue_event

START = datetime(2026, 12, 1, 6, 0, tzinfo=UTC)
BATCH = 2000


_AREAS = ("212", "213", "310", "312", "415", "512", "617", "646", "718", "773")


def _number(n: int) -> str:
    """A valid US number of account n's own (up to 100,000 accounts)."""
    return f"+1{_AREAS[n // 10_000 % 10]}555{n % 10_000:04d}"


def _event(n: int) -> dict[str, Any]:
    """Account n's overdue event, with a number of its own."""
    event = overdue_event(n, f"A-{n:07d}")
    event["data"]["debtor"]["phones"][0]["number"] = _number(n)
    return event


async def fill(where: StoreLocation, accounts: int) -> None:
    """Each account's overdue event and a planned call, one a minute-ish across a week."""
    async with open_store(where) as store:
        for first in range(0, accounts, BATCH):
            ids = range(first, min(first + BATCH, accounts))
            items = [classify(encode(_event(n)), "bench", 65536) for n in ids]
            stored = await store.record_batch(items, now=START, config_version="bench")
            if stored.dead_letters:
                raise SystemExit(f"bench events refused: {stored.dead_letter_reasons}")
            plans = []
            for n in ids:
                at = START + timedelta(minutes=(n * 7919) % (7 * 24 * 60))
                stage = ("early", "middle", "late")[n % 3]
                plan = PlannedAttempt(at, Target(Role.DEBTOR, "debtor", _number(n),
                                                 "mobile", Medium.CALL), stage, "midday",
                                      f"standard:{stage}:midday", "call_script")
                plans.append(PlanRow(f"A-{n:07d}", plan_to_json(StoredPlan(plan)), at))
            await store.record_decisions(attempts=[], plans=plans, audit=[], now=START,
                                         config_version="bench")


async def median_ms(step: Callable[[], Awaitable[object]], repeat: int) -> float:
    """The median of `repeat` runs of `step`, in milliseconds, after one unmeasured run."""
    await step()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        await step()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


async def measure(where: StoreLocation, config_path: Path, accounts: int, repeat: int) -> None:
    """Print the timings on one store."""
    config = load_config(config_path, {})
    day = AgendaQuery(START, START + timedelta(days=1), 1000)
    async with open_store(where, create=False) as store:
        rows = (await read_agenda(store, day)).rows
        cases: list[tuple[str, Callable[[], Awaitable[object]]]] = [
            ("explain one account (baseline)",
             lambda: explain(store, config, "A-0000001", START)),
            (f"agenda, 24 h, limit 1000 ({len(rows)} rows)", lambda: read_agenda(store, day)),
            ("agenda, 24 h, one account", lambda: read_agenda(store, AgendaQuery(
                START, START + timedelta(days=1), 1000, account_id="A-0000001"))),
            ("agenda, 24 h, one stage, limit 1000", lambda: read_agenda(store, AgendaQuery(
                START, START + timedelta(days=1), 1000, stage="late"))),
        ]
        baseline = None
        for name, step in cases:
            ms = await median_ms(step, repeat)
            baseline = baseline or ms
            print(f"  {name + ':':44} {ms:9.2f} ms  ({ms / baseline:.2f}x baseline)")
    print(f"  ({accounts} open accounts with a planned attempt)")


def main() -> None:
    """Fill, then measure, on SQLite and, if given, PostgreSQL."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--accounts", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--postgres", action="store_true", help="also measure on PostgreSQL")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        config = make_config(folder / "cfg", "mqtt://127.0.0.1:1")
        where = folder / "agenda.db"
        asyncio.run(fill(where, args.accounts))
        print("sqlite:")
        asyncio.run(measure(where, config, args.accounts, args.repeat))
        if args.postgres:
            url = postgres.create_database()
            try:
                asyncio.run(fill(url, args.accounts))
                print("postgresql:")
                asyncio.run(measure(url, config, args.accounts, args.repeat))
            finally:
                postgres.drop_database(url)


if __name__ == "__main__":
    main()
