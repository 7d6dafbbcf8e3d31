"""Work-queue items: why each exists, what it pauses, what a person may do; made from audit
records.

A store calls `items_from_audit` with the audit records of every transaction it commits, and
stores the items it returns in the same transaction (a key already stored is skipped: a
redelivered reply or a reconcile run again makes no second item). dispatcher.queue lists and
resolves them.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

# The excerpt of a reply an item keeps: a 1 MB reply is not stored twice.
MAX_EXCERPT = 280
MAX_DETAIL = 500


class Reason(StrEnum):
    """Why an item exists."""

    UNCLASSIFIED_REPLY = "unclassified_reply"  # free text the engine cannot classify
    REVOCATION_REVIEW = "revocation_review"  # a reply that might revoke consent
    DISPUTE = "dispute"  # the debtor disputes the debt
    BEREAVEMENT = "bereavement"  # the debtor has died
    HARDSHIP = "hardship"
    COMPLAINT = "complaint"
    UNKNOWN_OUTCOME = "unknown_outcome"  # the provider's answer was lost
    UNREACHABLE = "unreachable"  # every number of the account is invalid or opted out
    PROMISES_BROKEN = "promises_broken"  # a second promise to pay broken
    DEAD_LETTER = "dead_letter"


class Action(StrEnum):
    """What a person may do to resolve an item."""

    RESUME = "resume"  # lift what the item paused (a hold it placed, a number under review)
    HOLD = "hold"  # place a hold of a given reason
    OPT_OUT = "opt_out"  # record an opt-out of every channel of the item's number
    MARK_INVALID = "mark_invalid"  # mark the item's number invalid
    MARK_VALID = "mark_valid"  # clear an invalid mark
    DISMISS = "dismiss"  # close the item, leaving everything as it is


class State(StrEnum):
    """An item's state."""

    OPEN = "open"
    RESOLVED = "resolved"


# The hold a statement places at once, before any person looks.
STATEMENT_HOLDS = {Reason.DISPUTE: "dispute", Reason.BEREAVEMENT: "deceased"}

_ALWAYS = (Action.HOLD, Action.DISMISS)
ALLOWED: Mapping[Reason, tuple[Action, ...]] = {
    Reason.UNCLASSIFIED_REPLY: (Action.OPT_OUT, Action.MARK_INVALID, *_ALWAYS),
    # No dismiss: the number would stay paused with no item left to lift it.
    Reason.REVOCATION_REVIEW: (Action.RESUME, Action.OPT_OUT, Action.MARK_INVALID, Action.HOLD),
    Reason.DISPUTE: (Action.RESUME, Action.OPT_OUT, *_ALWAYS),
    Reason.BEREAVEMENT: (Action.RESUME, Action.OPT_OUT, Action.MARK_INVALID, *_ALWAYS),
    Reason.HARDSHIP: (Action.OPT_OUT, *_ALWAYS),
    Reason.COMPLAINT: (Action.OPT_OUT, *_ALWAYS),
    Reason.UNKNOWN_OUTCOME: (Action.MARK_INVALID, Action.OPT_OUT, *_ALWAYS),
    Reason.UNREACHABLE: (Action.MARK_VALID, *_ALWAYS),
    Reason.PROMISES_BROKEN: _ALWAYS,
    Reason.DEAD_LETTER: (Action.DISMISS,),
}


@dataclass(frozen=True)
class NewItem:
    """An item to store unless one with the same key exists."""

    key: str
    reason: Reason
    account_id: str | None
    number: str | None = None
    paused: tuple[str, ...] = ()  # what the engine paused because of it
    excerpt: str = ""  # a bounded, cleaned excerpt of what the person must read
    detail: str = ""
    ref: str | None = None  # the reply, attempt, event or dead letter it is about


@dataclass(frozen=True)
class QueueItem:
    """A stored item."""

    id: int
    key: str
    reason: Reason
    account_id: str | None
    number: str | None
    paused: tuple[str, ...]
    excerpt: str
    detail: str
    ref: str | None
    created_at: str
    state: State
    resolved_at: str | None = None
    resolved_by: str | None = None
    action: str | None = None
    note: str | None = None
    actions: tuple[Action, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "actions", ALLOWED.get(self.reason, (Action.DISMISS,)))

    def as_dict(self) -> dict[str, Any]:
        """The item as `queue list --format jsonl` and a console show it."""
        return {"id": self.id, "account_id": self.account_id, "reason": self.reason.value,
                "created_at": self.created_at, "state": self.state.value,
                "number": self.number, "paused": list(self.paused),
                "actions": [a.value for a in self.actions], "excerpt": self.excerpt,
                "detail": self.detail, "ref": self.ref, "resolved_at": self.resolved_at,
                "resolved_by": self.resolved_by, "action": self.action, "note": self.note}


