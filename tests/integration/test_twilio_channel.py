"""The Twilio channel with the real twilio library against the local fake of Twilio's API."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from twilio.base.exceptions import TwilioRestException
from twilio.request_validator import RequestValidator

from channels.base import SendFailed
from channels.twilio import (
    RetryPolicy,
    TwilioChannel,
    TwilioConfig,
    make_client,
)
from channels.twilio_status import outcome_of
from dispatcher.domain.contact import Delivery, Medium, Outcome
from tests.fake_twilio import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    CallbackSink,
    CallScript,
    FakeTwilio,
    Recorded,
)
from tests.support import free_port

DANA = "+15125550100"
OTHER = "+15125550111"
SENDER = "+15005550006"
SERVICE = "MG" + "b" * 32
FAST = RetryPolicy(max_tries=4, base=0.01, cap=0.05, budget=2.0)
_ids = itertools.count()

MakeChannel = Callable[..., TwilioChannel]


@pytest.fixture
async def fake() -> AsyncIterator[FakeTwilio]:
    """The fake Twilio API on a free loopback port."""
    async with FakeTwilio() as server:
        yield server


@pytest.fixture
async def sink() -> AsyncIterator[CallbackSink]:
    """The webhook server that Twilio's callbacks reach."""
    async with CallbackSink() as server:
        yield server


@pytest.fixture
async def make_channel(fake: FakeTwilio, sink: CallbackSink) -> AsyncIterator[MakeChannel]:
    """Channels aimed at the fake (fast rates and retries unless told), closed at the end."""
    made: list[TwilioChannel] = []

    def make(token: str = AUTH_TOKEN, api_base: str | None = None, **overrides: Any,
             ) -> TwilioChannel:
        settings: dict[str, Any] = {
            "public_url": sink.public_url, "from_number": SENDER,
            "api_base": api_base or fake.base_url, "calls_per_second": 100.0,
            "messages_per_second": 100.0, "request_timeout": 2.0,
            "third_party_templates": frozenset({"location_call"}), **overrides}
        channel = TwilioChannel(TwilioConfig(**settings), ACCOUNT_SID, token, retry=FAST)
        made.append(channel)
        return channel

    yield make
    for channel in made:
        await channel.close()


def delivery(medium: Medium = Medium.SMS, to: str = DANA,
             template: str | None = None) -> Delivery:
    template = template or ("reminder_sms" if medium is Medium.SMS else "call_script")
    return Delivery(attempt_id=f"at-{next(_ids)}", medium=medium, to=to, body="Please call us.",
                    template=template, local_zone="America/Chicago", at=datetime.now(UTC))


def statuses(requests: list[Recorded]) -> list[int]:
    return [r.status for r in requests]


async def send_failure(channel: TwilioChannel, what: Delivery) -> SendFailed:
    with pytest.raises(SendFailed) as caught:
        await channel.send(what)
    return caught.value


# --- the happy paths ---


async def test_sms_is_created_with_a_per_attempt_callback(
        fake: FakeTwilio, sink: CallbackSink, make_channel: MakeChannel) -> None:
    sms = delivery()
    result = await make_channel().send(sms)
    assert result.outcome is None  # the callback tells
    assert list(fake.messages) == [result.provider_sid]
    assert result.provider_sid.startswith("SM")
    [post] = fake.received("POST", "Messages")
    assert dict(post.form) == {
        "To": DANA, "From": SENDER, "Body": "Please call us.",
        "StatusCallback": f"{sink.public_url}/twilio/sms/status?attempt={sms.attempt_id}"}
    await fake.settle()
    got = sink.at("/twilio/sms/status")
    assert [r.params["MessageStatus"] for r in got] == ["queued", "sent", "delivered"]
    assert all(r.valid and r.params["MessageSid"] == result.provider_sid for r in got)


async def test_sms_through_a_messaging_service(fake: FakeTwilio,
                                               make_channel: MakeChannel) -> None:
    await make_channel(from_number=None, messaging_service_sid=SERVICE).send(delivery())
    [post] = fake.received("POST", "Messages")
    assert post.first("MessagingServiceSid") == SERVICE
    assert post.first("From") is None


