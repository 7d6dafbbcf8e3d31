"""Opening a store: the one place that picks the backend."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from dispatcher.store.base import Store
from dispatcher.store.sqlite.store import SqliteStore, check_writable

__all__ = ["check_writable", "open_store"]


@asynccontextmanager
async def open_store(path: Path, *, create: bool = True, wal_checkpoints: bool = True,
                     durable: bool = True, inline: bool = False) -> AsyncIterator[Store]:
    """Open the store for the length of a `async with` block."""
    store = await SqliteStore.open(path, create=create, wal_checkpoints=wal_checkpoints,
                                   durable=durable, inline=inline)
    try:
        yield store
    finally:
        await store.close()
