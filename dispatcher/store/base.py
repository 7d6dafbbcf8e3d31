"""The repository Protocol: intention-named methods, no SQL, so another engine can stand in."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from dispatcher.audit.chain import ChainHead
from dispatcher.domain.accounts import AccountState
from dispatcher.domain.clock import utc_text_and_key
from dispatcher.domain.events import Event


@dataclass(frozen=True)
class Accepted:
    """A valid inbound event with its raw payload."""

    event: Event
    payload: bytes
    topic: str
    replay_of: int | None = None
    # Derived on creation (the writer process validates the next batch while the previous one
    # is being committed): the payload's SHA-256 as the audit record carries it, and
    # `occurred_at` as the audit log writes times and as the store sorts them.
    payload_sha256: str = field(init=False, repr=False, compare=False)
    occurred_at_text: str = field(init=False, repr=False, compare=False)
    occurred_at_key: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        text, key = utc_text_and_key(self.event.occurred_at)
        object.__setattr__(self, "payload_sha256", hashlib.sha256(self.payload).hexdigest())
        object.__setattr__(self, "occurred_at_text", text)
        object.__setattr__(self, "occurred_at_key", key)


@dataclass(frozen=True)
class Rejected:
    """An inbound payload that becomes a dead letter."""

    payload: bytes
    topic: str
    reason: str
    detail: str
    identity: Mapping[str, str] = field(default_factory=dict)


Inbound = Accepted | Rejected


@dataclass(frozen=True)
class BatchResult:
    """What one committed batch did."""

    stored: int
    duplicates: int
    dead_letters: int
    dead_letter_reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class DeadLetter:
    """A stored rejected payload."""

    id: int
    received_at: str
    topic: str
    payload: bytes
    reason: str
    detail: str
    event_id: str | None
    event_type: str | None
    account_id: str | None
    replayed_at: str | None
    replay_event_id: str | None


@dataclass(frozen=True)
class OptOut:
    """The opt-out state of one number on one channel."""

    number: str
    channel: str
    opted_out: bool  # true while the channel is blocked, by an opt-out or a pause for review
    changed_at: str
    event_id: str
    reason: str | None = None  # `revocation_review` while paused for a person

    @property
    def standing(self) -> str:
        """`opted_in`, `opted_out` or `revocation_review`."""
        return self.reason or ("opted_out" if self.opted_out else "opted_in")


class Store(Protocol):
    """Everything the engine and the CLI need from persistence."""

    async def record_batch(self, items: Sequence[Inbound], *, now: datetime,
                           config_version: str) -> BatchResult:
        """Commit events (ignoring seen event ids), dead letters and their audit records."""
        ...

    async def append_audit(self, records: Sequence[Mapping[str, Any]], *,
                           now: datetime) -> list[dict[str, Any]]:
        """Seal and append audit records; return them as stored."""
        ...

    async def audit_head(self) -> ChainHead:
        """The last record of the audit chain."""
        ...

    def audit_records(self, *, account_id: str | None = None, since: datetime | None = None,
                      until: datetime | None = None) -> AsyncIterator[dict[str, Any]]:
        """Audit records oldest first, filtered by account and [since, until)."""
        ...

    def audit_rows(self) -> AsyncIterator[tuple[int, str]]:
        """(seq, stored JSON) of every audit record in seq order, for verification."""
        ...

    async def unpublished(self, limit: int) -> list[dict[str, Any]]:
        """Audit records still to be published to MQTT, oldest first."""
        ...

    async def mark_published(self, seqs: Sequence[int]) -> None:
        """Note that these audit records reached the broker."""
        ...

    async def mark_unpublishable(self, seqs: Sequence[int]) -> None:
        """Note that these audit records can never be published, so that they are not retried."""
        ...

    async def account(self, account_id: str) -> AccountState | None:
        """The account's current state, if any event named it."""
        ...

    async def opt_outs(self, number: str) -> list[OptOut]:
        """The opt-out state of a number on each channel it has one for."""
        ...

    async def dead_letters(self, ids: Sequence[int] | None = None, *,
                           include_replayed: bool = False) -> list[DeadLetter]:
        """Stored dead letters, oldest first; by id when `ids` is given."""
        ...

    async def count_events(self) -> int:
        """How many distinct events are stored."""
        ...

    async def ping(self) -> None:
        """Fail when the store cannot be written."""
        ...
