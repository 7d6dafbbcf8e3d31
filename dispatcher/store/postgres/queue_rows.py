"""The work queue's side of the PostgreSQL store: items made with the audit records that call
for them, read back, and resolved with a person's action in one transaction."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from dispatcher.domain.clock import sortable_utc
from dispatcher.domain.queue import (
    NewItem,
    QueueItem,
    Reason,
    State,
    broken_promise_accounts,
    created_record,
    items_from_audit,
)
from dispatcher.errors import QueueError
from dispatcher.store.base import OperatorChange
from dispatcher.store.common import (
    QUEUE_COLUMNS,
    new_item_values,
    queue_item_from_row,
    queue_select,
)
from dispatcher.store.postgres.host import Conn, Host


async def queue_records(conn: Conn, fields: Sequence[Mapping[str, Any]],
                        queue: Sequence[NewItem], now: datetime) -> list[dict[str, Any]]:
    """Store the items `fields` call for, and `queue`, unless their key is stored; the
    `queue` audit records of those stored."""
    broken = broken_promise_accounts(fields)
    before: dict[str, int] = {}
    if broken:
        before = {r[0]: int(r[1]) for r in await conn.fetch(
            "SELECT account_id, COUNT(*) FROM audit WHERE kind = 'promise' AND "
            "account_id = ANY($1::text[]) AND (record::jsonb ->> 'status') = 'broken' "
            "GROUP BY account_id", broken)}
    wanted = [*queue, *items_from_audit(fields, before)]
    if not wanted:
        return []
    created = sortable_utc(now)
    records = []
    for item in wanted:
        # Ids as SQLite gives them: one more than the largest; the head row's lock, which every
        # writer holds, keeps two writers from taking the same one.
        new_id = await conn.fetchval(
            "INSERT INTO queue_items(id, key, reason, account_id, number, paused, excerpt, "
            "detail, ref, created_at, state) SELECT COALESCE(MAX(id), 0) + 1, $1, $2, $3, $4, "
            "$5, $6, $7, $8, $9, 'open' FROM queue_items ON CONFLICT(key) DO NOTHING "
            "RETURNING id",
            *new_item_values(item, created))
        if new_id is not None:
            records.append(created_record(int(new_id), item))
    return records


class QueueRows:
    """Mixin of PostgresStore: the work queue."""

    async def queue_items(self: Host, *, state: State | None = State.OPEN,
                          reason: Reason | None = None, account_id: str | None = None,
                          limit: int | None = None) -> list[QueueItem]:
        """Items oldest first, filtered by state (None: all), reason and account; at most
        `limit` of them (None: all)."""
        query, args = queue_select(lambda n: f"${n}", state=state, reason=reason,
                                   account_id=account_id, limit=limit)
        rows = await self._fetch(query, *args)
        return [queue_item_from_row(tuple(r)) for r in rows]

    async def open_queue_items(self: Host) -> int:
        """How many items wait for a person."""
        rows = await self._fetch("SELECT COUNT(*) FROM queue_items WHERE state = $1",
                                 str(State.OPEN))
        return int(rows[0][0])

    async def queue_item(self: Host, item_id: int) -> QueueItem | None:
        """One item by id."""
        rows = await self._fetch(f"SELECT {QUEUE_COLUMNS} FROM queue_items WHERE id = $1", item_id)
        return queue_item_from_row(tuple(rows[0])) if rows else None


async def apply_change_rows(conn: Conn, change: OperatorChange, now: datetime) -> None:
    """The rows a person's action changes besides its events and audit records; QueueError,
    before anything is written, when it cannot be applied."""
    at = sortable_utc(now)
    if change.item_id is not None:
        state = await conn.fetchval("SELECT state FROM queue_items WHERE id = $1",
                                    change.item_id)
        if state is None:
            raise QueueError(f"no queue item with id {change.item_id}")
        if state != State.OPEN:
            raise QueueError(f"queue item {change.item_id} is already resolved")
    if change.dismiss_dead_letter is not None:
        row = await conn.fetchrow("SELECT dismissed_at FROM dead_letters WHERE id = $1",
                                  change.dismiss_dead_letter)
        if row is None:
            raise QueueError(f"no dead letter with id {change.dismiss_dead_letter}")
        if row[0] is not None:
            raise QueueError(f"dead letter {change.dismiss_dead_letter} is already dismissed")
    if change.clear_invalid is not None and await conn.fetchval(
            "SELECT number FROM invalid_numbers WHERE number = $1",
            change.clear_invalid) is None:
        raise QueueError("that number is not marked invalid")
    if change.item_id is not None:
        await conn.execute(
            "UPDATE queue_items SET state = 'resolved', resolved_at = $1, resolved_by = $2, "
            "action = $3, note = $4 WHERE id = $5",
            at, change.actor, change.action, change.note, change.item_id)
    if change.dismiss_dead_letter is not None:
        await conn.execute(
            "UPDATE dead_letters SET dismissed_at = $1, dismissed_by = $2, "
            "dismissed_reason = $3 WHERE id = $4",
            at, change.actor, change.note, change.dismiss_dead_letter)
    if change.clear_invalid is not None:
        await conn.execute("DELETE FROM invalid_numbers WHERE number = $1", change.clear_invalid)
        # The accounts listing the number are planned again at once.
        await conn.execute(
            "UPDATE accounts SET next_attempt_at = $1 WHERE account_id IN "
            "(SELECT account_id FROM party_numbers WHERE number = $2)",
            at, change.clear_invalid)
    if change.mark_invalid is not None:
        number, account_id = change.mark_invalid
        await conn.execute(
            "INSERT INTO invalid_numbers(number, account_id, marked_at, attempt_id, detail) "
            "VALUES ($1, $2, $3, $4, $5) ON CONFLICT(number) DO NOTHING",
            number, account_id, at, f"operator:{change.actor}"[:200],
            f"marked invalid by a person: {change.note}"[:500])
