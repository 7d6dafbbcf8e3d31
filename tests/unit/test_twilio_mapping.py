"""The Twilio channel's pure parts: request parameters, error mapping, backoff, rate, records."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException

from channels.base import Channel, ChannelError
from channels.rate import SharedLimiter
from channels.twilio import (
    RateLimiter,
    RetryPolicy,
    SentRecord,
    TwilioChannel,
    TwilioConfig,
    backoff_delay,
    basic_auth_header,
    call_params,
    classify_exception,
    create_params,
    error_for_status,
    pick_sent,
    rebase_url,
    sender_key,
    sms_params,
    status_callback_url,
    twiml_url,
)
from dispatcher.domain.contact import Delivery, Medium, Outcome

DANA = "+15125550100"
SENDER = "+15005550006"
SERVICE = "MG" + "a" * 32
PUBLIC = "https://dispatcher.example.org"
NOON = datetime(2026, 12, 1, 18, 0, tzinfo=UTC)
CONFIG = TwilioConfig(public_url=PUBLIC, from_number=SENDER,
                      third_party_templates=frozenset({"location_call"}))


def delivery(medium: Medium = Medium.SMS, template: str = "reminder_sms",
             attempt_id: str = "at-1") -> Delivery:
    return Delivery(attempt_id=attempt_id, medium=medium, to=DANA, body="Please call us.",
                    template=template, local_zone="America/Chicago", at=NOON)


# --- URLs and parameters ---


@pytest.mark.parametrize(("public", "medium", "attempt", "expected"), [
    (PUBLIC, Medium.SMS, "at-1", f"{PUBLIC}/twilio/sms/status?attempt=at-1"),
    (PUBLIC + "/", Medium.CALL, "at-1", f"{PUBLIC}/twilio/call/status?attempt=at-1"),
    (PUBLIC + "/hooks/", Medium.SMS, "at-1", f"{PUBLIC}/hooks/twilio/sms/status?attempt=at-1"),
    (PUBLIC, Medium.SMS, "a b&c=d/e", f"{PUBLIC}/twilio/sms/status?attempt=a%20b%26c%3Dd%2Fe"),
])
def test_status_callback_url(public: str, medium: Medium, attempt: str, expected: str) -> None:
    assert status_callback_url(public, medium, attempt) == expected


def test_twiml_url() -> None:
    assert twiml_url(PUBLIC + "/", "at-9") == f"{PUBLIC}/twilio/call/twiml?attempt=at-9"


@pytest.mark.parametrize(("config", "sender"), [
    (TwilioConfig(public_url=PUBLIC, from_number=SENDER), {"from_": SENDER}),
    (TwilioConfig(public_url=PUBLIC, messaging_service_sid=SERVICE),
     {"messaging_service_sid": SERVICE}),
    (TwilioConfig(public_url=PUBLIC, from_number=SENDER, messaging_service_sid=SERVICE),
     {"messaging_service_sid": SERVICE}),
])
def test_sms_params(config: TwilioConfig, sender: dict[str, str]) -> None:
    assert sms_params(delivery(), config) == {
        "to": DANA, "body": "Please call us.",
        "status_callback": f"{PUBLIC}/twilio/sms/status?attempt=at-1", **sender}


def test_sms_without_sender_is_refused() -> None:
    with pytest.raises(ValueError, match="from_number or messaging_service_sid"):
        sms_params(delivery(), TwilioConfig(public_url=PUBLIC))


@pytest.mark.parametrize(("template", "detection"), [
    ("call_script", "DetectMessageEnd"),  # debtor: wait for the beep to leave a voicemail
    ("location_call", "Enable"),  # third party: no voicemail, detect only
])
def test_call_params(template: str, detection: str) -> None:
    assert call_params(delivery(Medium.CALL, template, "at-2"), CONFIG) == {
        "to": DANA, "from_": SENDER, "method": "POST",
        "url": f"{PUBLIC}/twilio/call/twiml?attempt=at-2",
        "status_callback": f"{PUBLIC}/twilio/call/status?attempt=at-2",
        "status_callback_event": ["initiated", "ringing", "answered", "completed"],
        "status_callback_method": "POST", "machine_detection": detection}


def test_call_without_from_number_is_refused() -> None:
    config = TwilioConfig(public_url=PUBLIC, messaging_service_sid=SERVICE)
    with pytest.raises(ValueError, match="from_number"):
        call_params(delivery(Medium.CALL, "call_script"), config)


def test_create_params_follows_the_medium() -> None:
    assert "body" in create_params(delivery(Medium.SMS), CONFIG)
    assert "url" in create_params(delivery(Medium.CALL, "call_script"), CONFIG)


@pytest.mark.parametrize(("medium", "config", "expected"), [
    (Medium.CALL, CONFIG, "call:AC1"),
    (Medium.SMS, CONFIG, f"sms:{SENDER}"),
    (Medium.SMS, TwilioConfig(public_url=PUBLIC, from_number=SENDER,
                              messaging_service_sid=SERVICE), f"sms:{SERVICE}"),
])
def test_sender_key(medium: Medium, config: TwilioConfig, expected: str) -> None:
    assert sender_key(medium, config, "AC1") == expected


@pytest.mark.parametrize(("url", "base", "expected"), [
    ("https://api.twilio.com/2010-04-01/Accounts/AC1/Messages.json",
     "http://127.0.0.1:8081", "http://127.0.0.1:8081/2010-04-01/Accounts/AC1/Messages.json"),
    ("https://api.twilio.com/2010-04-01/Accounts/AC1/Messages.json?To=%2B1&Page=1",
     "https://proxy.internal/twilio/", "https://proxy.internal/twilio/2010-04-01/Accounts/AC1/"
     "Messages.json?To=%2B1&Page=1"),
    ("https://api.twilio.com/2010-04-01/Calls.json", "https://api.twilio.com",
     "https://api.twilio.com/2010-04-01/Calls.json"),
])
def test_rebase_url(url: str, base: str, expected: str) -> None:
    assert rebase_url(url, base) == expected


def test_basic_auth_header() -> None:
    assert basic_auth_header("AC1", "secret") == "Basic QUMxOnNlY3JldA=="


# --- errors ---

RETRY = {"retryable": True, "outcome": None, "reconcile": False, "unsubscribed": False}
RECONCILE = {"retryable": False, "outcome": Outcome.UNKNOWN, "reconcile": True,
             "unsubscribed": False}


def fails(outcome: Outcome, *, unsubscribed: bool = False) -> dict[str, Any]:
    return {"retryable": False, "outcome": outcome, "reconcile": False,
            "unsubscribed": unsubscribed}


@pytest.mark.parametrize(("status", "code", "expected_code", "expected"), [
    (429, 20429, 20429, RETRY),
    (429, None, 20429, RETRY),
    (400, 20429, 20429, RETRY),
    (500, 20500, 20500, RETRY),
    (503, 503, 503, RETRY),
    (502, 502, 502, RECONCILE),  # a gateway may have passed the request on
    (504, 504, 504, RECONCILE),
    (400, 21211, 21211, fails(Outcome.INVALID_NUMBER)),
    (400, 21614, 21614, fails(Outcome.INVALID_NUMBER)),
    (400, 21610, 21610, fails(Outcome.FAILED, unsubscribed=True)),
    (400, 21408, 21408, fails(Outcome.FAILED)),
    (401, 20003, 20003, fails(Outcome.FAILED)),
    (404, 20404, 20404, fails(Outcome.FAILED)),
])
def test_error_for_status(status: int, code: int | None, expected_code: int,
                          expected: dict[str, Any]) -> None:
    error = error_for_status(status, code, "boom")
    assert error.code == expected_code
    assert {k: getattr(error, k) for k in expected} == expected
    assert error.counts_as_attempt is not expected["retryable"]
    assert f"HTTP {status}" in error.detail
    assert "boom" in error.detail


@pytest.mark.parametrize(("exc", "expected"), [
    (TwilioRestException(429, "/Messages.json", "Too many", 20429, "POST"), RETRY),
    (TwilioRestException(500, "/Messages.json", "Unable to create record", 500), RETRY),
    (TwilioRestException(400, "/Messages.json", "Invalid", 21211), fails(Outcome.INVALID_NUMBER)),
    (TwilioServiceException("about:blank", "Unsubscribed", 400, 21610),
     fails(Outcome.FAILED, unsubscribed=True)),
    (aiohttp.ConnectionTimeoutError("connect"), RETRY),  # never reached Twilio
    (TimeoutError(), RECONCILE),  # sent, no answer: it may exist
    (aiohttp.SocketTimeoutError("read"), RECONCILE),
    (aiohttp.ServerDisconnectedError(), RECONCILE),
])
def test_classify_exception(exc: BaseException, expected: dict[str, Any]) -> None:
    error = classify_exception(exc)
    assert error is not None
    assert {k: getattr(error, k) for k in expected} == expected


@pytest.mark.parametrize("exc", [ValueError("bug"), TwilioException("library misuse")])
def test_other_exceptions_are_not_the_providers(exc: BaseException) -> None:
    assert classify_exception(exc) is None


def test_channel_error_defaults() -> None:
    assert ChannelError(None).counts_as_attempt


# --- backoff and rate ---


@pytest.mark.parametrize(("tries", "rand", "expected"), [
    (1, 1.0, 0.5),
    (2, 1.0, 1.0),
    (3, 0.5, 1.0),
    (5, 1.0, 8.0),
    (10, 1.0, 8.0),  # capped
    (4, 0.0, 0.0),  # full jitter reaches zero
])
def test_backoff_delay(tries: int, rand: float, expected: float) -> None:
    assert backoff_delay(tries, RetryPolicy(base=0.5, cap=8.0), lambda: rand) == expected


@pytest.mark.parametrize(("rate", "burst", "arrivals", "waits"), [
    (2.0, 1, [0.0, 0.0, 0.0, 0.0], [0.0, 0.5, 1.0, 1.5]),
    (2.0, 1, [0.0, 0.2, 0.6, 5.0, 5.1], [0.0, 0.3, 0.4, 0.0, 0.4]),
    (1.0, 3, [0.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0, 2.0]),
    (10.0, 1, [1.0, 1.0], [0.0, 0.1]),
])
def test_rate_limiter_slots(rate: float, burst: int, arrivals: list[float],
                            waits: list[float]) -> None:
    limiter = RateLimiter(rate, burst)
    assert [pytest.approx(limiter.reserve(t)) for t in arrivals] == waits


@pytest.mark.parametrize(("rate", "burst"), [(0.0, 1), (-1.0, 1), (1.0, 0)])
def test_rate_limiter_refuses_nonsense(rate: float, burst: int) -> None:
    with pytest.raises(ValueError, match="rate"):
        RateLimiter(rate, burst)


async def test_rate_limiter_waits_on_its_clock() -> None:
    now = [0.0]
    limiter = RateLimiter(100.0, clock=lambda: now[0])
    await limiter.acquire()
    await limiter.acquire()  # waits 10 ms of real time: the clock says no time has passed
    assert limiter.reserve(now[0]) == pytest.approx(0.02)


class _Rate:
    """A shared rate that answers given waits and notes who asked."""

    def __init__(self, *waits: float) -> None:
        self.waits = list(waits)
        self.asked: list[tuple[str, float, int]] = []

    async def take_token(self, key: str, rate: float, burst: int) -> float:
        self.asked.append((key, rate, burst))
        return self.waits.pop(0)


async def test_a_shared_limiter_waits_for_its_own_limiter_then_the_fleets_turn() -> None:
    now = [0.0]
    local = RateLimiter(100.0, clock=lambda: now[0])
    shared = _Rate(0.0, 0.03)
    limiter = SharedLimiter(local, shared, "k", 2.0)
    await limiter.acquire()
    started = asyncio.get_running_loop().time()
    await limiter.acquire()  # 10 ms for its own limiter, then 30 ms for the fleet's turn
    assert asyncio.get_running_loop().time() - started >= 0.039
    assert shared.asked == [("k", 2.0, 1), ("k", 2.0, 1)]
    with pytest.raises(ValueError, match="rate"):
        SharedLimiter(local, shared, "k", 0.0)


def test_a_channel_given_a_shared_rate_takes_turns_of_each_senders_rate() -> None:
    shared = _Rate()
    channel = TwilioChannel(replace(CONFIG, messages_per_second=10.0, calls_per_second=2.0),
                            "AC1", "token", shared=shared)
    sms, call = channel.limiter(Medium.SMS), channel.limiter(Medium.CALL)
    assert isinstance(sms, SharedLimiter)
    assert isinstance(call, SharedLimiter)
    assert sms.key == f"twilio:sms:{SENDER}"
    assert sms.rate == pytest.approx(9.9)  # 1% under the limit, as the daemon's own limiter
    assert call.key == "twilio:call:AC1"
    assert call.rate == pytest.approx(1.98)
    # Without one (a store no other daemon shares), the channel's own limiter is all there is.
    assert isinstance(TwilioChannel(CONFIG, "AC1", "token").limiter(Medium.SMS), RateLimiter)


# --- reconciliation ---


def record(sid: str, seconds: int) -> SentRecord:
    return SentRecord(sid, Medium.SMS, DANA, "sent", NOON + timedelta(seconds=seconds), None)


@pytest.mark.parametrize(("seconds", "until", "exclude", "expected"), [
    ([], None, (), None),
    ([5], None, (), "r0"),
    ([-30], None, (), "r0"),  # within the clock skew allowed
    ([-120], None, (), None),  # older than the attempt
    ([40, 5], None, (), "r1"),  # the earliest
    ([5, 40], None, ("r0",), "r1"),  # r0 belongs to another attempt
    ([5, 400], NOON + timedelta(seconds=60), ("r0",), None),  # after the window
])
def test_pick_sent(seconds: list[int], until: datetime | None, exclude: tuple[str, ...],
                   expected: str | None) -> None:
    records = [record(f"r{i}", s) for i, s in enumerate(seconds)]
    found = pick_sent(records, NOON, until, exclude)
    assert (found.sid if found else None) == expected


def test_twilio_channel_is_a_channel() -> None:
    channel: Channel = TwilioChannel(CONFIG, "AC1", "token")
    assert channel.name == "twilio"
