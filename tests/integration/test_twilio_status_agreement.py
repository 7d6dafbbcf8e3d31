"""A status callback and reconciliation read the same message at the provider the same way.

One message at the fake Twilio: its signed callbacks reach the daemon's real webhook server,
which records an outcome; then reconciliation lists the message through the real twilio library
and says what it would record. Both must agree: these cases used to differ (a canceled SMS was
not final for the webhook; error codes were read by the webhook only).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from channels.twilio import TwilioChannel, TwilioConfig
from dispatcher.config.settings import load_config
from dispatcher.contact.reconcile import reconcile
from dispatcher.domain.contact import Delivery, Medium, Role
from dispatcher.ingest.classify import classify
from dispatcher.service.app import Dispatcher
from dispatcher.store import AttemptRow
from tests.fake_twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio
from tests.integration.inprocess import wait_for, wait_for_async
from tests.support import Broker, free_port, make_config

NUMBER = "+15125550100"
SENDER = "+15005550006"


@dataclass
class Both:
    """The daemon serving Twilio's callbacks, and a channel whose callbacks it receives."""

    daemon: Dispatcher
    fake: FakeTwilio
    channel: TwilioChannel


@pytest.fixture
async def both(broker: Broker, tmp_path: Path, store_url: str) -> AsyncIterator[Both]:
    port = free_port()
    public = f"http://127.0.0.1:{port}"
    # make_config ends with the [webhook] table: the first line continues it.
    path = make_config(tmp_path, broker.url, store_url=store_url,
                       extra=f'public_url = "{public}"\n[contact]\nsweep_seconds = 60\n')
    path.write_text(path.read_text().replace("port = 0", f"port = {port}"))
    async with FakeTwilio() as fake, \
            Dispatcher(load_config(path, {}), environ={"TWILIO_AUTH_TOKEN": AUTH_TOKEN}) as daemon:
        task = asyncio.create_task(daemon.run())
        await wait_for(lambda: daemon.health.mqtt_connected, 10, "connected")
        overdue = {"schema": 1, "event_id": "e-1", "type": "account.overdue",
                   "occurred_at": "2026-12-01T09:00:00Z", "account_id": "A-1",
                   "data": {"days_past_due": 9, "amount_due": "321.09", "currency": "USD",
                            "debtor": {"name": "Pat Doe", "timezone": "America/Chicago",
                                       "phones": [{"number": NUMBER, "type": "mobile",
                                                   "sms_consent": True, "call_consent": True}]}}}
        await daemon.store.record_batch([classify(json.dumps(overdue).encode(), "t", 65536)],
                                        now=datetime.now(UTC), config_version="t")
        channel = TwilioChannel(TwilioConfig(public_url=public, from_number=SENDER,
                                             api_base=fake.base_url, messages_per_second=100.0,
                                             calls_per_second=100.0),
                                ACCOUNT_SID, AUTH_TOKEN)
        try:
            yield Both(daemon, fake, channel)
        finally:
            await channel.close()
            daemon.request_stop()
            await task


async def outcome_record(daemon: Dispatcher, attempt_id: str) -> dict[str, Any]:
    """The audit record of the attempt's outcome; empty until the daemon has written one."""
    found = [r async for r in daemon.store.audit_records()
             if r["kind"] == "outcome" and r["attempt_id"] == attempt_id]
    return found[0] if found else {}


@pytest.mark.parametrize(("final", "code", "status", "detail"), [
    ("canceled", None, "failed", ""),  # the webhook used to leave it open
    ("failed", 21211, "invalid-number", "error 21211"),  # reconciliation used to say failed
    ("undelivered", 21614, "invalid-number", "error 21614"),  # ... undelivered
    ("undelivered", 30005, "invalid-number", "error 30005"),  # a number that no longer exists
    ("undelivered", 30003, "undelivered", "error 30003"),  # reconciliation dropped the code
])
async def test_a_callback_and_reconciliation_record_the_same_outcome(
        both: Both, final: str, code: int | None, status: str, detail: str) -> None:
    both.fake.sms_final[NUMBER] = (final, code)
    delivery = Delivery(attempt_id="at-1", medium=Medium.SMS, to=NUMBER, body="Please call us.",
                        template="reminder_sms", local_zone="America/Chicago",
                        at=datetime.now(UTC))
    await both.daemon.store.record_decisions(
        attempts=[AttemptRow("at-1", "A-1", "debtor", Role.DEBTOR, NUMBER, Medium.SMS, "early",
                             "morning", "r", "reminder_sms", delivery.at)],
        plans=[], audit=[], now=delivery.at, config_version="t")
    sid = (await both.channel.send(delivery)).provider_sid
    await both.fake.settle()
    assert both.fake.callbacks
    assert all(c.status == 204 for c in both.fake.callbacks)  # all signed, all taken

    by_webhook = await wait_for_async(lambda: outcome_record(both.daemon, "at-1"), 10,
                                      "the webhook's outcome")
    by_reconciliation = await reconcile(both.channel, delivery, datetime.now(UTC))

    assert by_reconciliation is not None
    assert (by_webhook["status"], by_webhook.get("detail", ""), by_webhook["provider_sid"]) == (
        status, detail, sid)
    assert (by_reconciliation.outcome.value, by_reconciliation.detail,
            by_reconciliation.provider_sid) == (status, detail, sid)
