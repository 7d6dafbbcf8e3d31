"""What every backend derives the same way from events and answers: no SQL here.

The audit records an ingested batch implies, the numbers an account lists, and a cache of parsed
account states. A backend stores what these return; the results must not depend on the engine.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple

import orjson

from dispatcher.domain.accounts import AccountState
from dispatcher.domain.contact import Medium, NumberClaim, PastAttempt
from dispatcher.domain.events import Event, EventType, HoldData, OptChannel, OptData, ReleaseData
from dispatcher.domain.queue import NewItem, QueueItem, Reason, State
from dispatcher.store.base import Accepted, AccountContext, Rejected

# The channels an opt-out of `all` stands for, each with its own standing.
CHANNELS = ("sms", "call")

# audit.published: NULL never published, 0 waiting, 1 published, 2 can never be published.
UNPUBLISHABLE = 2


def party_numbers(state: AccountState) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
    """What `party_rows` is made of: equal numbers mean equal rows (cheaper to compare)."""
    debtor = tuple(p.number for p in state.debtor.phones) if state.debtor is not None else ()
    return debtor, tuple((c.number, c.contact_id) for c in state.contacts)


def party_rows(state: AccountState) -> list[tuple[str, str, str, str | None]]:
    """(number, account, party, contact id) of each number the account lists, once per party."""
    debtor, contacts = party_numbers(state)
    rows: list[tuple[str, str, str, str | None]] = [
        (number, state.account_id, "debtor", None) for number in debtor]
    rows.extend((number, state.account_id, "third_party", contact_id)
                for number, contact_id in contacts)
    return list({(r[0], r[2]): r for r in rows}.values())


def renumbered(before: AccountState | None, after: AccountState) -> bool:
    """Whether the account's numbers changed with its new state (or it is new)."""
    return before is None or (
        (before.debtor is not after.debtor or before.contacts is not after.contacts)
        and party_numbers(before) != party_numbers(after))


def opt_audit(base: Mapping[str, Any], number: str, channel: str, standing: str,
              refused: Mapping[str, str] | None) -> list[dict[str, Any]]:
    """The `opt_out` audit records of one event: one per channel when an opt-in was refused
    on some of them (`status: not_applied` with the reason), else one."""
    if not refused:
        return [{**base, "kind": "opt_out", "to": number, "channel": channel,
                 "status": standing}]
    channels = CHANNELS if channel == OptChannel.ALL else (channel,)
    return [{**base, "kind": "opt_out", "to": number, "channel": c,
             "status": "not_applied" if c in refused else standing, "reason": refused.get(c)}
            for c in channels]


