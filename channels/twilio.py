"""The Twilio channel: SMS and calls through the twilio library's async client.

Outcome of `send()`:
- created: `DeliveryResult(sid)`; the status callback tells the outcome later;
- anything else raises `SendFailed`, whose `error` (a `ChannelError`) says what to do:
  `retryable` (429, 5xx, connection refused; already retried here within a bounded budget; not a
  contact attempt), `reconcile` (the request may have created a message or call, for example a
  timeout after sending: ask `find_sent()` before sending again; `outcome` is UNKNOWN until
  then), `unsubscribed` (21610: record an opt-out), or a final `outcome` (INVALID_NUMBER for
  the codes channels/twilio_status.py lists: mark the number and try the next; FAILED with the
  code for other 4xx).
An error is raised rather than returned as `DeliveryResult(outcome=UNKNOWN)` so that no caller
can record a lost answer as a final outcome by accident.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import random
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import aiohttp
from twilio.base.exceptions import TwilioException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client

from channels.base import ChannelError, SendFailed
from channels.rate import Limiter, SharedLimiter, SharedRate
from channels.twilio_status import (
    INVALID_NUMBER_CODES,
    UNSUBSCRIBED_CODE,
    outcome_detail,
    outcome_of,
)
from dispatcher.domain.contact import Delivery, DeliveryResult, Medium, Outcome

log = logging.getLogger(__name__)
# The library logs each request's URL and query at INFO, phone numbers included: keep them out
# of the service's logs unless an operator lowers this level to debug.
_http_log = logging.getLogger(__name__ + ".http")
_http_log.setLevel(logging.WARNING)

DEFAULT_API_BASE = "https://api.twilio.com"
SMS_STATUS_PATH = "/twilio/sms/status"
CALL_STATUS_PATH = "/twilio/call/status"
CALL_TWIML_PATH = "/twilio/call/twiml"
CALL_EVENTS = ("initiated", "ringing", "answered", "completed")
TOO_MANY_REQUESTS_CODE = 20429
# A gateway error or timeout may hide a message or call already created upstream.
MAYBE_CREATED_STATUSES = frozenset({502, 504})
RATE_MARGIN = 0.99
LIST_LIMIT = 200  # newest records examined by find_sent: enough for one number's recent history


@dataclass(frozen=True)
class TwilioConfig:
    """What the channel needs from [twilio] and [webhook]; credentials are passed separately."""

    public_url: str
    from_number: str | None = None
    messaging_service_sid: str | None = None
    api_base: str = DEFAULT_API_BASE
    calls_per_second: float = 1.0  # Twilio's default: 1 call/s per account
    messages_per_second: float = 1.0  # Twilio's default: 1 SMS/s per long code
    request_timeout: float = 10.0
    # Templates of calls to third parties: their machines get no voicemail, so AMD ends early.
    third_party_templates: frozenset[str] = frozenset()


@dataclass(frozen=True)
class RetryPolicy:
    """Bounds of the retries of one send: tries, full-jitter backoff and a total time budget."""

    max_tries: int = 4
    base: float = 0.5
    cap: float = 8.0
    budget: float = 20.0


@dataclass(frozen=True)
class SentRecord:
    """A message or call found at the provider while reconciling a lost answer."""

    sid: str
    medium: Medium
    to: str
    status: str
    created: datetime
    outcome: Outcome | None
    answered_by: str | None = None
    error_code: int | None = None

    @property
    def detail(self) -> str:
        """The outcome record's detail: the provider's error code, if any."""
        return outcome_detail(self.error_code)


# --- building requests -----------------------------------------------------------------------


def _webhook_url(public_url: str, path: str, attempt_id: str) -> str:
    return f"{public_url.rstrip('/')}{path}?attempt={quote(attempt_id, safe='')}"


def status_callback_url(public_url: str, medium: Medium, attempt_id: str) -> str:
    """The URL Twilio posts this attempt's status callbacks to."""
    path = SMS_STATUS_PATH if medium is Medium.SMS else CALL_STATUS_PATH
    return _webhook_url(public_url, path, attempt_id)


def twiml_url(public_url: str, attempt_id: str) -> str:
    """The URL Twilio fetches the call's TwiML from once it is answered."""
    return _webhook_url(public_url, CALL_TWIML_PATH, attempt_id)


