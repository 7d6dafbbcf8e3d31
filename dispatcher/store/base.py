"""The repository Protocols: intention-named methods, no SQL, so that another engine can stand in.

Each consumer takes the narrowest Protocol that names what it uses; `Store`, their union, is what
`open_store` returns and what a backend implements. The value types they exchange live here too.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple, Protocol

from dispatcher.audit.chain import ChainHead
from dispatcher.audit.index import IndexDisagreement
from dispatcher.audit.keys import CheckpointSigner
from dispatcher.domain.accounts import AccountState
from dispatcher.domain.clock import utc_text_and_key
from dispatcher.domain.contact import Medium, NumberClaim, Outcome, PastAttempt, Role
from dispatcher.domain.events import Event
from dispatcher.domain.queue import NewItem, QueueItem, Reason, State

# How long a claimed due account stays leased to the store that claimed it (`[store]
# claim_lease_seconds`): an account a dead daemon claimed waits this long for another.
CLAIM_LEASE = timedelta(minutes=5)
# The shortest lease allowed. A lease must outlast a batch's claim-to-commit: nothing checks the
# lease when the decisions are committed, so a daemon whose lease ran out before its commit
# would decide accounts another daemon has claimed again meanwhile. That span is the batch's
# reads, its decisions and a commit that queues behind the other daemons' writes to the chain
# head: well under a second as a rule, seconds behind a large ingest batch or a slow disk.
MIN_CLAIM_LEASE = timedelta(seconds=30)


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
    dismissed_at: str | None = None
    dismissed_by: str | None = None
    dismissed_reason: str | None = None


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


class AttemptRow(NamedTuple):
    """An attempt as the store keeps it."""

    # A named tuple, not a frozen dataclass (which costs three times as much to build):
    # the engine makes one for every attempt.

    attempt_id: str
    account_id: str
    person: str
    role: Role
    number: str
    medium: Medium
    stage: str | None
    window: str | None
    rule: str | None
    template: str | None
    at: datetime
    hour_of_week: int | None = None  # the debtor's local weekday x 24 + hour, for learning


class OutcomeRow(NamedTuple):
    """A provider's answer about one attempt."""

    # A named tuple, not a frozen dataclass (which costs three times as much to build):
    # one for every outcome.

    attempt_id: str
    outcome: Outcome
    at: datetime
    provider_sid: str | None = None
    detail: str = ""
    wait: float = 0.0  # seconds before the account is looked at again (a provider's Retry-After)


@dataclass(frozen=True)
class AccountContext:
    """What the engine reads about one account before deciding."""

    state: AccountState
    plan_json: str | None
    history: tuple[PastAttempt, ...]
    opted_out: frozenset[tuple[str, Medium]]
    invalid_numbers: frozenset[str]
    under_review: frozenset[tuple[str, Medium]] = frozenset()  # paused for a person
    # Other accounts on this account's numbers: their attempts since `number_since` (oldest
    # first), and their stored plans that will use one of the numbers; and, on each number
    # another account uses, this account's own last attempt, however long ago.
    number_history: tuple[PastAttempt, ...] = ()
    number_claims: tuple[NumberClaim, ...] = ()
    number_last_used: Mapping[str, datetime] = field(default_factory=dict)


class PlanRow(NamedTuple):
    """The engine's stored plan for an account and when to look at it again."""

    # A named tuple, not a frozen dataclass (which costs three times as much to build):
    # the engine writes one or two for every decision.

    account_id: str
    plan_json: str
    next_at: datetime | None


@dataclass(frozen=True)
class PlannedRow:
    """An open account whose stored plan is an attempt: its state, the plan (the engine's JSON)
    and when the engine looks at it next (sooner than the plan when an event came since)."""

    account_id: str
    state: AccountState
    plan_json: str
    next_at: datetime | None


@dataclass(frozen=True)
class AgendaQuery:
    """Which stored plans the agenda reads: attempts planned in [since, until), soonest first,
    at most `limit`; each filter, when given, must match."""

    since: datetime
    until: datetime
    limit: int
    account_id: str | None = None
    medium: str | None = None  # call or sms
    stage: str | None = None
    party: str | None = None  # debtor, or third_party for any other role


@dataclass(frozen=True)
class PruneResult:
    """What a pruning run did, or with `dry_run` or no signing key, would do."""

    cutoff: datetime
    through_seq: int | None  # the last record written before the cutoff
    due: int  # records past retention
    pruned: int  # records removed
    accounts: int  # accounts past retention
    checkpoints: tuple[dict[str, Any], ...] = ()
    refused: str | None = None  # why nothing was even counted: the log does not verify


