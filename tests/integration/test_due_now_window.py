"""The window the daemon tests plan into (`_schedule_due_now`): its first slot comes within two
minutes whatever the minute the test begins in, as the tests' waits assume."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from channels.sandbox import load_outcome_script
from dispatcher.config.settings import load_config
from dispatcher.contact.simulate import run_simulation
from schedules.slots import GRID_MINUTES
from tests.integration.test_twilio_crash import _schedule_due_now, due_now_window
from tests.support import ROOT

ZONE = "America/New_York"
# A Wednesday, 11:00 in New York: inside the allowed hours, no holiday.
HOUR = datetime(2026, 12, 2, 16, 0, tzinfo=UTC)


def _no_quarter_hour_inside(start: datetime, end: datetime) -> bool:
    minute = start + timedelta(minutes=1)
    while minute < end:
        if minute.minute % GRID_MINUTES == 0:
            return False
        minute += timedelta(minutes=1)
    return True


def test_the_window_opens_within_two_minutes_and_holds_no_quarter_hour_but_its_start() -> None:
    for second in range(3600):
        local = (HOUR + timedelta(seconds=second)).astimezone(ZoneInfo(ZONE))
        start, end = due_now_window(local)
        assert local < start <= local + timedelta(minutes=2), local
        assert timedelta(minutes=2) <= end - start <= timedelta(minutes=4), local
        assert _no_quarter_hour_inside(start, end), local


async def test_the_first_attempt_comes_within_two_minutes_whatever_the_minute(
        tmp_path: Path) -> None:
    folder = tmp_path / "config"
    shutil.copytree(ROOT / "config", folder)
    main = folder / "dispatcher.toml"
    main.write_text(main.read_text() + '\n[contact]\nschedule = "now"\n')
    outcomes = tmp_path / "outcomes.json"
    outcomes.write_text(json.dumps({"default": {"sms": "delivered"}}))
    script = load_outcome_script(outcomes)
    events = tmp_path / "events.jsonl"
    leads = []
    # Every 13 seconds of a quarter hour: each second of a minute, each minute of a quarter.
    for second in range(0, GRID_MINUTES * 60, 13):
        now = HOUR + timedelta(seconds=second)
        _schedule_due_now(folder, ZONE, now)
        events.write_text(json.dumps({
            "schema": 1, "event_id": "e-1", "type": "account.overdue",
            "occurred_at": now.isoformat(), "account_id": "A-1",
            "data": {"days_past_due": 3, "amount_due": "9.00", "currency": "USD",
                     "debtor": {"name": "Pat Doe", "timezone": ZONE,
                                "phones": [{"number": "+12125550100", "type": "mobile",
                                            "sms_consent": True, "call_consent": True}]}}}))
        records = await run_simulation(load_config(main, {}), events, now, 1, script)
        [first, *_] = [datetime.fromisoformat(r["at"]) for r in records
                       if r["kind"] == "attempt"]
        leads.append(first - now)
    assert max(leads) <= timedelta(minutes=2)
    assert min(leads) > timedelta(0)
