"""Revocation in the debtor's own words, over Twilio's real webhook, against a real store.

A debtor's own revocation is authoritative: an upstream `contact.opt_in` re-enables a number only
when it happened after the revocation and is not dated in the future. What the debtor writes is
normalised and matched in several languages; a text that only might be a revocation pauses the
number on every channel until a person decides.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pytest

from dispatcher.compliance.gate import OPTED_OUT, REVOCATION_REVIEW
from dispatcher.compliance.profiles import limits_for
from dispatcher.contact.account_facts import facts_for
from dispatcher.contact.decide import StoredPlan, decide
from dispatcher.contact.explain import explain
from dispatcher.domain.contact import Medium, Role, Target
from dispatcher.ingest.classify import classify
from dispatcher.service.app import Dispatcher
from schedules.planner import PlannedAttempt
from tests.integration import test_twilio_webhooks as webhooks
from tests.integration.test_twilio_webhooks import NUMBER, SISTER, Twilio, records

daemon = webhooks.daemon  # the daemon with its webhook server, an account and its attempts

Daemon = tuple[Dispatcher, Twilio]


async def standing(running: Dispatcher, number: str = NUMBER) -> dict[str, str]:
    """The number's standing per channel, as the store keeps it."""
    return {o.channel: o.standing for o in await running.store.opt_outs(number)}


async def suppressed_for(running: Dispatcher, medium: Medium, number: str = NUMBER,
                         role: Role = Role.DEBTOR) -> tuple[str, ...]:
    """The reasons the engine's decision gives for refusing an attempt due now on `number`."""
    now = running.clock.now()
    context = (await running.store.contexts(["A-1"], now - timedelta(days=30)))["A-1"]
    facts = facts_for(context)
    policy = running.config
    applied = limits_for(policy.regions, facts.holiday_region)
    assert applied is not None
    limits = applied.limits
    person = "debtor" if role is Role.DEBTOR else "c-1"
    planned = PlannedAttempt(now, Target(role, person, number, "mobile", medium), "early",
                             "morning", "r", "reminder_sms")
    decision = decide(facts, StoredPlan(planned), policy.schedule, limits, now=now,
                      attempt_id="at-x", policy_digest=None)
    return tuple(r.reason for s in decision.suppressed for r in s.reasons)


async def upstream(running: Dispatcher, kind: str, occurred_at: datetime, event_id: str,
                   channel: str = "sms", number: str = NUMBER) -> None:
    """An upstream `contact.<kind>` event, stored the way ingest stores it, received now."""
    payload = json.dumps({"schema": 1, "event_id": event_id, "type": f"contact.{kind}",
                          "occurred_at": occurred_at.isoformat(), "account_id": "A-1",
                          "data": {"number": number, "channel": channel}}).encode()
    await running.store.record_batch([classify(payload, "collections/events/x", 65536)],
                                     now=running.clock.now(), config_version="t")


async def text(twilio: Twilio, body: str, sid: str, number: str = NUMBER) -> str:
    status, answer = await twilio.post("/twilio/sms/inbound",
                                       {"MessageSid": sid, "From": number, "Body": body})
    assert status == 200
    return answer


def refused_opt_ins(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in found if r["status"] == "not_applied"]


# -- an upstream opt-in cannot beat the debtor's own STOP ----------------------------------------

async def test_a_future_dated_opt_in_stored_first_does_not_beat_a_stop_received_now(
        daemon: Daemon) -> None:
    running, twilio = daemon
    await upstream(running, "opt_in", running.clock.now() + timedelta(seconds=200), "up-1")
    answer = await text(twilio, "STOP", "SMstop1")
    assert "<Message>" in answer  # told "no more texts" ...
    assert await standing(running) == {"sms": "opted_out"}  # ... and it holds
    assert OPTED_OUT in await suppressed_for(running, Medium.SMS)
    [refused] = refused_opt_ins(await records(running, "opt_out"))
    assert (refused["event_id"], refused["reason"]) == ("up-1", "opt_in_in_future")


