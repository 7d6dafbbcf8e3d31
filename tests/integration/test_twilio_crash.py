"""SIGKILL between recording an attempt and the provider's answer never sends it twice."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from dispatcher.domain.zones import number_zones_for
from dispatcher.store import is_shared
from schedules.slots import GRID_MINUTES
from tests.fake_twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio
from tests.integration.inprocess import metrics_once, wait_for, wait_for_async
from tests.integration.publish import publish_all
from tests.support import Broker, Daemon, free_port, make_config, query, store_of

# Numbers whose area code names one zone each: one of them is always in the middle of its day.
CANDIDATES = ("+12125550100", "+13125550100", "+12135550100", "+18085550100", "+442071838750",
              "+4930123456", "+919876543210", "+81312345678", "+61291234567", "+5511987654321")

COUNTRIES = ("US", "GB", "DE", "IN", "JP", "AU", "BR")


def _number_in_daytime(now: datetime) -> tuple[str, str]:
    for number in CANDIDATES:
        zones = number_zones_for(number)
        if len(zones) == 1:
            local = now.astimezone(ZoneInfo(zones[0]))
            if 10 <= local.hour < 18:
                return number, zones[0]
    raise AssertionError("no candidate number is in daytime now")


EVERY_DAY = '["mon", "tue", "wed", "thu", "fri", "sat", "sun"]'


def due_now_window(local: datetime) -> tuple[datetime, datetime]:
    """The window of `_schedule_due_now` for the local time `local`: it starts within two
    minutes, lasts two to four, and no quarter hour lies inside it after its start."""
    start = local.replace(second=0, microsecond=0) + timedelta(minutes=1)
    quarter = (start.replace(minute=start.minute // GRID_MINUTES * GRID_MINUTES)
               + timedelta(minutes=GRID_MINUTES))
    end = min(start + timedelta(minutes=4), quarter)
    if end - start < timedelta(minutes=2):  # a minute before a quarter hour: open at it
        return quarter, quarter + timedelta(minutes=4)
    return start, end


def _schedule_due_now(folder: Path, zone: str, now: datetime) -> None:
    """A schedule whose only window opens within two minutes where the debtor is (at the next
    minute, mostly): its first slot is the window's start, and the window stays open two to four
    minutes, so that a daemon slow to start (a loaded machine, the test begun late in a minute)
    still finds a slot ahead, whatever the day or hour.

    The planner prefers a quarter hour to the other minutes of a window: the window holds none
    but its start, or the first slot could lie four minutes away and outlast a test's wait."""
    start, end = due_now_window(now.astimezone(ZoneInfo(zone)))
    (folder / "schedules" / "now.toml").write_text(f"""
name = "now"
[windows]
soon = {{ start = "{start:%H:%M}", end = "{end:%H:%M}", days = {EVERY_DAY} }}
[[stages]]
name = "any"
days_past_due = [1]
channels = ["sms"]
attempts_per_day = 1
min_gap_minutes = 240
windows = ["soon"]
""")


async def _sweeps(port: int) -> float:
    """How many due sweeps the daemon serving `port` has completed since it started."""
    text = await metrics_once(port, "dispatcher_sweeps_total ")
    return float(next(line.split()[1] for line in text.splitlines()
                      if line.startswith("dispatcher_sweeps_total ")))


async def _sweeps_beyond(port: int, count: float) -> bool:
    return await _sweeps(port) >= count


@pytest.mark.slow
# Real time: the first slot is one to two minutes away, then the provider answers after 30 s.
@pytest.mark.timeout(300)
async def test_sigkill_while_the_provider_answers_never_sends_twice(
        broker: Broker, tmp_path: Path, daemons: list[Daemon], store_url: str) -> None:
    now = datetime.now(UTC)
    number, zone = _number_in_daytime(now)
    # The window must not end at midnight: 10:00-18:00 leaves hours to spare.
    assert (now + timedelta(seconds=300)).astimezone(ZoneInfo(zone)).hour < 20
    async with FakeTwilio() as fake:
        port = free_port()
        path = make_config(tmp_path, broker.url, store_url=store_url, extra=(
            f'public_url = "http://127.0.0.1:{port}"\n'
            '[channels]\nprovider = "twilio"\n'
            f'[twilio]\napi_base = "{fake.base_url}"\nfrom_number = "+15005550006"\n'
            '[contact]\nschedule = "now"\nsweep_seconds = 0.2\n'
            '[compliance.limits]\ncontact_on_holidays = true\n'
            # Whichever candidate is in daytime, its country has a profile.
            '[compliance.regions]\n' + "".join(f'{country} = "us"\n' for country in COUNTRIES)),
            log_format="text")
        path.write_text(path.read_text().replace("port = 0", f"port = {port}"))
        shared = is_shared(store_of(path))
        _schedule_due_now(path.parent, zone, now)
        env = {**os.environ, "TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN}
        daemon = Daemon(path, env)
        daemons.append(daemon)
        # The provider creates the message, then answers only after a long pause, and its
        # status callbacks are lost...
        fake.delay_next(30)
        fake.faults.drop_callbacks = True
        daemon.start(wait_connected=False)
        await wait_for(lambda: "connected to broker" in daemon.new_log(), 20, "connected")
        event = {"schema": 1, "event_id": "e-1", "type": "account.overdue",
                 "occurred_at": now.isoformat(), "account_id": "A-1",
                 "data": {"days_past_due": 3, "amount_due": "9.00", "currency": "USD",
                          "debtor": {"name": "Pat Doe", "timezone": zone,
                                     "phones": [{"number": number, "type": "mobile",
                                                 "sms_consent": True, "call_consent": True}]}}}
        await publish_all(broker.port, [json.dumps(event).encode()])
        await wait_for(lambda: len(fake.received("POST", "Messages")) == 1, 200,
                     "the message reached the provider")
        # ...and the dispatcher dies before it hears back.
        daemon.kill()
        [(attempt_id, outcome)] = query(path, "SELECT attempt_id, outcome FROM attempts")
        assert outcome is None
        daemon.start(wait_connected=False)
        if shared:
            await wait_for(lambda: "connected to broker" in daemon.new_log(), 20, "connected")
        else:
            await wait_for(lambda: bool(query(path, "SELECT 1 FROM attempts WHERE outcome IS "
                                                  "NOT NULL")), 30, "the attempt reconciled")
        # Sweeps after the restart: none may send it again.
        swept = await _sweeps(port)
        await wait_for_async(lambda: _sweeps_beyond(port, swept + 3), 20, "three more sweeps")
        daemon.terminate()
        posts = fake.received("POST", "Messages")
        [sid] = list(fake.messages)
    assert len(posts) == 1
    [(outcome, provider_sid)] = query(
        path, "SELECT outcome, provider_sid FROM attempts WHERE attempt_id = ?", (attempt_id,))
    if shared:
        # Another daemon of the store may be sending an attempt this young: it is looked up
        # once silent for a quarter hour, and meanwhile nothing sends it again.
        assert (outcome, provider_sid) == (None, None)
        assert "had no outcome" not in daemon.new_log()
        return
    assert provider_sid == sid
    assert outcome in ("delivered", "sent")  # the provider's own record of it
    assert "had no outcome" in daemon.new_log()