def sms_params(delivery: Delivery, config: TwilioConfig) -> dict[str, Any]:
    """The keyword arguments of `messages.create_async` for `delivery`."""
    params: dict[str, Any] = {
        "to": delivery.to, "body": delivery.body,
        "status_callback": status_callback_url(config.public_url, Medium.SMS,
                                               delivery.attempt_id)}
    if config.messaging_service_sid:
        params["messaging_service_sid"] = config.messaging_service_sid
    elif config.from_number:
        params["from_"] = config.from_number
    else:
        raise ValueError("an SMS needs [twilio] from_number or messaging_service_sid")
    return params


def machine_detection(delivery: Delivery, config: TwilioConfig) -> str:
    """Debtor calls wait for the beep (voicemail drop); third-party calls only detect."""
    return "Enable" if delivery.template in config.third_party_templates else "DetectMessageEnd"


def call_params(delivery: Delivery, config: TwilioConfig) -> dict[str, Any]:
    """The keyword arguments of `calls.create_async` for `delivery`."""
    if not config.from_number:
        raise ValueError("a call needs [twilio] from_number")
    return {
        "to": delivery.to, "from_": config.from_number,
        "url": twiml_url(config.public_url, delivery.attempt_id), "method": "POST",
        "status_callback": status_callback_url(config.public_url, Medium.CALL,
                                               delivery.attempt_id),
        "status_callback_event": list(CALL_EVENTS), "status_callback_method": "POST",
        "machine_detection": machine_detection(delivery, config)}


def create_params(delivery: Delivery, config: TwilioConfig) -> dict[str, Any]:
    """The create call's keyword arguments for `delivery`'s medium."""
    return (sms_params if delivery.medium is Medium.SMS else call_params)(delivery, config)


def sender_key(medium: Medium, config: TwilioConfig, account_sid: str) -> str:
    """Whose rate limit a request uses: the account for calls, the sending number for SMS."""
    if medium is Medium.CALL:
        return f"call:{account_sid}"
    return f"sms:{config.messaging_service_sid or config.from_number}"


# --- errors ----------------------------------------------------------------------------------


def error_for_status(status: int | None, code: int | None, message: str = "") -> ChannelError:
    """Map an HTTP status and Twilio error code to what the engine must do."""
    detail = f"twilio error {code} (HTTP {status})" + (f": {message}" if message else "")
    if status == 429 or code == TOO_MANY_REQUESTS_CODE:
        return ChannelError(code or TOO_MANY_REQUESTS_CODE, retryable=True, detail=detail)
    if status in MAYBE_CREATED_STATUSES:
        return ChannelError(code, outcome=Outcome.UNKNOWN, reconcile=True, detail=detail)
    if status is not None and status >= 500:
        return ChannelError(code, retryable=True, detail=detail)
    if code in INVALID_NUMBER_CODES:
        return ChannelError(code, outcome=Outcome.INVALID_NUMBER, detail=detail)
    if code == UNSUBSCRIBED_CODE:
        return ChannelError(code, outcome=Outcome.FAILED, unsubscribed=True, detail=detail)
    return ChannelError(code, outcome=Outcome.FAILED, detail=detail)


def classify_exception(exc: BaseException) -> ChannelError | None:
    """What a failed create call means; None for an exception that is not the provider's."""
    if isinstance(exc, TwilioException):
        status = getattr(exc, "status", None)
        if not isinstance(status, int):
            return None  # the library's own failure, not an answer from Twilio
        code = getattr(exc, "code", None)
        return error_for_status(status, code if isinstance(code, int) else None,
                                str(getattr(exc, "msg", "") or getattr(exc, "title", "")))
    # Connecting failed or timed out: nothing reached Twilio, so sending again is safe.
    if isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError):
        return ChannelError(None, retryable=True, detail=f"cannot connect to Twilio: {exc!r}")
    if isinstance(exc, TimeoutError | aiohttp.ClientError):
        return ChannelError(None, outcome=Outcome.UNKNOWN, reconcile=True,
                            detail=f"no answer from Twilio after sending: {exc!r}")
    return None


# --- retries and rate --------------------------------------------------------------------------


def backoff_delay(tries_done: int, policy: RetryPolicy, rand: Callable[[], float]) -> float:
    """Full-jitter backoff: uniform in [0, min(cap, base * 2**(tries_done - 1)))."""
    return rand() * min(policy.cap, policy.base * 2.0 ** max(0, tries_done - 1))


