"""Twilio's callbacks over real HTTP: signatures, idempotent statuses, inbound keywords."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from twilio.request_validator import RequestValidator

from dispatcher.config.settings import load_config
from dispatcher.domain.contact import Medium, Role
from dispatcher.ingest.classify import classify
from dispatcher.service.app import Dispatcher
from dispatcher.store import AttemptRow
from tests.integration.inprocess import wait_for
from tests.support import Broker, make_config

TOKEN = "test-auth-token-0123456789abcdef"
PUBLIC = "https://dispatcher.example.org"
NUMBER = "+15125550100"
SISTER = "+15125550177"


class Twilio:
    """Signs and sends requests the way Twilio does, to the daemon's real webhook server."""

    def __init__(self, port: int, http: aiohttp.ClientSession) -> None:
        self.port = port
        self.http = http

    async def post(self, path: str, form: dict[str, str], *,
                   signature: str | None = None) -> tuple[int, str]:
        """POST `form` to `path`; signed for PUBLIC + path unless a signature is given."""
        if signature is None:
            signature = RequestValidator(TOKEN).compute_signature(PUBLIC + path, form)
        async with self.http.post(f"http://127.0.0.1:{self.port}{path}", data=form,
                                  headers={"X-Twilio-Signature": signature}) as response:
            return response.status, await response.text()


@pytest.fixture
async def daemon(broker: Broker, tmp_path: Path,
                 store_url: str) -> AsyncIterator[tuple[Dispatcher, Twilio]]:
    """The daemon with an account and three attempts, on SQLite, then on PostgreSQL."""
    # make_config ends with the [webhook] table: the first line continues it.
    path = make_config(tmp_path, broker.url, store_url=store_url,
                       extra=f'public_url = "{PUBLIC}"\n[contact]\nsweep_seconds = 60\n')
    config = load_config(path, {})
    assert str(config.settings.webhook.public_url).rstrip("/") == PUBLIC
    async with Dispatcher(config, environ={"TWILIO_AUTH_TOKEN": TOKEN}) as running:
        task = asyncio.create_task(running.run())
        await wait_for(lambda: running.health.mqtt_connected, 10, "connected")
        overdue = {"schema": 1, "event_id": "e-1", "type": "account.overdue",
                   "occurred_at": "2026-12-01T09:00:00Z", "account_id": "A-1",
                   "data": {"days_past_due": 9, "amount_due": "321.09", "currency": "USD",
                            "debtor": {"name": "Pat Doe", "timezone": "America/Chicago",
                                       "phones": [{"number": NUMBER, "type": "mobile",
                                                   "sms_consent": True, "call_consent": True}]},
                            "contacts": [{"contact_id": "c-1", "name": "Sam Roe",
                                          "relation": "sister", "number": SISTER,
                                          "role": "emergency"}]}}
        await running.store.record_batch([classify(json.dumps(overdue).encode(), "t", 65536)],
                                         now=datetime(2026, 12, 1, 9, tzinfo=UTC),
                                         config_version="t")
        await running.store.record_decisions(
            attempts=[AttemptRow("at-1", "A-1", "debtor", Role.DEBTOR, NUMBER, Medium.SMS,
                                 "early", "morning", "r", "reminder_sms",
                                 datetime(2026, 12, 1, 15, tzinfo=UTC)),
                      AttemptRow("at-2", "A-1", "debtor", Role.DEBTOR, NUMBER, Medium.CALL,
                                 "early", "evening", "r", "call_script",
                                 datetime(2026, 12, 2, 1, tzinfo=UTC)),
                      AttemptRow("at-3", "A-1", "c-1", Role.EMERGENCY, SISTER, Medium.CALL,
                                 "late", "evening", "r", "location_call",
                                 datetime(2026, 12, 3, 1, tzinfo=UTC))],
            plans=[], audit=[], now=datetime(2026, 12, 1, tzinfo=UTC), config_version="t")
        async with aiohttp.ClientSession() as http:
            assert running.webhook_port is not None
            yield running, Twilio(running.webhook_port, http)
        running.request_stop()
        await task


async def records(daemon: Dispatcher, kind: str) -> list[dict[str, Any]]:
    return [r async for r in daemon.store.audit_records() if r["kind"] == kind]


async def test_a_forged_signature_gets_403_is_audited_and_changes_nothing(
        daemon: tuple[Dispatcher, Twilio]) -> None:
    running, twilio = daemon
    form = {"MessageSid": "SM1", "MessageStatus": "delivered", "To": NUMBER}
    forged = RequestValidator("not-the-token").compute_signature(
        PUBLIC + "/twilio/sms/status?attempt=at-1", form)
    status, _ = await twilio.post("/twilio/sms/status?attempt=at-1", form, signature=forged)
    assert status == 403
    status, _ = await twilio.post("/twilio/sms/inbound", {"From": NUMBER, "Body": "STOP"},
                                  signature="")
    assert status == 403
    # Signed for another URL (a replay against a different attempt) is refused too.
    moved = RequestValidator(TOKEN).compute_signature(
        PUBLIC + "/twilio/sms/status?attempt=at-1", form)
    status, _ = await twilio.post("/twilio/sms/status?attempt=at-2", form, signature=moved)
    assert status == 403
    # Counted at once; audited once a minute per route (test_webhook_rejections.py).
    metrics = running.metrics.render().decode()
    assert ('dispatcher_webhooks_rejected_total{reason="bad_signature",'
            'route="/twilio/sms/status"} 2.0') in metrics
    assert ('dispatcher_webhooks_rejected_total{reason="missing_signature",'
            'route="/twilio/sms/inbound"} 1.0') in metrics
    assert await records(running, "outcome") == []
    assert await records(running, "opt_out") == []