async def test_a_future_dated_opt_in_arriving_after_a_stop_is_refused_and_audited(
        daemon: Daemon) -> None:
    running, twilio = daemon
    await text(twilio, "STOP", "SMstop2")
    await upstream(running, "opt_in", running.clock.now() + timedelta(seconds=200), "up-2")
    assert await standing(running) == {"sms": "opted_out"}
    assert OPTED_OUT in await suppressed_for(running, Medium.SMS)
    [refused] = refused_opt_ins(await records(running, "opt_out"))
    assert (refused["event_id"], refused["to"], refused["reason"]) == (
        "up-2", NUMBER, "opt_in_in_future")


async def test_an_opt_in_dated_before_the_stop_but_received_after_it_does_not_re_enable(
        daemon: Daemon) -> None:
    running, twilio = daemon
    before = running.clock.now() - timedelta(minutes=5)
    await text(twilio, "STOP", "SMstop3")
    await upstream(running, "opt_in", before, "up-3")
    assert await standing(running) == {"sms": "opted_out"}
    [refused] = refused_opt_ins(await records(running, "opt_out"))
    assert refused["reason"] == "opt_in_not_after_revocation"


async def test_an_opt_in_after_the_stop_and_not_in_the_future_re_enables(
        daemon: Daemon) -> None:
    running, twilio = daemon
    await text(twilio, "STOP", "SMstop4")
    await upstream(running, "opt_in", running.clock.now(), "up-4")
    assert await standing(running) == {"sms": "opted_in"}
    assert OPTED_OUT not in await suppressed_for(running, Medium.SMS)
    assert refused_opt_ins(await records(running, "opt_out")) == []


async def test_start_from_the_debtor_still_opts_back_in(daemon: Daemon) -> None:
    running, twilio = daemon
    await text(twilio, "STOP", "SMstop5")
    answer = await text(twilio, "Start", "SMstart5")
    assert "again" in answer
    assert await standing(running) == {"sms": "opted_in"}


# -- the debtor's own words ----------------------------------------------------------------------

TEXT_REVOCATIONS = ["退订。", "opt-out", "please stop", "Stop please",
                    "\uff33\uff34\uff2f\uff30", "STOP 🙏", '"STOP"', "STOP\u200b",
                    "unsub", "ALTO", "Baja", "停止", "बंद करो",
                    "stop texting me!!"]
CONTACT_REVOCATIONS = ["stop calling me", "Stop, wrong number", "don't contact me",
                       "Do not call", "别再打电话", "no me llames", "call mat karo"]


@pytest.mark.parametrize("body", TEXT_REVOCATIONS)
async def test_a_revocation_of_texts_in_the_debtors_words_opts_out_of_sms(
        daemon: Daemon, body: str) -> None:
    running, twilio = daemon
    answer = await text(twilio, body, "SMwords")
    assert "<Message>" in answer  # the one confirmation
    assert (await standing(running))["sms"] == "opted_out"
    assert OPTED_OUT in await suppressed_for(running, Medium.SMS)
    assert await records(running, "reply") == []


@pytest.mark.parametrize("body", CONTACT_REVOCATIONS)
async def test_a_revocation_of_calls_or_contact_revokes_every_channel(
        daemon: Daemon, body: str) -> None:
    running, twilio = daemon
    await text(twilio, body, "SMcalls")
    assert await standing(running) == {"sms": "opted_out", "call": "opted_out"}
    assert OPTED_OUT in await suppressed_for(running, Medium.SMS)
    assert OPTED_OUT in await suppressed_for(running, Medium.CALL)


async def test_a_third_partys_stop_calling_me_covers_their_number(daemon: Daemon) -> None:
    running, twilio = daemon
    await text(twilio, "Stop calling me", "SMsister", number=SISTER)
    assert await standing(running, SISTER) == {"sms": "opted_out", "call": "opted_out"}
    assert OPTED_OUT in await suppressed_for(running, Medium.CALL, SISTER, Role.EMERGENCY)


