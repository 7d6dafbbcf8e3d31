"""PostgreSQL repository through asyncpg: a connection pool, one transaction a batch.

Every write transaction but a due claim first locks the audit chain's head row (`FOR UPDATE`),
then reads the head from the last record, as SQLite does: writes are serialised as SQLite's
`BEGIN IMMEDIATE` serialises them, whichever process makes them, and the chain stays one chain.
Due claims lock only the accounts they take (`FOR UPDATE SKIP LOCKED`) and lease them to this
store's owner id, so that several processes share the work; jobs that must run once for all of
them hold a lease, and provider rates are token buckets that all of them take from
(dispatcher/store/postgres/fleet_rows.py).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import orjson

from dispatcher.audit.chain import (
    EMPTY_CHAIN,
    PUBLISHED_KINDS,
    ChainHead,
    canonical_json,
    seal_all,
)
from dispatcher.audit.index import INDEX_COLUMNS, IndexDisagreement, disagreements_in
from dispatcher.domain.accounts import AccountState, fold, is_in_order
from dispatcher.domain.clock import sortable_utc, utc_rfc3339
from dispatcher.domain.events import Event, EventType, parse_stored_event
from dispatcher.domain.queue import NewItem
from dispatcher.errors import StoreError, StoreUnwritable
from dispatcher.store.base import (
    CLAIM_LEASE,
    Accepted,
    BatchResult,
    DeadLetter,
    Inbound,
    LostClaimObserver,
    OperatorChange,
    OptOut,
    Rejected,
)
from dispatcher.store.common import (
    UNPUBLISHABLE,
    StateCache,
    dead_letter_record,
    derived_audit,
    event_record,
    party_rows,
    renumbered,
)
from dispatcher.store.postgres.agenda_rows import AgendaRows
from dispatcher.store.postgres.consent_rows import apply_opt_events, pause_for_review
from dispatcher.store.postgres.contact_rows import ContactRows
from dispatcher.store.postgres.fleet_rows import FleetRows
from dispatcher.store.postgres.host import Conn, Tx
from dispatcher.store.postgres.queue_rows import QueueRows, apply_change_rows, queue_records
from dispatcher.store.postgres.retention_rows import RetentionRows, hash_in
from dispatcher.store.postgres.schema import describe, migrate

# Failures of the server or the connection, not of the data: the store cannot commit now.
# InternalClientError: a connection the server dropped mid-query, found in a confused state.
_UNAVAILABLE = (OSError, TimeoutError, asyncpg.PostgresConnectionError,
                asyncpg.InterfaceError, asyncpg.InternalClientError,
                asyncpg.InsufficientResourcesError,
                asyncpg.OperatorInterventionError, asyncpg.ReadOnlySQLTransactionError)
_PAGE = 5000


class PostgresStore(ContactRows, RetentionRows, FleetRows, AgendaRows, QueueRows):
    """The repository on one PostgreSQL database (the schema on the URL's search path)."""

    def __init__(self, pool: asyncpg.Pool, url: str, *,
                 claim_lease: timedelta = CLAIM_LEASE) -> None:
        self._pool = pool
        self.url = url
        self._lease = claim_lease
        self._writing = asyncio.Lock()
        self._states = StateCache(50_000)
        # Whose lease a claimed account is under: this store, among any that share the database.
        self._owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        # Accounts this store claimed and has not committed or given back: fenced at commit.
        self._claimed: set[str] = set()
        self.audit_observers: list[Callable[[Sequence[dict[str, Any]]], None]] = []
        self.lost_claim_observers: list[LostClaimObserver] = []

    # -- lifecycle ---------------------------------------------------------------------------

    @classmethod
    async def open(cls, url: str, *, create: bool = True,
                   claim_lease: timedelta = CLAIM_LEASE) -> PostgresStore:
        """Connect to `url` and migrate; refuse a schema newer than this code, and, unless
        `create`, a database without the dispatcher's schema. Due accounts it claims are leased
        to it for `claim_lease`."""
        pool = await connect(url)
        try:
            async with pool.acquire() as conn:
                await migrate(conn, url, create=create)
        except BaseException:
            await pool.close()
            raise
        return cls(pool, url, claim_lease=claim_lease)

    async def close(self) -> None:
        """Close the pool."""
        await self._pool.close()

    @asynccontextmanager
    async def _acquire(self) -> AsyncIterator[Conn]:
        """One of the pool's connections; the server or connection failing while it is taken or
        used is a StoreError, which a daemon waits out, never an error that ends it."""
        try:
            async with self._pool.acquire() as conn:
                yield conn
        except _UNAVAILABLE as exc:
            raise StoreError(f"PostgreSQL: {type(exc).__name__}: {exc}") from exc

    @asynccontextmanager
    async def _connection(self, conn: Conn | None) -> AsyncIterator[
            Conn]:
        if conn is not None:
            yield conn
            return
        async with self._acquire() as acquired:
            yield acquired

    @asynccontextmanager
    async def _write(self, conn: Conn | None = None) -> AsyncIterator[Tx]:
        async with self._writing:
            try:
                async with self._connection(conn) as c, c.transaction():
                    if await c.fetchval("SELECT id FROM audit_head WHERE id = 1 FOR UPDATE") \
                            is None:
                        raise StoreError("the audit chain's head row is missing")
                    tx = Tx(c, await chain_head(c))
                    yield tx
            except _UNAVAILABLE as exc:
                raise StoreError(f"PostgreSQL: {type(exc).__name__}: {exc}") from exc
        if tx.sealed:
            for observe in self.audit_observers:
                observe(tx.sealed)

    async def _fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        async with self._acquire() as conn:
            return list(await conn.fetch(sql, *args))

    async def _insert_audit(self, tx: Tx, fields: Sequence[Mapping[str, Any]], now: datetime,
                            common: Mapping[str, Any] | None = None,
                            queue: Sequence[NewItem] = ()) -> list[dict[str, Any]]:
        if not fields and not queue:
            return []
        # The items these records call for are stored with them, or not at all.
        fields = [*fields, *await queue_records(tx.conn, fields, queue, now)]
        if not fields:
            return []
        sealed = seal_all(fields, tx.head, {**(common or {}), "at": utc_rfc3339(now)})
        await tx.conn.executemany(
            "INSERT INTO audit(seq, at, kind, account_id, record, published) "
            "VALUES ($1, $2, $3, $4, $5, $6)",
            [(r["seq"], r["at"], str(r["kind"]), r.get("account_id"), canonical_json(r),
              0 if r["kind"] in PUBLISHED_KINDS else None) for r in sealed])
        tx.head = ChainHead(sealed[-1]["seq"], sealed[-1]["hash"])
        tx.sealed.extend(sealed)
        return sealed

    # -- ingest ------------------------------------------------------------------------------

    async def record_batch(self, items: Sequence[Inbound], *, now: datetime,
                           config_version: str,
                           audit: Sequence[Mapping[str, Any]] = ()) -> BatchResult:
        """Commit events (ignoring seen event ids), dead letters and their audit records, then
        `audit` (records that go with them, such as the reply they came in)."""
        async with self._write() as tx:
            records, result = await self._batch_in(tx.conn, items, now)
            await self._insert_audit(tx, [*records, *audit], now,
                                     {"config_version": config_version})
        return result

    async def _batch_in(self, conn: Conn, items: Sequence[Inbound],
                        now: datetime) -> tuple[list[dict[str, Any]], BatchResult]:
        """Store a batch inside the caller's transaction; its audit records (not yet sealed)."""
        accepted = [i for i in items if isinstance(i, Accepted)]
        fresh, duplicates = await _fresh(conn, accepted)
        received = sortable_utc(now)
        if fresh:
            await conn.executemany(
                "INSERT INTO events(event_id, account_id, type, occurred_at, received_at, "
                "topic, payload) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                [(a.event.event_id, a.event.account_id, a.event.type.value,
                  a.occurred_at_key, received, a.topic, a.payload) for a in fresh])
        await self._project_accounts(conn, [a.event for a in fresh], received)
        refused = await apply_opt_events(conn, fresh, now)
        replays = [(received, a.event.event_id, a.replay_of)
                   for a in accepted if a.replay_of is not None]
        if replays:
            await conn.executemany(
                "UPDATE dead_letters SET replayed_at = $1, replay_event_id = $2 "
                "WHERE id = $3", replays)
        rejected = [i for i in items if isinstance(i, Rejected)]
        letter_ids = await _insert_dead_letters(conn, rejected, received)
        # Audit records follow the order of arrival.
        fresh_ids = {id(a) for a in fresh}
        audit: list[dict[str, Any]] = []
        for item in items:
            if isinstance(item, Rejected):
                audit.append(dead_letter_record(item, letter_ids[id(item)]))
            elif id(item) in fresh_ids:
                audit.append(event_record(item))
                audit.extend(derived_audit(item.event, refused.get(item.event.event_id)))
        return audit, BatchResult(stored=len(fresh), duplicates=duplicates,
                                  dead_letters=len(rejected),
                                  dead_letter_reasons=tuple(r.reason for r in rejected))

    async def apply_change(self, change: OperatorChange, *, now: datetime,
                           config_version: str) -> list[dict[str, Any]]:
        """Apply a person's action in one transaction; its audit records as stored. QueueError,
        with nothing changed, when it cannot be applied."""
        async with self._write() as tx:
            await apply_change_rows(tx.conn, change, now)
            records, _ = await self._batch_in(tx.conn, change.events, now)
            return await self._insert_audit(tx, [*records, *change.records], now,
                                            {"config_version": config_version})

    async def _project_accounts(self, conn: Conn, events: Sequence[Event],
                                updated_at: str) -> None:
        by_account: dict[str, list[Event]] = defaultdict(list)
        for event in events:
            if event.type not in (EventType.OPT_OUT, EventType.OPT_IN):
                by_account[event.account_id].append(event)
        if not by_account:
            return
        current = {r[0]: self._states.get(r[0], r[1]) for r in await conn.fetch(
            "SELECT account_id, state_json FROM accounts WHERE account_id = ANY($1::text[])",
            list(by_account))}
        states, changed = [], []
        for account_id, new in by_account.items():
            before = current.get(account_id)
            if before is None or is_in_order(before, new):
                after = fold(account_id, new, before)
            else:
                # An older event arrived late: replay the account's whole history in order.
                after = fold(account_id, await _account_events(conn, account_id))
            states.append(after)
            if renumbered(before, after):
                changed.append(after)
        rows = []
        for state in states:
            state_json = state.model_dump_json()
            self._states.put(state_json, state)
            last = (sortable_utc(state.last_occurred_at) if state.last_occurred_at
                    else updated_at)
            rows.append((state.account_id, state.status.value, last, updated_at, state_json))
        await conn.executemany(
            # A changed account is due for planning at once (the engine's next sweep).
            "INSERT INTO accounts(account_id, status, last_occurred_at, updated_at, state_json, "
            "next_attempt_at) VALUES ($1, $2, $3, $4, $5, $4) ON CONFLICT(account_id) DO UPDATE "
            "SET status = excluded.status, last_occurred_at = excluded.last_occurred_at, "
            "updated_at = excluded.updated_at, state_json = excluded.state_json, "
            "next_attempt_at = excluded.next_attempt_at", rows)
        if changed:
            await conn.execute("DELETE FROM party_numbers WHERE account_id = ANY($1::text[])",
                               [s.account_id for s in changed])
            await conn.executemany(
                "INSERT INTO party_numbers(number, account_id, party, contact_id) "
                "VALUES ($1, $2, $3, $4)", [row for s in changed for row in party_rows(s)])

    # -- audit -------------------------------------------------------------------------------

    async def append_audit(self, records: Sequence[Mapping[str, Any]], *,
                           now: datetime) -> list[dict[str, Any]]:
        """Seal and append audit records; return them as stored."""
        async with self._write() as tx:
            return await self._insert_audit(tx, records, now)

    async def audit_head(self) -> ChainHead:
        """The last record of the audit chain."""
        async with self._acquire() as conn:
            return await chain_head(conn)

    async def audit_records(self, *, account_id: str | None = None,
                            since: datetime | None = None,
                            until: datetime | None = None) -> AsyncIterator[dict[str, Any]]:
        """Audit records oldest first, filtered by account and [since, until).

        The filter reads the record's own fields, never the index columns beside it: those are
        outside the hash chain, and an edited one must not hide a record from a reviewer.
        """
        wanted = _RecordFilter(account_id, since, until)
        async for seq, text in self.audit_rows():
            try:
                record = orjson.loads(text)
            except orjson.JSONDecodeError:
                # A record that is not JSON is never filtered out: reading it fails, naming it.
                raise StoreError(f"audit record seq {seq} is not valid JSON; run "
                                 "`dispatcher audit verify`") from None
            if wanted.admits(record):
                yield record

    async def index_disagreements(self, limit: int = 100) -> list[IndexDisagreement]:
        """Index columns (`at`, `kind`, `account_id`) that differ from their records: at most
        `limit` rows' worth, in seq order."""
        found: list[IndexDisagreement] = []
        rows, last = 0, 0
        while rows < limit:
            page = await self._fetch(
                f"SELECT seq, {', '.join(INDEX_COLUMNS)}, record FROM audit WHERE seq > $1 "
                f"ORDER BY seq LIMIT {_PAGE}", last)
            for row in page:
                try:
                    these = disagreements_in(int(row[0]), tuple(row[1:-1]), str(row[-1]))
                except orjson.JSONDecodeError:
                    continue  # the chain check's to report
                if these:
                    found.extend(these)
                    rows += 1
                    if rows >= limit:
                        break
            if len(page) < _PAGE:
                break
            last = int(page[-1][0])
        return found

    async def audit_hashes(self, seqs: Iterable[int]) -> dict[int, str]:
        """The hashes of the records at `seqs` that are stored (from the records themselves)."""
        found: dict[int, str] = {}
        for seq, text in await self._fetch(
                "SELECT seq, record FROM audit WHERE seq = ANY($1::bigint[])",
                sorted(set(seqs))):
            try:
                record = orjson.loads(text)
            except orjson.JSONDecodeError:
                continue
            if isinstance(record, dict):
                found[int(seq)] = str(record.get("hash"))
        return found

    async def audit_rows(self) -> AsyncIterator[tuple[int, str]]:
        """(seq, stored JSON) of every audit record in seq order, for verification."""
        last = 0
        while True:
            rows = await self._fetch(
                f"SELECT seq, record FROM audit WHERE seq > $1 ORDER BY seq LIMIT {_PAGE}", last)
            for seq, text in rows:
                yield int(seq), str(text)
            if len(rows) < _PAGE:
                return
            last = int(rows[-1][0])

    async def unpublished(self, limit: int) -> list[dict[str, Any]]:
        """Audit records still to be published to MQTT, oldest first."""
        rows = await self._fetch(
            "SELECT record FROM audit WHERE published = 0 ORDER BY seq LIMIT $1", limit)
        return [orjson.loads(row[0]) for row in rows]

    async def mark_published(self, seqs: Sequence[int]) -> None:
        """Note that these audit records reached the broker."""
        await self._mark(seqs, 1)

    async def mark_unpublishable(self, seqs: Sequence[int]) -> None:
        """Note that these audit records can never be published, so that they are not retried."""
        await self._mark(seqs, UNPUBLISHABLE)

    async def _mark(self, seqs: Sequence[int], published: int) -> None:
        async with self._write() as tx:
            await tx.conn.execute("UPDATE audit SET published = $1 WHERE seq = ANY($2::bigint[])",
                                  published, list(seqs))

    # -- queries -----------------------------------------------------------------------------

    async def account(self, account_id: str) -> AccountState | None:
        """The account's current state, if any event named it."""
        async with self._acquire() as conn:
            text = await conn.fetchval(
                "SELECT state_json FROM accounts WHERE account_id = $1", account_id)
        return AccountState.model_validate_json(text) if text is not None else None

    async def opt_outs(self, number: str) -> list[OptOut]:
        """The opt-out state of a number on each channel it has one for."""
        rows = await self._fetch(
            "SELECT number, channel, opted_out, changed_at, event_id, reason FROM opt_outs "
            "WHERE number = $1 ORDER BY channel", number)
        return [OptOut(r[0], r[1], bool(r[2]), r[3], r[4], r[5]) for r in rows]

    async def pause_for_review(self, number: str, *, key: str, account_id: str | None,
                               at: datetime, audit: Sequence[Mapping[str, Any]],
                               config_version: str) -> bool:
        """Pause every channel of `number` until a person reviews a reply that might be a
        revocation, with the reply's audit records; False when this very reply (same `key`)
        paused it before and nothing was done."""
        async with self._write() as tx:
            changed = await pause_for_review(tx.conn, number, key=key, account_id=account_id,
                                             at=at)
            if changed is None:
                return False
            records = [*audit, *({"kind": "opt_out", "account_id": account_id, "to": number,
                                  "channel": channel, "status": standing.value,
                                  "reason": "revocation_review"}
                                 for channel, standing in changed.items())]
            await self._insert_audit(tx, records, at, {"config_version": config_version})
        return True

    async def dead_letters(self, ids: Sequence[int] | None = None, *,
                           include_replayed: bool = False) -> list[DeadLetter]:
        """Stored dead letters, oldest first; by id when `ids` is given; without ids, neither
        replayed nor dismissed ones unless `include_replayed`."""
        query = ("SELECT id, received_at, topic, payload, reason, detail, event_id, event_type, "
                 "account_id, replayed_at, replay_event_id, dismissed_at, dismissed_by, "
                 "dismissed_reason FROM dead_letters")
        args: list[Any] = []
        if ids:
            query += " WHERE id = ANY($1::bigint[])"
            args = [list(ids)]
        elif not include_replayed:
            query += " WHERE replayed_at IS NULL AND dismissed_at IS NULL"
        rows = await self._fetch(query + " ORDER BY id", *args)
        return [DeadLetter(int(r[0]), r[1], r[2], bytes(r[3]), r[4], r[5], r[6], r[7], r[8],
                           r[9], r[10], r[11], r[12], r[13]) for r in rows]

    async def count_events(self) -> int:
        """How many distinct events are stored."""
        async with self._acquire() as conn:
            return int(await conn.fetchval("SELECT COUNT(*) FROM events"))

    async def wal_checkpoint(self) -> None:
        """Nothing to do: PostgreSQL checkpoints its write-ahead log itself."""

    async def ping(self) -> None:
        """Fail when the store cannot be written (unreachable, or a read-only server)."""
        async with self._write():
            pass


