"""SQLite repository through aiosqlite: WAL, numbered migrations, one writer transaction a batch."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiosqlite
import orjson

from dispatcher.audit.chain import EMPTY_CHAIN, PUBLISHED_KINDS, ChainHead, canonical_json, seal_all
from dispatcher.audit.index import (
    INDEX_COLUMNS,
    INDEX_MISMATCH,
    IndexDisagreement,
    disagreements_in,
)
from dispatcher.domain.accounts import AccountState, fold, is_in_order
from dispatcher.domain.clock import sortable_utc, utc_rfc3339
from dispatcher.domain.events import (
    Event,
    EventType,
    parse_stored_event,
)
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
    party_numbers,
    party_rows,
)
from dispatcher.store.sqlite.agenda_rows import AgendaRows
from dispatcher.store.sqlite.answer_rows import AnswerRows
from dispatcher.store.sqlite.consent_rows import apply_opt_events, pause_for_review
from dispatcher.store.sqlite.contact_rows import ContactRows, Db, chunks, marks
from dispatcher.store.sqlite.history_cache import HistoryCache
from dispatcher.store.sqlite.inline import InlineConnection, connect_inline
from dispatcher.store.sqlite.migrations import MIGRATIONS, SCHEMA_VERSION, THROWAWAY_INDEXES
from dispatcher.store.sqlite.queue_rows import QueueRows, apply_change_rows, queue_records
from dispatcher.store.sqlite.retention_rows import RetentionRows

# Writes per commit in a throw-away store (`simulate`'s). Each commit writes every page its
# writes changed; a month's simulation changes the same pages (the audit's and attempts' last,
# the accounts due together) write after write, so one commit for many writes writes a fraction
# of the pages.
GROUP_COMMIT = 64


class SqliteStore(ContactRows, AnswerRows, RetentionRows, AgendaRows, QueueRows):
    """The repository on one SQLite file; every method is serialised on one connection."""

    def __init__(self, db: Db, path: Path, *, claim_lease: timedelta = CLAIM_LEASE,
                 sole: bool = False, group_commit: int = 1) -> None:
        self._db = db
        self.path = path
        self._lease = claim_lease
        # Accounts this store claimed and has not committed or given back, each with the end of
        # its lease as set by the claim: a later claim by anyone sets a later one.
        self._claimed: dict[str, str] = {}
        # The connection holds the file exclusively (a throw-away store): no other process can
        # claim an account, so claims are kept in `_claimed` alone, not written to the file.
        self._sole = sole
        # Accounts' attempts in memory, for a store written by its own connection alone.
        self._history_cache = (HistoryCache(db.connection)
                               if sole and isinstance(db, InlineConnection) else None)
        # Writes per commit: one, but in a sole store told otherwise (nothing else reads its
        # file meanwhile, and a write that fails ends what it serves).
        self._group = group_commit if sole else 1
        self._grouping = False  # whether a transaction is open across writes
        self._released = 0  # writes ended well since it began
        # Why the writes since the last commit were undone, if they were: none is taken after.
        self._broken: BaseException | None = None
        self._lock = asyncio.Lock()
        self._states = StateCache(50_000)
        # Called with the audit records of each committed transaction (metrics count them); in a
        # store that commits many writes at a time, with those of its writes once they commit.
        self.audit_observers: list[Callable[[Sequence[dict[str, Any]]], None]] = []
        self.lost_claim_observers: list[LostClaimObserver] = []
        self._sealed: list[dict[str, Any]] = []
        # The audit records of the writes since the last commit, for the observers to hear of
        # with it.
        self._uncommitted: list[dict[str, Any]] = []

    # -- lifecycle ---------------------------------------------------------------------------

    @classmethod
    async def open(cls, path: Path, *, create: bool = True, claim_lease: timedelta = CLAIM_LEASE,
                   wal_checkpoints: bool = True, durable: bool = True,
                   inline: bool = False, group_commit: int = 1) -> SqliteStore:
        """Open (and migrate) the store at `path`; refuse a schema newer than this code.

        Due accounts it claims are leased to it for `claim_lease` (a daemon restarted after a
        crash finds the accounts its predecessor claimed due again once the lease ends).

        `wal_checkpoints=False` leaves copying the WAL into the database to another connection
        (`wal_checkpoint`), so that this one's commits stay short. `durable=False` (a throw-away
        store, as `simulate` uses) skips fsync, and commits `group_commit` writes at a time (the
        rest as it closes): a write that fails then undoes every write since the last commit and
        stops every later one, which suits only a store whose user stops at a failed write too;
        `inline=True` runs SQLite on the caller's thread (`dispatcher.store.sqlite.inline`), but for
        a durable commit, which waits for the disk on a worker thread.
        """
        if not create and not await asyncio.to_thread(path.exists):
            raise StoreError(f"no store at {path}")
        await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
        db: Db = (await connect_inline(path, commit_in_thread=durable) if inline
                  else await aiosqlite.connect(path, isolation_level=None))
        try:
            await db.execute("PRAGMA busy_timeout = 10000")
            # A throw-away store (simulate) keeps its journal in memory: nothing reads it later.
            await db.execute(f"PRAGMA journal_mode = {'WAL' if durable else 'MEMORY'}")
            # FULL: an event acknowledged to the broker must survive a power cut, not only a crash.
            await db.execute(f"PRAGMA synchronous = {'FULL' if durable else 'OFF'}")
            await db.execute("PRAGMA foreign_keys = ON")
            await db.execute("PRAGMA cache_size = -65536")
            if not wal_checkpoints:
                await db.execute("PRAGMA wal_autocheckpoint = 0")
            await cls._migrate(db, path)
            if not durable:
                # A throw-away store (simulate) is read once, in order: the indexes that serve
                # exports by account or time and the MQTT outbox only slow its writes.
                for index in THROWAWAY_INDEXES:
                    await db.execute(f"DROP INDEX IF EXISTS {index}")
                # Its one connection keeps the file's lock and page cache from one transaction
                # to the next, instead of taking the lock and checking the file at each.
                await db.execute("PRAGMA locking_mode = EXCLUSIVE")
        except BaseException:
            await db.close()
            raise
        return cls(db, path, claim_lease=claim_lease, sole=not durable, group_commit=group_commit)

    @staticmethod
    async def _migrate(db: Db, path: Path) -> None:
        async with db.execute("PRAGMA user_version") as cur:
            row = await cur.fetchone()
        version = int(row[0]) if row else 0
        if version > SCHEMA_VERSION:
            raise StoreError(f"{path}: schema version {version} is newer than this dispatcher "
                             f"supports ({SCHEMA_VERSION}); upgrade the dispatcher")
        for number in range(version + 1, SCHEMA_VERSION + 1):
            await db.execute("BEGIN IMMEDIATE")
            try:
                for statement in MIGRATIONS[number - 1]:
                    await db.execute(statement)
                await db.execute(f"PRAGMA user_version = {number}")
                await db.execute("COMMIT")
            except BaseException:
                await db.execute("ROLLBACK")
                raise

    async def close(self) -> None:
        """Close the connection, committing first what a sole store's open transaction holds."""
        async with self._lock:
            try:
                if self._grouping and self._broken is None:
                    await self._commit()
                    committed, self._uncommitted = self._uncommitted, []
                    self._observe(committed)
            finally:
                await self._db.close()

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[Db]:
        if self._group > 1:
            async with self._grouped_write() as db:
                yield db
            return
        async with self._lock:
            await self._db.execute("BEGIN IMMEDIATE")
            self._sealed = []
            try:
                yield self._db
            except BaseException:
                self._rolled_back()
                await self._db.execute("ROLLBACK")
                raise
            await self._commit()
            committed = self._written()
        self._observe(committed)

    @asynccontextmanager
    async def _grouped_write(self) -> AsyncIterator[Db]:
        """A write of a store that commits many at a time: one open transaction takes them all.

        No savepoint per write: each would copy every page the write changes, which costs what
        the commits it saves cost. A write that fails undoes the transaction, and every write
        since the last commit with it: no later write is taken, so none builds on what is gone.
        """
        async with self._lock:
            if self._broken is not None:
                raise StoreError(f"{self.path}: no more writes: a write or commit failed and undid "
                                 f"every write since the last commit ({self._broken!r})"
                                 ) from self._broken
            if not self._grouping:
                await self._db.execute("BEGIN IMMEDIATE")
                self._grouping = True
            self._sealed = []
            try:
                yield self._db
            except BaseException as error:
                self._broken = error
                self._grouping, self._released = False, 0
                self._rolled_back()
                with contextlib.suppress(Exception):  # SQLite may have ended it already
                    await self._db.execute("ROLLBACK")
                raise
            self._released += 1
            if self._released < self._group:
                written = self._written()
                if self.audit_observers:  # else nobody is to hear of them: hold none
                    self._uncommitted.extend(written)
                return
            try:
                await self._commit()
            except BaseException as error:
                self._broken = error
                raise
            committed = [*self._uncommitted, *self._written()]
            self._uncommitted = []
        self._observe(committed)

    async def _commit(self) -> None:
        """Commit the open transaction; a failed COMMIT ends it too."""
        self._grouping, self._released = False, 0
        try:
            await self._db.commit()
        except BaseException:
            # A failed COMMIT (a full disk) may leave the transaction open, and with it the
            # write lock: end it, or every later write fails too.
            with contextlib.suppress(Exception):
                await self._db.execute("ROLLBACK")
            self._rolled_back()
            raise

    def _written(self) -> list[dict[str, Any]]:
        """The audit records of a write that ended well; the attempts' cache takes its changes."""
        if self._history_cache is not None:
            self._history_cache.committed()
        committed, self._sealed = self._sealed, []
        return committed

    def _observe(self, committed: list[dict[str, Any]]) -> None:
        if committed:
            for observe in self.audit_observers:
                observe(committed)

    def _rolled_back(self) -> None:
        self._sealed = []
        self._uncommitted = []
        if self._history_cache is not None:
            self._history_cache.rolled_back()

    async def _head(self) -> ChainHead:
        # Read inside the write transaction: another process (the CLI) may have appended.
        rows = list(await self._db.execute_fetchall(
            "SELECT seq, json_extract(record, '$.hash') FROM audit ORDER BY seq DESC LIMIT 1"))
        if not rows:
            return EMPTY_CHAIN
        return ChainHead(int(rows[0][0]), str(rows[0][1]))

    async def _insert_audit(self, fields: Sequence[Mapping[str, Any]], now: datetime,
                            common: Mapping[str, Any] | None = None,
                            queue: Sequence[NewItem] = ()) -> list[dict[str, Any]]:
        if not fields and not queue:
            return []
        # The items these records call for are stored with them, or not at all.
        fields = [*fields, *await queue_records(self._db, fields, queue, now)]
        if not fields:
            return []
        sealed = seal_all(fields, await self._head(), {**(common or {}), "at": utc_rfc3339(now)})
        await self._db.executemany(
            "INSERT INTO audit(seq, at, kind, account_id, record, published) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [(r["seq"], r["at"], r["kind"], r.get("account_id"),
              canonical_json(r),
              0 if r["kind"] in PUBLISHED_KINDS else None) for r in sealed])
        self._sealed.extend(sealed)
        return sealed

    # -- ingest ------------------------------------------------------------------------------

    async def record_batch(self, items: Sequence[Inbound], *, now: datetime,
                           config_version: str,
                           audit: Sequence[Mapping[str, Any]] = ()) -> BatchResult:
        """Commit events (ignoring seen event ids), dead letters and their audit records, then
        `audit` (records that go with them, such as the reply they came in)."""
        async with self._write() as db:
            records, result = await self._batch_in(db, items, now)
            await self._insert_audit([*records, *audit], now, {"config_version": config_version})
        return result

    async def _batch_in(self, db: Db, items: Sequence[Inbound],
                        now: datetime) -> tuple[list[dict[str, Any]], BatchResult]:
        """Store a batch inside the caller's transaction; its audit records (not yet sealed)."""
        accepted = [i for i in items if isinstance(i, Accepted)]
        fresh, duplicates = await self._fresh(db, accepted)
        received = sortable_utc(now)
        await db.executemany(
            "INSERT INTO events(event_id, account_id, type, occurred_at, received_at, topic, "
            "payload) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(a.event.event_id, a.event.account_id, a.event.type.value,
              a.occurred_at_key, received, a.topic, a.payload) for a in fresh])
        await self._project_accounts(db, [a.event for a in fresh], received)
        refused = await apply_opt_events(db, fresh, now)
        replays = [(received, a.event.event_id, a.replay_of)
                   for a in accepted if a.replay_of is not None]
        await db.executemany(
            "UPDATE dead_letters SET replayed_at = ?, replay_event_id = ? WHERE id = ?",
            replays)
        rejected = [i for i in items if isinstance(i, Rejected)]
        letter_ids = await self._insert_dead_letters(db, rejected, received)
        # Audit records follow the order of arrival.
        fresh_ids = {id(a) for a in fresh}
        audit: list[dict[str, Any]] = []
        for item in items:
            if isinstance(item, Rejected):
                audit.append(dead_letter_record(item, letter_ids[id(item)]))
            elif id(item) in fresh_ids:
                audit.append(self._event_record(item))
                audit.extend(derived_audit(item.event, refused.get(item.event.event_id)))
        return audit, BatchResult(stored=len(fresh), duplicates=duplicates,
                                  dead_letters=len(rejected),
                                  dead_letter_reasons=tuple(r.reason for r in rejected))

    async def apply_change(self, change: OperatorChange, *, now: datetime,
                           config_version: str) -> list[dict[str, Any]]:
        """Apply a person's action in one transaction; its audit records as stored. QueueError,
        with nothing changed, when it cannot be applied."""
        async with self._write() as db:
            await apply_change_rows(db, change, now)
            records, _ = await self._batch_in(db, change.events, now)
            return await self._insert_audit([*records, *change.records], now,
                                            {"config_version": config_version})

    @staticmethod
    def _event_record(accepted: Accepted) -> dict[str, Any]:
        event = accepted.event
        return {"kind": "event", "event_id": event.event_id, "event_type": event.type.value,
                "account_id": event.account_id, "occurred_at": accepted.occurred_at_text,
                "payload_sha256": accepted.payload_sha256, "replay_of": accepted.replay_of}

    @staticmethod
    async def _fresh(db: Db,
                     accepted: Sequence[Accepted]) -> tuple[list[Accepted], int]:
        ids = list(dict.fromkeys(a.event.event_id for a in accepted))
        seen: set[str] = set()
        for chunk in chunks(ids):
            seen.update(row[0] for row in await db.execute_fetchall(
                f"SELECT event_id FROM events WHERE event_id IN ({marks(len(chunk))})", chunk))
        fresh = []
        for item in accepted:
            if item.event.event_id not in seen:
                seen.add(item.event.event_id)
                fresh.append(item)
        return fresh, len(accepted) - len(fresh)

    async def _project_accounts(self, db: Db, events: Sequence[Event],
                                updated_at: str) -> None:
        by_account: dict[str, list[Event]] = defaultdict(list)
        for event in events:
            if event.type not in (EventType.OPT_OUT, EventType.OPT_IN):
                by_account[event.account_id].append(event)
        if not by_account:
            return
        current: dict[str, AccountState] = {}
        for chunk in chunks(list(by_account)):
            for account_id, state_json in await db.execute_fetchall(
                    f"SELECT account_id, state_json FROM accounts WHERE account_id "
                    f"IN ({marks(len(chunk))})", chunk):
                current[account_id] = self._states.get(account_id, state_json)
        states, renumbered = [], []
        for account_id, new in by_account.items():
            before = current.get(account_id)
            if before is None or is_in_order(before, new):
                after = fold(account_id, new, before)
            else:
                # An older event arrived late: replay the account's whole history in order.
                after = fold(account_id, await self._account_events(db, account_id))
            states.append(after)
            if before is None or (
                    (before.debtor is not after.debtor or before.contacts is not after.contacts)
                    and party_numbers(before) != party_numbers(after)):
                renumbered.append(after)
        rows = []
        for state in states:
            state_json = state.model_dump_json()
            self._states.put(state_json, state)
            last = (sortable_utc(state.last_occurred_at) if state.last_occurred_at
                    else updated_at)
            rows.append((state.account_id, state.status.value, last, updated_at, state_json))
        await db.executemany(
            # A changed account is due for planning at once (the engine's next sweep).
            "INSERT INTO accounts(account_id, status, last_occurred_at, updated_at, state_json, "
            "next_attempt_at) VALUES (?, ?, ?, ?, ?, ?4) ON CONFLICT(account_id) DO UPDATE SET "
            "status = excluded.status, last_occurred_at = excluded.last_occurred_at, "
            "updated_at = excluded.updated_at, state_json = excluded.state_json, "
            "next_attempt_at = excluded.next_attempt_at", rows)
        await db.executemany("DELETE FROM party_numbers WHERE account_id = ?",
                             [(s.account_id,) for s in renumbered])
        await db.executemany(
            "INSERT INTO party_numbers(number, account_id, party, contact_id) VALUES (?, ?, ?, ?)",
            [row for s in renumbered for row in party_rows(s)])

    @staticmethod
    async def _account_events(db: Db, account_id: str) -> list[Event]:
        # Stored payloads passed the validation of their day; schema 1 stays accepted.
        async with db.execute("SELECT payload FROM events WHERE account_id = ? AND type NOT IN "
                              "('contact.opt_out', 'contact.opt_in')", (account_id,)) as cur:
            return [parse_stored_event(bytes(row[0])) for row in await cur.fetchall()]

    @staticmethod
    async def _insert_dead_letters(db: Db, rejected: Sequence[Rejected],
                                   received: str) -> dict[int, int]:
        """Store dead letters; return each one's new id, keyed by `id()` of the item."""
        if not rejected:
            return {}
        async with db.execute("SELECT COALESCE(MAX(id), 0) FROM dead_letters") as cur:
            row = await cur.fetchone()
        first = int(row[0]) + 1 if row else 1
        ids = {id(item): first + offset for offset, item in enumerate(rejected)}
        await db.executemany(
            "INSERT INTO dead_letters(id, received_at, topic, payload, reason, detail, event_id, "
            "event_type, account_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(ids[id(item)], received, item.topic, item.payload, item.reason, item.detail,
              item.identity.get("event_id"), item.identity.get("event_type"),
              item.identity.get("account_id")) for item in rejected])
        return ids

    # -- audit -------------------------------------------------------------------------------

    async def append_audit(self, records: Sequence[Mapping[str, Any]], *,
                           now: datetime) -> list[dict[str, Any]]:
        """Seal and append audit records; return them as stored."""
        async with self._write():
            return await self._insert_audit(records, now)

    async def audit_head(self) -> ChainHead:
        """The last record of the audit chain."""
        async with self._lock:
            return await self._head()

    async def audit_records(self, *, account_id: str | None = None,
                            since: datetime | None = None,
                            until: datetime | None = None) -> AsyncIterator[dict[str, Any]]:
        """Audit records oldest first, filtered by account and [since, until).

        The filter reads the record's own fields, never the index columns beside it: those are
        outside the hash chain, and an edited one must not hide a record from a reviewer.
        """
        clauses, params = [], []
        if account_id is not None:
            clauses.append("json_extract(record, '$.account_id') = ?")
            params.append(account_id)
        if since is not None:
            clauses.append("json_extract(record, '$.at') >= ?")
            params.append(utc_rfc3339(since))
        if until is not None:
            clauses.append("json_extract(record, '$.at') < ?")
            params.append(utc_rfc3339(until))
        # A record that is not JSON is never filtered out: reading it fails, naming it.
        where = (f"WHERE (NOT json_valid(record) OR ({' AND '.join(clauses)}))" if clauses
                 else "")
        async for seq, text in self._paged(f"SELECT seq, record FROM audit {where}", params):
            try:
                yield orjson.loads(text)
            except orjson.JSONDecodeError:
                raise StoreError(f"audit record seq {seq} is not valid JSON; run "
                                 "`dispatcher audit verify`") from None

    async def index_disagreements(self, limit: int = 100) -> list[IndexDisagreement]:
        """Index columns (`at`, `kind`, `account_id`) that differ from their records: at most
        `limit` rows' worth, in seq order."""
        async with self._lock, self._db.execute(
                f"SELECT seq, {', '.join(INDEX_COLUMNS)}, record FROM audit "
                f"WHERE {INDEX_MISMATCH} ORDER BY seq LIMIT ?", [limit]) as cur:
            rows = list(await cur.fetchall())
        return [found for row in rows
                for found in disagreements_in(int(row[0]), row[1:-1], str(row[-1]))]

    async def audit_hashes(self, seqs: Iterable[int]) -> dict[int, str]:
        """The hashes of the records at `seqs` that are stored (from the records themselves)."""
        wanted = sorted(set(seqs))
        found: dict[int, str] = {}
        for chunk in chunks(wanted):
            async with self._lock, self._db.execute(
                    f"SELECT seq, json_extract(record, '$.hash') FROM audit WHERE json_valid("
                    f"record) AND seq IN ({marks(len(chunk))})", chunk) as cur:
                found.update((int(seq), str(h)) for seq, h in await cur.fetchall())
        return found

    async def audit_rows(self) -> AsyncIterator[tuple[int, str]]:
        """(seq, stored JSON) of every audit record in seq order, for verification."""
        async for row in self._paged("SELECT seq, record FROM audit", []):
            yield row

    async def _paged(self, query: str, params: list[Any],
                     page: int = 5000) -> AsyncIterator[tuple[int, str]]:
        last = 0
        joiner = " AND " if " WHERE " in query else " WHERE "
        while True:
            async with self._lock, self._db.execute(
                    f"{query}{joiner}seq > ? ORDER BY seq LIMIT {page}", [*params, last]) as cur:
                rows = list(await cur.fetchall())
            for seq, text in rows:
                yield int(seq), str(text)
            if len(rows) < page:
                return
            last = int(rows[-1][0])

    async def unpublished(self, limit: int) -> list[dict[str, Any]]:
        """Audit records still to be published to MQTT, oldest first."""
        async with self._lock, self._db.execute(
                "SELECT record FROM audit WHERE published = 0 ORDER BY seq LIMIT ?",
                (limit,)) as cur:
            return [orjson.loads(row[0]) for row in await cur.fetchall()]

    async def mark_published(self, seqs: Sequence[int]) -> None:
        """Note that these audit records reached the broker."""
        async with self._write() as db:
            await db.executemany("UPDATE audit SET published = 1 WHERE seq = ?",
                                 [(s,) for s in seqs])

    async def mark_unpublishable(self, seqs: Sequence[int]) -> None:
        """Note that these audit records can never be published, so that they are not retried."""
        async with self._write() as db:
            await db.executemany(f"UPDATE audit SET published = {UNPUBLISHABLE} WHERE seq = ?",
                                 [(s,) for s in seqs])

    # -- queries -----------------------------------------------------------------------------

    async def account(self, account_id: str) -> AccountState | None:
        """The account's current state, if any event named it."""
        async with self._lock, self._db.execute(
                "SELECT state_json FROM accounts WHERE account_id = ?", (account_id,)) as cur:
            row = await cur.fetchone()
        return AccountState.model_validate_json(row[0]) if row else None

    async def opt_outs(self, number: str) -> list[OptOut]:
        """The opt-out state of a number on each channel it has one for."""
        async with self._lock, self._db.execute(
                "SELECT number, channel, opted_out, changed_at, event_id, reason FROM opt_outs "
                "WHERE number = ? ORDER BY channel", (number,)) as cur:
            rows = await cur.fetchall()
        return [OptOut(r[0], r[1], bool(r[2]), r[3], r[4], r[5]) for r in rows]

    async def pause_for_review(self, number: str, *, key: str, account_id: str | None,
                               at: datetime, audit: Sequence[Mapping[str, Any]],
                               config_version: str) -> bool:
        """Pause every channel of `number` until a person reviews a reply that might be a
        revocation, with the reply's audit records; False when this very reply (same `key`)
        paused it before and nothing was done."""
        async with self._write() as db:
            changed = await pause_for_review(db, number, key=key, account_id=account_id, at=at)
            if changed is None:
                return False
            records = [*audit, *({"kind": "opt_out", "account_id": account_id, "to": number,
                                  "channel": channel, "status": standing.value,
                                  "reason": "revocation_review"}
                                 for channel, standing in changed.items())]
            await self._insert_audit(records, at, {"config_version": config_version})
        return True

    async def dead_letters(self, ids: Sequence[int] | None = None, *,
                           include_replayed: bool = False) -> list[DeadLetter]:
        """Stored dead letters, oldest first; by id when `ids` is given; without ids, neither
        replayed nor dismissed ones unless `include_replayed`."""
        query = ("SELECT id, received_at, topic, payload, reason, detail, event_id, event_type, "
                 "account_id, replayed_at, replay_event_id, dismissed_at, dismissed_by, "
                 "dismissed_reason FROM dead_letters")
        params: list[Any] = []
        if ids:
            query += f" WHERE id IN ({marks(len(ids))})"
            params = list(ids)
        elif not include_replayed:
            query += " WHERE replayed_at IS NULL AND dismissed_at IS NULL"
        async with self._lock, self._db.execute(query + " ORDER BY id", params) as cur:
            rows = await cur.fetchall()
        return [DeadLetter(int(r[0]), r[1], r[2], bytes(r[3]), r[4], r[5], r[6], r[7], r[8],
                           r[9], r[10], r[11], r[12], r[13]) for r in rows]

    async def count_events(self) -> int:
        """How many distinct events are stored."""
        async with self._lock, self._db.execute("SELECT COUNT(*) FROM events") as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def wal_checkpoint(self) -> None:
        """Copy committed WAL pages into the database without blocking writers (PASSIVE)."""
        async with self._lock, self._db.execute("PRAGMA wal_checkpoint(PASSIVE)"):
            pass

    async def ping(self) -> None:
        """Fail when the store cannot be written."""
        async with self._write() as db:
            await db.execute("PRAGMA user_version")

    # -- what a fleet shares: SQLite has one daemon -------------------------------------------

    async def claim_job(self, name: str, due: datetime, hold: timedelta) -> bool:
        """Always: no other daemon shares a SQLite store."""
        return True

    async def release_jobs(self) -> None:
        """Nothing is held: no other daemon shares a SQLite store."""

    async def take_token(self, key: str, rate: float, burst: int) -> float:
        """Due at once: the daemon's own limiter is the whole limit of its one daemon."""
        return 0.0


def check_writable(path: Path) -> None:
    """Refuse a store the daemon could not write: SQLite would fail on its first commit, or
    fault (SIGBUS) on a shared-memory file it maps but cannot write."""
    folder = path.parent
    for name in (path, folder / f"{path.name}-wal", folder / f"{path.name}-shm"):
        if name.exists() and not os.access(name, os.R_OK | os.W_OK):
            raise StoreUnwritable(f"{name} is not writable")
    if folder.exists():
        probe = folder / f".{path.name}.probe"
        try:
            probe.write_bytes(b"probe")
            probe.unlink()
        except OSError as exc:
            raise StoreUnwritable(f"cannot write in {folder}: {exc.strerror or exc}") from None
