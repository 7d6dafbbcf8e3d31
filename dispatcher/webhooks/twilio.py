"""Twilio's callbacks: status of SMS and calls, inbound SMS, call TwiML.

Every request's `X-Twilio-Signature` is checked against the URL Twilio was given (`public_url`
plus the path and query), not the URL this server sees behind a proxy. A body that is not a UTF-8
form gets 400 (413 over the size limit), a missing or bad signature 403; either changes nothing,
is counted at once and audited once a minute per route (dispatcher/webhooks/rejections.py).
Status callbacks are idempotent: only a final status records an outcome, once; a late `sent`
after `delivered` changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from xml.sax.saxutils import escape

from aiohttp import web
from multidict import MultiDictProxy
from twilio.request_validator import RequestValidator

from channels.twilio_status import (
    UNSUBSCRIBED_CODE,
    error_code,
    is_machine,
    outcome_detail,
    outcome_of,
)
from dispatcher.compliance.keywords import Keyword
from dispatcher.contact.account_facts import ContactPolicy, message_values
from dispatcher.contact.replies import handle_reply
from dispatcher.contact.templates import (
    AFTER_IDENTITY,
    CONFIRM_DIGIT,
    GREETING,
    TEXT,
    Purpose,
    Template,
    UnknownTemplate,
    render,
)
from dispatcher.domain.clock import Clock
from dispatcher.domain.contact import Medium, Outcome, Party, Role
from dispatcher.service.aio import pause
from dispatcher.store import AttemptRow, OutcomeRow, WebhookStore
from dispatcher.webhooks.forms import RefusedBody, parse_form
from dispatcher.webhooks.rejections import RejectionTally

log = logging.getLogger("dispatcher.twilio_webhooks")


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


def _say(text: str) -> str:
    return f"<Say>{escape(text)}</Say>"


def call_twiml(*, role: Role, answered_by: str | None, step: str, digits: str | None,
               confirm_url: str, texts: CallTexts) -> str:
    """What a call says: only the limited-content message to a machine, only the greeting to
    whoever answers until they press the confirm digit, and to a third party only the location
    question (a third party's machine gets nothing: the call hangs up)."""
    machine = is_machine(answered_by)
    if role is not Role.DEBTOR:
        speak = "" if machine or not texts.location else _say(texts.location)
        return _response(speak + "<Hangup/>")
    leave = (_say(texts.voicemail) if texts.voicemail else "") + "<Hangup/>"
    if machine:
        return _response(leave)
    if step == "confirm":
        if digits == CONFIRM_DIGIT and texts.after_identity:
            return _response(_say(texts.after_identity) + "<Hangup/>")
        return _response(leave)
    if not texts.greeting:
        return _response(leave)
    gather = (f'<Gather numDigits="1" action="{escape(confirm_url)}" method="POST" '
              f'timeout="6">{_say(texts.greeting)}</Gather>')
    return _response(gather + leave)


@dataclass(frozen=True)
class CallTexts:
    """The rendered texts one call may say; an empty one is not said."""

    greeting: str = ""  # to whoever answers a debtor call: who calls, for whom, "press 1"
    after_identity: str = ""  # said only once the debtor has pressed the confirm digit
    voicemail: str = ""  # the limited-content message (Reg F 1006.2(j))
    location: str = ""  # the question to a third party


def call_texts(policy: ContactPolicy, attempt: AttemptRow, locale: str | None,
               values: Mapping[str, str]) -> CallTexts | None:
    """What a call to this person may say, rendered; None when its template is gone or is not
    one for a call to them (the config changed since the call was placed)."""
    templates = policy.templates

    def text(template: Template, part: str) -> str:
        return render(template.text_for(locale, policy.default_locale, part)[1], values)

    try:
        template = templates.get(attempt.template or "")
    except UnknownTemplate:
        return None
    if attempt.role is not Role.DEBTOR:
        if template.party is not Party.THIRD_PARTY or TEXT not in template.parts:
            return None
        return CallTexts(location=text(template, TEXT))
    if template.party is not Party.DEBTOR or GREETING not in template.parts:
        return None
    stages = {s.name: s for s in policy.schedule.stages}
    # A stage without a voicemail template, or one no longer in the schedule, leaves none.
    stage = stages.get(attempt.stage or "")
    voicemail_id = stage.voicemail_template if stage is not None else None
    voicemail = ""
    left = templates.templates.get(voicemail_id or "")
    if left is not None and left.purpose is Purpose.VOICEMAIL:
        voicemail = text(left, TEXT)
    return CallTexts(greeting=text(template, GREETING),
                     after_identity=text(template, AFTER_IDENTITY), voicemail=voicemail)


Handler = Callable[[web.Request, MultiDictProxy[str]], Awaitable[web.StreamResponse]]
RecordOutcomes = Callable[[list[OutcomeRow], datetime], Awaitable[int]]


class TwilioWebhooks:
    """The Twilio routes of the webhook server."""

    def __init__(self, *, token: str, public_url: str, store: WebhookStore, clock: Clock,
                 record_outcomes: RecordOutcomes, policy: ContactPolicy,
                 max_payload_bytes: int,
                 count_refusal: Callable[[str, str], None] = lambda route, reason: None) -> None:
        self._validator = RequestValidator(token)
        self._public_url = public_url.rstrip("/")
        self._store = store
        self._clock = clock
        self._record_outcomes = record_outcomes
        self.policy = policy  # replaced when the config is reloaded
        self._max_payload_bytes = max_payload_bytes
        self._count_refusal = count_refusal
        self._refusals = RejectionTally()
        self._unwritten: list[dict[str, Any]] = []

    def add_routes(self, app: web.Application) -> None:
        """Register the Twilio routes."""
        for path, handler in (("/twilio/sms/status", self._sms_status),
                              ("/twilio/call/status", self._call_status),
                              ("/twilio/sms/inbound", self._sms_inbound),
                              ("/twilio/call/twiml", self._call_twiml)):
            app.router.add_post(path, self._signed(path, handler))

    def _signed(self, route: str,
                handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def checked(request: web.Request) -> web.StreamResponse:
            try:
                # read() enforces the application's client_max_size (413 beyond it).
                form = parse_form(request.content_type, await request.read())
            except web.HTTPRequestEntityTooLarge:
                await self._refuse(request, route, "too_large")
                raise
            except RefusedBody as refused:
                # A signature covers the parsed fields: without them it cannot be checked.
                await self._refuse(request, route, refused.reason)
                raise web.HTTPBadRequest(text=f"{refused.detail}\n") from None
            url = self._public_url + request.path_qs
            signature = request.headers.get("X-Twilio-Signature", "")
            if not signature:
                await self._refuse(request, route, "missing_signature")
                raise web.HTTPForbidden(text="bad signature")
            if not self._validator.validate(url, form, signature):
                await self._refuse(request, route, "bad_signature")
                raise web.HTTPForbidden(text="bad signature")
            return await handler(request, MultiDictProxy(form))
        return checked

    async def _refuse(self, request: web.Request, route: str, reason: str) -> None:
        now = self._clock.now()
        self._count_refusal(route, reason)
        if self._refusals.note(route, reason, path=request.raw_path, remote=request.remote,
                               now=now):
            # The first of its route's minute: at most one line, and one write, a minute.
            log.warning("refusing webhook requests on %s (%s); they are counted, and audited "
                        "once a minute", route, reason)
            await self._flush_or_keep(now)

    async def flush_refusals(self, now: datetime, *, everything: bool = False) -> None:
        """Audit the refusals of every minute that has ended (or of all, at shutdown)."""
        due = self._refusals.due(now, everything=everything)
        for record in due:
            record["config_version"] = self.policy.config_version
            log.warning("refused %d webhook request(s) on %s in the minute from %s: %s",
                        record["count"], record["route"], record["window_start"],
                        ", ".join(f"{k} {v}" for k, v in record["reasons"].items()))
        records, self._unwritten = [*self._unwritten, *due], []
        if not records:
            return
        try:
            await self._store.append_audit(records, now=now)
        except BaseException:
            self._unwritten = [*records, *self._unwritten]  # written with the next flush
            raise

    async def _flush_or_keep(self, now: datetime, *, everything: bool = False) -> None:
        try:
            await self.flush_refusals(now, everything=everything)
        except Exception as exc:  # kept for the next flush: one line is enough
            log.warning("could not audit refused webhook requests yet: %s", exc)

    async def flush_refusals_every(self, stop: asyncio.Event, seconds: float = 1.0) -> None:
        """Write each minute's refusals once it has ended, even when no request follows."""
        while not stop.is_set():
            await pause(seconds, stop)
            await self._flush_or_keep(self._clock.now())

    async def flush_all_refusals(self) -> None:
        """At shutdown: audit the refusals of the minute still open."""
        await self._flush_or_keep(self._clock.now(), everything=True)

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
        if error_code(error) == UNSUBSCRIBED_CODE and form.get("To"):
            await handle_reply(self._store, form["To"], "STOP", self._clock.now(),
                               config_version=self.policy.config_version,
                               max_payload_bytes=self._max_payload_bytes,
                               message_id=f"{form.get('MessageSid')}:{UNSUBSCRIBED_CODE}")
        status = form.get("MessageStatus") or form.get("SmsStatus")
        return await self._status(request, outcome_of(Medium.SMS, status, error),
                                  form.get("MessageSid"), outcome_detail(error))

    async def _call_status(self, request: web.Request,
                           form: MultiDictProxy[str]) -> web.StreamResponse:
        error = form.get("ErrorCode")
        outcome = outcome_of(Medium.CALL, form.get("CallStatus"), error, form.get("AnsweredBy"))
        return await self._status(request, outcome, form.get("CallSid"), outcome_detail(error))

    async def _sms_inbound(self, request: web.Request,
                           form: MultiDictProxy[str]) -> web.StreamResponse:
        number, body = form.get("From", ""), form.get("Body", "")
        if not number:
            raise web.HTTPBadRequest(text="no From")
        handled = await handle_reply(self._store, number, body, self._clock.now(),
                                     config_version=self.policy.config_version,
                                     max_payload_bytes=self._max_payload_bytes,
                                     message_id=form.get("MessageSid"),
                                     statements=self.policy.statements)
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
        texts = call_texts(self.policy, attempt, locale, values)
        if texts is None:
            return web.Response(text=_response("<Hangup/>"), content_type="application/xml")
        confirm = f"{self._public_url}/twilio/call/twiml?attempt={attempt.attempt_id}&step=confirm"
        twiml = call_twiml(role=attempt.role, answered_by=form.get("AnsweredBy"),
                           step=request.query.get("step", ""), digits=form.get("Digits"),
                           confirm_url=confirm, texts=texts)
        return web.Response(text=twiml, content_type="application/xml")
