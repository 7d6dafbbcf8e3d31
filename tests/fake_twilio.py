"""A local stand-in for Twilio's REST API (2010-04-01 Messages and Calls), for the real library.

`FakeTwilio` is an async context manager serving on a free 127.0.0.1 port. It checks HTTP basic
auth, creates messages and calls shaped like Twilio's, lists them with Twilio's filters and
paging, then posts status callbacks signed exactly as `twilio.request_validator` checks them.
Faults: the next N requests answer an error (429/20429, 500...) or answer late (after the
resource is created, as when Twilio accepted it but the answer was slow); per-number error
codes; lost, duplicated and reordered callbacks. Every request is recorded with its arrival
time (time.monotonic()); nothing about rate is enforced.

`CallbackSink` stands in for the daemon's webhook server: it records what it receives, checks
signatures and answers TwiML.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import secrets
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email.utils import format_datetime
from types import TracebackType
from typing import Any
from urllib.parse import urlencode

from aiohttp import ClientError, ClientSession, ClientTimeout, web
from multidict import MultiDictProxy, MultiMapping
from twilio.request_validator import RequestValidator

ACCOUNT_SID = "AC" + "0" * 31 + "1"
AUTH_TOKEN = "fake-twilio-auth-token-0123456789"
API_VERSION = "2010-04-01"
PREFIX = f"/{API_VERSION}/Accounts"
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def rfc2822(moment: datetime | None) -> str | None:
    """Twilio's timestamp format: 'Tue, 01 Dec 2026 18:00:00 +0000'."""
    return None if moment is None else format_datetime(moment.astimezone(UTC))


def error_body(status: int, code: int, message: str) -> dict[str, Any]:
    """A Twilio (legacy format) error answer."""
    return {"code": code, "message": message, "status": status,
            "more_info": f"https://www.twilio.com/docs/errors/{code}"}


@dataclass
class Recorded:
    """One request the fake received and how it answered."""

    method: str
    path: str
    query: list[tuple[str, str]]
    form: list[tuple[str, str]]
    at: float  # time.monotonic() on arrival
    status: int = 0

    def values(self, name: str) -> list[str]:
        """Every value of form field `name`, in order."""
        return [v for k, v in self.form if k == name]

    def first(self, name: str) -> str | None:
        """The first value of form field `name`, if any."""
        found = self.values(name)
        return found[0] if found else None


@dataclass(frozen=True)
class CallScript:
    """How a call to a number goes: who answers (None: nobody), its final status, duration."""

    answered_by: str | None = "human"  # human, machine_start, machine_end_beep, fax, unknown
    final: str = "completed"  # completed, busy, no-answer, failed, canceled
    duration: int = 30


@dataclass
class Posted:
    """A request the fake made to the customer's server (a status callback or a TwiML fetch)."""

    url: str
    params: dict[str, str]
    signature: str
    status: int | None = None  # the server's answer; None when unreachable
    body: str = ""


@dataclass
class Faults:
    """Fault injection knobs; change them between requests."""

    errors: list[tuple[int, int]] = field(default_factory=list)  # next requests: (status, code)
    delays: list[float] = field(default_factory=list)  # next requests answer after this delay
    number_errors: dict[str, tuple[int, int]] = field(default_factory=dict)  # To -> error
    drop_callbacks: bool = False
    duplicate_callbacks: bool = False
    reorder_callbacks: bool = False


def _new_sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


def _parse_bound(text: str) -> date | datetime:
    if len(text) == 10:
        return date.fromisoformat(text)
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def _compare(moment: datetime | None, bound: str, op: str) -> bool:
    """Twilio's date filters: `Field`, `Field<` (on or before), `Field>` (on or after)."""
    if moment is None:
        return False
    limit = _parse_bound(bound)
    left: date | datetime = moment.date() if not isinstance(limit, datetime) else moment
    if op == "<":
        return left <= limit
    if op == ">":
        return left >= limit
    return left == limit


