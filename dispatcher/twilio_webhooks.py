"""Twilio's callbacks (contract section 6): status of SMS and calls, inbound SMS, call TwiML.

Every request's `X-Twilio-Signature` is checked against the URL Twilio was given (`public_url`
plus the path and query), not the URL this server sees behind a proxy. A bad signature gets 403,
is audited, and changes nothing. Status callbacks are idempotent: only a final status records an
outcome, once; a late `sent` after `delivered` changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from xml.sax.saxutils import escape

from aiohttp import web
from multidict import MultiDict, MultiDictProxy
from twilio.request_validator import RequestValidator

from dispatcher.account_facts import ContactPolicy, message_values
from dispatcher.clock import Clock
from dispatcher.contact import Outcome, Role
from dispatcher.keywords import Keyword
from dispatcher.replies import handle_reply
from dispatcher.store import SqliteStore
from dispatcher.store.contact_rows import OutcomeRow
from dispatcher.templates import render

log = logging.getLogger(__name__)

SMS_FINAL = {"delivered": Outcome.DELIVERED, "undelivered": Outcome.UNDELIVERED,
             "failed": Outcome.FAILED}
CALL_FINAL = {"no-answer": Outcome.NO_ANSWER, "busy": Outcome.BUSY, "failed": Outcome.FAILED,
              "canceled": Outcome.CANCELED}
# Twilio error codes that say the number itself is the problem (invalid, not a mobile).
INVALID_NUMBER_CODES = frozenset({"21211", "21614"})
UNSUBSCRIBED_CODE = "21610"


def sms_outcome(status: str, error_code: str | None) -> Outcome | None:
    """The final outcome of an SMS status callback; None while it is not final."""
    if error_code in INVALID_NUMBER_CODES:
        return Outcome.INVALID_NUMBER
    return SMS_FINAL.get(status.lower())


def call_outcome(status: str, answered_by: str | None) -> Outcome | None:
    """The final outcome of a call status callback; None while it is not final."""
    status = status.lower()
    if status == "completed":
        machine = (answered_by or "").startswith("machine") or answered_by == "fax"
        return Outcome.MACHINE if machine else Outcome.COMPLETED
    return CALL_FINAL.get(status)


def _response(body: str) -> str:
    return f'<?xml version="1.0" encoding="UTF-8"?><Response>{body}</Response>'


def twiml_message(text: str | None) -> str:
    """A TwiML answer to an inbound SMS: one message, or nothing."""
    return _response(f"<Message>{escape(text)}</Message>" if text else "")


@dataclass(frozen=True)
class ReplyTexts:
    """What the dispatcher answers to keywords (rendered templates)."""

    opt_out_confirmation: str
    opt_in_confirmation: str
    help: str


def reply_texts(policy: ContactPolicy) -> ReplyTexts:
    """The keyword answers, rendered from the templates in the default locale."""
    values = {"business": policy.business, "callback": policy.callback, "agent": policy.agent}

    def text(template_id: str) -> str:
        _, body = policy.templates.get(template_id).text_for(policy.default_locale)
        return render(body, values)

    return ReplyTexts(opt_out_confirmation=text("opt_out_confirmation"),
                      opt_in_confirmation=f"{policy.business}: you will get texts from us "
                                          f"again. Reply STOP to opt out.",
                      help=text("help"))


CONFIRM_DIGIT = "1"


def _say(text: str) -> str:
    return f"<Say>{escape(text)}</Say>"


def split_script(script: str) -> tuple[str, str]:
    """A call script's greeting and, after the bracketed instruction to confirm the person,
    what may be said only to the debtor."""
    opening, bracket, rest = script.partition("[")
    if not bracket:
        return script, ""
    return opening.strip(), rest.partition("]")[2].strip()


def call_twiml(*, role: Role, answered_by: str | None, step: str, digits: str | None,
               confirm_url: str, texts: CallTexts) -> str:
    """What a call says: only the limited-content message to a machine, nothing about the debt
    until the person has said they are the debtor, and to a third party only the location
    question (a third party's machine gets nothing: the call hangs up)."""
    machine = (answered_by or "").startswith("machine") or answered_by == "fax"
    if role is not Role.DEBTOR:
        return _response("<Hangup/>" if machine else _say(texts.location) + "<Hangup/>")
    if machine:
        return _response(_say(texts.voicemail) + "<Hangup/>")
    if step == "confirm":
        if digits == CONFIRM_DIGIT and texts.debtor_only:
            return _response(_say(texts.debtor_only) + "<Hangup/>")
        return _response(_say(texts.voicemail) + "<Hangup/>")
    gather = (f'<Gather numDigits="1" action="{escape(confirm_url)}" method="POST" '
              f'timeout="6">{_say(texts.greeting)}</Gather>')
    return _response(gather + _say(texts.voicemail) + "<Hangup/>")


@dataclass(frozen=True)
class CallTexts:
    """The rendered texts one call may use."""

    greeting: str  # who is calling, for whom, and "press 1 if you are ..."
    debtor_only: str  # the part of the script said only after the debtor confirmed
    voicemail: str  # the limited-content message (Reg F 1006.2(j))
    location: str  # for a third party


Handler = Callable[[web.Request, MultiDictProxy[str]], Awaitable[web.StreamResponse]]
RecordOutcomes = Callable[[list[OutcomeRow], datetime], Awaitable[int]]


class TwilioWebhooks:
    """The Twilio routes of the webhook server."""

    def __init__(self, *, token: str, public_url: str, store: SqliteStore, clock: Clock,
                 record_outcomes: RecordOutcomes, policy: ContactPolicy,
                 max_payload_bytes: int) -> None:
        self._validator = RequestValidator(token)
        self._public_url = public_url.rstrip("/")
        self._store = store
        self._clock = clock
        self._record_outcomes = record_outcomes
        self.policy = policy  # replaced when the config is reloaded
        self._max_payload_bytes = max_payload_bytes

    def add_routes(self, app: web.Application) -> None:
        """Register the routes of contract section 6."""
        for path, handler in (("/twilio/sms/status", self._sms_status),
                              ("/twilio/call/status", self._call_status),
                              ("/twilio/sms/inbound", self._sms_inbound),
                              ("/twilio/call/twiml", self._call_twiml)):
            app.router.add_post(path, self._signed(handler))

    def _signed(self, handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def checked(request: web.Request) -> web.StreamResponse:
            form = await request.post()
            url = self._public_url + request.path_qs
            signature = request.headers.get("X-Twilio-Signature", "")
            if not signature or not self._validator.validate(url, form, signature):
                await self._store.append_audit([{
                    "kind": "webhook", "status": "forbidden", "reason": "bad_signature",
                    "detail": f"POST {request.path_qs} from {request.remote}",
                    "config_version": self.policy.config_version}], now=self._clock.now())
                log.warning("rejected a webhook with a bad signature: %s", request.path)
                raise web.HTTPForbidden(text="bad signature")
            fields: MultiDict[str] = MultiDict()
            for key, value in form.items():
                if not isinstance(value, str):
                    raise web.HTTPBadRequest(text="file uploads are not expected")
                fields.add(key, value)
            return await handler(request, MultiDictProxy(fields))
        return checked

    async def _status(self, request: web.Request, outcome: Outcome | None,
                      sid: str | None, detail: str = "") -> web.Response:
        attempt_id = request.query.get("attempt")
        if not attempt_id:
            raise web.HTTPBadRequest(text="the callback URL carries no attempt id")
        if outcome is not None:
            now = self._clock.now()
            await self._record_outcomes([OutcomeRow(attempt_id, outcome, now, sid, detail)], now)
        return web.Response(status=204)

    async def _sms_status(self, request: web.Request,
                          form: MultiDictProxy[str]) -> web.StreamResponse:
        error = form.get("ErrorCode")
        if error == UNSUBSCRIBED_CODE and form.get("To"):
            await handle_reply(self._store, form["To"], "STOP", self._clock.now(),
                               config_version=self.policy.config_version,
                               max_payload_bytes=self._max_payload_bytes,
                               message_id=f"{form.get('MessageSid')}:21610")
        outcome = sms_outcome(form.get("MessageStatus") or form.get("SmsStatus") or "", error)
        detail = f"error {error}" if error else ""
        return await self._status(request, outcome, form.get("MessageSid"), detail)

    async def _call_status(self, request: web.Request,
                           form: MultiDictProxy[str]) -> web.StreamResponse:
        outcome = call_outcome(form.get("CallStatus", ""), form.get("AnsweredBy"))
        error = form.get("ErrorCode")
        if error in INVALID_NUMBER_CODES:
            outcome = Outcome.INVALID_NUMBER
        return await self._status(request, outcome, form.get("CallSid"),
                                  f"error {error}" if error else "")

    async def _sms_inbound(self, request: web.Request,
                           form: MultiDictProxy[str]) -> web.StreamResponse:
        number, body = form.get("From", ""), form.get("Body", "")
        if not number:
            raise web.HTTPBadRequest(text="no From")
        handled = await handle_reply(self._store, number, body, self._clock.now(),
                                     config_version=self.policy.config_version,
                                     max_payload_bytes=self._max_payload_bytes,
                                     message_id=form.get("MessageSid"))
        texts = reply_texts(self.policy)
        answers: Mapping[Keyword, str | None] = {
            Keyword.OPT_OUT: texts.opt_out_confirmation,
            Keyword.OPT_OUT_ALL: texts.opt_out_confirmation,
            Keyword.OPT_IN: texts.opt_in_confirmation, Keyword.HELP: texts.help,
            Keyword.REVIEW: None, Keyword.FREE_TEXT: None}
        # One confirmation per opt-out or opt-in: a replayed webhook gets an empty answer.
        text = answers[handled.keyword] if handled.fresh else None
        return web.Response(text=twiml_message(text),
                            content_type="application/xml")

    async def _call_twiml(self, request: web.Request,
                          form: MultiDictProxy[str]) -> web.StreamResponse:
        attempt = await self._store.attempt(request.query.get("attempt", ""))
        state = await self._store.account(attempt.account_id) if attempt else None
        if attempt is None or state is None:
            # Never talk without knowing whom the call is for.
            return web.Response(text=_response("<Hangup/>"), content_type="application/xml")
        now = self._clock.now()
        zone = state.debtor.timezone if state.debtor else None
        values = message_values(self.policy, state, zone, now)
        locale = state.debtor.locale if state.debtor else None
        templates = self.policy.templates

        def text(template_id: str) -> str:
            _, body = templates.get(template_id).text_for(locale, self.policy.default_locale)
            return render(body, values)

        greeting, debtor_only = split_script(text(attempt.template or "call_script"))
        texts = CallTexts(
            greeting=f"{greeting} If you are {values['name']}, press {CONFIRM_DIGIT} now.",
            debtor_only=debtor_only, voicemail=text("voicemail"),
            location=text("location_call"))
        confirm = f"{self._public_url}/twilio/call/twiml?attempt={attempt.attempt_id}&step=confirm"
        twiml = call_twiml(role=attempt.role, answered_by=form.get("AnsweredBy"),
                           step=request.query.get("step", ""), digits=form.get("Digits"),
                           confirm_url=confirm, texts=texts)
        return web.Response(text=twiml, content_type="application/xml")
