"""The agenda's side of the SQLite store: open accounts' stored plans by the time they plan."""

from __future__ import annotations

from typing import Any

from dispatcher.domain.accounts import AccountStatus
from dispatcher.domain.clock import parse_rfc3339, utc_rfc3339
from dispatcher.store.base import AgendaQuery, PlannedRow
from dispatcher.store.sqlite.contact_rows import _Host

# The stored plan is the engine's JSON (dispatcher.contact.decide.plan_to_json); its `at` is UTC
# with milliseconds, so its text order is its time order.
_AT = "json_extract(plan_json, '$.at')"


class AgendaRows:
    """Mixin of SqliteStore: stored plans by the time of their attempt."""

    async def planned_attempts(self: _Host, query: AgendaQuery) -> list[PlannedRow]:
        """Open accounts whose stored plan is an attempt matching `query`, by the attempt's
        time then account id."""
        where = [f"status = ? AND json_valid(plan_json) "
                 f"AND json_extract(plan_json, '$.kind') = 'attempt' AND {_AT} >= ? AND {_AT} < ?"]
        params: list[Any] = [AccountStatus.OPEN.value, utc_rfc3339(query.since),
                             utc_rfc3339(query.until)]
        if query.account_id is not None:
            where.append("account_id = ?")
            params.append(query.account_id)
        if query.medium is not None:
            where.append("json_extract(plan_json, '$.target.medium') = ?")
            params.append(query.medium)
        if query.stage is not None:
            where.append("json_extract(plan_json, '$.stage') = ?")
            params.append(query.stage)
        if query.party is not None:
            op = "=" if query.party == "debtor" else "!="
            where.append(f"json_extract(plan_json, '$.target.role') {op} 'debtor'")
        params.append(query.limit)
        rows = await self._fetch(
            "SELECT account_id, state_json, plan_json, next_attempt_at FROM accounts WHERE "
            + " AND ".join(where) + f" ORDER BY {_AT}, account_id LIMIT ?", params)
        return [PlannedRow(account_id, self._states.get(account_id, state_json), plan_json,
                           parse_rfc3339(next_at) if next_at else None)
                for account_id, state_json, plan_json, next_at in rows]
