"""The work queue's side of the SQLite store: items made with the audit records that call for
them, read back, and resolved with a person's action in one transaction."""

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
from dispatcher.store.sqlite.contact_rows import Db, _Host, marks


async def queue_records(db: Db, fields: Sequence[Mapping[str, Any]], queue: Sequence[NewItem],
                        now: datetime) -> list[dict[str, Any]]:
    """Store the items `fields` call for, and `queue`, unless their key is stored; the
    `queue` audit records of those stored."""
    broken = broken_promise_accounts(fields)
    before: dict[str, int] = {}
    if broken:
        before = {r[0]: int(r[1]) for r in await db.execute_fetchall(
            f"SELECT account_id, COUNT(*) FROM audit WHERE kind = 'promise' AND account_id "
            f"IN ({marks(len(broken))}) AND json_extract(record, '$.status') = 'broken' "
            f"GROUP BY account_id", broken)}
    wanted = [*queue, *items_from_audit(fields, before)]
    if not wanted:
        return []
    created = sortable_utc(now)
    records = []
    for item in wanted:
        rows = list(await db.execute_fetchall(
            "INSERT INTO queue_items(key, reason, account_id, number, paused, excerpt, detail, "
            "ref, created_at, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'open') "
            "ON CONFLICT(key) DO NOTHING RETURNING id",
            new_item_values(item, created)))
        if rows:
            records.append(created_record(int(rows[0][0]), item))
    return records


class QueueRows:
    """Mixin of SqliteStore: the work queue."""

    async def queue_items(self: _Host, *, state: State | None = State.OPEN,
                          reason: Reason | None = None, account_id: str | None = None,
                          limit: int | None = None) -> list[QueueItem]:
        """Items oldest first, filtered by state (None: all), reason and account; at most
        `limit` of them (None: all)."""
        query, params = queue_select(lambda _: "?", state=state, reason=reason,
                                     account_id=account_id, limit=limit)
        rows = await self._fetch(query, params)
        return [queue_item_from_row(r) for r in rows]

    async def open_queue_items(self: _Host) -> int:
        """How many items wait for a person."""
        rows = await self._fetch("SELECT COUNT(*) FROM queue_items WHERE state = ?",
                                 (str(State.OPEN),))
        return int(rows[0][0])

    async def queue_item(self: _Host, item_id: int) -> QueueItem | None:
        """One item by id."""
        rows = await self._fetch(f"SELECT {QUEUE_COLUMNS} FROM queue_items WHERE id = ?",
                                 (item_id,))
        return queue_item_from_row(rows[0]) if rows else None



async def apply_change_rows(db: Db, change: OperatorChange, now: datetime) -> None:
    """The rows a person's action changes besides its events and audit records; QueueError,
    before anything is written, when it cannot be applied."""
    at = sortable_utc(now)
    if change.item_id is not None:
        found = list(await db.execute_fetchall(
            "SELECT state FROM queue_items WHERE id = ?", (change.item_id,)))
        if not found:
            raise QueueError(f"no queue item with id {change.item_id}")
        if found[0][0] != State.OPEN:
            raise QueueError(f"queue item {change.item_id} is already resolved")
    if change.dismiss_dead_letter is not None:
        found = list(await db.execute_fetchall(
            "SELECT dismissed_at FROM dead_letters WHERE id = ?", (change.dismiss_dead_letter,)))
        if not found:
            raise QueueError(f"no dead letter with id {change.dismiss_dead_letter}")
        if found[0][0] is not None:
            raise QueueError(f"dead letter {change.dismiss_dead_letter} is already dismissed")
    if change.clear_invalid is not None and not list(await db.execute_fetchall(
            "SELECT number FROM invalid_numbers WHERE number = ?", (change.clear_invalid,))):
        raise QueueError("that number is not marked invalid")
    if change.item_id is not None:
        await db.execute(
            "UPDATE queue_items SET state = 'resolved', resolved_at = ?, resolved_by = ?, "
            "action = ?, note = ? WHERE id = ?",
            (at, change.actor, change.action, change.note, change.item_id))
    if change.dismiss_dead_letter is not None:
        await db.execute(
            "UPDATE dead_letters SET dismissed_at = ?, dismissed_by = ?, dismissed_reason = ? "
            "WHERE id = ?", (at, change.actor, change.note, change.dismiss_dead_letter))
    if change.clear_invalid is not None:
        await db.execute("DELETE FROM invalid_numbers WHERE number = ?", (change.clear_invalid,))
        # The accounts listing the number are planned again at once.
        await db.execute(
            "UPDATE accounts SET next_attempt_at = ? WHERE account_id IN "
            "(SELECT account_id FROM party_numbers WHERE number = ?)",
            (at, change.clear_invalid))
    if change.mark_invalid is not None:
        number, account_id = change.mark_invalid
        await db.execute(
            "INSERT INTO invalid_numbers(number, account_id, marked_at, attempt_id, detail) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT(number) DO NOTHING",
            (number, account_id, at, f"operator:{change.actor}"[:200],
             f"marked invalid by a person: {change.note}"[:500]))
