"""The tamper-evident audit log: canonical JSON, SHA-256 hash chain, and its verification."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import orjson

GENESIS_HASH = "0" * 64


class AuditKind(StrEnum):
    """Kinds of audit record (docs/audit-records.md)."""

    EVENT = "event"
    ATTEMPT = "attempt"
    SUPPRESSED = "suppressed"
    OUTCOME = "outcome"
    HOLD = "hold"
    OPT_OUT = "opt_out"
    CONFIG = "config"
    DEAD_LETTER = "dead_letter"
    # Extensions: a promise to pay that was not kept; an inbound text that needs a person.
    PROMISE = "promise"
    REPLY = "reply"
    # What people did in the web console: logins, logouts and every action they took.
    CONSOLE = "console"
    # The work queue for people: an item created or resolved; a person's other actions.
    QUEUE = "queue"
    OPERATOR = "operator"


# Records of these kinds are also published to `<out prefix>/<account_id>` (docs/events.md).
PUBLISHED_KINDS = frozenset({AuditKind.ATTEMPT, AuditKind.SUPPRESSED, AuditKind.OUTCOME,
                             AuditKind.QUEUE})

EXPORT_FIELDS = (
    "seq", "at", "kind", "event_id", "event_type", "account_id", "attempt_id", "channel", "party",
    "to", "stage", "rule", "reason", "status", "provider_sid", "local_times", "template",
    "config_version", "prev_hash", "hash",
)


def canonical_json(record: Mapping[str, Any]) -> str:
    """Sorted keys, no whitespace, UTF-8 as is: the form that is hashed and exported.

    Byte for byte what `json.dumps(record, sort_keys=True, separators=(",", ":"),
    ensure_ascii=False)` gives for JSON values (a property test holds the two together), so that a
    reviewer can recompute every hash with the standard library; orjson is ~15x faster.
    """
    return orjson.dumps(record, option=orjson.OPT_SORT_KEYS).decode("utf-8")


def record_hash(record: Mapping[str, Any]) -> str:
    """SHA-256 over the canonical JSON of `record` without its `hash` field."""
    body = {k: v for k, v in record.items() if k != "hash"}
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


@dataclass(frozen=True)
class ChainHead:
    """The last record of the chain: where the next one attaches."""

    seq: int
    hash: str


EMPTY_CHAIN = ChainHead(seq=0, hash=GENESIS_HASH)


def seal(fields: Mapping[str, Any], head: ChainHead,
         common: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Return `fields` (and `common`) as the next record after `head`, with seq, prev_hash and
    hash set; fields whose value is None are left out."""
    return _sealed(fields, head.seq + 1, head.hash, tuple(common.items()) if common else ())


def _sealed(fields: Mapping[str, Any], seq: int, prev_hash: str,
            common: tuple[tuple[str, Any], ...]) -> dict[str, Any]:
    record = {k: v for k, v in fields.items() if v is not None}
    for k, v in common:
        if k not in record:
            record[k] = v
    record.pop("hash", None)
    record["seq"] = seq
    record["prev_hash"] = prev_hash
    record["hash"] = hashlib.sha256(orjson.dumps(record, option=orjson.OPT_SORT_KEYS)).hexdigest()
    return record


def seal_all(items: Iterable[Mapping[str, Any]], head: ChainHead,
             common: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """Seal several records in order onto `head`, each with the `common` fields it lacks."""
    shared = tuple(common.items()) if common else ()
    seq, prev_hash = head.seq, head.hash
    sealed = []
    for fields in items:
        seq += 1
        record = _sealed(fields, seq, prev_hash, shared)
        prev_hash = record["hash"]
        sealed.append(record)
    return sealed


class ChainVerifier:
    """Checks (stored seq, record JSON) rows fed in seq order: hashes, links, consecutive seqs."""

    def __init__(self, start: ChainHead = EMPTY_CHAIN) -> None:
        self.head = start
        self.checked = 0

    def feed(self, stored_seq: int, text: str) -> str | None:
        """Check the next row; return what is wrong with it, or None when it is sound."""
        try:
            record = json.loads(text)
        except json.JSONDecodeError:
            return "record is not valid JSON"
        if not isinstance(record, dict):
            return "record is not a JSON object"
        seq = record.get("seq")
        if seq != stored_seq:
            return f"record says seq {seq!r} but is stored as seq {stored_seq}"
        if seq != self.head.seq + 1:
            return (f"expected seq {self.head.seq + 1} after {self.head.seq}: "
                    "records were deleted or inserted")
        if record.get("prev_hash") != self.head.hash:
            return "prev_hash does not match the previous record's hash"
        if record.get("hash") != record_hash(record):
            return "hash does not match the record's content: it was edited"
        self.head = ChainHead(seq, record["hash"])
        self.checked += 1
        return None