def derived_audit(event: Event,
                  refused: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """Hold and opt-out records that an event implies, besides its `event` record; `refused`
    names the channels on which an opt-in was not applied, and why."""
    data = event.data
    base = {"account_id": event.account_id, "event_id": event.event_id}
    if isinstance(data, HoldData):
        return [base | {"kind": "hold", "reason": f"hold:{data.reason}", "status": "placed",
                        "until": data.until.isoformat() if data.until else None}]
    if isinstance(data, ReleaseData):
        return [base | {"kind": "hold", "reason": f"hold:{data.reason}", "status": "released"}]
    if isinstance(data, OptData):
        status = "opted_out" if event.type is EventType.OPT_OUT else "opted_in"
        return opt_audit(base, data.number, str(data.channel), status, refused)
    return []


def dead_letter_record(item: Rejected, dead_letter_id: int) -> dict[str, Any]:
    """The `dead_letter` audit record of a stored rejected payload."""
    ident = item.identity
    return {"kind": "dead_letter", "dead_letter_id": dead_letter_id, "reason": item.reason,
            "detail": item.detail, "event_id": ident.get("event_id"),
            "event_type": ident.get("event_type"), "account_id": ident.get("account_id"),
            "payload_sha256": hashlib.sha256(item.payload).hexdigest()}


def event_record(accepted: Accepted) -> dict[str, Any]:
    """The `event` audit record of a stored event."""
    event = accepted.event
    return {"kind": "event", "event_id": event.event_id, "event_type": event.type.value,
            "account_id": event.account_id, "occurred_at": accepted.occurred_at_text,
            "payload_sha256": accepted.payload_sha256, "replay_of": accepted.replay_of}


class StateCache:
    """Parsed account states keyed by their stored JSON: a hit needs the text to be unchanged,
    so a write by another process (the CLI) can never be answered from a stale copy."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._entries: OrderedDict[str, tuple[str, AccountState]] = OrderedDict()

    def get(self, account_id: str, state_json: str) -> AccountState:
        """The parsed state for this stored text, from the cache when it matches."""
        entry = self._entries.get(account_id)
        if entry is not None and entry[0] == state_json:
            self._entries.move_to_end(account_id)
            return entry[1]
        state = AccountState.model_validate_json(state_json)
        self.put(state_json, state)
        return state

    def put(self, state_json: str, state: AccountState) -> None:
        """Remember a state by the text it is stored as."""
        self._entries[state.account_id] = (state_json, state)
        self._entries.move_to_end(state.account_id)
        if len(self._entries) > self._size:
            self._entries.popitem(last=False)


class SharedNumbers(NamedTuple):
    """What other accounts do on an account's numbers."""

    attempts: dict[str, list[tuple[str, PastAttempt]]]  # by number: (account, attempt)
    claims: dict[str, list[NumberClaim]]  # by number
    last_used: dict[tuple[str, str], datetime]  # (account, number): its last attempt on it


def others(attempts: Mapping[str, list[tuple[str, PastAttempt]]], numbers: Iterable[str],
           account_id: str) -> tuple[PastAttempt, ...]:
    """Other accounts' attempts on `numbers`, oldest first."""
    found = [a for n in numbers for owner, a in attempts.get(n, ()) if owner != account_id]
    return tuple(sorted(found, key=lambda a: (a.at, a.attempt_id)))


def account_contexts(account_ids: Sequence[str], states: Mapping[str, tuple[str, str | None]], *,
                     parse: Callable[[str, str], AccountState],
                     history: Mapping[str, Sequence[PastAttempt]], numbers: Mapping[str, set[str]],
                     opted: set[tuple[str, Medium]], review: set[tuple[str, Medium]],
                     invalid: set[str], shared: SharedNumbers) -> dict[str, AccountContext]:
    """Each stored account's context from what a store read for the batch (`states`: state and
    plan JSON by account; `parse`: the state of an account from its JSON)."""
    found = {}
    # Most batches have no opt-out, mark or shared number at all: skip their per-account work.
    empty: frozenset[Any] = frozenset()
    for account_id in account_ids:
        if account_id not in states:
            continue
        state_json, plan_json = states[account_id]
        mine = numbers[account_id]
        found[account_id] = AccountContext(
            state=parse(account_id, state_json), plan_json=plan_json,
            history=tuple(history.get(account_id, ())),
            opted_out=frozenset(o for o in opted if o[0] in mine) if opted else empty,
            under_review=frozenset(o for o in review if o[0] in mine) if review else empty,
            invalid_numbers=frozenset(n for n in invalid if n in mine) if invalid else empty,
            number_history=(others(shared.attempts, mine, account_id)
                            if shared.attempts else ()),
            number_claims=tuple(c for n in sorted(mine) for c in shared.claims.get(n, ())
                                if c.account_id != account_id) if shared.claims else (),
            number_last_used={n: shared.last_used[(account_id, n)] for n in sorted(mine)
                              if (account_id, n) in shared.last_used}
            if shared.last_used else {})
    return found


# A work-queue item's columns, in the order queue_item_from_row reads them.
QUEUE_COLUMNS = ("id, key, reason, account_id, number, paused, excerpt, detail, ref, created_at, "
                 "state, resolved_at, resolved_by, action, note")


def queue_select(mark: Callable[[int], str], *, state: State | None, reason: Reason | None,
                 account_id: str | None, limit: int | None) -> tuple[str, list[str]]:
    """The query of work-queue items oldest first, filtered and at most `limit` (None: all),
    and its parameters; `mark(n)` is the store's placeholder for the n-th parameter."""
    clauses: list[str] = []
    params: list[str] = []
    for column, value in (("state", state), ("reason", reason), ("account_id", account_id)):
        if value is not None:
            params.append(str(value))
            clauses.append(f"{column} = {mark(len(params))}")
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    bound = f" LIMIT {max(0, int(limit))}" if limit is not None else ""
    return f"SELECT {QUEUE_COLUMNS} FROM queue_items{where} ORDER BY id{bound}", params


def new_item_values(item: NewItem, created: str) -> tuple[Any, ...]:
    """A new item's values, in the order key, reason, account_id, number, paused, excerpt,
    detail, ref, created_at."""
    return (item.key, item.reason.value, item.account_id, item.number,
            orjson.dumps(list(item.paused)).decode(), item.excerpt, item.detail, item.ref,
            created)


def queue_item_from_row(row: Sequence[Any]) -> QueueItem:
    """A stored work-queue item from its row (columns in QUEUE_COLUMNS order)."""
    return QueueItem(int(row[0]), row[1], Reason(row[2]), row[3], row[4],
                     tuple(orjson.loads(row[5])), row[6], row[7], row[8], row[9], State(row[10]),
                     row[11], row[12], row[13], row[14])