class RateLimiter:
    """An async token bucket (GCRA): at most `burst` requests at once, then `rate` per second.

    Waiting happens in the calling task only, so ingest and webhooks keep running meanwhile.
    """

    def __init__(self, rate: float, burst: int = 1,
                 clock: Callable[[], float] | None = None) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.interval = 1.0 / rate
        self.tolerance = (burst - 1) * self.interval
        self._clock = clock
        self._theoretical = float("-inf")  # when the next request would be due at the full rate

    def reserve(self, now: float) -> float:
        """Claim the next slot at `now`; return how long to wait before using it."""
        due = max(self._theoretical, now)
        start = max(now, due - self.tolerance)
        self._theoretical = due + self.interval
        return start - now

    async def acquire(self) -> None:
        """Wait until a request may be sent."""
        clock = self._clock or asyncio.get_running_loop().time
        delay = self.reserve(clock())
        if delay > 0:
            await asyncio.sleep(delay)


# --- provider records ---------------------------------------------------------------------------


def pick_sent(records: Iterable[SentRecord], since: datetime, until: datetime | None = None,
              exclude: Collection[str] = (), skew: timedelta = timedelta(seconds=60),
              ) -> SentRecord | None:
    """The earliest record created in [since - skew, until + skew] whose sid is not excluded."""
    low = since - skew
    high = None if until is None else until + skew
    fitting = [r for r in records if r.sid not in exclude and r.created >= low
               and (high is None or r.created <= high)]
    return min(fitting, key=lambda r: (r.created, r.sid), default=None)


def _record(medium: Medium, instance: Any) -> SentRecord | None:
    if instance.date_created is None:
        return None
    answered_by = getattr(instance, "answered_by", None)
    # Only a Message has an error code: the Call resource carries none.
    code = getattr(instance, "error_code", None)
    return SentRecord(sid=instance.sid, medium=medium, to=instance.to, status=instance.status,
                      created=instance.date_created,
                      outcome=outcome_of(medium, instance.status, code, answered_by),
                      answered_by=answered_by, error_code=code)


# --- the client --------------------------------------------------------------------------------


def rebase_url(url: str, api_base: str) -> str:
    """`url` with the scheme, host and port of `api_base`, and its path prefix prepended."""
    target, base = urlsplit(url), urlsplit(api_base)
    path = base.path.rstrip("/") + target.path
    return urlunsplit((base.scheme, base.netloc, path, target.query, target.fragment))


def basic_auth_header(login: str, password: str) -> str:
    """The value of an HTTP basic Authorization header."""
    return "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode("ascii")


class RebasedHttpClient(AsyncTwilioHttpClient):  # type: ignore[misc]
    """The library's async HTTP client, sending every request to `api_base` instead."""

    def __init__(self, api_base: str, timeout: float) -> None:
        super().__init__(timeout=timeout, logger=_http_log)
        self.api_base = api_base

    # The library's own signature, which the twilio client calls positionally.
    async def request(  # noqa: PLR0917
            self, method: str, url: str, params: Mapping[str, object] | None = None,
            data: Mapping[str, object] | None = None, headers: Mapping[str, str] | None = None,
            auth: tuple[str, str] | None = None, timeout: float | None = None,  # noqa: ASYNC109
            allow_redirects: bool = False) -> Any:
        """Send the request to `api_base`, with the client's timeout unless one is given."""
        if auth is not None:
            # aiohttp 3.14 deprecates the BasicAuth object the library would build from `auth`.
            headers = {**(headers or {}), "Authorization": basic_auth_header(*auth)}
        # The library's async client ignores its own timeout unless each request passes one.
        return await super().request(
            method, rebase_url(url, self.api_base), params=params, data=data, headers=headers,
            auth=None, timeout=self.timeout if timeout is None else timeout,
            allow_redirects=allow_redirects)


def make_client(account_sid: str, auth_token: str, api_base: str = DEFAULT_API_BASE,
                timeout: float = 10.0) -> Any:
    """A `twilio.rest.Client` on the async HTTP client aimed at `api_base` (needs a running
    event loop: the HTTP client opens its session at once)."""
    http = RebasedHttpClient(api_base, timeout)
    return Client(account_sid, auth_token, http_client=http)