def clean(text: str, limit: int = MAX_EXCERPT) -> str:
    """`text` bounded to `limit` characters, control and format characters as spaces."""
    head = text[:limit * 4]
    kept = "".join(" " if unicodedata.category(ch)[0] == "C" else ch for ch in head)
    kept = " ".join(kept.split())
    return kept if len(kept) <= limit else kept[:limit - 1] + "\u2026"


def hold_event_id(reply_id: str, account_id: str, hold: str) -> str:
    """The id of the `account.hold` event a reply's statement places on one account."""
    key = hashlib.sha256(f"{reply_id}|{account_id}|{hold}".encode()).hexdigest()[:20]
    return f"sms-hold-{key}"


def key_digest(*parts: str) -> str:
    """A short digest of what makes an item the same item."""
    return hashlib.sha256("\x1f".join(parts).encode("utf-8", "replace")).hexdigest()[:24]


def _text(record: Mapping[str, Any], name: str) -> str:
    value = record.get(name)
    return value if isinstance(value, str) else ""


def _opt(record: Mapping[str, Any], name: str) -> str | None:
    value = record.get(name)
    return value if isinstance(value, str) else None


# A reply makes one item: for the gravest of what it says; the others are named in its detail.
_GRAVITY = (Reason.BEREAVEMENT, Reason.DISPUTE, Reason.REVOCATION_REVIEW, Reason.COMPLAINT,
            Reason.HARDSHIP)
REVIEW_PAUSED = ("number:sms", "number:call")


def _reply_items(record: Mapping[str, Any]) -> list[NewItem]:
    reply_id = _text(record, "reply_id") or key_digest(_text(record, "to"),
                                                       _text(record, "detail"))
    said: list[Reason] = []
    for statement in record.get("statements") or ():
        try:
            said.append(Reason(statement))
        except ValueError:
            continue
    review = record.get("status") == "revocation_review"
    if review:
        said.append(Reason.REVOCATION_REVIEW)
    if not said and record.get("status") != "free_text":
        return []  # help: answered by the provider's reply, nothing for a person
    ranked = [r for r in _GRAVITY if r in said] or [Reason.UNCLASSIFIED_REPLY]
    held = record.get("holds") or ()
    paused = tuple(f"hold:{h}" for h in held if isinstance(h, str)) + (
        REVIEW_PAUSED if review else ())
    detail = ("the reply states " + ", ".join(r.value for r in ranked)
              if said else "a reply the engine cannot classify")
    return [NewItem(f"reply:{reply_id}", ranked[0], _opt(record, "account_id"),
                    _opt(record, "to"), paused, clean(_text(record, "detail")), detail,
                    reply_id)]


def items_from_audit(records: Iterable[Mapping[str, Any]],
                     broken_before: Mapping[str, int] | None = None) -> list[NewItem]:
    """The items that audit records call for. `broken_before`: per account, how many promises
    were broken before these records (a second broken promise makes an item)."""
    found: list[NewItem] = []
    broken = dict(broken_before or {})
    for record in records:
        kind = record.get("kind")
        if kind == "reply":
            found.extend(_reply_items(record))
        elif kind == "outcome" and record.get("status") == "unknown":
            attempt_id = _text(record, "attempt_id")
            found.append(NewItem(f"unknown:{attempt_id}", Reason.UNKNOWN_OUTCOME,
                                 _opt(record, "account_id"), _opt(record, "to"), (),
                                 "", clean(_text(record, "detail"), MAX_DETAIL), attempt_id))
        elif kind == "dead_letter":
            letter = str(record.get("dead_letter_id"))
            found.append(NewItem(f"dead_letter:{letter}", Reason.DEAD_LETTER,
                                 _opt(record, "account_id"), None, (), "",
                                 clean(f"{_text(record, 'reason')}: {_text(record, 'detail')}",
                                       MAX_DETAIL), letter))
        elif kind == "promise" and record.get("status") == "broken":
            account_id = _text(record, "account_id")
            broken[account_id] = broken.get(account_id, 0) + 1
            if broken[account_id] >= 2:
                event_id = _text(record, "event_id")
                found.append(NewItem(f"promises:{account_id}:{event_id}",
                                     Reason.PROMISES_BROKEN, account_id, None, (), "",
                                     f"{broken[account_id]} promises to pay broken", event_id))
    return found


def broken_promise_accounts(records: Sequence[Mapping[str, Any]]) -> list[str]:
    """Accounts with a broken promise among `records` (whose earlier ones a store counts)."""
    return sorted({_text(r, "account_id") for r in records
                   if r.get("kind") == "promise" and r.get("status") == "broken"})


def created_record(item_id: int, item: NewItem) -> dict[str, Any]:
    """The `queue` audit record of a new item."""
    return {"kind": "queue", "status": "created", "item_id": item_id,
            "account_id": item.account_id, "reason": item.reason.value, "to": item.number,
            "paused": list(item.paused), "actions": [a.value for a in ALLOWED[item.reason]],
            "ref": item.ref}