class FakeTwilio:
    """Twilio's Messages and Calls endpoints on loopback, with fault injection."""

    def __init__(self, account_sid: str = ACCOUNT_SID, auth_token: str = AUTH_TOKEN, *,
                 callback_interval: float = 0.005) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.callback_interval = callback_interval
        self.faults = Faults()
        self.sms_final: dict[str, tuple[str, int | None]] = {}  # To -> (status, error code)
        self.call_scripts: dict[str, CallScript] = {}
        self.requests: list[Recorded] = []
        self.messages: dict[str, dict[str, Any]] = {}
        self.calls: dict[str, dict[str, Any]] = {}
        self.callbacks: list[Posted] = []
        self.twiml_fetches: list[Posted] = []
        self.port = 0
        self._order = itertools.count()
        self._tasks: set[asyncio.Task[None]] = set()
        self._runner: web.AppRunner | None = None
        self._session: ClientSession | None = None
        self._validator = RequestValidator(auth_token)
        # The provider's idea of now: a test on a virtual clock gives the fake the same one.
        self.clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    # --- lifecycle ---

    @property
    def base_url(self) -> str:
        """What `[twilio] api_base` is set to."""
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> FakeTwilio:
        app = web.Application(middlewares=[self._record, self._auth, self._faults])
        resource = PREFIX + "/{account}/{kind:Messages|Calls}"
        app.router.add_post(resource + ".json", self._create)
        app.router.add_get(resource + ".json", self._list)
        app.router.add_get(resource + "/{sid}.json", self._fetch)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        self._session = ClientSession(timeout=ClientTimeout(total=5))
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def settle(self) -> None:
        """Wait until every callback scheduled so far has been posted."""
        async with asyncio.timeout(5):
            while self._tasks:
                await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # --- fault knobs ---

    def fail_next(self, status: int, code: int | None = None, times: int = 1) -> None:
        """The next `times` requests answer `status` with Twilio error `code`."""
        default = 20429 if status == 429 else 20500
        self.faults.errors.extend([(status, code or default)] * times)

    def delay_next(self, seconds: float, times: int = 1) -> None:
        """The next `times` requests are answered only after `seconds` (after their effect)."""
        self.faults.delays.extend([seconds] * times)

    def fail_number(self, number: str, code: int, status: int = 400) -> None:
        """Creating a message or call to `number` answers `status` with error `code`."""
        self.faults.number_errors[number] = (status, code)

    # --- what was received ---

    def received(self, method: str, kind: str) -> list[Recorded]:
        """The requests to the Messages or Calls list resource, e.g. ('POST', 'Messages')."""
        suffix = f"/{kind}.json"
        return [r for r in self.requests if r.method == method and r.path.endswith(suffix)]

    # --- middlewares ---

    @web.middleware
    async def _record(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        form = list((await request.post()).items()) if request.method == "POST" else []
        entry = Recorded(request.method, request.path, list(request.query.items()),
                         [(k, str(v)) for k, v in form], time.monotonic())
        self.requests.append(entry)
        response = await handler(request)
        entry.status = response.status
        if self.faults.delays:
            await asyncio.sleep(self.faults.delays.pop(0))
        return response

    @web.middleware
    async def _faults(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self.faults.errors:
            status, code = self.faults.errors.pop(0)
            return web.json_response(error_body(status, code, "injected fault"), status=status)
        return await handler(request)

    @web.middleware
    async def _auth(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        expected = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        if (request.headers.get("Authorization") != f"Basic {expected}"
                or request.match_info.get("account") != self.account_sid):
            return web.json_response(error_body(401, 20003, "Authenticate"), status=401)
        return await handler(request)

    # --- resources ---

    def _uri(self, kind: str, sid: str | None = None) -> str:
        tail = f"/{sid}.json" if sid else ".json"
        return f"{PREFIX}/{self.account_sid}/{kind}{tail}"

    async def _create(self, request: web.Request) -> web.Response:
        kind = request.match_info["kind"]
        form = await request.post()
        problem = self._invalid(kind, form)
        if problem is not None:
            return web.json_response(error_body(*problem), status=problem[0])
        to = str(form["To"])
        if to in self.faults.number_errors:
            status, code = self.faults.number_errors[to]
            return web.json_response(error_body(status, code, f"error for {to}"), status=status)
        if kind == "Messages":
            resource = self._new_message(form)
            self._spawn(self._run_message(resource, form.get("StatusCallback")))
        else:
            resource = self._new_call(form)
            self._spawn(self._run_call(resource, form))
        return web.json_response(self._public(resource), status=201)

    @staticmethod
    def _invalid(kind: str, form: MultiDictProxy[Any]) -> tuple[int, int, str] | None:
        if "To" not in form:
            return (400, 21604, "A 'To' phone number is required.") if kind == "Messages" \
                else (400, 21201, "No 'To' number is specified")
        if kind == "Messages":
            if "From" not in form and "MessagingServiceSid" not in form:
                return 400, 21603, "A 'From' phone number is required."
            if "Body" not in form and "MediaUrl" not in form and "ContentSid" not in form:
                return 400, 21602, "Message body is required."
            return None
        if "From" not in form:
            return 400, 21213, "No 'From' number is specified"
        if not any(k in form for k in ("Url", "Twiml", "ApplicationSid")):
            return 400, 21205, "Url parameter is required."
        return None

    def _base_resource(self, kind: str, prefix: str, form: MultiDictProxy[Any]) -> dict[str, Any]:
        now = self.clock()
        sid = _new_sid(prefix)
        return {"sid": sid, "account_sid": self.account_sid, "api_version": API_VERSION,
                "to": str(form["To"]), "from": form.get("From"), "direction": "outbound-api",
                "price": None, "price_unit": "USD", "uri": self._uri(kind, sid),
                "_created": now, "_updated": now, "_order": next(self._order)}

    def _new_message(self, form: MultiDictProxy[Any]) -> dict[str, Any]:
        message = self._base_resource("Messages", "SM", form)
        service = form.get("MessagingServiceSid")
        message.update({
            "body": form.get("Body"), "num_segments": "1", "num_media": "0",
            "messaging_service_sid": service, "error_code": None, "error_message": None,
            "status": "accepted" if service else "queued", "_sent": None,
            "subresource_uris": {"media": message["uri"].replace(".json", "/Media.json")}})
        if service and message["from"] is None:
            message["from"] = "+15005550006"  # the sender the service's pool assigns
        self.messages[message["sid"]] = message
        return message

    def _new_call(self, form: MultiDictProxy[Any]) -> dict[str, Any]:
        call = self._base_resource("Calls", "CA", form)
        call.update({
            "parent_call_sid": None, "to_formatted": call["to"], "from_formatted": call["from"],
            "phone_number_sid": _new_sid("PN"), "status": "queued", "_start": None,
            "_end": None, "duration": None, "answered_by": None, "forwarded_from": None,
            "caller_name": None, "group_sid": None, "queue_time": "0", "trunk_sid": None,
            "subresource_uris": {}})
        self.calls[call["sid"]] = call
        return call

    @staticmethod
    def _public(resource: dict[str, Any]) -> dict[str, Any]:
        shown = {k: v for k, v in resource.items() if not k.startswith("_")}
        shown["date_created"] = rfc2822(resource["_created"])
        shown["date_updated"] = rfc2822(resource["_updated"])
        if "_sent" in resource:
            shown["date_sent"] = rfc2822(resource["_sent"])
        if "_start" in resource:
            shown["start_time"] = rfc2822(resource["_start"])
            shown["end_time"] = rfc2822(resource["_end"])
        return shown

    def _store(self, kind: str) -> dict[str, dict[str, Any]]:
        return self.messages if kind == "Messages" else self.calls

    async def _fetch(self, request: web.Request) -> web.Response:
        kind, sid = request.match_info["kind"], request.match_info["sid"]
        resource = self._store(kind).get(sid)
        if resource is None:
            message = f"The requested resource {request.path} was not found"
            return web.json_response(error_body(404, 20404, message), status=404)
        return web.json_response(self._public(resource))

    async def _list(self, request: web.Request) -> web.Response:
        kind = request.match_info["kind"]
        query = request.query
        size = min(int(query.get("PageSize", DEFAULT_PAGE_SIZE)), MAX_PAGE_SIZE)
        page = int(query.get("Page", 0))
        chosen = sorted((r for r in self._store(kind).values() if self._matches(kind, r, query)),
                        key=lambda r: r["_order"], reverse=True)  # newest first, as Twilio
        records = chosen[page * size:(page + 1) * size]
        return web.json_response(self._page(kind, query, records, page, size,
                                            more=len(chosen) > (page + 1) * size))

    def _page(self, kind: str, query: MultiMapping[str], records: list[dict[str, Any]],
              page: int, size: int, *, more: bool) -> dict[str, Any]:
        filters = [(k, v) for k, v in query.items() if k not in ("Page", "PageSize", "PageToken")]

        def uri(number: int) -> str:
            paging = [("PageSize", str(size)), ("Page", str(number))]
            if number:
                paging.append(("PageToken", f"PT{number}"))
            return f"{self._uri(kind)}?{urlencode(filters + paging)}"

        return {kind.lower(): [self._public(r) for r in records],
                "first_page_uri": uri(0), "next_page_uri": uri(page + 1) if more else None,
                "previous_page_uri": uri(page - 1) if page else None, "page": page,
                "page_size": size, "start": page * size, "end": page * size + len(records) - 1,
                "uri": uri(page)}

    @staticmethod
    def _matches(kind: str, resource: dict[str, Any], query: MultiMapping[str]) -> bool:
        for key in ("To", "From", "Status", "ParentCallSid"):
            if key in query and resource.get(key.lower() if key != "ParentCallSid"
                                              else "parent_call_sid") != query[key]:
                return False
        # Until sent (started), a message (call) is matched on its creation time.
        fields = {"DateSent": resource.get("_sent") or resource["_created"]} \
            if kind == "Messages" else {
                "StartTime": resource.get("_start") or resource["_created"],
                "EndTime": resource.get("_end")}
        for name, moment in fields.items():
            for op in ("", "<", ">"):
                if name + op in query and not _compare(moment, query[name + op], op):
                    return False
        return True

    # --- callbacks ---

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_message(self, message: dict[str, Any], url: object) -> None:
        final, code = self.sms_final.get(message["to"], ("delivered", None))
        steps = ["queued", "sent", final] if final in ("delivered", "undelivered") \
            else ["queued", final]
        posts: list[dict[str, str]] = []
        for status in steps:
            await asyncio.sleep(self.callback_interval)
            self._advance_message(message, status, code if status == final else None)
            posts.append(self._sms_params(message))
        await self._post_all(str(url) if url else None, posts)

    def _advance_message(self, message: dict[str, Any], status: str, code: int | None) -> None:
        now = self.clock()
        message.update(status=status, _updated=now, error_code=code)
        if status == "sent":
            message["_sent"] = now

    def _sms_params(self, message: dict[str, Any]) -> dict[str, str]:
        params = {"AccountSid": self.account_sid, "ApiVersion": API_VERSION,
                  "From": message["from"] or "", "To": message["to"],
                  "MessageSid": message["sid"], "SmsSid": message["sid"],
                  "MessageStatus": message["status"], "SmsStatus": message["status"]}
        if message["messaging_service_sid"]:
            params["MessagingServiceSid"] = message["messaging_service_sid"]
        if message["error_code"] is not None:
            params["ErrorCode"] = str(message["error_code"])
        return params

    async def _run_call(self, call: dict[str, Any], form: MultiDictProxy[Any]) -> None:
        script = self.call_scripts.get(call["to"], CallScript())
        wanted = form.getall("StatusCallbackEvent", []) or ["completed"]
        detect = form.get("MachineDetection") is not None
        answered = script.answered_by is not None and script.final == "completed"
        steps = [("initiated", "queued"), ("ringing", "ringing")]
        if answered:
            steps.append(("answered", "in-progress"))
        steps.append(("completed", script.final))
        posts: list[dict[str, str]] = []
        for sequence, (event, status) in enumerate(steps):
            await asyncio.sleep(self.callback_interval)
            self._advance_call(call, status, script, detect=detect)
            if event == "answered" and form.get("Url"):
                await self._fetch_twiml(str(form["Url"]), call)
            if event in wanted:
                posts.append(self._call_params(call, event, sequence))
        url = form.get("StatusCallback")
        await self._post_all(str(url) if url else None, posts)

    def _advance_call(self, call: dict[str, Any], status: str, script: CallScript, *,
                      detect: bool) -> None:
        now = self.clock()
        call.update(status=status, _updated=now)
        if status == "ringing":
            call["_start"] = now
        if status == "in-progress" and detect:
            call["answered_by"] = script.answered_by
        if status in ("completed", "busy", "no-answer", "failed", "canceled"):
            talked = script.duration if status == "completed" else 0
            call.update(_end=(call["_start"] or now) + timedelta(seconds=talked),
                        duration=str(talked))

    def _call_params(self, call: dict[str, Any], event: str, sequence: int) -> dict[str, str]:
        params = {"AccountSid": self.account_sid, "ApiVersion": API_VERSION,
                  "CallSid": call["sid"], "CallStatus": event if event == "initiated"
                  else call["status"], "Called": call["to"], "Caller": call["from"],
                  "To": call["to"], "From": call["from"], "Direction": "outbound-api",
                  "CallbackSource": "call-progress-events", "SequenceNumber": str(sequence),
                  "Timestamp": rfc2822(self.clock()) or ""}
        if call["answered_by"]:
            params["AnsweredBy"] = call["answered_by"]
        if event == "completed":
            params["CallDuration"] = params["Duration"] = call["duration"] or "0"
        return params

    async def _fetch_twiml(self, url: str, call: dict[str, Any]) -> None:
        params = self._call_params(call, "answered", 0)
        for name in ("CallbackSource", "SequenceNumber", "Timestamp"):
            params.pop(name)
        self.twiml_fetches.append(await self._post(url, params))

    async def _post_all(self, url: str | None, posts: list[dict[str, str]]) -> None:
        if url is None or self.faults.drop_callbacks:
            return
        if self.faults.reorder_callbacks:
            posts = posts[::-1]
        for params in posts:
            for _ in range(2 if self.faults.duplicate_callbacks else 1):
                self.callbacks.append(await self._post(url, params))

    async def _post(self, url: str, params: dict[str, str]) -> Posted:
        """Post `params` to `url`, signed as Twilio signs: HMAC-SHA1 of the URL and the sorted
        parameters with the auth token."""
        signature = self._validator.compute_signature(url, params)
        posted = Posted(url, params, signature)
        assert self._session is not None
        with contextlib.suppress(OSError, ClientError, TimeoutError):
            async with self._session.post(url, data=params,
                                          headers={"X-Twilio-Signature": signature}) as answer:
                posted.status = answer.status
                posted.body = await answer.text()
        return posted


@dataclass
class Received:
    """A request the sink got, and whether its signature was valid for the public URL."""

    path: str
    url: str
    params: dict[str, str]
    signature: str
    valid: bool
    at: float  # time.monotonic() on arrival


class CallbackSink:
    """The customer's webhook server: records Twilio's requests and checks their signatures."""

    def __init__(self, auth_token: str = AUTH_TOKEN) -> None:
        self.validator = RequestValidator(auth_token)
        self.received: list[Received] = []
        self.port = 0
        self._runner: web.AppRunner | None = None

    @property
    def public_url(self) -> str:
        """The base URL given to Twilio for callbacks."""
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> CallbackSink:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._receive)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def at(self, path: str) -> list[Received]:
        """What arrived at `path` (without query string), in order."""
        return [r for r in self.received if r.path == path]

    async def _receive(self, request: web.Request) -> web.Response:
        arrived = time.monotonic()
        params = {k: str(v) for k, v in (await request.post()).items()}
        url = self.public_url + request.path_qs
        signature = request.headers.get("X-Twilio-Signature", "")
        valid = self.validator.validate(url, params, signature)
        self.received.append(Received(request.path, url, params, signature, valid, arrived))
        if not valid:
            return web.Response(status=403)
        if request.path.endswith("/twiml"):
            return web.Response(text="<Response><Hangup/></Response>",
                                content_type="application/xml")
        return web.Response(status=204)