class TwilioChannel:
    """Sends SMS and places calls through Twilio, rate-limited per sender, with bounded retries.

    With a `shared` rate (the store several daemons share), each request also takes a token of
    the sender's bucket there, so that the rate holds for all of them together.
    """

    name: str = "twilio"

    def __init__(self, config: TwilioConfig, account_sid: str, auth_token: str, *,
                 retry: RetryPolicy | None = None,
                 rand: Callable[[], float] = random.random,
                 shared: SharedRate | None = None) -> None:
        self.config = config
        self.account_sid = account_sid
        self._auth_token = auth_token
        self.retry = retry or RetryPolicy()
        self._rand = rand
        self._client: Any = None
        self._shared = shared
        self._limiters: dict[str, Limiter] = {}

    def client(self) -> Any:
        """The twilio client, made on first use inside the running loop."""
        if self._client is None:
            self._client = make_client(self.account_sid, self._auth_token,
                                       self.config.api_base, self.config.request_timeout)
        return self._client

    def sends_per_second(self, medium: Medium) -> float:
        """The configured rate of `medium`, which bounds how much one sweep sends."""
        return (self.config.calls_per_second if medium is Medium.CALL
                else self.config.messages_per_second)

    def limiter(self, medium: Medium) -> Limiter:
        """The rate limiter of the sender that `medium` uses."""
        key = sender_key(medium, self.config, self.account_sid)
        if key not in self._limiters:
            # 1% under the limit: jitter on the way must never let the provider count more
            # requests than the limit in any one second.
            rate = self.sends_per_second(medium) * RATE_MARGIN
            local = RateLimiter(rate)
            self._limiters[key] = (
                local if self._shared is None
                else SharedLimiter(local, self._shared, f"twilio:{key}", rate))
        return self._limiters[key]

    async def send(self, delivery: Delivery) -> DeliveryResult:
        """Create the message or call; raise SendFailed when Twilio did not (or may not have)."""
        params = create_params(delivery, self.config)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.retry.budget
        tries = 0
        while True:
            tries += 1
            answer = await self._try_create(delivery.medium, params)
            if isinstance(answer, str):
                return DeliveryResult(provider_sid=answer)
            if not answer.retryable:
                raise SendFailed(answer)
            delay = backoff_delay(tries, self.retry, self._rand)
            if tries >= self.retry.max_tries or loop.time() + delay > deadline:
                raise SendFailed(replace(answer, retry_after=self.retry.cap))
            log.info("attempt %s: %s; trying again in %.2fs", delivery.attempt_id,
                     answer.detail, delay)
            await asyncio.sleep(delay)

    async def _try_create(self, medium: Medium, params: Mapping[str, Any]) -> str | ChannelError:
        """One rate-limited create request: the new sid, or what went wrong."""
        await self.limiter(medium).acquire()
        resource = self.client().messages if medium is Medium.SMS else self.client().calls
        try:
            created = await resource.create_async(**params)
        except (TwilioException, aiohttp.ClientError, TimeoutError) as exc:
            error = classify_exception(exc)
            if error is None:
                raise
            return error
        return str(created.sid)

    async def find_sent(self, attempt_id: str, to: str, since: datetime, medium: Medium, *,
                        until: datetime | None = None,
                        exclude: Collection[str] = ()) -> SentRecord | None:
        """The message or call an attempt whose answer was lost created, if any.

        Twilio's list answers do not return the StatusCallback URL (so not the attempt id):
        the match is on To (and From when fixed), creation time from `since` to `until`, and
        sids not in `exclude` (those already known to belong to other attempts). No date filter
        goes to the API, lest a message not yet sent (no DateSent) or a call not yet started
        (no StartTime) be missed. The library's errors propagate: reconcile again later.
        """
        client = self.client()
        resource = client.messages if medium is Medium.SMS else client.calls
        sender = None if medium is Medium.SMS and self.config.messaging_service_sid \
            else self.config.from_number
        filters: dict[str, Any] = {"to": to}
        if sender:
            filters["from_"] = sender
        found = await resource.list_async(**filters, limit=LIST_LIMIT)
        records = [r for r in (_record(medium, i) for i in found) if r is not None]
        match = pick_sent(records, since, until, exclude)
        log.info("reconciling %s: %s", attempt_id, match.sid if match else "nothing sent")
        return match

    async def close(self) -> None:
        """Close the HTTP session; the channel sends nothing afterwards."""
        if self._client is not None:
            await self._client.http_client.close()
            self._client = None
