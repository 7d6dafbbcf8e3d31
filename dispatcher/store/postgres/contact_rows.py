"""The engine's side of the PostgreSQL store: due claims, attempts, outcomes, plans, answers."""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from dispatcher.compliance.consent import Standing
from dispatcher.domain.accounts import AccountStatus
from dispatcher.domain.clock import parse_rfc3339, sortable_utc
from dispatcher.domain.contact import (
    MEDIUM_BY_VALUE,
    OUTCOME_BY_VALUE,
    ROLE_BY_VALUE,
    UNANSWERED,
    Medium,
    NumberClaim,
    Outcome,
    PastAttempt,
    Role,
)
from dispatcher.domain.queue import NewItem
from dispatcher.store.base import AccountContext, AttemptRow, OutcomeRow, PlanRow
from dispatcher.store.common import SharedNumbers, account_contexts
from dispatcher.store.fence import Decisions, decided_accounts, say_lost, without
from dispatcher.store.postgres.host import Conn, Host

# Calls that reached a person or their phone: answered, rang out, voicemail, busy. A failed or
# cancelled call says nothing about when the debtor answers.
_COUNTED = sorted(o.value for o in (*UNANSWERED, Outcome.COMPLETED))

_ATTEMPT_COLUMNS = ("attempt_id, account_id, at, person, role, number, medium, window_name, "
                    "stage, outcome")
_ROW_COLUMNS = ("attempt_id, account_id, person, role, number, medium, stage, window_name, "
                "rule, template, at")


@functools.lru_cache(maxsize=1 << 17)
def _instant(text: str) -> datetime:
    return parse_rfc3339(text)


def _past(row: asyncpg.Record) -> PastAttempt:
    """A row of _ATTEMPT_COLUMNS as the engine reads it."""
    # Positional: keywords cost a quarter more, for every row of every history read.
    return PastAttempt(row[0], _instant(row[2]), row[3], ROLE_BY_VALUE[row[4]], row[5],
                       MEDIUM_BY_VALUE[row[6]], row[7], row[8],
                       OUTCOME_BY_VALUE[row[9]] if row[9] else None)


def _attempt_row(r: asyncpg.Record) -> AttemptRow:
    """A row of _ROW_COLUMNS."""
    return AttemptRow(r[0], r[1], r[2], Role(r[3]), r[4], Medium(r[5]), r[6], r[7], r[8], r[9],
                      parse_rfc3339(r[10]))


def _planned_at(plan_json: str, number: str) -> str | None:
    """The instant of a stored plan's attempt on `number`, if that is what it plans."""
    try:
        plan = orjson.loads(plan_json)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(plan, dict) or plan.get("kind") != "attempt":
        return None
    target = plan.get("target")
    if not isinstance(target, dict) or target.get("number") != number:
        return None
    at = plan.get("at")
    return at if isinstance(at, str) else None


async def _shared_numbers(host: Host, numbers: Mapping[str, set[str]],
                          since: datetime) -> SharedNumbers:
    """Other accounts' attempts on the accounts' `numbers` since `since`, the stored plans of
    other accounts that will use one of them, and, for numbers another account uses, when each
    account last used them: one number is paced as one person, whichever accounts list it."""
    listed: dict[str, set[str]] = defaultdict(set)
    for account_id, mine in numbers.items():
        for number in mine:
            listed[number].add(account_id)
    every = sorted(listed)
    shared = SharedNumbers(defaultdict(list), defaultdict(list), {})
    if not every:
        return shared
    rows: dict[str, list[asyncpg.Record]] = defaultdict(list)
    for row in await host._fetch(  # noqa: SLF001 - the mixin's own host
            f"SELECT {_ATTEMPT_COLUMNS} FROM attempts WHERE number = ANY($1::text[]) AND "
            f"at >= $2 AND (outcome IS NULL OR outcome != 'not-sent') ORDER BY at, attempt_id",
            every, sortable_utc(since)):
        rows[row[5]].append(row)
    # Most numbers are one account's alone: the next queries look only at the others.
    elsewhere = {r[0] for r in await host._fetch(  # noqa: SLF001
        "SELECT number FROM party_numbers WHERE number = ANY($1::text[]) "
        "GROUP BY number HAVING COUNT(DISTINCT account_id) > 1", every)}
    busy = sorted(elsewhere | {n for n, made in rows.items()
                               if len(listed[n] | {r[1] for r in made}) > 1})
    if not busy:
        return shared
    for number in busy:
        shared.attempts[number] = [(r[1], _past(r)) for r in rows.get(number, ())]
    # The stored plan is the engine's JSON (dispatcher.contact.decide.plan_to_json): a planned
    # attempt names its target's number and its instant.
    planned: dict[tuple[str, str, str], None] = {}
    for number, account_id, plan_json in await host._fetch(  # noqa: SLF001
            "SELECT p.number, a.account_id, a.plan_json FROM party_numbers p "
            "JOIN accounts a ON a.account_id = p.account_id "
            "WHERE p.number = ANY($1::text[]) AND a.plan_json IS NOT NULL "
            "ORDER BY p.number, a.account_id", busy):
        at = _planned_at(plan_json, number)
        if at is not None:
            planned[(number, account_id, at)] = None
    for account_id, number, at in await host._fetch(  # noqa: SLF001
            "SELECT account_id, number, MAX(at) FROM attempts WHERE number = ANY($1::text[]) "
            "AND (outcome IS NULL OR outcome != 'not-sent') GROUP BY account_id, number", busy):
        shared.last_used[(account_id, number)] = _instant(at)
    for number, account_id, at in planned:
        shared.claims[number].append(NumberClaim(
            account_id, number, _instant(at), shared.last_used.get((account_id, number))))
    return shared


