"""Where the console's agenda and work queue come from: small Protocols, and the one place that
wires an implementation to each.

The console reads these through the Protocols below only. The agenda is dispatcher.contact.agenda
(the rows `dispatcher agenda` prints); the work queue is dispatcher.queue (what `dispatcher queue`
lists and resolves). `console_sources` is the one function that wires them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from dispatcher.contact.agenda import read_agenda
from dispatcher.errors import QueueError
from dispatcher.queue.actions import resolve
from dispatcher.queue.items import list_items
from dispatcher.store import AgendaQuery, AgendaStore, QueueStore

AGENDA_ROWS = 200
# The agenda's range: attempts due but not yet swept stay listed a day; two months ahead is
# further than any schedule's stage plans.
AGENDA_BACK = timedelta(days=1)
AGENDA_AHEAD = timedelta(days=60)


@dataclass(frozen=True)
class AgendaRow:
    """One account's next planned attempt. `number` may come masked or not: the console masks
    it (once) when showing it."""

    account_id: str
    at: datetime
    channel: str
    role: str
    number: str
    stage: str
    rule: str
    local_time: str = ""  # in `zone`, the first zone the attempt must respect
    zone: str = ""


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


class PlannedAgenda:
    """The agenda of dispatcher.contact.agenda: the engine's stored plans, soonest first."""

    def __init__(self, store: AgendaStore) -> None:
        self._store = store

    async def agenda(self, now: datetime, limit: int) -> list[AgendaRow]:
        """At most `limit` attempts planned from a day ago to two months ahead."""
        found = await read_agenda(self._store, AgendaQuery(now - AGENDA_BACK,
                                                           now + AGENDA_AHEAD, limit))
        return [AgendaRow(r.account_id, r.at, r.channel, r.role, r.number, r.stage, r.rule,
                          r.local_time, r.zone or "") for r in found.rows]


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


# The open items the queue page lists, oldest first: a flood of dead letters may queue a great
# many, and the page must stay a page.
QUEUE_SHOWN = 500


class StoreWorkQueue:
    """The work queue of dispatcher.queue: its open items, resolved by its audited `resolve`."""

    available = True

    def __init__(self, store: QueueStore, config_version: Callable[[], str]) -> None:
        self._store = store
        self._config_version = config_version

    async def items(self, now: datetime) -> list[QueueItem]:
        """The oldest open items, at most QUEUE_SHOWN."""
        found = await list_items(self._store, limit=QUEUE_SHOWN)
        return [QueueItem(str(i.id), i.reason.value, i.created_at, i.account_id,
                          i.excerpt or i.detail, tuple(a.value for a in i.actions))
                for i in found]

    async def resolve(self, item_id: str, action: str, *, user: str, note: str,
                      now: datetime, hold: str | None = None) -> str:
        """Resolve the item with `action`, audited with `user` and `note`."""
        if not item_id.isdigit():
            raise QueueActionError(f"no queue item with id {item_id}")
        try:
            await resolve(self._store, int(item_id), action, note=note, actor=user, now=now,
                          hold=hold, config_version=self._config_version())
        except QueueError as exc:
            raise QueueActionError(str(exc)) from None
        return f"queue item {item_id} resolved: {action}"


class _Stores(AgendaStore, QueueStore, Protocol):
    """What the console's sources read."""


def console_sources(store: _Stores,
                    config_version: Callable[[], str] = lambda: "console") -> Sources:
    """The agenda and work queue the console shows."""
    return Sources(agenda=PlannedAgenda(store), queue=StoreWorkQueue(store, config_version))