async def connect(url: str) -> asyncpg.Pool:
    """A small pool on `url`; a server that cannot be reached is `StoreUnwritable`, so that the
    supervisor waits for it as it waits for a SQLite folder that cannot be written."""
    try:
        return await asyncpg.create_pool(url, min_size=1, max_size=4)
    except (OSError, TimeoutError, asyncpg.CannotConnectNowError,
            asyncpg.TooManyConnectionsError) as exc:
        raise StoreUnwritable(f"cannot reach PostgreSQL at {describe(url)}: {exc}") from None
    except asyncpg.PostgresError as exc:
        raise StoreError(f"PostgreSQL at {describe(url)}: {exc}") from None


class _RecordFilter:
    """Which parsed audit records an export by account and [since, until) takes."""

    def __init__(self, account_id: str | None, since: datetime | None,
                 until: datetime | None) -> None:
        self.account_id = account_id
        self.since = utc_rfc3339(since) if since is not None else None
        self.until = utc_rfc3339(until) if until is not None else None

    def admits(self, record: Any) -> bool:
        """Whether the record passes every filter given (all records pass when none is)."""
        if self.account_id is None and self.since is None and self.until is None:
            return True
        if not isinstance(record, dict):
            return False
        if self.account_id is not None and record.get("account_id") != self.account_id:
            return False
        at = record.get("at")
        if self.since is not None and not (isinstance(at, str) and at >= self.since):
            return False
        return self.until is None or (isinstance(at, str) and at < self.until)


