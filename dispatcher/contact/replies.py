"""Inbound texts, however they arrive (Twilio's webhook, simulate's script): act, then audit.

A revocation or opt-in becomes a `contact.opt_out` / `contact.opt_in` event stored like any
other (so it is audited, deduplicated and folded the same way); a revocation of calls or
contact covers every channel. A text that might be a revocation pauses every channel of the
number until a person decides (an upstream `contact.opt_out` confirms, a `contact.opt_in` dated
after the pause lifts it). Anything else is audited as a `reply` for a person to read.

A reply that states a dispute or a bereavement (dispatcher.queue.statements) places the hold
it calls for on every account listing the number at once, as an `account.hold` event stored
with the reply's `reply` record, before any person looks; the work queue (dispatcher.queue)
makes an item of every `reply` record that needs a person.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

import orjson

from dispatcher.compliance.consent import INBOUND_TOPIC
from dispatcher.compliance.keywords import Keyword, classify_reply
from dispatcher.domain.clock import utc_rfc3339
from dispatcher.domain.phones import canonical_e164
from dispatcher.ingest.classify import classify
from dispatcher.queue.items import STATEMENT_HOLDS, Reason, hold_event_id
from dispatcher.queue.statements import DEFAULT_MATCHER, StatementMatcher
from dispatcher.store import Inbound, ReplyStore

TOPIC = INBOUND_TOPIC
MAX_TEXT = 500
_CHANNELS = {Keyword.OPT_OUT: ("contact.opt_out", "sms"),
             Keyword.OPT_OUT_ALL: ("contact.opt_out", "all"),
             Keyword.OPT_IN: ("contact.opt_in", "sms")}


@dataclass(frozen=True)
class ReplyHandled:
    """What an inbound text was, and whether it changed anything."""

    keyword: Keyword
    account_id: str | None
    fresh: bool  # False when this very message was handled before (a replayed webhook)


def reply_event(number: str, body: str, account_id: str, at: datetime,
                message_id: str | None = None) -> bytes | None:
    """The opt-out/opt-in event an inbound text stands for, or None for other texts.

    The event id comes from the provider's message id when there is one, so that a replayed
    webhook is recognised as the same event.
    """
    keyword = classify_reply(body)
    if keyword not in _CHANNELS:
        return None
    kind, channel = _CHANNELS[keyword]
    return orjson.dumps({"schema": 1, "event_id": f"sms-{_digest(number, body, at, message_id)}",
                         "type": kind, "occurred_at": utc_rfc3339(at), "account_id": account_id,
                         "data": {"number": number, "channel": channel}})


def _digest(number: str, body: str, at: datetime, message_id: str | None) -> str:
    key = message_id or f"{number}|{utc_rfc3339(at)}|{body}"
    return hashlib.sha256(key.encode()).hexdigest()[:20]


def _canonical_or_as_sent(number: str) -> str:
    # The store knows each number by one spelling; what is no number at all is kept as sent,
    # so that its opt-out becomes a dead letter a person can see rather than vanish.
    try:
        return canonical_e164(number)
    except ValueError:
        return number


def hold_events(accounts: list[str], statements: tuple[Reason, ...], reply_id: str,
                at: datetime) -> list[bytes]:
    """The `account.hold` events that a reply's statements place at once on its accounts."""
    events = []
    for reason in statements:
        hold = STATEMENT_HOLDS.get(reason)
        if hold is None:
            continue
        for account_id in accounts:
            events.append(orjson.dumps({
                "schema": 1, "event_id": hold_event_id(reply_id, account_id, hold),
                "type": "account.hold",
                "occurred_at": utc_rfc3339(at), "account_id": account_id,
                "data": {"reason": hold}}))
    return events


async def handle_reply(store: ReplyStore, number: str, body: str, at: datetime, *,
                       config_version: str, max_payload_bytes: int,
                       message_id: str | None = None,
                       statements: StatementMatcher = DEFAULT_MATCHER) -> ReplyHandled:
    """Act on one inbound text at once and audit it."""
    number = _canonical_or_as_sent(number)
    accounts = await store.accounts_with_number(number)
    account_id = accounts[0] if accounts else None
    event = reply_event(number, body, account_id or "inbound-sms", at, message_id)
    keyword = classify_reply(body)
    reply_id = _digest(number, body, at, message_id)
    stated = statements.find(body)
    holds: list[Inbound] = [classify(e, TOPIC, max_payload_bytes)
                            for e in hold_events(accounts, stated, reply_id, at)]
    reply: dict[str, object] = {
        "kind": "reply", "account_id": account_id, "to": number, "status": keyword.value,
        "detail": body[:MAX_TEXT], "provider_sid": message_id, "reply_id": reply_id,
        "config_version": config_version}
    if stated:
        reply["statements"] = [s.value for s in stated]
        reply["holds"] = sorted({STATEMENT_HOLDS[s] for s in stated if s in STATEMENT_HOLDS}
                                if accounts else set())
    if event is not None:
        opt = classify(event, TOPIC, max_payload_bytes)
        result = await store.record_batch([opt, *holds], now=at, config_version=config_version,
                                          audit=[reply] if stated else ())
        return ReplyHandled(keyword, account_id, fresh=result.stored >= 1)
    if keyword is Keyword.REVIEW:
        if holds:  # contact stops at once; a replayed reply finds the holds stored
            await store.record_batch(holds, now=at, config_version=config_version)
        fresh = await store.pause_for_review(
            number, key=f"review-{reply_id}",
            account_id=account_id, at=at, audit=[reply], config_version=config_version)
        return ReplyHandled(keyword, account_id, fresh=fresh)
    if holds or stated:
        result = await store.record_batch(holds, now=at, config_version=config_version,
                                          audit=[reply])
        return ReplyHandled(keyword, account_id, fresh=result.stored >= 1 or not holds)
    await store.append_audit([reply], now=at)
    return ReplyHandled(keyword, account_id, fresh=True)
