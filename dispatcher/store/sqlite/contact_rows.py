"""The engine's side of the SQLite store: due accounts, attempts, outcomes and stored plans."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar

import aiosqlite
import orjson

from dispatcher.compliance.consent import Standing
from dispatcher.domain.accounts import AccountState, AccountStatus
from dispatcher.domain.clock import parse_rfc3339, sortable_utc
from dispatcher.domain.contact import (
    MEDIUM_BY_VALUE,
    ROLE_BY_VALUE,
    Medium,
    NumberClaim,
    Outcome,
    PastAttempt,
    Role,
)
from dispatcher.domain.queue import NewItem
from dispatcher.store.base import (
    AccountContext,
    AttemptRow,
    LostClaimObserver,
    OutcomeRow,
    PlanRow,
)
from dispatcher.store.common import SharedNumbers, account_contexts
from dispatcher.store.fence import Decisions, decided_accounts, say_lost, without
from dispatcher.store.sqlite.attempt_rows import (
    HISTORY_COLUMNS,
    OUTCOMES,
    by_time_then_id,
    instant,
    make_past_attempt,
    past_attempt,
)
from dispatcher.store.sqlite.history_cache import HistoryCache
from dispatcher.store.sqlite.inline import InlineConnection

# The daemon's aiosqlite connection, or simulate's inline one (dispatcher.store.sqlite.inline).
Db = aiosqlite.Connection | InlineConnection


class _StateParser(Protocol):
    def get(self, account_id: str, state_json: str) -> AccountState: ...


class _Host(Protocol):
    _db: Db

    @property
    def _states(self) -> _StateParser: ...

    _lock: asyncio.Lock
    _lease: timedelta
    _claimed: dict[str, str]
    _sole: bool
    _history_cache: HistoryCache | None
    lost_claim_observers: list[LostClaimObserver]

    async def _fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Any]: ...

    async def _history(self, account_ids: Sequence[str],
                       since: datetime) -> dict[str, tuple[PastAttempt, ...]]: ...

    def _write(self) -> AbstractAsyncContextManager[Db]: ...

    async def _insert_audit(self, fields: Sequence[Mapping[str, Any]], now: datetime,
                            common: Mapping[str, Any] | None = None,
                            queue: Sequence[NewItem] = ()) -> list[dict[str, Any]]: ...

    async def account(self, account_id: str) -> AccountState | None: ...


# SQLite's default limit on bound parameters is 32766; stay far below it.
CHUNK = 500
_Item = TypeVar("_Item")


def marks(count: int) -> str:
    """`count` bound-parameter marks for an `IN (...)` list."""
    return ", ".join("?" * count)


def chunks(items: Sequence[_Item]) -> Iterable[Sequence[_Item]]:
    """`items` in slices of at most CHUNK, one query's worth of bound parameters each."""
    for start in range(0, len(items), CHUNK):
        yield items[start:start + CHUNK]


def _in_list(values: Sequence[str]) -> tuple[str, list[str]]:
    """The placeholders of an `IN` list of `values` (one or more) and its parameters, the last
    value repeated up to a power of two: a list of one of a few lengths is a statement sqlite3
    has prepared and kept (its cache holds 128), and a repeat matches nothing more."""
    size = 1 << (len(values) - 1).bit_length()
    return marks(size), [*values, *[values[-1]] * (size - len(values))]


_Fetch = Callable[[str, Sequence[Any]], Awaitable[list[Any]]]