@pytest.mark.parametrize("body", ["who is this stop", "not now", "can you stop by later?"])
async def test_an_unclear_text_pauses_the_number_until_a_person_decides(
        daemon: Daemon, body: str) -> None:
    running, twilio = daemon
    answer = await text(twilio, body, "SMunclear")
    assert "<Message>" not in answer
    assert await standing(running) == {"sms": "revocation_review",
                                       "call": "revocation_review"}
    for medium in Medium:
        reasons = await suppressed_for(running, medium)
        assert REVOCATION_REVIEW in reasons
    reviews = [r for r in await records(running, "opt_out")
               if r["status"] == "revocation_review"]
    assert {r["channel"] for r in reviews} == {"sms", "call"}
    [reply] = await records(running, "reply")
    assert (reply["status"], reply["detail"]) == ("revocation_review", body)
    shown, _ = await explain(running.store, running.config, "A-1", running.clock.now())
    assert "revocation_review on sms, call" in shown
    assert "- revocation_review: a reply from this number might revoke consent" in shown
    # Twilio's retry of the same message changes nothing.
    await text(twilio, body, "SMunclear")
    assert len(await records(running, "reply")) == 1


async def test_a_person_lifts_a_review_with_an_opt_in_dated_after_it(daemon: Daemon) -> None:
    running, twilio = daemon
    paused_at = running.clock.now()
    await text(twilio, "who is this stop", "SMreview1")
    # A decision dated before the pause, or in the future, does not lift it.
    await upstream(running, "opt_in", paused_at - timedelta(minutes=1), "dec-0", "all")
    await upstream(running, "opt_in", running.clock.now() + timedelta(seconds=200), "dec-1",
                   "all")
    assert set((await standing(running)).values()) == {"revocation_review"}
    await upstream(running, "opt_in", running.clock.now(), "dec-2", "all")
    assert await standing(running) == {"sms": "opted_in", "call": "opted_in"}
    for medium in Medium:
        reasons = await suppressed_for(running, medium)
        assert REVOCATION_REVIEW not in reasons
        assert OPTED_OUT not in reasons


async def test_a_person_confirms_a_review_with_an_opt_out(daemon: Daemon) -> None:
    running, twilio = daemon
    await text(twilio, "not now", "SMreview2")
    await upstream(running, "opt_out", running.clock.now(), "dec-3", "call")
    assert await standing(running) == {"sms": "revocation_review", "call": "opted_out"}
    await upstream(running, "opt_out", running.clock.now(), "dec-4", "sms")
    assert await standing(running) == {"sms": "opted_out", "call": "opted_out"}
    assert OPTED_OUT in await suppressed_for(running, Medium.CALL)


@pytest.mark.parametrize("body", ["I will pay on Friday", "Can I pay half now and half later?",
                                  "I lost my job, can we talk?", "The end of the month works"])
async def test_a_plain_reply_stays_free_text_and_pauses_nothing(
        daemon: Daemon, body: str) -> None:
    running, twilio = daemon
    answer = await text(twilio, body, "SMplain")
    assert "<Message>" not in answer
    assert await standing(running) == {}
    [reply] = await records(running, "reply")
    assert (reply["status"], reply["detail"]) == ("free_text", body)
    reasons = await suppressed_for(running, Medium.SMS)
    assert OPTED_OUT not in reasons
    assert REVOCATION_REVIEW not in reasons


async def test_an_unclear_text_after_a_stop_keeps_the_opt_out_and_pauses_the_rest(
        daemon: Daemon) -> None:
    running, twilio = daemon
    await text(twilio, "STOP", "SMstop6")
    between = running.clock.now()
    await text(twilio, "who is this stop", "SMreview6")
    assert await standing(running) == {"sms": "opted_out", "call": "revocation_review"}
    paused = [(r["channel"], r["status"]) for r in await records(running, "opt_out")
              if r.get("reason") == "revocation_review"]
    assert sorted(paused) == [("call", "revocation_review"), ("sms", "opted_out")]
    # An opt-in dated between the STOP and the unclear text lifts neither.
    await upstream(running, "opt_in", between, "dec-5", "all")
    assert await standing(running) == {"sms": "opted_out", "call": "revocation_review"}