async def test_sms_status_is_recorded_once_and_a_late_sent_changes_nothing(
        daemon: tuple[Dispatcher, Twilio]) -> None:
    running, twilio = daemon
    path = "/twilio/sms/status?attempt=at-1"
    for status_name in ("queued", "sent", "delivered", "sent", "delivered", "undelivered"):
        status, _ = await twilio.post(path, {"MessageSid": "SM1", "MessageStatus": status_name,
                                             "To": NUMBER})
        assert status == 204
    [outcome] = await records(running, "outcome")
    assert (outcome["attempt_id"], outcome["status"], outcome["provider_sid"]) == (
        "at-1", "delivered", "SM1")


async def test_call_status_distinguishes_a_person_from_a_machine(
        daemon: tuple[Dispatcher, Twilio]) -> None:
    running, twilio = daemon
    path = "/twilio/call/status?attempt=at-2"
    for form in ({"CallSid": "CA1", "CallStatus": "ringing"},
                 {"CallSid": "CA1", "CallStatus": "in-progress", "AnsweredBy": "machine_start"},
                 {"CallSid": "CA1", "CallStatus": "completed", "AnsweredBy": "machine_start"}):
        status, _ = await twilio.post(path, form)
        assert status == 204
    [outcome] = await records(running, "outcome")
    assert outcome["status"] == "machine"


async def test_stop_opts_out_at_once_with_one_confirmation(
        daemon: tuple[Dispatcher, Twilio]) -> None:
    running, twilio = daemon
    form = {"MessageSid": "SMin1", "From": NUMBER, "Body": "  Stop "}
    status, body = await twilio.post("/twilio/sms/inbound", form)
    assert status == 200
    assert "<Message>" in body
    assert "Reply START" in body
    [opt_out] = await records(running, "opt_out")
    assert (opt_out["to"], opt_out["channel"], opt_out["status"]) == (NUMBER, "sms", "opted_out")
    [state] = await running.store.opt_outs(NUMBER)
    assert state.opted_out
    # Twilio retries a webhook it thinks failed: the same message changes nothing, says nothing.
    status, body = await twilio.post("/twilio/sms/inbound", form)
    assert status == 200
    assert "<Message>" not in body
    assert len(await records(running, "opt_out")) == 1


async def test_free_text_is_audited_for_a_person_and_help_answers(
        daemon: tuple[Dispatcher, Twilio]) -> None:
    running, twilio = daemon
    status, body = await twilio.post("/twilio/sms/inbound", {
        "MessageSid": "SMin2", "From": NUMBER, "Body": "I lost my job, can we talk?"})
    assert status == 200
    assert "<Message>" not in body
    [reply] = await records(running, "reply")
    assert reply["status"] == "free_text"
    assert reply["detail"] == "I lost my job, can we talk?"
    status, body = await twilio.post("/twilio/sms/inbound", {
        "MessageSid": "SMin3", "From": NUMBER, "Body": "help"})
    assert "for help, call" in body


@pytest.mark.parametrize(("attempt", "form", "step", "says", "never"), [
    # A person answers: who is calling and for whom, nothing about the debt until confirmed.
    ("at-2", {"AnsweredBy": "human"}, "", ["<Gather", "press 1", "Pat Doe"], ["321.09"]),
    ("at-2", {"Digits": "1"}, "confirm", ["321.09", "USD"], ["<Gather"]),
    ("at-2", {"Digits": "2"}, "confirm", ["call me back"], ["321.09"]),
    # A machine gets the limited-content message only.
    ("at-2", {"AnsweredBy": "machine_end_beep"}, "", ["call me back", "<Hangup/>"],
     ["321.09", "Pat Doe", "<Gather"]),
    # A third party: the location question to a person, nothing at all to a machine.
    ("at-3", {"AnsweredBy": "human"}, "", ["confirm contact information"],
     ["321.09", "<Gather"]),
    ("at-3", {"AnsweredBy": "machine_start"}, "", ["<Hangup/>"], ["<Say>"]),
    ("at-404", {"AnsweredBy": "human"}, "", ["<Hangup/>"], ["<Say>"]),
])
async def test_call_twiml_reveals_the_debt_only_to_the_confirmed_debtor(
        daemon: tuple[Dispatcher, Twilio], attempt: str, form: dict[str, str], step: str,
        says: list[str], never: list[str]) -> None:
    _, twilio = daemon
    query = f"?attempt={attempt}" + (f"&step={step}" if step else "")
    status, body = await twilio.post("/twilio/call/twiml" + query, {"CallSid": "CA9", **form})
    assert status == 200
    for text in says:
        assert text in body
    for text in never:
        assert text not in body


@pytest.mark.parametrize("spelling", [
    "\uff0b" + "".join(chr(0xFF10 + int(d)) for d in NUMBER[1:]),   # full-width
    "+1" + "".join(chr(0x0660 + int(d)) for d in NUMBER[2:]),        # Arabic-Indic
])
async def test_stop_from_another_spelling_of_a_number_opts_out_that_number(
        daemon: tuple[Dispatcher, Twilio], spelling: str) -> None:
    running, twilio = daemon
    status, _ = await twilio.post("/twilio/sms/inbound",
                                  {"MessageSid": "SMin9", "From": spelling, "Body": "STOP"})
    assert status == 200
    [opt_out] = await records(running, "opt_out")
    assert (opt_out["account_id"], opt_out["to"]) == ("A-1", NUMBER)
    [state] = await running.store.opt_outs(NUMBER)
    assert state.opted_out
