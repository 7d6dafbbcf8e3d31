"""A person's actions on the queue, the dead letters and the invalid-number marks.

Each action is one store transaction (`QueueStore.apply_change`): the item resolved, the events
it implies (a hold, a release, an opt-out, an opt-in lifting a pause), the marks it sets or
clears, and its audit records, all committed together or not at all. An action on an item that
is not open changes nothing (QueueError), so an action repeated after a crash is never doubled.

A console calls `resolve`, `dismiss_dead_letter` and `clear_invalid` as the CLI does.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

import orjson

from dispatcher.compliance.consent import Standing
from dispatcher.domain.clock import utc_rfc3339
from dispatcher.domain.events import MAX_PAYLOAD_BYTES, HoldReason
from dispatcher.domain.phones import canonical_e164
from dispatcher.errors import QueueError
from dispatcher.ingest.classify import classify
from dispatcher.queue.items import (
    REVIEW_PAUSED,
    Action,
    QueueItem,
    Reason,
    State,
    clean,
    hold_event_id,
)
from dispatcher.store.base import Accepted, OperatorChange, QueueStore

TOPIC = "dispatcher/queue"  # the topic events made by a person's action are stored under
MAX_NOTE = 1000
MAX_ACTOR = 100


def _who(actor: str, note: str) -> tuple[str, str]:
    who, why = clean(actor, MAX_ACTOR), clean(note, MAX_NOTE)
    if not who:
        raise QueueError("say who acts (--by)")
    if not why:
        raise QueueError("say why (--note)")
    return who, why


def _event(kind: str, account_id: str, data: dict[str, Any], key: str,
           now: datetime) -> Accepted:
    payload = orjson.dumps({
        "schema": 1, "event_id": f"queue-{hashlib.sha256(key.encode()).hexdigest()[:24]}",
        "type": kind, "occurred_at": utc_rfc3339(now), "account_id": account_id, "data": data})
    item = classify(payload, TOPIC, MAX_PAYLOAD_BYTES)
    if not isinstance(item, Accepted):
        raise QueueError(f"the {kind} event is not valid: {item.reason}: {item.detail}")
    return item


def _needs_account(item: QueueItem) -> str:
    if not item.account_id:
        raise QueueError(f"queue item {item.id} names no account")
    return item.account_id


def _needs_number(item: QueueItem) -> str:
    if not item.number:
        raise QueueError(f"queue item {item.id} names no number")
    return item.number


async def _events_for(store: QueueStore, item: QueueItem, action: Action,
                      hold: HoldReason | None, now: datetime) -> list[Accepted]:
    key = f"{item.id}|{action.value}"
    if action is Action.HOLD:
        if hold is None:
            raise QueueError("--action hold needs --hold REASON")
        return [_event("account.hold", _needs_account(item), {"reason": hold.value},
                       f"{key}|{hold.value}", now)]
    if action is Action.OPT_OUT:
        # A number no account lists is opted out all the same, as a text's STOP would be.
        return [_event("contact.opt_out", item.account_id or "inbound-sms",
                       {"number": _needs_number(item), "channel": "all"}, key, now)]
    if action is not Action.RESUME:
        return []
    events = []
    for paused in item.paused:
        if paused.startswith("hold:"):
            events.extend(await _releases(store, item, paused.removeprefix("hold:"), key, now))
    if any(p in REVIEW_PAUSED for p in item.paused):
        number = _needs_number(item)
        # Only the channels still paused for review: a real opt-out is never lifted here.
        for standing in await store.opt_outs(number):
            if standing.standing == Standing.REVIEW:
                events.append(_event("contact.opt_in", item.account_id or "inbound-sms",
                                     {"number": number, "channel": standing.channel},
                                     f"{key}|{standing.channel}", now))
    return events


async def _releases(store: QueueStore, item: QueueItem, hold: str, key: str,
                    now: datetime) -> list[Accepted]:
    """Releases of the holds this item's reply placed, on each account listing its number;
    a hold of the same reason placed since by someone else (another event) stays."""
    accounts = (await store.accounts_with_number(item.number) if item.number
                else [_needs_account(item)])
    found = []
    for account_id in accounts:
        state = await store.account(account_id)
        placed = hold_event_id(item.ref or "", account_id, hold)
        if state is not None and any(h.reason.value == hold and h.event_id == placed
                                     for h in state.holds):
            found.append(_event("account.release", account_id, {"reason": hold},
                                f"{key}|{account_id}|{hold}", now))
    return found


def resolution_record(item: QueueItem, action: Action, actor: str, note: str,
                      hold: HoldReason | None) -> dict[str, Any]:
    """The `queue` audit record of a resolved item."""
    return {"kind": "queue", "status": "resolved", "item_id": item.id,
            "account_id": item.account_id, "reason": item.reason.value, "to": item.number,
            "action": action.value, "hold": hold.value if hold else None, "by": actor,
            "note": note}


async def resolve(store: QueueStore, item_id: int, action: str, *, note: str, actor: str,
                  now: datetime, hold: str | None = None, number: str | None = None,
                  config_version: str = "operator") -> list[dict[str, Any]]:
    """Resolve an open item with one of its allowed actions; its audit records as stored.

    `hold` names the hold reason of `action="hold"`; `number` the number an action on a
    number applies to when the item names none (one of the item's account's numbers).
    QueueError, with nothing changed, for an unknown item or action, one the item does not
    allow, or an item already resolved.
    """
    who, why = _who(actor, note)
    try:
        chosen = Action(action)
    except ValueError:
        raise QueueError(f"unknown action {action!r}; one of "
                         f"{', '.join(a.value for a in Action)}") from None
    try:
        reason = HoldReason(hold) if hold is not None else None
    except ValueError:
        raise QueueError(f"unknown hold reason {hold!r}; one of "
                         f"{', '.join(r.value for r in HoldReason)}") from None
    if reason is not None and chosen is not Action.HOLD:
        raise QueueError("--hold goes with --action hold only")
    item = await store.queue_item(item_id)
    if item is None:
        raise QueueError(f"no queue item with id {item_id}")
    if item.state is not State.OPEN:
        raise QueueError(f"queue item {item_id} is already resolved")
    if chosen not in item.actions:
        raise QueueError(f"queue item {item_id} ({item.reason.value}) allows "
                         f"{', '.join(a.value for a in item.actions)}, not {chosen.value}")
    if number is not None and item.number is None:
        item = replace(item, number=await _listed(store, item, number))
    events = await _events_for(store, item, chosen, reason, now)
    record = resolution_record(item, chosen, who, why, reason)
    released = sorted({e.event.account_id for e in events if e.event.type.value ==
                       "account.release"})
    if chosen is Action.RESUME:
        record["released"] = released
    change = OperatorChange(
        records=(record,), actor=who,
        action=chosen.value, note=why, events=tuple(events), item_id=item.id,
        mark_invalid=((_needs_number(item), _needs_account(item))
                      if chosen is Action.MARK_INVALID else None),
        clear_invalid=_marked_number(item, chosen),
        dismiss_dead_letter=(int(item.ref) if item.reason is Reason.DEAD_LETTER and item.ref
                             and item.ref.isdigit() else None))
    return await store.apply_change(change, now=now, config_version=config_version)


async def _listed(store: QueueStore, item: QueueItem, number: str) -> str:
    try:
        canonical = canonical_e164(number)
    except ValueError as exc:
        raise QueueError(f"not a phone number: {exc}") from None
    if item.account_id is None or item.account_id not in await store.accounts_with_number(
            canonical):
        raise QueueError(f"that number is not listed on account {item.account_id}")
    return canonical


def _marked_number(item: QueueItem, action: Action) -> str | None:
    if action is not Action.MARK_VALID:
        return None
    return _needs_number(item)


async def _open_item(store: QueueStore, reason: Reason, ref: str) -> QueueItem | None:
    for item in await store.queue_items(reason=reason):
        if item.ref == ref:
            return item
    return None


async def dismiss_dead_letter(store: QueueStore, letter_id: int, *, note: str, actor: str,
                              now: datetime,
                              config_version: str = "operator") -> list[dict[str, Any]]:
    """Dismiss a dead letter (it is no longer listed by default) and resolve its queue item."""
    who, why = _who(actor, note)
    item = await _open_item(store, Reason.DEAD_LETTER, str(letter_id))
    records: list[dict[str, Any]] = [{"kind": "operator", "action": "dismiss_dead_letter",
                                      "dead_letter_id": letter_id, "by": who, "note": why}]
    if item is not None:
        records.append(resolution_record(item, Action.DISMISS, who, why, None))
    change = OperatorChange(records=tuple(records), actor=who, action=Action.DISMISS.value,
                            note=why, item_id=item.id if item else None,
                            dismiss_dead_letter=letter_id)
    return await store.apply_change(change, now=now, config_version=config_version)


async def clear_invalid(store: QueueStore, number: str, *, note: str, actor: str,
                        now: datetime, config_version: str = "operator") -> list[dict[str, Any]]:
    """Clear a number's invalid mark: the accounts listing it are planned again at once."""
    who, why = _who(actor, note)
    try:
        canonical = canonical_e164(number)
    except ValueError as exc:
        raise QueueError(f"not a phone number: {exc}") from None
    accounts: Sequence[str] = await store.accounts_with_number(canonical)
    record = {"kind": "operator", "action": "mark_valid", "to": canonical,
              "account_id": accounts[0] if accounts else None, "accounts": list(accounts),
              "by": who, "note": why}
    change = OperatorChange(records=(record,), actor=who, action=Action.MARK_VALID.value,
                            note=why, clear_invalid=canonical)
    return await store.apply_change(change, now=now, config_version=config_version)
