"""The agenda's side of the PostgreSQL store: open accounts' stored plans by the time they plan."""

from __future__ import annotations

from typing import Any

from dispatcher.domain.accounts import AccountStatus
from dispatcher.domain.clock import parse_rfc3339, utc_rfc3339
from dispatcher.store.base import AgendaQuery, PlannedRow
from dispatcher.store.postgres.host import Host

# The stored plan is the engine's JSON (dispatcher.contact.decide.plan_to_json) in a TEXT column;
# its `at` is UTC with milliseconds, so its text order (byte order: "C") is its time order.
_AT = "(p->>'at') COLLATE \"C\""


class AgendaRows:
    """Mixin of PostgresStore: stored plans by the time of their attempt."""

    async def planned_attempts(self: Host, query: AgendaQuery) -> list[PlannedRow]:
        """Open accounts whose stored plan is an attempt matching `query`, by the attempt's
        time then account id."""
        where = [f"p->>'kind' = 'attempt' AND {_AT} >= $2 AND {_AT} < $3"]
        params: list[Any] = [AccountStatus.OPEN.value, utc_rfc3339(query.since),
                             utc_rfc3339(query.until)]
        for column, value in (("account_id", query.account_id),
                              ("p->'target'->>'medium'", query.medium),
                              ("p->>'stage'", query.stage)):
            if value is not None:
                params.append(value)
                where.append(f"{column} = ${len(params)}")
        if query.party is not None:
            op = "=" if query.party == "debtor" else "!="
            where.append(f"p->'target'->>'role' {op} 'debtor'")
        params.append(query.limit)
        rows = await self._fetch(
            "SELECT account_id, state_json, plan_json, next_attempt_at FROM "
            "(SELECT account_id, state_json, plan_json, next_attempt_at, plan_json::jsonb AS p "
            "FROM accounts WHERE status = $1 AND plan_json IS NOT NULL) AS a WHERE "
            + " AND ".join(where) + f" ORDER BY {_AT}, account_id LIMIT ${len(params)}",
            *params)
        return [PlannedRow(r[0], self._states.get(r[0], r[1]), r[2],
                           parse_rfc3339(r[3]) if r[3] else None) for r in rows]