async def test_callbacks_are_signed_as_the_validator_checks(
        fake: FakeTwilio, make_channel: MakeChannel) -> None:
    await make_channel().send(delivery())
    await make_channel().send(delivery(Medium.CALL))
    await fake.settle()
    validator = RequestValidator(AUTH_TOKEN)
    assert len(fake.callbacks) == 7
    for posted in fake.callbacks:
        assert validator.validate(posted.url, posted.params, posted.signature)
        assert posted.status == 204
        tampered = {**posted.params, "To": OTHER}
        assert not validator.validate(posted.url, tampered, posted.signature)
        assert not RequestValidator("other-token").validate(posted.url, posted.params,
                                                            posted.signature)


async def test_call_has_twiml_url_status_events_and_machine_detection(
        fake: FakeTwilio, sink: CallbackSink, make_channel: MakeChannel) -> None:
    call = delivery(Medium.CALL)
    result = await make_channel().send(call)
    assert result.provider_sid in fake.calls
    [post] = fake.received("POST", "Calls")
    query = f"?attempt={call.attempt_id}"
    assert post.first("Url") == f"{sink.public_url}/twilio/call/twiml{query}"
    assert post.first("Method") == "POST"
    assert post.first("StatusCallback") == f"{sink.public_url}/twilio/call/status{query}"
    assert post.values("StatusCallbackEvent") == ["initiated", "ringing", "answered",
                                                  "completed"]
    assert post.first("MachineDetection") == "DetectMessageEnd"
    await fake.settle()
    got = sink.at("/twilio/call/status")
    assert [r.params["CallStatus"] for r in got] == ["initiated", "ringing", "in-progress",
                                                     "completed"]
    assert all(r.valid for r in got)
    assert got[-1].params["AnsweredBy"] == "human"
    [twiml] = sink.at("/twilio/call/twiml")
    assert twiml.valid
    assert twiml.url.endswith(query)
    assert fake.twiml_fetches[0].body == "<Response><Hangup/></Response>"


@pytest.mark.parametrize(("script", "outcome"), [
    (CallScript(answered_by="machine_end_beep"), Outcome.MACHINE),
    (CallScript(answered_by="human"), Outcome.COMPLETED),
    (CallScript(answered_by=None, final="no-answer"), Outcome.NO_ANSWER),
    (CallScript(answered_by=None, final="busy"), Outcome.BUSY),
])
async def test_call_scripts_end_in_their_outcome(
        fake: FakeTwilio, sink: CallbackSink, make_channel: MakeChannel, script: CallScript,
        outcome: Outcome) -> None:
    fake.call_scripts[DANA] = script
    await make_channel().send(delivery(Medium.CALL))
    await fake.settle()
    last = sink.at("/twilio/call/status")[-1].params
    assert outcome_of(Medium.CALL, last["CallStatus"], last.get("ErrorCode"),
                      last.get("AnsweredBy")) is outcome


async def test_third_party_call_detects_machines_without_waiting_for_the_beep(
        fake: FakeTwilio, make_channel: MakeChannel) -> None:
    await make_channel().send(delivery(Medium.CALL, template="location_call"))
    [post] = fake.received("POST", "Calls")
    assert post.first("MachineDetection") == "Enable"


# --- errors ---


async def test_429_then_success_is_retried_and_counted_once(
        fake: FakeTwilio, make_channel: MakeChannel) -> None:
    fake.fail_next(429)
    result = await make_channel().send(delivery())
    assert statuses(fake.received("POST", "Messages")) == [429, 201]
    assert list(fake.messages) == [result.provider_sid]


async def test_500_is_retried(fake: FakeTwilio, make_channel: MakeChannel) -> None:
    fake.fail_next(500, times=2)
    result = await make_channel().send(delivery(Medium.CALL))
    assert statuses(fake.received("POST", "Calls")) == [500, 500, 201]
    assert list(fake.calls) == [result.provider_sid]


async def test_retries_are_bounded_and_not_a_contact_attempt(
        fake: FakeTwilio, make_channel: MakeChannel) -> None:
    fake.fail_next(429, times=10)
    error = (await send_failure(make_channel(), delivery())).error
    assert error.retryable
    assert error.code == 20429
    assert not error.counts_as_attempt
    assert error.retry_after is not None
    assert len(fake.received("POST", "Messages")) == FAST.max_tries
    assert not fake.messages


