"""How soon the shipped schedule reaches a debtor who only answers in one part of the day.

For each stage of the schedule and each availability window (the sandbox's model), one
debtor enters the stage and `simulate`'s engine runs until the first answered call. It prints
the number of the call attempt that got through and the local time it was placed.
Run: `.venv/bin/python -m bench.reach [--config config/dispatcher.toml]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from channels.sandbox import load_outcome_script
from dispatcher.config.settings import LoadedConfig, load_config
from dispatcher.contact.simulate import run_simulation

ROOT = Path(__file__).resolve().parents[1]
START = datetime(2026, 12, 7, 6, 0, tzinfo=UTC)  # a Monday, before 08:00 anywhere in the US
ZONE, NUMBER = "America/Chicago", "+15125550100"
WINDOWS = (("18:00", "20:00"), ("08:30", "10:00"))


@dataclass(frozen=True)
class Reach:
    """The first answered call: its number among the calls, and when it was placed."""

    stage: str
    window: tuple[str, str]
    calls: int | None  # None: not reached within the run
    local_time: str | None


async def reach(config: LoadedConfig, stage_days: int, window: tuple[str, str],
                days: int = 21) -> tuple[int | None, str | None]:
    """Calls until a debtor who answers only inside `window` is reached, and that call's time."""
    event = {"schema": 1, "event_id": "e-reach", "type": "account.overdue",
             "occurred_at": START.isoformat(), "account_id": "A-REACH",
             "data": {"days_past_due": stage_days, "amount_due": "100.00", "currency": "USD",
                      "debtor": {"name": "Pat Doe", "timezone": ZONE, "region": "US-TX",
                                 "phones": [{"number": NUMBER, "type": "mobile",
                                             "sms_consent": True, "call_consent": True}]}}}
    outcomes = {"numbers": {NUMBER: {"call": {"answers_between": list(window)}}}}
    with tempfile.TemporaryDirectory() as folder:
        events_path, outcomes_path = Path(folder) / "e.jsonl", Path(folder) / "o.json"
        events_path.write_text(json.dumps(event))
        outcomes_path.write_text(json.dumps(outcomes))
        records = await run_simulation(config, events_path, START, days,
                                       load_outcome_script(outcomes_path))
    answered = {r["attempt_id"] for r in records
                if r["kind"] == "outcome" and r["status"] == "completed"}
    calls = [r for r in records if r["kind"] == "attempt" and r["channel"] == "call"]
    for n, record in enumerate(calls, start=1):
        if record["attempt_id"] in answered:
            local = datetime.fromisoformat(record["at"]).astimezone(ZoneInfo(ZONE))
            return n, local.strftime("%a %H:%M")
    return None, None


async def measure(config: LoadedConfig) -> list[Reach]:
    """One measurement per stage and window."""
    results = []
    for stage in config.schedule.stages:
        for window in WINDOWS:
            calls, local = await reach(config, stage.days_past_due[0], window)
            results.append(Reach(stage.name, window, calls, local))
    return results


def main() -> None:
    """Print the table docs/schedules.md shows."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--config", type=Path, default=ROOT / "config" / "dispatcher.toml")
    config = load_config(parser.parse_args().config, {})
    print(f"schedule {config.schedule.name!r}, profile {config.settings.compliance.profile!r}; "
          f"debtor in {ZONE}, entering each stage on {START + timedelta(hours=0):%a %Y-%m-%d}")
    print(f"{'stage':8} {'answers':13} {'reached at call':16} {'placed (local)'}")
    for r in asyncio.run(measure(config)):
        print(f"{r.stage:8} {'-'.join(r.window):13} {r.calls if r.calls else 'not reached':16} "
              f"{r.local_time or '-'}")


if __name__ == "__main__":
    main()