@dataclass(frozen=True)
class OperatorChange:
    """What one person's action changes, applied in one transaction (dispatcher.queue.actions):
    its audit records and events, the queue item it resolves (which must be open), a number to
    mark invalid (with its account) or to clear, a dead letter to dismiss."""

    records: tuple[Mapping[str, Any], ...]
    actor: str
    action: str
    note: str
    events: tuple[Accepted, ...] = ()
    item_id: int | None = None
    mark_invalid: tuple[str, str] | None = None
    clear_invalid: str | None = None
    dismiss_dead_letter: int | None = None


# Called with the audit records of each committed transaction (metrics count them).
AuditObserver = Callable[[Sequence[dict[str, Any]]], None]

# Called with the accounts whose decisions a commit left out: another daemon had claimed them.
LostClaimObserver = Callable[[Sequence[str]], None]


# -- ingest and consent ------------------------------------------------------------------------


class IngestStore(Protocol):
    """Where inbound events and dead letters are committed (the ingest writers)."""

    async def record_batch(self, items: Sequence[Inbound], *, now: datetime,
                           config_version: str,
                           audit: Sequence[Mapping[str, Any]] = ()) -> BatchResult:
        """Commit events (ignoring seen event ids), dead letters and their audit records, then
        `audit` (records that go with them, such as the reply they came in)."""
        ...


class AuditWriter(Protocol):
    """Appending audit records that no other write goes with."""

    async def append_audit(self, records: Sequence[Mapping[str, Any]], *,
                           now: datetime) -> list[dict[str, Any]]:
        """Seal and append audit records; return them as stored."""
        ...


class ReplyStore(IngestStore, AuditWriter, Protocol):
    """What acting on an inbound text needs (dispatcher.contact.replies)."""

    async def accounts_with_number(self, number: str) -> list[str]:
        """Accounts on which the number is listed (debtor or contact)."""
        ...

    async def pause_for_review(self, number: str, *, key: str, account_id: str | None,
                               at: datetime, audit: Sequence[Mapping[str, Any]],
                               config_version: str) -> bool:
        """Pause every channel of `number` until a person reviews a reply, with its audit
        records; False when this very reply (same `key`) paused it before."""
        ...


class WebhookStore(ReplyStore, Protocol):
    """What the provider's callbacks need: replies, and the attempt a call belongs to."""

    async def attempt(self, attempt_id: str) -> AttemptRow | None:
        """One attempt as recorded, if it exists."""
        ...

    async def account(self, account_id: str) -> AccountState | None:
        """The account's current state, if any event named it."""
        ...


# -- the audit log ---------------------------------------------------------------------------


class HeadStore(Protocol):
    """The audit chain's head (the head job)."""

    async def audit_head(self) -> ChainHead:
        """The last record of the audit chain."""
        ...


class AuditReader(Protocol):
    """Reading audit records back (export, report, simulate, head checks)."""

    def audit_records(self, *, account_id: str | None = None, since: datetime | None = None,
                      until: datetime | None = None) -> AsyncIterator[dict[str, Any]]:
        """Audit records oldest first, filtered by account and [since, until)."""
        ...

    async def audit_hashes(self, seqs: Iterable[int]) -> dict[int, str]:
        """The hashes of the records at `seqs` that are stored."""
        ...


class VerifiableStore(Protocol):
    """What verifying the audit log reads (dispatcher.audit.verify)."""

    def audit_rows(self) -> AsyncIterator[tuple[int, str]]:
        """(seq, stored JSON) of every audit record in seq order, for verification."""
        ...

    async def latest_checkpoint(self) -> dict[str, Any] | None:
        """The newest checkpoint record: where a pruned chain is anchored."""
        ...

    async def index_disagreements(self, limit: int = 100) -> list[IndexDisagreement]:
        """Index columns beside the records that differ from them: at most `limit` rows'
        worth, in seq order."""
        ...


class RetentionStore(VerifiableStore, Protocol):
    """Pruning what is past retention, once the log verifies (dispatcher.audit.retention)."""

    async def prune_audit(self, *, cutoff: datetime, now: datetime, retention_years: int,
                          signer: CheckpointSigner | None, config_version: str,
                          dry_run: bool = False, step_seqs: int | None = None) -> PruneResult:
        """Remove what is past retention, in steps (of at most `step_seqs` seqs; None: the
        backend's own size), each under a signed checkpoint."""
        ...