async def _shared_numbers(fetch: _Fetch, numbers: Mapping[str, set[str]],
                          since: datetime, *,
                          only_called_by: Callable[[str, set[str]], bool] | None = None
                          ) -> SharedNumbers:
    """Other accounts' attempts on the accounts' `numbers` since `since`, the stored plans of
    other accounts that will use one of them, and, for numbers another account uses, when each
    account last used them, however long ago: one number is paced as one person, whichever
    accounts list it. `only_called_by(number, accounts)`, when known, says that no account
    outside `accounts` ever made an attempt on `number`."""
    listed: dict[str, set[str]] = defaultdict(set)
    for account_id, mine in numbers.items():
        for number in mine:
            listed[number].add(account_id)
    every = sorted(listed)
    shared = SharedNumbers(defaultdict(list), defaultdict(list), {})
    if not every:
        return shared
    number_marks, every = _in_list(every)
    since_key = sortable_utc(since)
    # Most numbers are one account's alone: the next queries look only at the others, those
    # another account lists or called lately.
    found = {n for n, in await fetch(
        f"SELECT number FROM party_numbers WHERE number IN ({number_marks}) "
        f"GROUP BY number HAVING COUNT(DISTINCT account_id) > 1", every)}
    # A number only the accounts listing it ever called is found by the query above if two
    # list it, and not at all otherwise: the attempts need no look.
    called = [n for n in listed if only_called_by is None or not only_called_by(n, listed[n])]
    if called:
        called_marks, called = _in_list(sorted(called))
        for number, first, last in await fetch(
                f"SELECT number, MIN(account_id), MAX(account_id) FROM attempts "
                f"WHERE number IN ({called_marks}) AND at >= ? AND "
                f"(outcome IS NULL OR outcome != 'not-sent') GROUP BY number",
                [*called, since_key]):
            if len(listed[number] | {first, last}) > 1:
                found.add(number)
    if not found:
        return shared
    busy_marks, busy = _in_list(sorted(found))
    for r in await fetch(
            f"SELECT attempt_id, account_id, at, person, role, number, medium, window_name, "
            f"stage, outcome FROM attempts WHERE number IN ({busy_marks}) AND at >= ? AND "
            f"(outcome IS NULL OR outcome != 'not-sent') ORDER BY at, attempt_id",
            [*busy, since_key]):
        shared.attempts[r[5]].append((r[1], make_past_attempt((
            r[0], instant(r[2]), r[3], ROLE_BY_VALUE[r[4]], r[5], MEDIUM_BY_VALUE[r[6]], r[7],
            r[8], OUTCOMES[r[9]]))))
    # The stored plan is the engine's JSON (dispatcher.contact.decide.plan_to_json): a planned
    # attempt names its target's number and its instant.
    planned = await fetch(
        f"SELECT DISTINCT p.number, a.account_id, json_extract(a.plan_json, '$.at') "
        f"FROM party_numbers p JOIN accounts a ON a.account_id = p.account_id "
        f"WHERE p.number IN ({busy_marks}) AND json_valid(a.plan_json) "
        f"AND json_extract(a.plan_json, '$.kind') = 'attempt' "
        f"AND json_extract(a.plan_json, '$.target.number') = p.number "
        f"ORDER BY p.number, a.account_id", busy)
    for account_id, number, at in await fetch(
            f"SELECT account_id, number, MAX(at) FROM attempts WHERE number IN ({busy_marks}) "
            f"AND (outcome IS NULL OR outcome != 'not-sent') GROUP BY account_id, number", busy):
        shared.last_used[(account_id, number)] = instant(at)
    for number, account_id, at in planned:
        shared.claims[number].append(NumberClaim(
            account_id, number, instant(at), shared.last_used.get((account_id, number))))
    return shared


# Due accounts not leased at an instant (twice the instant's key), oldest first, at most so many.
_DUE = ("SELECT account_id FROM accounts WHERE next_attempt_at <= ? AND "
        "(lease_until IS NULL OR lease_until <= ?) ORDER BY next_attempt_at, account_id LIMIT ?")


def _history_query(account_marks: str, which: str) -> str:
    """The attempts of the accounts in an `IN` list that meet `which`, one row per account:
    its id and its attempts as a JSON array of HISTORY_COLUMNS (attempts never sent left out)."""
    return (f"SELECT account_id, json_group_array(json_array({HISTORY_COLUMNS})) "
            f"FROM attempts WHERE account_id IN ({account_marks}) AND {which} "
            f"AND (outcome IS NULL OR outcome != 'not-sent') GROUP BY account_id")


def _keyed(text: str | None) -> list[tuple[str, PastAttempt]]:
    """One account's attempts from the JSON array of their rows (each an array of
    HISTORY_COLUMNS), each with its stored time, in the order read."""
    return [(row[1], past_attempt(row)) for row in orjson.loads(text)] if text else []


async def _history_texts(fetch: _Fetch, account_ids: Sequence[str], since_key: str
                         ) -> tuple[dict[str, str], dict[str, str]]:
    """The accounts' attempts as JSON arrays: third parties' before `since_key` and all from
    it on. Third-party attempts before `since` come from their own index: asked for in one query
    with the recent ones (an OR), they made SQLite read the account's whole history."""
    account_marks, ids = _in_list(account_ids)
    earlier = dict(await fetch(_history_query(account_marks, "role != 'debtor' AND at < ?"),
                               [*ids, since_key]))
    recent = dict(await fetch(_history_query(account_marks, "at >= ?"), [*ids, since_key]))
    return earlier, recent


