"""What a person hears before pressing 1, in every shipped locale, over the real signed webhook.

Whoever answers a debtor's phone may not be the debtor: until they press 1 the call may say who is
calling and for whom, and nothing about the debt.
"""
# ruff: noqa: RUF001  (Chinese texts are written with full-width punctuation, as they are spoken)

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

from dispatcher.config.settings import load_config
from dispatcher.contact.account_facts import ContactPolicy, policy_of
from dispatcher.contact.templates import debt_terms, load_templates, render
from dispatcher.domain.clock import VirtualClock
from dispatcher.domain.contact import Medium, Role
from dispatcher.ingest.classify import classify
from dispatcher.service.app import Dispatcher
from dispatcher.store import AttemptRow
from dispatcher.webhooks.twilio import CallTexts, call_texts
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
async def twilio(broker: Broker, tmp_path: Path, store_url: str) -> AsyncIterator[Twilio]:
    """The daemon with a call attempt per locale, on SQLite, then on PostgreSQL."""
    path = make_config(tmp_path, broker.url, store_url=store_url, extra=f'public_url = "{PUBLIC}"\n'
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


# --- Which templates a call uses ------------------------------------------------------------------

def _policy(tmp_path: Path) -> ContactPolicy:
    """The shipped config, with a second voicemail text that the "late" stage names."""
    path = make_config(tmp_path, "mqtt://127.0.0.1:1883")
    templates = path.parent / "templates.toml"
    templates.write_text(templates.read_text(encoding="utf-8") + """
[templates.short_voicemail]
medium = "call"
party = "debtor"
purpose = "voicemail"

[templates.short_voicemail.text]
en = "{agent} here, please call {callback}."
zh-CN = "我是{agent}，请回电{callback}。"
""", encoding="utf-8")
    schedule = path.parent / "schedules" / "standard.toml"
    schedule.write_text(schedule.read_text().replace(
        'name = "late"', 'name = "late"\nvoicemail_template = "short_voicemail"', 1))
    return policy_of(load_config(path, {}))


VALUES = {"first_name": "Pat", "name": "Pat Doe", "business": "Example Lending",
          "callback": "+15125550199", "agent": "Alex", "amount": AMOUNT, "currency": "USD",
          "days_past_due": str(DAYS), "due_date": DUE.isoformat()}


def _attempt(role: Role, stage: str | None, template: str | None) -> AttemptRow:
    return AttemptRow("at-x", "A-x", "p", role, NUMBER, Medium.CALL, stage, "evening", "r",
                      template, NOW)


def test_a_call_leaves_the_voicemail_its_stage_names(tmp_path: Path) -> None:
    policy = _policy(tmp_path)
    late = call_texts(policy, _attempt(Role.DEBTOR, "late", "call_script"), "en", VALUES)
    early = call_texts(policy, _attempt(Role.DEBTOR, "early", "call_script"), "en", VALUES)
    assert late is not None
    assert early is not None
    assert late.voicemail == "Alex here, please call +15125550199."
    assert early.voicemail.startswith("Hello, this is Alex from Example Lending")
    assert AMOUNT in late.after_identity
    # A stage no longer in the schedule: no voicemail rather than a guess.
    gone = call_texts(policy, _attempt(Role.DEBTOR, "retired", "call_script"), "en", VALUES)
    assert gone is not None
    assert gone.voicemail == ""


def test_a_third_party_hears_the_template_of_the_attempt(tmp_path: Path) -> None:
    policy = _policy(tmp_path)
    texts = call_texts(policy, _attempt(Role.EMERGENCY, None, "location_call"), "zh-CN", VALUES)
    assert texts == CallTexts(location=render(
        policy.templates.get("location_call").text_for("zh-CN")[1], VALUES))


@pytest.mark.parametrize(("role", "template"), [
    (Role.DEBTOR, "gone"), (Role.DEBTOR, None), (Role.DEBTOR, "voicemail"),
    (Role.DEBTOR, "location_call"), (Role.EMERGENCY, "call_script"),
])
def test_a_call_whose_template_does_not_fit_says_nothing(tmp_path: Path, role: Role,
                                                         template: str | None) -> None:
    assert call_texts(_policy(tmp_path), _attempt(role, "early", template), "en", VALUES) is None