class OutboxStore(Protocol):
    """The audit records waiting for the MQTT publisher."""

    async def unpublished(self, limit: int) -> list[dict[str, Any]]:
        """Audit records still to be published to MQTT, oldest first."""
        ...

    async def mark_published(self, seqs: Sequence[int]) -> None:
        """Note that these audit records reached the broker."""
        ...

    async def mark_unpublishable(self, seqs: Sequence[int]) -> None:
        """Note that these audit records can never be published, so that they are not retried."""
        ...


# -- contact ---------------------------------------------------------------------------------


class ContextStore(Protocol):
    """What is known about accounts before deciding (the engine, explain)."""

    async def contexts(self, account_ids: Sequence[str], since: datetime, *,
                       number_since: datetime | None = None) -> dict[str, AccountContext]:
        """State, stored plan, attempts since `since` (and every third-party call), opt-outs;
        and what other accounts on the same numbers did since `number_since` (default `since`)
        and plan to do."""
        ...


class OpenAttemptStore(Protocol):
    """Attempts still waiting for their outcome (reconciliation)."""

    async def open_attempts(self) -> list[AttemptRow]:
        """Attempts recorded but without a final outcome (in flight, or lost in a crash)."""
        ...


class AnswerStore(Protocol):
    """What the planner's answer model is learned from, and the model in force."""

    async def call_answer_counts(self, since: datetime,
                                 until: datetime) -> dict[int, tuple[int, int]]:
        """Debtor calls with an outcome placed in [since, until), by local hour of the week:
        (calls that rang, answered, or reached voicemail; calls answered)."""
        ...

    async def answer_model(self) -> tuple[str, datetime] | None:
        """The model in force (as JSON) and when learning last looked, if ever."""
        ...

    async def save_answer_model(self, body: str, checked_at: datetime) -> None:
        """Keep the model in force and when learning last looked."""
        ...


class ReplanStore(Protocol):
    """Stored plans given back to the engine for a fresh decision (the contact policy changed)."""

    async def replan(self, now: datetime) -> int:
        """In one transaction, make every open account with a stored plan due at `now`, unless
        it is due already or an attempt of it awaits its outcome; how many were made due."""
        ...


class JobLeaseStore(Protocol):
    """Which daemon of those sharing the store runs a job that must run once for all of them."""

    async def claim_job(self, name: str, due: datetime, hold: timedelta) -> bool:
        """Whether this store may run job `name`'s run due at `due`, holding the job for `hold`:
        yes when it holds the job already (for a run due no earlier), or when no other store
        holds it (its hold ran out, or it was released) and no run due at or after `due` was
        claimed. A store that no other daemon shares (SQLite) always may."""
        ...

    async def release_jobs(self) -> None:
        """Give up every job this store holds, so that another daemon takes them at once."""
        ...


class RateBucketStore(Protocol):
    """A provider's rate as a token bucket shared by every daemon that uses the store."""

    async def take_token(self, key: str, rate: float, burst: int) -> float:
        """Take the next token of the bucket `key` (`rate` a second, up to `burst` at once): the
        seconds until it is due, when the request that takes it may leave. A store that no other
        daemon shares (SQLite) answers 0: the daemon's own limiter is the whole limit."""
        ...


class ContactStore(ContextStore, OpenAttemptStore, AnswerStore, ReplanStore, JobLeaseStore,
                   Protocol):
    """The repository methods the contact engine uses."""

    async def claim_due(self, now: datetime, limit: int) -> list[str]:
        """Accounts due at `now`, leased to this process."""
        ...

    async def release_claims(self, account_ids: Sequence[str]) -> None:
        """Give claimed accounts back before their lease runs out."""
        ...

    async def record_decisions(self, *, attempts: Sequence[AttemptRow],
                               plans: Sequence[PlanRow], audit: Sequence[Mapping[str, Any]],
                               now: datetime, config_version: str,
                               queue: Sequence[NewItem] = ()) -> list[dict[str, Any]]:
        """Attempts, plans, audit records and queue items (stored unless their key is) in one
        transaction (the audit records written); nothing for an account this store claimed
        whose claim is no longer its own."""
        ...

    async def record_outcomes(self, outcomes: Sequence[OutcomeRow], *, now: datetime,
                              config_version: str, audit_for: Any,
                              plans: Sequence[PlanRow] = (),
                              audit_after: Sequence[Mapping[str, Any]] = (),
                              queue: Sequence[NewItem] = (),
                              ) -> list[dict[str, Any]]:
        """Final outcomes, once each; with `plans`, the accounts' next plans too, and with
        `queue`, the queue items they call for (stored unless their key is)."""
        ...


