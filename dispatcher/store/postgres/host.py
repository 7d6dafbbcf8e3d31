"""What the PostgreSQL store's mixins share: a write transaction and the store they extend."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from dispatcher.audit.chain import ChainHead
from dispatcher.store.base import LostClaimObserver
from dispatcher.store.common import StateCache

# A connection of its own, or one of the pool's.
Conn: TypeAlias = asyncpg.Connection | PoolConnectionProxy


@dataclass
class Tx:
    """One write transaction: its connection, the chain head it appends to (locked by it), and
    the records it sealed, for the observers once it commits."""

    conn: Conn
    head: ChainHead
    sealed: list[dict[str, Any]] = field(default_factory=list)


class Host(Protocol):
    """The part of PostgresStore its mixins use."""

    _states: StateCache
    _owner: str
    _claimed: set[str]
    lost_claim_observers: list[LostClaimObserver]
    _lease: timedelta

    def _write(self, conn: Conn | None = None
               ) -> AbstractAsyncContextManager[Tx]: ...

    def _acquire(self) -> AbstractAsyncContextManager[Conn]: ...

    async def _fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]: ...

    async def _insert_audit(self, tx: Tx, fields: Sequence[Mapping[str, Any]], now: datetime,
                            common: Mapping[str, Any] | None = None,
                            queue: Sequence[Any] = ()) -> list[dict[str, Any]]: ...
