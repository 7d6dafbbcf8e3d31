"""How well the planner reaches debtors it has never reached, against simpler ways of calling.

For each population of simulated debtors (the sandbox's availability models) it runs 7 days of
`simulate` with the shipped config three ways: the planner as shipped (learning when people
answer), the same planner with learning switched off, and a fixed-hour daily redial (one call a
day at 10:00 local, what a simple dialer does). It prints, side by side, the share of debtors
reached (a call answered), the calls placed per right-party contact, and two compliance checks
over every call: the most calls to one debtor in any 7 days, and whether every call was inside
the allowed hours of every candidate zone.
Run: `.venv/bin/python -m bench.reach [--debtors 400] [--days 7]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import tempfile
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from channels.sandbox import load_outcome_script
from dispatcher.config.settings import load_config
from dispatcher.contact.simulate import run_simulation

ROOT = Path(__file__).resolve().parents[1]
START = datetime(2026, 12, 7, 6, 0, tzinfo=UTC)  # a Monday, before 08:00 anywhere in the US
_PEOPLE = (("America/New_York", "US-NY", "212"), ("America/Chicago", "US-IL", "312"),
           ("America/Denver", "US-CO", "303"), ("America/Los_Angeles", "US-CA", "415"))
HOURS_START, HOURS_END = 8 * 60, 21 * 60

# One debtor's answering: the outcomes file's rule for their number's calls.
Answering = Callable[[random.Random], dict[str, Any]]


def _hh_mm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def two_hours_from(first: int, last: int) -> Answering:
    """Answers only inside two hours starting at a minute drawn from [first, last]."""
    def rule(rng: random.Random) -> dict[str, Any]:
        start = rng.randint(first, last)
        return {"answers_between": [_hh_mm(start), _hh_mm(start + 120)]}
    return rule


def uniform(rng: random.Random) -> dict[str, Any]:
    """Two hours starting anywhere from 08:00 to 19:00."""
    return two_hours_from(8 * 60, 19 * 60)(rng)


def evening(rng: random.Random) -> dict[str, Any]:
    """Most (four in five) answer in two hours starting 17:00-19:00, the rest as `uniform`."""
    return two_hours_from(17 * 60, 19 * 60)(rng) if rng.random() < 0.8 else uniform(rng)


def probabilistic(rng: random.Random) -> dict[str, Any]:
    """Answers by chance: most likely around a peak hour drawn from 08-20, never certainly."""
    peak = rng.randint(8, 20)
    by_hour = {f"{h:02d}": (0.7 if h == peak else 0.35 if abs(h - peak) == 1 else 0.03)
               for h in range(8, 21)}
    return {"answer_probability": {"by_hour": by_hour, "seed": rng.randint(0, 10**6)}}


POPULATIONS: dict[str, Answering] = {
    "uniform 2-hour windows": uniform,
    "most answer 17:00-21:00": evening,
    "probabilistic, peak hour": probabilistic,
}


def population(answering: Answering, debtors: int, seed: int = 7
               ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Overdue events (all past the early stage) and the outcomes file for one population."""
    rng = random.Random(seed)
    events, numbers = [], {}
    for n in range(debtors):
        zone, region, area = _PEOPLE[n % len(_PEOPLE)]
        number = f"+1{area}555{n:04d}"
        numbers[number] = {"call": answering(rng)}
        events.append({
            "schema": 1, "event_id": f"e-{n}", "type": "account.overdue",
            "occurred_at": START.isoformat(), "account_id": f"A-{n:05d}",
            "data": {"days_past_due": rng.randint(6, 40), "amount_due": "100.00",
                     "currency": "USD",
                     "debtor": {"name": "Pat Doe", "timezone": zone, "region": region,
                                "phones": [{"number": number, "type": "mobile",
                                            "sms_consent": True, "call_consent": True}]}}})
    return events, {"default": {"sms": "delivered"}, "numbers": numbers}