class AgendaStore(Protocol):
    """The attempts the engine has planned, by their time (the agenda)."""

    async def planned_attempts(self, query: AgendaQuery) -> list[PlannedRow]:
        """Open accounts whose stored plan is an attempt matching `query`, by the attempt's
        time then account id."""
        ...


class DueStore(Protocol):
    """When the engine next has work (the daemon's lag, simulate's clock)."""

    async def next_due_at(self) -> datetime | None:
        """The earliest instant any account is due, if one is."""
        ...


# -- queries and the daemon's upkeep ---------------------------------------------------------


class DeadLetterStore(Protocol):
    """Stored dead letters, for listing and replay."""

    async def dead_letters(self, ids: Sequence[int] | None = None, *,
                           include_replayed: bool = False) -> list[DeadLetter]:
        """Stored dead letters, oldest first; by id when `ids` is given; without ids, neither
        replayed nor dismissed ones unless `include_replayed`."""
        ...


class QueueReader(Protocol):
    """Reading the work queue (the CLI, a console)."""

    async def queue_items(self, *, state: State | None = State.OPEN,
                          reason: Reason | None = None, account_id: str | None = None,
                          limit: int | None = None) -> list[QueueItem]:
        """Items oldest first, filtered by state (None: all), reason and account; at most
        `limit` of them (None: all)."""
        ...

    async def open_queue_items(self) -> int:
        """How many items wait for a person."""
        ...

    async def queue_item(self, item_id: int) -> QueueItem | None:
        """One item by id."""
        ...


class QueueStore(QueueReader, Protocol):
    """The work queue for people, and the changes a person makes (dispatcher.queue)."""

    async def apply_change(self, change: OperatorChange, *, now: datetime,
                           config_version: str) -> list[dict[str, Any]]:
        """Apply a person's action in one transaction; its audit records as stored. QueueError,
        with nothing changed, when the item is not open, the dead letter is missing or
        dismissed, or the number to clear is not marked."""
        ...

    async def accounts_with_number(self, number: str) -> list[str]:
        """Accounts on which the number is listed (debtor or contact)."""
        ...

    async def account(self, account_id: str) -> AccountState | None:
        """The account's current state, if any event named it."""
        ...

    async def opt_outs(self, number: str) -> list[OptOut]:
        """The opt-out state of a number on each channel it has one for."""
        ...

    async def invalid_numbers(self) -> list[dict[str, str]]:
        """Numbers found invalid, for the data team to fix."""
        ...

    async def dead_letters(self, ids: Sequence[int] | None = None, *,
                           include_replayed: bool = False) -> list[DeadLetter]:
        """Stored dead letters, oldest first; by id when `ids` is given."""
        ...


class QueryStore(Protocol):
    """Read-only questions from the command line and from tests."""

    async def opt_outs(self, number: str) -> list[OptOut]:
        """The opt-out state of a number on each channel it has one for."""
        ...

    async def invalid_numbers(self) -> list[dict[str, str]]:
        """Numbers found invalid, for the data team to fix."""
        ...

    async def count_events(self) -> int:
        """How many distinct events are stored."""
        ...


class AccountListStore(Protocol):
    """Accounts found by their id (the console's search)."""

    async def accounts_from(self, prefix: str, limit: int) -> list[str]:
        """Account ids that start with `prefix`, in order, at most `limit`."""
        ...


class HealthStore(Protocol):
    """What `/healthz` asks of the store."""

    async def ping(self) -> None:
        """Fail when the store cannot be written."""
        ...


class UpkeepStore(Protocol):
    """What only the daemon's own loops use: metrics' hook, and housekeeping."""

    audit_observers: list[AuditObserver]
    lost_claim_observers: list[LostClaimObserver]

    async def wal_checkpoint(self) -> None:
        """Housekeeping left to the daemon while the writer process commits (for SQLite:
        copying the write-ahead log into the database without blocking writers)."""
        ...


class Store(WebhookStore, HeadStore, AuditReader, RetentionStore, OutboxStore, ContactStore,
            ReplanStore, DueStore, AgendaStore, DeadLetterStore, QueryStore, AccountListStore,
            HealthStore, UpkeepStore, JobLeaseStore, RateBucketStore, QueueStore, Protocol):
    """Everything the daemon, the CLI and the tests need from persistence: every Protocol
    above. `open_store` returns one."""
