"""From an MQTT event to a request at the (fake) provider, its signed callback, and the export."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from io import StringIO
from pathlib import Path
from typing import Any

import pytest

from dispatcher.cli.main import main
from dispatcher.config.settings import load_config
from dispatcher.domain.clock import VirtualClock
from dispatcher.service.app import Dispatcher
from dispatcher.store import open_store
from tests.fake_twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio
from tests.integration.inprocess import wait_for, wait_for_async
from tests.integration.publish import publish_all
from tests.support import Broker, free_port, make_config

START = datetime(2026, 12, 7, 6, 0, tzinfo=UTC)  # Monday, before 08:00 in Chicago
NUMBER = "+15125550100"
ENV = {"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN}


def _event(days: int) -> dict[str, Any]:
    return {"schema": 1, "event_id": "e-1", "type": "account.overdue",
            "occurred_at": START.isoformat(), "account_id": "A-1",
            "data": {"days_past_due": days, "amount_due": "42.00", "currency": "USD",
                     "debtor": {"name": "Pat Doe", "timezone": "America/Chicago",
                                "phones": [{"number": NUMBER, "type": "mobile",
                                            "sms_consent": True, "call_consent": True}]}}}


async def _recorded(daemon: Dispatcher, kind: str) -> bool:
    """Whether the audit log holds a record of `kind`."""
    return any([r["kind"] == kind async for r in daemon.store.audit_records()])


async def _attempted(daemon: Dispatcher, clock: VirtualClock) -> bool:
    """Whether an attempt was recorded; if not, move the clock to when the next account is due."""
    if await _recorded(daemon, "attempt"):
        return True
    due = await daemon.store.next_due_at()
    if due is not None and due > clock.now():
        clock.set(due)
    return False


async def _run_until_outcome(config_path: Path, broker: Broker, days: int) -> str:
    """Run the daemon until the first outcome; return its /metrics text."""
    config = load_config(config_path, ENV)
    clock = VirtualClock(START)
    async with Dispatcher(config, clock=clock, environ=ENV) as daemon:
        task = asyncio.create_task(daemon.run())
        await wait_for(lambda: daemon.health.mqtt_connected, 10, "connected")
        await publish_all(broker.port, [json.dumps(_event(days)).encode()])

        await wait_for_async(lambda: _attempted(daemon, clock), 15, "the attempt")
        await wait_for_async(lambda: _recorded(daemon, "outcome"), 15, "its outcome")
        metrics = daemon.metrics.render().decode()
        daemon.request_stop()
        await task
    return metrics


async def test_an_event_becomes_a_twilio_message_a_callback_and_an_exported_record(
        broker: Broker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, store_url: str) -> None:
    for name, value in ENV.items():  # the CLI below reads the same environment as the daemon
        monkeypatch.setenv(name, value)
    async with FakeTwilio() as fake:
        path = _config(tmp_path, broker, fake, store_url)
        port = load_config(path, ENV).settings.webhook.port
        metrics = await _run_until_outcome(path, broker, days=2)  # early stage: a text first
        await fake.settle()
        [created] = fake.received("POST", "Messages")
        sms = fake.messages[next(iter(fake.messages))]
        signed_callbacks = [c for c in fake.callbacks if "/twilio/sms/status" in c.url]
    form = dict(created.form)
    assert form["To"] == NUMBER
    assert form["StatusCallback"].startswith(f"http://127.0.0.1:{port}/twilio/sms/status")
    assert "Reply STOP" in form["Body"]
    assert signed_callbacks
    out = StringIO()
    assert await asyncio.to_thread(main, ["audit", "export", "--config", str(path)], out) == 0
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    [attempt] = [r for r in records if r["kind"] == "attempt"]
    [outcome] = [r for r in records if r["kind"] == "outcome"]
    assert attempt["channel"] == "sms"
    assert attempt["to"] == NUMBER
    assert outcome["attempt_id"] == attempt["attempt_id"]
    assert outcome["status"] == "delivered"
    assert outcome["provider_sid"] == sms["sid"]
    assert attempt["seq"] < outcome["seq"]
    assert 'dispatcher_provider_latency_seconds_count{channel="sms"} 1.0' in metrics
    assert 'dispatcher_outcomes_total{channel="sms",outcome="delivered"} 1.0' in metrics


async def _first_outcome(config_path: Path, broker: Broker) -> list[dict[str, Any]]:
    await _run_until_outcome(config_path, broker, days=2)
    config = load_config(config_path, ENV)
    async with open_store(config.store_location, create=False) as store:
        return [r async for r in store.audit_records()]


def _config(tmp_path: Path, broker: Broker, fake: FakeTwilio, store_url: str) -> Path:
    port = free_port()
    path = make_config(tmp_path, broker.url, store_url=store_url, extra=(
        f'public_url = "http://127.0.0.1:{port}"\n'
        f'[channels]\nprovider = "twilio"\n'
        f'[twilio]\napi_base = "{fake.base_url}"\nfrom_number = "+15005550006"\n'
        f'[contact]\nsweep_seconds = 0.02\n'))
    path.write_text(path.read_text().replace("port = 0", f"port = {port}"))
    return path


@pytest.mark.parametrize(("code", "status", "expected"), [
    (21211, 400, "invalid-number"),   # not a valid number: marked for the data team
    (21614, 400, "invalid-number"),   # not a mobile: no texts to it
    (21610, 400, "failed"),           # unsubscribed at the carrier: recorded as an opt-out
    (21408, 400, "failed"),           # any other 4xx: failed with its code, audited
])
async def test_provider_refusals_become_outcomes(
        broker: Broker, tmp_path: Path, code: int, status: int, expected: str,
        store_url: str) -> None:
    async with FakeTwilio() as fake:
        fake.fail_number(NUMBER, code, status)
        records = await _first_outcome(_config(tmp_path, broker, fake, store_url), broker)
    [outcome] = [r for r in records if r["kind"] == "outcome"]
    assert outcome["status"] == expected
    assert str(code) in outcome["detail"]
    opt_outs = [r for r in records if r["kind"] == "opt_out"]
    assert (len(opt_outs) == 1) is (code == 21610)


async def test_a_rate_limited_provider_means_not_sent_and_no_contact_counted(
        broker: Broker, tmp_path: Path, store_url: str) -> None:
    async with FakeTwilio() as fake:
        fake.fail_next(429, times=1000)  # every retry within the send's budget is refused
        path = _config(tmp_path, broker, fake, store_url)
        records = await _first_outcome(path, broker)
    [outcome] = [r for r in records if r["kind"] == "outcome"]
    assert outcome["status"] == "not-sent"
    assert "not a contact attempt" in outcome["detail"]
    async with open_store(load_config(path, ENV).store_location, create=False) as store:
        [context] = (await store.contexts(["A-1"], START - timedelta(days=1))).values()
    assert context.history == ()  # no cap, gap or daily count sees it


async def test_a_lost_status_callback_is_reconciled_with_the_provider(
        broker: Broker, tmp_path: Path, store_url: str) -> None:
    async with FakeTwilio() as fake:
        fake.faults.drop_callbacks = True
        clock = VirtualClock(START)
        fake.clock = clock.now  # the provider's timestamps follow the same virtual time
        config = load_config(_config(tmp_path, broker, fake, store_url), ENV)
        async with Dispatcher(config, clock=clock, environ=ENV) as daemon:
            task = asyncio.create_task(daemon.run())
            await wait_for(lambda: daemon.health.mqtt_connected, 10, "connected")
            await publish_all(broker.port, [json.dumps(_event(2)).encode()])

            await wait_for_async(lambda: _attempted(daemon, clock), 15, "the attempt")
            await wait_for(lambda: bool(fake.messages), 10, "the message at the provider")
            await fake.settle()  # the provider is done with it: its callbacks were all lost
            assert not await _recorded(daemon, "outcome")
            clock.set(clock.now() + timedelta(minutes=16))  # silent for a quarter hour
            await wait_for_async(lambda: _recorded(daemon, "outcome"), 15, "the reconciled outcome")
            daemon.request_stop()
            await task
            produced = [r async for r in daemon.store.audit_records()]
        [sid] = list(fake.messages)
    [outcome] = [r for r in produced if r["kind"] == "outcome"]
    assert (outcome["status"], outcome["provider_sid"]) == ("delivered", sid)
    assert len([r for r in produced if r["kind"] == "attempt"]) == 1