@dataclass(frozen=True)
class Figures:
    """One population under one way of calling."""

    reached: float  # share of debtors with an answered call
    calls_per_contact: float | None
    most_calls_in_7_days: int
    all_lawful: bool


def figures(records: list[dict[str, Any]], debtors: int) -> Figures:
    """The figures of one simulation's audit records."""
    answered = {r["attempt_id"] for r in records
                if r["kind"] == "outcome" and r["status"] == "completed"}
    calls = [r for r in records if r["kind"] == "attempt" and r["channel"] == "call"
             and r["party"] == "debtor"]
    reached = {r["account_id"] for r in calls if r["attempt_id"] in answered}
    by_account: dict[str, list[datetime]] = defaultdict(list)
    lawful = True
    for r in calls:
        by_account[r["account_id"]].append(datetime.fromisoformat(r["at"]))
        for text in r["local_times"].values():
            minute = int(text[11:13]) * 60 + int(text[14:16])
            lawful = lawful and HOURS_START <= minute < HOURS_END
    most = max((sum(1 for other in times if at <= other < at + timedelta(days=7))
                for times in by_account.values() for at in times), default=0)
    contacts = len(reached)
    return Figures(contacts / debtors, len(calls) / contacts if contacts else None, most, lawful)


def _config_folder(folder: Path, way: str) -> Path:
    """A copy of the shipped config for one way of calling."""
    config = folder / way / "config"
    shutil.copytree(ROOT / "config", config)
    main = config / "dispatcher.toml"
    if way == "no learning":
        main.write_text(main.read_text() + "\n[planner]\nlearning = false\n")
    elif way == "fixed 10:00 redial":
        schedule = config / "schedules" / "redial.toml"
        schedule.write_text(
            'name = "redial"\n'
            '[windows]\nten = { start = "10:00", end = "10:15", '
            'days = ["mon", "tue", "wed", "thu", "fri", "sat"] }\n'
            '[[stages]]\nname = "all"\ndays_past_due = [1]\nchannels = ["call"]\n'
            'attempts_per_day = 1\nmin_gap_minutes = 240\nwindows = ["ten"]\n')
        main.write_text(main.read_text() + '\n[contact]\nschedule = "redial"\n')
    return main


WAYS = ("planner", "no learning", "fixed 10:00 redial")


async def measure(debtors: int, days: int) -> dict[tuple[str, str], Figures]:
    """Every population under every way of calling."""
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        base = Path(folder)
        for name, answering in POPULATIONS.items():
            events, outcomes = population(answering, debtors)
            events_path, outcomes_path = base / "events.jsonl", base / "outcomes.json"
            events_path.write_text("\n".join(json.dumps(e) for e in events))
            outcomes_path.write_text(json.dumps(outcomes))
            script = load_outcome_script(outcomes_path)
            for way in WAYS:
                config = load_config(_config_folder(base / name.replace(" ", "_"), way), {})
                records = await run_simulation(config, events_path, START, days, script)
                results[name, way] = figures(records, debtors)
    return results


def main() -> None:
    """Print the table bench/README.md shows."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--debtors", type=int, default=400)
    parser.add_argument("--days", type=int, default=7)
    args = parser.parse_args()
    results = asyncio.run(measure(args.debtors, args.days))
    print(f"{args.debtors} debtors per population in four US zones, all past the early stage, "
          f"{args.days} days of simulate from {START:%a %Y-%m-%d}")
    print(f"{'population':26} {'way of calling':20} {'reached':>8} {'calls/contact':>14} "
          f"{'most calls/7d':>14} {'lawful':>7}")
    for (name, way), f in results.items():
        per_contact = f"{f.calls_per_contact:.2f}" if f.calls_per_contact else "-"
        print(f"{name:26} {way:20} {f.reached:8.1%} {per_contact:>14} "
              f"{f.most_calls_in_7_days:>14} {'yes' if f.all_lawful else 'NO':>7}")


if __name__ == "__main__":
    main()