class ContactRows:
    """Mixin of SqliteStore: the repository methods the contact engine uses."""

    async def _fetch(self: _Host, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        # One trip to SQLite's thread (execute and fetch together), serialised with writes.
        async with self._lock:
            return list(await self._db.execute_fetchall(sql, params))

    async def _history(self: _Host, account_ids: Sequence[str],
                       since: datetime) -> dict[str, tuple[PastAttempt, ...]]:
        """Each account's attempts since `since` and its third-party attempts of every time,
        not-sent ones left out, oldest first; accounts without any are absent."""
        # One row per account, its attempts as one JSON array: sqlite3 makes a Python object of
        # every column of every row it returns, and that cost most of this read.
        key = sortable_utc(since)
        cache = self._history_cache
        found, missing = (cache.read(account_ids, key) if cache is not None
                          else ({}, list(account_ids)))
        if missing:
            generation = cache.generation if cache is not None else 0
            before, since_then = await _history_texts(self._fetch, missing, key)
            read = {account_id: _keyed(before.get(account_id)) + _keyed(since_then.get(account_id))
                    for account_id in missing}
            if cache is not None and cache.generation == generation:  # no write in between
                cache.fill(read, missing, key)
            found.update((account_id, by_time_then_id([a for _, a in pairs]))
                         for account_id, pairs in read.items() if pairs)
        return found

    async def claim_due(self: _Host, now: datetime, limit: int) -> list[str]:
        """Accounts due at `now`, leased to this process for its claim lease, oldest first."""
        key = sortable_utc(now)
        until = sortable_utc(now + self._lease)
        if self._sole:
            # Nobody else can open a store held exclusively: its leases are kept here alone.
            held = {a for a, lease in self._claimed.items() if lease > key}
            due = await self._fetch(_DUE, (key, key, limit + len(held)))
            ids = [row[0] for row in due if row[0] not in held][:limit]
        else:
            async with self._write() as db:
                rows = await db.execute_fetchall(_DUE, (key, key, limit))
                ids = [row[0] for row in rows]
                for chunk in chunks(ids):
                    await db.execute(f"UPDATE accounts SET lease_until = ? WHERE account_id IN "
                                     f"({marks(len(chunk))})", [until, *chunk])
        self._claimed.update(dict.fromkeys(ids, until))
        return ids

    async def release_claims(self: _Host, account_ids: Sequence[str]) -> None:
        """Give claimed accounts back before their lease runs out (a failed sweep)."""
        held = {a: self._claimed[a] for a in account_ids if a in self._claimed}
        if not self._sole:
            async with self._write() as db:
                # Only a lease this store set: another store may have claimed the account since.
                await db.executemany("UPDATE accounts SET lease_until = NULL "
                                     "WHERE account_id = ? AND lease_until = ?", held.items())
        for account_id in held:
            self._claimed.pop(account_id, None)

    async def replan(self: _Host, now: datetime) -> int:
        """Every open account with a stored plan due at `now` (not one due already, nor one
        whose attempt awaits its outcome: the outcome plans it); how many were made due."""
        key = sortable_utc(now)
        async with self._write() as db:
            rows = await db.execute_fetchall(
                "UPDATE accounts SET next_attempt_at = ? WHERE status = ? "
                "AND plan_json IS NOT NULL AND (next_attempt_at IS NULL OR next_attempt_at > ?) "
                "AND account_id NOT IN (SELECT account_id FROM attempts WHERE outcome IS NULL) "
                "RETURNING account_id", (key, AccountStatus.OPEN.value, key))
        return len(list(rows))

    async def accounts_from(self: _Host, prefix: str, limit: int) -> list[str]:
        """Account ids that start with `prefix`, in order, at most `limit`."""
        # The ids that start with `prefix` come first from there on (binary order).
        rows = await self._fetch("SELECT account_id FROM accounts WHERE account_id >= ? "
                                 "ORDER BY account_id LIMIT ?", (prefix, limit))
        return [row[0] for row in rows if row[0].startswith(prefix)]

    async def next_due_at(self: _Host) -> datetime | None:
        """The earliest instant any account is due, if one is."""
        # The condition lets SQLite answer from the partial index accounts_due.
        rows = await self._fetch("SELECT MIN(next_attempt_at) FROM accounts "
                                 "WHERE next_attempt_at IS NOT NULL")
        return parse_rfc3339(rows[0][0]) if rows and rows[0][0] else None

    async def contexts(self: _Host, account_ids: Sequence[str], since: datetime, *,
                       number_since: datetime | None = None) -> dict[str, AccountContext]:
        """State, stored plan, attempts since `since` (and every third-party call), opt-outs;
        and what other accounts on the same numbers did since `number_since` (default `since`)
        and plan to do."""
        if not account_ids:
            return {}
        account_marks, ids = _in_list(account_ids)
        states: dict[str, tuple[str, str | None]] = {}
        for account_id, state_json, plan_json in await self._fetch(
                f"SELECT account_id, state_json, plan_json FROM accounts "
                f"WHERE account_id IN ({account_marks})", ids):
            states[account_id] = (state_json, plan_json)
        history = await self._history(account_ids, since)
        numbers: dict[str, set[str]] = defaultdict(set)
        for account_id, number in await self._fetch(
                "SELECT account_id, number FROM party_numbers "
                f"WHERE account_id IN ({account_marks})", ids):
            numbers[account_id].add(number)
        every = sorted({n for ns in numbers.values() for n in ns})
        opted: set[tuple[str, Medium]] = set()
        review: set[tuple[str, Medium]] = set()
        invalid: set[str] = set()
        if every:
            number_marks, evened = _in_list(every)
            for n, c, reason in await self._fetch(
                    f"SELECT number, channel, reason FROM opt_outs WHERE opted_out = 1 "
                    f"AND number IN ({number_marks})", evened):
                (review if reason == Standing.REVIEW else opted).add((n, Medium(c)))
            invalid.update(row[0] for row in await self._fetch(
                f"SELECT number FROM invalid_numbers WHERE number IN ({number_marks})", evened))
        cache = self._history_cache
        shared = await _shared_numbers(
            self._fetch, numbers, number_since or since,
            only_called_by=cache.only_called_by if cache is not None else None)
        return account_contexts(account_ids, states, parse=self._states.get, history=history,
                                numbers=numbers, opted=opted, review=review, invalid=invalid,
                                shared=shared)

    async def record_decisions(self: _Host, *, attempts: Sequence[AttemptRow],
                               plans: Sequence[PlanRow], audit: Sequence[Mapping[str, Any]],
                               now: datetime, config_version: str,
                               queue: Sequence[NewItem] = ()) -> list[dict[str, Any]]:
        """In one transaction: new attempts (before they are sent), plans, their audit records,
        queue items (stored unless their key is); for an account this store claimed, only while
        the claim is still its own."""
        batch = Decisions(attempts, plans, audit, queue)
        claimed = {a: self._claimed[a] for a in decided_accounts(batch) if a in self._claimed}
        lost: set[str] = set()
        async with self._write() as db:
            if claimed and not self._sole:  # a sole store's claims are all still its own
                ids = sorted(claimed)
                rows: list[Any] = []
                for chunk in chunks(ids):
                    chunk_marks, evened = _in_list(chunk)
                    rows.extend(await db.execute_fetchall(
                        f"SELECT account_id, lease_until FROM accounts "
                        f"WHERE account_id IN ({chunk_marks})", evened))
                held = {a for a, until in rows if until == claimed[a]}
                lost = set(ids) - held
                batch = without(batch, lost)
            if batch.attempts:
                await db.executemany(
                    "INSERT INTO attempts(attempt_id, account_id, person, role, number, medium, "
                    "stage, window_name, rule, template, at, hour_of_week) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [(a.attempt_id, a.account_id, a.person, a.role.value, a.number,
                      a.medium.value, a.stage, a.window, a.rule, a.template, sortable_utc(a.at),
                      a.hour_of_week)
                     for a in batch.attempts])
            await db.executemany(
                "UPDATE accounts SET plan_json = ?, next_attempt_at = ?, lease_until = NULL "
                "WHERE account_id = ?",
                [(p.plan_json, sortable_utc(p.next_at) if p.next_at else None, p.account_id)
                 for p in batch.plans])
            sealed = await self._insert_audit(batch.audit, now,
                                              {"config_version": config_version},
                                              batch.queue)
        # Committed, or another daemon's: held no more. A failed commit leaves them held, for
        # the engine to give back.
        for account_id in claimed:
            self._claimed.pop(account_id, None)
        say_lost(lost, self.lost_claim_observers)
        return sealed

    async def record_outcomes(self: _Host, outcomes: Sequence[OutcomeRow], *, now: datetime,
                              config_version: str, audit_for: Any,
                              plans: Sequence[PlanRow] = (),
                              audit_after: Sequence[Mapping[str, Any]] = (),
                              queue: Sequence[NewItem] = (),
                              ) -> list[dict[str, Any]]:
        """Apply final outcomes once each (a repeat changes nothing).

        `audit_for(attempt_row_dict, outcome)` builds each outcome's audit record. The accounts
        are due for planning at once, unless `plans` (decided with the outcomes in hand, their
        audit records in `audit_after`) say what comes next.
        """
        async with self._write() as db:
            ids = list(dict.fromkeys(o.attempt_id for o in outcomes))
            rows: dict[str, Any] = {}
            for chunk in chunks(ids):
                chunk_marks, evened = _in_list(chunk)
                rows.update((r[0], r) for r in await db.execute_fetchall(
                    f"SELECT attempt_id, account_id, person, role, number, medium, stage, "
                    f"outcome FROM attempts WHERE attempt_id IN ({chunk_marks})", evened))
            records, updates, invalid = [], [], []
            replan: set[str] = set()
            for outcome in outcomes:
                row = rows.get(outcome.attempt_id)
                if row is None or row[7] is not None:
                    continue
                rows[outcome.attempt_id] = (*row[:7], outcome.outcome.value)  # once each
                updates.append((outcome.outcome.value, sortable_utc(outcome.at),
                                outcome.provider_sid, outcome.attempt_id))
                if outcome.outcome is Outcome.INVALID_NUMBER:
                    invalid.append((row[4], row[1], sortable_utc(outcome.at), row[0],
                                    outcome.detail))
                replan.add(row[1])
                fields = dict(zip(("attempt_id", "account_id", "person", "role", "number",
                                   "medium", "stage"), row[:7], strict=True))
                records.append(audit_for(fields, outcome))
            await db.executemany("UPDATE attempts SET outcome = ?, outcome_at = ?, "
                                 "provider_sid = COALESCE(?, provider_sid) WHERE attempt_id = ?",
                                 updates)
            await db.executemany(
                "INSERT INTO invalid_numbers(number, account_id, marked_at, attempt_id, detail) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT(number) DO NOTHING", invalid)
            planned = {p.account_id for p in plans}
            await db.executemany("UPDATE accounts SET next_attempt_at = ? WHERE account_id = ?",
                                 [(sortable_utc(now), a) for a in sorted(replan - planned)])
            await db.executemany(
                "UPDATE accounts SET plan_json = ?, next_attempt_at = ?, lease_until = NULL "
                "WHERE account_id = ?",
                [(p.plan_json, sortable_utc(p.next_at) if p.next_at else None, p.account_id)
                 for p in plans])
            return await self._insert_audit([*records, *audit_after], now,
                                            {"config_version": config_version}, queue)

    async def open_attempts(self: _Host) -> list[AttemptRow]:
        """Attempts recorded but without a final outcome (in flight, or lost in a crash)."""
        rows = await self._fetch(
            "SELECT attempt_id, account_id, person, role, number, medium, stage, window_name, "
            "rule, template, at FROM attempts WHERE outcome IS NULL ORDER BY at")
        return [AttemptRow(r[0], r[1], r[2], Role(r[3]), r[4], Medium(r[5]), r[6], r[7], r[8],
                           r[9], parse_rfc3339(r[10])) for r in rows]

    async def attempt(self: _Host, attempt_id: str) -> AttemptRow | None:
        """One attempt as recorded, if it exists."""
        rows = await self._fetch(
            "SELECT attempt_id, account_id, person, role, number, medium, stage, window_name, "
            "rule, template, at FROM attempts WHERE attempt_id = ?", (attempt_id,))
        return (AttemptRow(rows[0][0], rows[0][1], rows[0][2], Role(rows[0][3]), rows[0][4],
                           Medium(rows[0][5]), rows[0][6], rows[0][7], rows[0][8], rows[0][9],
                           parse_rfc3339(rows[0][10])) if rows else None)

    async def invalid_numbers(self: _Host) -> list[dict[str, str]]:
        """Numbers found invalid, for the data team to fix."""
        rows = await self._fetch("SELECT number, account_id, marked_at, attempt_id, detail "
                                 "FROM invalid_numbers ORDER BY marked_at")
        return [dict(zip(("number", "account_id", "marked_at", "attempt_id", "detail"), r,
                         strict=True)) for r in rows]

    async def accounts_with_number(self: _Host, number: str) -> list[str]:
        """Accounts on which the number is listed (debtor or contact)."""
        rows = await self._fetch("SELECT DISTINCT account_id FROM party_numbers WHERE "
                                 "number = ? ORDER BY account_id", (number,))
        return [row[0] for row in rows]
