"""The answer model's side of the SQLite store: call outcomes by local hour, the model in force."""

from __future__ import annotations

from datetime import datetime

from dispatcher.domain.clock import parse_rfc3339, sortable_utc
from dispatcher.domain.contact import UNANSWERED, Outcome
from dispatcher.store.sqlite.contact_rows import _Host

# Calls that reached a person or their phone: answered, rang out, voicemail, busy. A failed or
# cancelled call says nothing about when the debtor answers.
_COUNTED = tuple(sorted(o.value for o in (*UNANSWERED, Outcome.COMPLETED)))


class AnswerRows:
    """Mixin of SqliteStore: what the planner's answer model is learned from, and kept in."""

    async def call_answer_counts(self: _Host, since: datetime,
                                 until: datetime) -> dict[int, tuple[int, int]]:
        """Debtor calls with an outcome placed in [since, until), by local hour of the week."""
        marks = ", ".join("?" * len(_COUNTED))
        rows = await self._fetch(
            "SELECT hour_of_week, COUNT(*), SUM(outcome = ?) FROM attempts "
            f"WHERE medium = 'call' AND role = 'debtor' AND outcome IN ({marks}) "
            "AND hour_of_week IS NOT NULL AND at >= ? AND at < ? GROUP BY hour_of_week",
            (Outcome.COMPLETED.value, *_COUNTED, sortable_utc(since), sortable_utc(until)))
        return {int(hour): (int(calls), int(answered)) for hour, calls, answered in rows}

    async def answer_model(self: _Host) -> tuple[str, datetime] | None:
        """The model in force (as JSON) and when learning last looked, if ever."""
        rows = await self._fetch("SELECT body, checked_at FROM answer_model WHERE id = 1")
        return (rows[0][0], parse_rfc3339(rows[0][1])) if rows else None

    async def save_answer_model(self: _Host, body: str, checked_at: datetime) -> None:
        """Keep the model in force and when learning last looked."""
        async with self._write() as db:
            await db.execute(
                "INSERT INTO answer_model(id, body, checked_at) VALUES (1, ?, ?) "
                "ON CONFLICT(id) DO UPDATE SET body = excluded.body, "
                "checked_at = excluded.checked_at", (body, sortable_utc(checked_at)))
