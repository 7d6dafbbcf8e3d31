"""Simulate benchmark: 10,000 accounts over 30 days through the real engine on a virtual clock.

Run: `.venv/bin/python -m bench.simulate [--accounts 10000] [--days 30]
[--population mixed|silent|both]`. It writes the events file it uses, runs `dispatcher
simulate`'s engine in-process, and prints the wall and CPU time, the CPU per attempt, the number
of audit records, attempts and decisions, and their rates, per population: `mixed` (a quarter
of calls answered, some second numbers and emergency contacts) and `silent` (one number each,
nobody ever answers: the engine searches the most for them).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from channels.sandbox import load_outcome_script
from dispatcher.config.settings import load_config
from dispatcher.contact.simulate import simulated

ROOT = Path(__file__).resolve().parents[1]
START = datetime(2026, 12, 1, tzinfo=UTC)
_PEOPLE = [("America/New_York", "US-NY", "+1212555"), ("America/Chicago", "US-IL", "+1312555"),
           ("America/Denver", "US-CO", "+1303555"), ("America/Los_Angeles", "US-CA", "+1415555")]


def make_events(accounts: int, seed: int = 11, *, silent: bool = False) -> list[dict[str, Any]]:
    """One overdue event per account at a random time of the first day, 1-40 days past due; the
    silent population has one number each and no contacts."""
    rng = random.Random(seed)
    events = []
    for n in range(accounts):
        zone, region, prefix = _PEOPLE[n % len(_PEOPLE)]
        phones = [{"number": f"{prefix}{n % 10000:04d}", "type": "mobile", "sms_consent": True,
                   "call_consent": True}]
        if n % 3 == 0 and not silent:
            phones.append({"number": f"{prefix[:-3]}556{n % 10000:04d}", "type": "home",
                           "sms_consent": False, "call_consent": True})
        contacts = ([{"contact_id": f"c{n}", "name": "Kim Roe", "relation": "brother",
                      "number": f"{prefix[:-3]}557{n % 10000:04d}", "role": "emergency"}]
                    if n % 4 == 0 and not silent else [])
        occurred = START + timedelta(seconds=rng.randrange(86_400))
        events.append({"schema": 1, "event_id": f"e-{n}", "type": "account.overdue",
                       "occurred_at": occurred.isoformat(), "account_id": f"A-{n:06d}",
                       "data": {"days_past_due": rng.randrange(1, 40), "amount_due": "250.00",
                                "currency": "USD",
                                "debtor": {"name": "Pat Doe", "timezone": zone, "region": region,
                                           "phones": phones},
                                "contacts": contacts}})
    return events


POPULATIONS = {
    "mixed": {"default": {"call": ["no-answer", "no-answer", "machine", "completed"],
                          "sms": "delivered"}},
    "silent": {"default": {"call": "no-answer", "sms": "delivered"}},
}


async def run(population: str, accounts: int, days: int) -> None:
    """Simulate one population and print its figures."""
    config = load_config(ROOT / "config" / "dispatcher.toml", {})
    with tempfile.TemporaryDirectory() as folder:
        events_path = Path(folder) / "events.jsonl"
        events = make_events(accounts, silent=population == "silent")
        events_path.write_text("\n".join(json.dumps(e) for e in events))
        outcomes = Path(folder) / "outcomes.json"
        outcomes.write_text(json.dumps(POPULATIONS[population]))
        script = load_outcome_script(outcomes)
        started, cpu = time.perf_counter(), time.process_time()
        # As `dispatcher simulate` does: the records read back one at a time, never all held.
        kinds: Counter[str] = Counter()
        async with simulated(config, events_path, START, days, script) as simulation:
            async for record in simulation.records():
                kinds[record["kind"]] += 1
            decisions = simulation.decisions
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    print(f"population:             {population}")
    print(f"accounts x days:        {accounts:,} x {days}")
    print(f"wall time:              {elapsed:.1f} s")
    # Other work on a shared machine stretches the wall time far more than the CPU time.
    print(f"CPU time:               {cpu:.1f} s  "
          f"({cpu / max(kinds['attempt'], 1) * 1e6:,.0f} µs per attempt)")
    print(f"audit records:          {kinds.total():,}  ({dict(sorted(kinds.items()))})")
    print(f"attempts per second:    {kinds['attempt'] / elapsed:,.0f}")
    print(f"decisions:              {decisions:,}  ({decisions / elapsed:,.0f} per second)")
    print()


async def main() -> None:
    """Run and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--population", choices=("mixed", "silent", "both"), default="both")
    args = parser.parse_args()
    for population in ("mixed", "silent"):
        if args.population in (population, "both"):
            await run(population, args.accounts, args.days)


if __name__ == "__main__":
    asyncio.run(main())
