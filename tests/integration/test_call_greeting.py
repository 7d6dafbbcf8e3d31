"""What a person hears before pressing 1, in every shipped locale, over the real signed webhook.

Whoever answers a debtor's phone may not be the debtor: until they press 1 the call may say who is
calling and for whom, and nothing about the debt.
"""

from __future__ import annotations

import asyncio
import html
import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest

from dispatcher.app import Dispatcher
from dispatcher.classify import classify
from dispatcher.clock import VirtualClock
from dispatcher.contact import Medium, Role
from dispatcher.settings import load_config
from dispatcher.store.contact_rows import AttemptRow
from dispatcher.templates import debt_terms, load_templates
from tests.integration.inprocess import wait_for
from tests.integration.test_twilio_webhooks import PUBLIC, TOKEN, Twilio
from tests.support import ROOT, Broker, make_config

SHIPPED = ROOT / "config" / "templates.toml"
NOW = datetime(2026, 12, 7, 23, 0, tzinfo=UTC)  # 17:00 in Chicago
AMOUNT, DAYS = "4321.09", 37
DUE = (NOW - timedelta(days=DAYS)).date()
NUMBER = "+15125550100"
# Every locale any shipped template has, and a debtor with none (the default locale).
LOCALES = sorted({locale for template in load_templates(SHIPPED).templates.values()
                  for texts in template.parts.values() for locale in texts})
CASES = [*LOCALES, None]


def _key(locale: str | None) -> str:
    return (locale or "none").replace("-", "_")


def _overdue(locale: str | None) -> bytes:
    debtor: dict[str, object] = {
        "name": "Pat Doe", "timezone": "America/Chicago",
        "phones": [{"number": NUMBER, "type": "mobile", "sms_consent": True,
                    "call_consent": True}]}
    if locale is not None:
        debtor["locale"] = locale
    return json.dumps({
        "schema": 1, "event_id": f"e-{_key(locale)}", "type": "account.overdue",
        "occurred_at": NOW.isoformat(), "account_id": f"A-{_key(locale)}",
        "data": {"days_past_due": DAYS, "amount_due": AMOUNT, "currency": "USD",
                 "debtor": debtor}}).encode()


@pytest.fixture
async def twilio(broker: Broker, tmp_path: Path) -> AsyncIterator[Twilio]:
    path = make_config(tmp_path, broker.url, extra=f'public_url = "{PUBLIC}"\n'
                                                   f'[contact]\nsweep_seconds = 60\n')
    config = load_config(path, {})
    async with Dispatcher(config, clock=VirtualClock(NOW),
                          environ={"TWILIO_AUTH_TOKEN": TOKEN}) as running:
        task = asyncio.create_task(running.run())
        await wait_for(lambda: running.health.mqtt_connected, 10, "connected")
        await running.store.record_batch(
            [classify(_overdue(locale), "t", 65536) for locale in CASES], now=NOW,
            config_version="t")
        await running.store.record_decisions(
            attempts=[AttemptRow(f"at-{_key(locale)}", f"A-{_key(locale)}", "debtor",
                                 Role.DEBTOR, NUMBER, Medium.CALL, "early", "evening", "r",
                                 "call_script", NOW) for locale in CASES],
            plans=[], audit=[], now=NOW, config_version="t")
        async with aiohttp.ClientSession() as http:
            assert running.webhook_port is not None
            yield Twilio(running.webhook_port, http)
        running.request_stop()
        await task


def spoken(twiml: str) -> list[str]:
    """The texts of every <Say> in a TwiML answer."""
    return [html.unescape(text) for text in re.findall(r"<Say[^>]*>(.*?)</Say>", twiml, re.S)]


def debt_revealed(text: str) -> list[str]:
    """What in `text` tells the listener about the debt (or is a note not meant to be heard)."""
    found = [f"word {term!r}" for term in debt_terms(text)]
    found += [f"figure {figure!r}" for figure in ("4321", "4,321", "四千", str(DAYS), "三十七")
              if figure in text]
    found += [f"date {date!r}" for date in (DUE.isoformat(), f"{DUE.month}/{DUE.day}",
                                            f"{DUE.month}月{DUE.day}日", str(DUE.year))
              if date in text]
    found += [f"note {mark!r}" for mark in "[]【】" if mark in text]
    return found


@pytest.mark.parametrize("locale", CASES)
async def test_nothing_about_the_debt_is_said_before_the_person_presses_1(
        twilio: Twilio, locale: str | None) -> None:
    path = f"/twilio/call/twiml?attempt=at-{_key(locale)}"
    status, before = await twilio.post(path, {"CallSid": "CA1", "AnsweredBy": "human"})
    assert status == 200
    assert "<Gather" in before
    # Everything in the first answer: the greeting inside <Gather>, and what follows it when no
    # key is pressed.
    assert spoken(before), before
    for text in spoken(before):
        assert debt_revealed(text) == [], text
    status, machine = await twilio.post(path, {"CallSid": "CA1",
                                               "AnsweredBy": "machine_end_beep"})
    assert status == 200
    for text in spoken(machine):
        assert debt_revealed(text) == [], text
    # Only once 1 is pressed does the call name the debt: the check above could fail.
    status, after = await twilio.post(path + "&step=confirm", {"CallSid": "CA1", "Digits": "1"})
    assert status == 200
    assert AMOUNT in after
    assert str(DAYS) in after
    assert "<Gather" not in after
