"""Where the console's agenda and work queue come from: small Protocols, and the one place that
wires an implementation to each.

The console reads these three things through the Protocols below only. The implementations here
are built from what the store has today: the agenda from the engine's stored plans, and no work
queue. `console_sources` is the one function to change when a fuller agenda or a work queue
module is wired in (see the WIRE markers).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from dispatcher.contact.decide import plan_from_json
from dispatcher.store import AccountListStore
from schedules.planner import NoAttempt, PlannedAttempt

AGENDA_ROWS = 200


@dataclass(frozen=True)
class AgendaRow:
    """One account's next planned attempt, or why it has none and when it is looked at again.

    `number` is the number, masked or not: the console masks it when showing it."""

    account_id: str
    at: datetime | None
    channel: str = ""
    role: str = ""
    number: str = ""
    stage: str = ""
    rule: str = ""
    why_none: str = ""  # the reasons, when no attempt is planned


class AgendaSource(Protocol):
    """Lists the next planned attempts across accounts, soonest first."""

    async def agenda(self, now: datetime, limit: int) -> Sequence[AgendaRow]:
        """At most `limit` rows, soonest first."""
        ...


@dataclass(frozen=True)
class QueueItem:
    """Something that waits for a person, with the actions that settle it."""

    item_id: str
    kind: str
    created_at: str
    account_id: str | None
    summary: str  # may hold a debtor's words: escaped, and its numbers masked, when shown
    actions: tuple[str, ...]


class QueueActionError(ValueError):
    """An action that cannot be taken on an item (unknown item, action not offered, settled)."""


class WorkQueue(Protocol):
    """Lists open items and resolves one with an action, auditing who did it."""

    @property
    def available(self) -> bool:
        """Whether a work queue is wired in at all."""
        ...

    async def items(self, now: datetime) -> Sequence[QueueItem]:
        """The open items, oldest first."""
        ...

    async def resolve(self, item_id: str, action: str, *, user: str, note: str,
                      now: datetime, hold: str | None = None) -> str:
        """Take `action` on the item (`hold`: the hold reason of a hold action), audited with
        `user` and `note`; what was done, in one line. QueueActionError when it cannot be
        taken."""
        ...


class StoredPlanAgenda:
    """The agenda from the engine's stored plans: what each account is next looked at for."""

    def __init__(self, store: AccountListStore) -> None:
        self._store = store

    async def agenda(self, now: datetime, limit: int) -> list[AgendaRow]:
        """At most `limit` accounts with a stored plan, soonest first."""
        rows = []
        for planned in await self._store.planned_accounts(limit):
            try:
                plan = plan_from_json(planned.plan_json).plan
            except (ValueError, KeyError, TypeError):  # a plan stored by an older version
                plan = None
            if isinstance(plan, PlannedAttempt):
                t = plan.target
                rows.append(AgendaRow(planned.account_id, plan.at, t.medium.value, t.role.value,
                                      t.number, plan.stage, plan.rule))
            else:
                why = (", ".join(r.reason for r in plan.reasons)
                       if isinstance(plan, NoAttempt) else "no readable plan")
                rows.append(AgendaRow(planned.account_id, planned.next_at, why_none=why))
        return rows


class NoWorkQueue:
    """No work queue is wired in: the page says so and no action is offered."""

    available = False

    async def items(self, now: datetime) -> list[QueueItem]:
        """Nothing."""
        return []

    async def resolve(self, item_id: str, action: str, *, user: str, note: str,
                      now: datetime, hold: str | None = None) -> str:
        """Always refused."""
        raise QueueActionError("no work queue is available in this version")


@dataclass(frozen=True)
class Sources:
    """What the console lists through the Protocols above."""

    agenda: AgendaSource
    queue: WorkQueue


def console_sources(store: AccountListStore) -> Sources:
    """The agenda and work queue the console shows."""
    # WIRE: the agenda module (dispatcher.contact.agenda) replaces StoredPlanAgenda here, by an
    # adapter whose `agenda(now, limit)` turns its rows into AgendaRow.
    # WIRE: the work queue (dispatcher.queue) replaces NoWorkQueue here, by an adapter whose
    # `items` lists its open items and whose `resolve` calls its audited resolve with the user.
    return Sources(agenda=StoredPlanAgenda(store), queue=NoWorkQueue())