async def chain_head(conn: Conn) -> ChainHead:
    """The last record of the chain, from the records themselves: a log cut at its end goes on
    from where it was cut, so that the heads file shows the rewrite."""
    row = await conn.fetchrow("SELECT seq, record FROM audit ORDER BY seq DESC LIMIT 1")
    if row is None:
        return EMPTY_CHAIN
    return ChainHead(int(row[0]), hash_in(int(row[0]), str(row[1])))


async def _fresh(conn: Conn,
                 accepted: Sequence[Accepted]) -> tuple[list[Accepted], int]:
    ids = list(dict.fromkeys(a.event.event_id for a in accepted))
    seen = {r[0] for r in await conn.fetch(
        "SELECT event_id FROM events WHERE event_id = ANY($1::text[])", ids)} if ids else set()
    fresh = []
    for item in accepted:
        if item.event.event_id not in seen:
            seen.add(item.event.event_id)
            fresh.append(item)
    return fresh, len(accepted) - len(fresh)


async def _account_events(conn: Conn, account_id: str) -> list[Event]:
    # Stored payloads passed the validation of their day; schema 1 stays accepted.
    rows = await conn.fetch("SELECT payload FROM events WHERE account_id = $1 AND type NOT IN "
                            "('contact.opt_out', 'contact.opt_in')", account_id)
    return [parse_stored_event(bytes(row[0])) for row in rows]


async def _insert_dead_letters(conn: Conn, rejected: Sequence[Rejected],
                               received: str) -> dict[int, int]:
    """Store dead letters; return each one's new id, keyed by `id()` of the item."""
    if not rejected:
        return {}
    first = int(await conn.fetchval("SELECT COALESCE(MAX(id), 0) FROM dead_letters")) + 1
    ids = {id(item): first + offset for offset, item in enumerate(rejected)}
    await conn.executemany(
        "INSERT INTO dead_letters(id, received_at, topic, payload, reason, detail, event_id, "
        "event_type, account_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        [(ids[id(item)], received, item.topic, item.payload, item.reason, item.detail,
          item.identity.get("event_id"), item.identity.get("event_type"),
          item.identity.get("account_id")) for item in rejected])
    return ids
