"""Inbound texts, however they arrive (Twilio's webhook, simulate's script): act, then audit.

An opt-out or opt-in keyword becomes a `contact.opt_out` / `contact.opt_in` event stored like any
other (so it is audited, deduplicated and folded the same way); anything else is audited as a
`reply` for a person to read.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

import orjson

from dispatcher.classify import classify
from dispatcher.clock import utc_rfc3339
from dispatcher.keywords import Keyword, classify_reply
from dispatcher.phones import canonical_e164
from dispatcher.store import SqliteStore

TOPIC = "inbound-sms"
MAX_TEXT = 500


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
    if keyword not in (Keyword.OPT_OUT, Keyword.OPT_IN):
        return None
    key = message_id or f"{number}|{utc_rfc3339(at)}|{body}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:20]
    kind = "contact.opt_out" if keyword is Keyword.OPT_OUT else "contact.opt_in"
    return orjson.dumps({"schema": 1, "event_id": f"sms-{digest}", "type": kind,
                         "occurred_at": utc_rfc3339(at), "account_id": account_id,
                         "data": {"number": number, "channel": "sms"}})


def _canonical_or_as_sent(number: str) -> str:
    # The store knows each number by one spelling; what is no number at all is kept as sent,
    # so that its opt-out becomes a dead letter a person can see rather than vanish.
    try:
        return canonical_e164(number)
    except ValueError:
        return number


async def handle_reply(store: SqliteStore, number: str, body: str, at: datetime, *,
                       config_version: str, max_payload_bytes: int,
                       message_id: str | None = None) -> ReplyHandled:
    """Act on one inbound text at once and audit it."""
    number = _canonical_or_as_sent(number)
    accounts = await store.accounts_with_number(number)
    account_id = accounts[0] if accounts else None
    event = reply_event(number, body, account_id or "inbound-sms", at, message_id)
    keyword = classify_reply(body)
    if event is not None:
        result = await store.record_batch([classify(event, TOPIC, max_payload_bytes)], now=at,
                                          config_version=config_version)
        return ReplyHandled(keyword, account_id, fresh=result.stored == 1)
    await store.append_audit([{
        "kind": "reply", "account_id": account_id, "to": number, "status": keyword.value,
        "detail": body[:MAX_TEXT], "provider_sid": message_id,
        "config_version": config_version}], now=at)
    return ReplyHandled(keyword, account_id, fresh=True)