@pytest.mark.parametrize(("code", "outcome", "unsubscribed"), [
    (21211, Outcome.INVALID_NUMBER, False),
    (21614, Outcome.INVALID_NUMBER, False),
    (21610, Outcome.FAILED, True),
    (21408, Outcome.FAILED, False),
])
async def test_number_errors_are_mapped_without_retry(
        fake: FakeTwilio, make_channel: MakeChannel, code: int, outcome: Outcome,
        unsubscribed: bool) -> None:
    fake.fail_number(DANA, code)
    error = (await send_failure(make_channel(), delivery())).error
    assert (error.code, error.outcome, error.unsubscribed) == (code, outcome, unsubscribed)
    assert not error.retryable
    assert not error.reconcile
    assert str(code) in error.detail
    assert statuses(fake.received("POST", "Messages")) == [400]


async def test_wrong_credentials_fail_the_attempt(fake: FakeTwilio,
                                                  make_channel: MakeChannel) -> None:
    error = (await send_failure(make_channel(token="wrong"), delivery())).error
    assert (error.code, error.outcome) == (20003, Outcome.FAILED)
    assert statuses(fake.requests) == [401]


async def test_unreachable_api_is_retried_as_never_sent(make_channel: MakeChannel) -> None:
    channel = make_channel(api_base=f"http://127.0.0.1:{free_port()}")
    error = (await send_failure(channel, delivery())).error
    assert error.retryable
    assert not error.reconcile


async def test_slow_answer_is_not_resent_but_reconciled(
        fake: FakeTwilio, make_channel: MakeChannel) -> None:
    channel = make_channel(request_timeout=0.1)
    sms = delivery()
    fake.delay_next(0.4)
    error = (await send_failure(channel, sms)).error
    assert (error.reconcile, error.retryable, error.outcome) == (True, False, Outcome.UNKNOWN)
    assert len(fake.received("POST", "Messages")) == 1  # not sent again blindly
    [created] = fake.messages
    found = await channel.find_sent(sms.attempt_id, DANA, sms.at, Medium.SMS)
    assert found is not None
    assert found.sid == created
    # The same sid known to belong to another attempt is not this one's.
    assert await channel.find_sent(sms.attempt_id, DANA, sms.at, Medium.SMS,
                                   exclude={created}) is None


# --- reconciliation and lost callbacks ---


async def test_lost_callbacks_are_recovered_by_listing(
        fake: FakeTwilio, sink: CallbackSink, make_channel: MakeChannel) -> None:
    fake.faults.drop_callbacks = True
    channel = make_channel()
    sms, call = delivery(), delivery(Medium.CALL)
    sms_sid = (await channel.send(sms)).provider_sid
    call_sid = (await channel.send(call)).provider_sid
    await fake.settle()
    assert not sink.at("/twilio/sms/status")
    assert not sink.at("/twilio/call/status")
    found_sms = await channel.find_sent(sms.attempt_id, DANA, sms.at, Medium.SMS)
    found_call = await channel.find_sent(call.attempt_id, DANA, call.at, Medium.CALL)
    assert found_sms is not None
    assert found_call is not None
    assert (found_sms.sid, found_sms.outcome) == (sms_sid, Outcome.DELIVERED)
    assert (found_call.sid, found_call.outcome) == (call_sid, Outcome.COMPLETED)


async def test_find_sent_matches_number_and_time(fake: FakeTwilio,
                                                 make_channel: MakeChannel) -> None:
    channel = make_channel()
    old = await channel.send(delivery())
    fake.messages[old.provider_sid]["_created"] -= timedelta(hours=2)
    await channel.send(delivery(to=OTHER))
    since = datetime.now(UTC)
    assert await channel.find_sent("at-x", DANA, since, Medium.SMS) is None
    assert await channel.find_sent("at-x", DANA, since, Medium.CALL) is None
    [listing] = fake.received("GET", "Messages")
    assert ("To", DANA) in listing.query
    assert ("From", SENDER) in listing.query


async def test_duplicate_and_reordered_callbacks(fake: FakeTwilio, sink: CallbackSink,
                                                 make_channel: MakeChannel) -> None:
    fake.faults.duplicate_callbacks = True
    fake.faults.reorder_callbacks = True
    await make_channel().send(delivery())
    await fake.settle()
    got = [r.params["MessageStatus"] for r in sink.at("/twilio/sms/status")]
    assert got == ["delivered", "delivered", "sent", "sent", "queued", "queued"]