class ContactRows:
    """Mixin of PostgresStore: the repository methods the contact engine uses."""

    async def claim_due(self: Host, now: datetime, limit: int) -> list[str]:
        """Accounts due at `now`, leased to this store for its claim lease, oldest first; rows
        another transaction holds are skipped, not waited for."""
        key = sortable_utc(now)
        async with self._acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "SELECT account_id FROM accounts WHERE next_attempt_at <= $1 AND "
                "(lease_until IS NULL OR lease_until <= $1) ORDER BY next_attempt_at, "
                "account_id LIMIT $2 FOR UPDATE SKIP LOCKED", key, limit)
            ids = [row[0] for row in rows]
            if ids:
                await conn.execute(
                    "UPDATE accounts SET lease_until = $1, lease_owner = $2 "
                    "WHERE account_id = ANY($3::text[])",
                    sortable_utc(now + self._lease), self._owner, ids)
        self._claimed.update(ids)
        return ids

    async def release_claims(self: Host, account_ids: Sequence[str]) -> None:
        """Give this store's claimed accounts back before their lease runs out."""
        async with self._write() as tx:
            await tx.conn.execute(
                "UPDATE accounts SET lease_until = NULL, lease_owner = NULL "
                "WHERE account_id = ANY($1::text[]) AND lease_owner = $2",
                list(account_ids), self._owner)
        self._claimed.difference_update(account_ids)

    async def replan(self: Host, now: datetime) -> int:
        """Every open account with a stored plan due at `now` (not one due already, nor one
        whose attempt awaits its outcome: the outcome plans it); how many were made due."""
        key = sortable_utc(now)
        async with self._write() as tx:
            rows = await tx.conn.fetch(
                "UPDATE accounts SET next_attempt_at = $1 WHERE status = $2 "
                "AND plan_json IS NOT NULL AND (next_attempt_at IS NULL OR next_attempt_at > $1) "
                "AND account_id NOT IN (SELECT account_id FROM attempts WHERE outcome IS NULL) "
                "RETURNING account_id", key, AccountStatus.OPEN.value)
        return len(rows)

    async def accounts_from(self: Host, prefix: str, limit: int) -> list[str]:
        """Account ids that start with `prefix`, in order, at most `limit`."""
        # starts_with, not a range: the database's collation may not sort by code point.
        rows = await self._fetch("SELECT account_id FROM accounts "
                                 "WHERE starts_with(account_id, $1) "
                                 "ORDER BY account_id COLLATE \"C\" LIMIT $2", prefix, limit)
        return [row[0] for row in rows]

    async def next_due_at(self: Host) -> datetime | None:
        """The earliest instant any account is due, if one is."""
        rows = await self._fetch("SELECT MIN(next_attempt_at) FROM accounts "
                                 "WHERE next_attempt_at IS NOT NULL")
        return parse_rfc3339(rows[0][0]) if rows and rows[0][0] else None

    async def contexts(self: Host, account_ids: Sequence[str], since: datetime, *,
                       number_since: datetime | None = None) -> dict[str, AccountContext]:
        """State, stored plan, attempts since `since` (and every third-party call), opt-outs;
        and what other accounts on the same numbers did since `number_since` (default `since`)
        and plan to do."""
        if not account_ids:
            return {}
        ids = list(account_ids)
        states = {r[0]: (r[1], r[2]) for r in await self._fetch(
            "SELECT account_id, state_json, plan_json FROM accounts "
            "WHERE account_id = ANY($1::text[])", ids)}
        history: dict[str, list[PastAttempt]] = defaultdict(list)
        # The debtor's recent attempts and every third-party one, each from its own index: one
        # condition with an OR read the account's whole history.
        for row in await self._fetch(
                f"SELECT {_ATTEMPT_COLUMNS} FROM attempts WHERE account_id = ANY($1::text[]) AND "
                f"at >= $2 AND (outcome IS NULL OR outcome != 'not-sent') "
                f"UNION ALL SELECT {_ATTEMPT_COLUMNS} FROM attempts "
                f"WHERE account_id = ANY($1::text[]) AND role <> 'debtor' AND at < $2 "
                f"AND (outcome IS NULL OR outcome != 'not-sent') "
                f"ORDER BY account_id, at, attempt_id", ids, sortable_utc(since)):
            history[row[1]].append(_past(row))
        numbers: dict[str, set[str]] = defaultdict(set)
        for account_id, number in await self._fetch(
                "SELECT account_id, number FROM party_numbers "
                "WHERE account_id = ANY($1::text[])", ids):
            numbers[account_id].add(number)
        every = sorted({n for ns in numbers.values() for n in ns})
        opted: set[tuple[str, Medium]] = set()
        review: set[tuple[str, Medium]] = set()
        invalid: set[str] = set()
        if every:
            for n, c, reason in await self._fetch(
                    "SELECT number, channel, reason FROM opt_outs WHERE opted_out "
                    "AND number = ANY($1::text[])", every):
                (review if reason == Standing.REVIEW else opted).add((n, Medium(c)))
            invalid.update(row[0] for row in await self._fetch(
                "SELECT number FROM invalid_numbers WHERE number = ANY($1::text[])", every))
        shared = await _shared_numbers(self, numbers, number_since or since)
        return account_contexts(account_ids, states, parse=self._states.get, history=history,
                                numbers=numbers, opted=opted, review=review, invalid=invalid,
                                shared=shared)

    async def record_decisions(self: Host, *, attempts: Sequence[AttemptRow],
                               plans: Sequence[PlanRow], audit: Sequence[Mapping[str, Any]],
                               now: datetime, config_version: str,
                               queue: Sequence[NewItem] = ()) -> list[dict[str, Any]]:
        """In one transaction: new attempts (before they are sent), plans, their audit records,
        queue items (stored unless their key is); for an account this store claimed, only while
        the claim is still its own."""
        batch = Decisions(attempts, plans, audit, queue)
        claimed = sorted(decided_accounts(batch) & self._claimed)
        lost: set[str] = set()
        async with self._write() as tx:
            if claimed:
                # Locked after the audit head, as every write locks rows: no writer holds a row
                # while it waits for the head, and a claim (no head) skips these, never waits.
                held = {r[0] for r in await tx.conn.fetch(
                    "SELECT account_id FROM accounts WHERE account_id = ANY($1::text[]) "
                    "AND lease_owner = $2 FOR UPDATE", claimed, self._owner)}
                lost = set(claimed) - held
                batch = without(batch, lost)
            if batch.attempts:
                await tx.conn.executemany(
                    "INSERT INTO attempts(attempt_id, account_id, person, role, number, medium, "
                    "stage, window_name, rule, template, at, hour_of_week) "
                    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                    [(a.attempt_id, a.account_id, a.person, a.role.value, a.number,
                      a.medium.value, a.stage, a.window, a.rule, a.template, sortable_utc(a.at),
                      a.hour_of_week) for a in batch.attempts])
            await _save_plans(tx.conn, batch.plans)
            sealed = await self._insert_audit(tx, batch.audit, now,
                                              {"config_version": config_version},
                                              batch.queue)
        # Committed, or another daemon's: held no more. A failed commit leaves them held, for
        # the engine to give back.
        self._claimed.difference_update(claimed)
        say_lost(lost, self.lost_claim_observers)
        return sealed

    async def record_outcomes(self: Host, outcomes: Sequence[OutcomeRow], *, now: datetime,
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
        async with self._write() as tx:
            conn = tx.conn
            ids = list(dict.fromkeys(o.attempt_id for o in outcomes))
            rows = {r[0]: tuple(r) for r in await conn.fetch(
                "SELECT attempt_id, account_id, person, role, number, medium, stage, outcome "
                "FROM attempts WHERE attempt_id = ANY($1::text[])", ids)} if ids else {}
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
            if updates:
                await conn.executemany(
                    "UPDATE attempts SET outcome = $1, outcome_at = $2, "
                    "provider_sid = COALESCE($3, provider_sid) WHERE attempt_id = $4", updates)
            if invalid:
                await conn.executemany(
                    "INSERT INTO invalid_numbers(number, account_id, marked_at, attempt_id, "
                    "detail) VALUES ($1, $2, $3, $4, $5) ON CONFLICT(number) DO NOTHING",
                    invalid)
            planned = {p.account_id for p in plans}
            due = sorted(replan - planned)
            if due:
                await conn.execute(
                    "UPDATE accounts SET next_attempt_at = $1 WHERE account_id = ANY($2::text[])",
                    sortable_utc(now), due)
            await _save_plans(conn, plans)
            return await self._insert_audit(tx, [*records, *audit_after], now,
                                            {"config_version": config_version}, queue)

    async def open_attempts(self: Host) -> list[AttemptRow]:
        """Attempts recorded but without a final outcome (in flight, or lost in a crash)."""
        rows = await self._fetch(f"SELECT {_ROW_COLUMNS} FROM attempts WHERE outcome IS NULL "
                                 "ORDER BY at, attempt_id")
        return [_attempt_row(r) for r in rows]

    async def attempt(self: Host, attempt_id: str) -> AttemptRow | None:
        """One attempt as recorded, if it exists."""
        rows = await self._fetch(f"SELECT {_ROW_COLUMNS} FROM attempts WHERE attempt_id = $1",
                                 attempt_id)
        return _attempt_row(rows[0]) if rows else None

    async def invalid_numbers(self: Host) -> list[dict[str, str]]:
        """Numbers found invalid, for the data team to fix."""
        rows = await self._fetch("SELECT number, account_id, marked_at, attempt_id, detail "
                                 "FROM invalid_numbers ORDER BY marked_at, number")
        return [dict(zip(("number", "account_id", "marked_at", "attempt_id", "detail"), r,
                         strict=True)) for r in rows]

    async def accounts_with_number(self: Host, number: str) -> list[str]:
        """Accounts on which the number is listed (debtor or contact)."""
        rows = await self._fetch("SELECT DISTINCT account_id FROM party_numbers WHERE "
                                 "number = $1 ORDER BY account_id", number)
        return [row[0] for row in rows]

    # -- the answer model --------------------------------------------------------------------

    async def call_answer_counts(self: Host, since: datetime,
                                 until: datetime) -> dict[int, tuple[int, int]]:
        """Debtor calls with an outcome placed in [since, until), by local hour of the week."""
        rows = await self._fetch(
            "SELECT hour_of_week, COUNT(*), COUNT(*) FILTER (WHERE outcome = $1) FROM attempts "
            "WHERE medium = 'call' AND role = 'debtor' AND outcome = ANY($2::text[]) "
            "AND hour_of_week IS NOT NULL AND at >= $3 AND at < $4 GROUP BY hour_of_week",
            Outcome.COMPLETED.value, _COUNTED, sortable_utc(since), sortable_utc(until))
        return {int(hour): (int(calls), int(answered)) for hour, calls, answered in rows}

    async def answer_model(self: Host) -> tuple[str, datetime] | None:
        """The model in force (as JSON) and when learning last looked, if ever."""
        rows = await self._fetch("SELECT body, checked_at FROM answer_model WHERE id = 1")
        return (rows[0][0], parse_rfc3339(rows[0][1])) if rows else None

    async def save_answer_model(self: Host, body: str, checked_at: datetime) -> None:
        """Keep the model in force and when learning last looked."""
        async with self._write() as tx:
            await tx.conn.execute(
                "INSERT INTO answer_model(id, body, checked_at) VALUES (1, $1, $2) "
                "ON CONFLICT(id) DO UPDATE SET body = excluded.body, "
                "checked_at = excluded.checked_at", body, sortable_utc(checked_at))


async def _save_plans(conn: Conn, plans: Sequence[PlanRow]) -> None:
    """Store each account's next plan and when it is due; its lease ends."""
    if plans:
        await conn.executemany(
            "UPDATE accounts SET plan_json = $1, next_attempt_at = $2, lease_until = NULL, "
            "lease_owner = NULL WHERE account_id = $3",
            [(p.plan_json, sortable_utc(p.next_at) if p.next_at else None, p.account_id)
             for p in plans])