async def test_undelivered_sms_callback_carries_the_error_code(
        fake: FakeTwilio, sink: CallbackSink, make_channel: MakeChannel) -> None:
    fake.sms_final[DANA] = ("undelivered", 30006)
    await make_channel().send(delivery())
    await fake.settle()
    last = sink.at("/twilio/sms/status")[-1].params
    assert (last["MessageStatus"], last["ErrorCode"]) == ("undelivered", "30006")
    assert outcome_of(Medium.SMS, last["MessageStatus"], last["ErrorCode"]) is Outcome.UNDELIVERED


# --- the fake itself, through the library ---


async def test_fake_lists_with_filters_and_pages(fake: FakeTwilio,
                                                 make_channel: MakeChannel) -> None:
    channel = make_channel()
    sids = [(await channel.send(delivery(to=DANA))).provider_sid for _ in range(5)]
    await channel.send(delivery(to=OTHER))
    client = channel.client()
    listed = await client.messages.list_async(to=DANA, page_size=2)
    assert [m.sid for m in listed] == sids[::-1]  # newest first
    assert len(fake.received("GET", "Messages")) == 3
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    assert await client.messages.list_async(date_sent_after=tomorrow) == []
    assert len(await client.messages.list_async(date_sent_before=tomorrow)) == 6
    call = await channel.send(delivery(Medium.CALL))
    started = await client.calls.list_async(start_time_after=datetime.now(UTC)
                                            - timedelta(minutes=1))
    assert [c.sid for c in started] == [call.provider_sid]


async def test_fake_fetches_by_sid(fake: FakeTwilio, make_channel: MakeChannel) -> None:
    channel = make_channel()
    sid = (await channel.send(delivery())).provider_sid
    await fake.settle()
    message = await channel.client().messages(sid).fetch_async()
    assert (message.sid, message.to, message.status) == (sid, DANA, "delivered")
    assert message.date_sent is not None
    with pytest.raises(TwilioRestException) as caught:
        await channel.client().calls("CA" + "0" * 32).fetch_async()
    assert (caught.value.status, caught.value.code) == (404, 20404)


async def test_client_factory_points_the_library_elsewhere(fake: FakeTwilio) -> None:
    client = make_client(ACCOUNT_SID, AUTH_TOKEN, fake.base_url + "/", timeout=1.0)
    try:
        assert await client.calls.list_async() == []
    finally:
        await client.http_client.close()
    assert fake.requests[0].path == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Calls.json"


# --- rate ---


def assert_paced(times: list[float], started: float, rate: float) -> None:
    """The k-th request to arrive (from 0) arrived no sooner than k slots of 1/rate after
    `started`, read before the first was sent: a limiter holds each request to its own slot,
    and a machine slow to deliver one only makes it arrive later, never sooner. (Arrivals can
    bunch when one comes late, so the gaps between them prove nothing.)"""
    for k, at in enumerate(sorted(times)):
        assert at - started >= k / rate, (k, at - started, sorted(times))


async def test_burst_of_sends_keeps_the_configured_rate(
        fake: FakeTwilio, sink: CallbackSink, make_channel: MakeChannel) -> None:
    rate = 20.0
    channel = make_channel(messages_per_second=rate)
    started = time.monotonic()  # the fake's clock of arrivals
    results = await asyncio.gather(*(channel.send(delivery()) for _ in range(20)))
    assert len({r.provider_sid for r in results}) == 20
    posts = fake.received("POST", "Messages")
    assert len(posts) == 20
    assert_paced([p.at for p in posts], started, rate)
    # Waiting for the limiter stalls nothing else: callbacks came in during the burst.
    assert any(r.at < posts[-1].at for r in sink.received)


async def test_calls_and_messages_have_separate_limits(
        fake: FakeTwilio, make_channel: MakeChannel) -> None:
    rate = 4.0
    channel = make_channel(messages_per_second=rate, calls_per_second=rate)
    started = time.monotonic()
    await asyncio.gather(*(channel.send(delivery(medium))
                           for medium in (Medium.SMS, Medium.CALL) for _ in range(3)))
    sms = [p.at for p in fake.received("POST", "Messages")]
    calls = [p.at for p in fake.received("POST", "Calls")]
    assert_paced(sms, started, rate)
    assert_paced(calls, started, rate)
    # Each sender had its own first slot: the first call did not wait behind the SMS.
    assert abs(calls[0] - sms[0]) < 1 / rate
