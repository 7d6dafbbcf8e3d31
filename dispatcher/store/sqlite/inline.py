"""SQLite on the event loop's own thread, behind the part of aiosqlite's API the store uses.

For processes where nothing else waits on the loop: `simulate`, and the ingest writer process
(`dispatcher.ingest.writer_process`). A trip to aiosqlite's thread (about 0.1 ms here) costs more
than most of their queries, and while that thread binds rows it contends for the GIL with the work
meant to overlap it. A durable commit is the exception: it waits for the disk, so it can run on a
worker thread while the loop goes on (the writer validates its next batch meanwhile). The daemon
keeps aiosqlite, so that a slow query never stalls ingest or the webhooks.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Generator, Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any


class InlineCursor:
    """A finished query's rows."""

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    async def fetchall(self) -> list[Any]:
        """Every remaining row."""
        return self._cursor.fetchall()

    async def fetchone(self) -> Any:
        """The next row, or None."""
        return self._cursor.fetchone()

    async def close(self) -> None:
        """Release the cursor."""
        self._cursor.close()


class _Pending:
    """What `execute` returns: awaitable, or an async context manager, as in aiosqlite."""

    def __init__(self, run: Callable[[], sqlite3.Cursor]) -> None:
        self._run = run
        self._cursor: InlineCursor | None = None

    def __await__(self) -> Generator[Any, None, InlineCursor]:
        return self._start().__await__()

    async def _start(self) -> InlineCursor:
        return InlineCursor(self._run())

    async def __aenter__(self) -> InlineCursor:
        self._cursor = InlineCursor(self._run())
        return self._cursor

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        trace: TracebackType | None) -> None:
        if self._cursor is not None:
            await self._cursor.close()


class InlineConnection:
    """A sqlite3 connection with aiosqlite's coroutine methods, run without a thread."""

    def __init__(self, connection: sqlite3.Connection, *, commit_in_thread: bool) -> None:
        self._connection = connection
        self._commit_in_thread = commit_in_thread

    @property
    def connection(self) -> sqlite3.Connection:
        """The sqlite3 connection underneath (its functions and triggers are set on it)."""
        return self._connection

    def execute(self, sql: str, parameters: Sequence[Any] = ()) -> _Pending:
        """Run one statement."""
        return _Pending(lambda: self._connection.execute(sql, parameters))

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> _Pending:
        """Run one statement for each row."""
        return _Pending(lambda: self._connection.executemany(sql, rows))

    async def execute_fetchall(self, sql: str, parameters: Sequence[Any] = ()) -> list[Any]:
        """Run one query and return its rows."""
        return self._connection.execute(sql, parameters).fetchall()

    async def commit(self) -> None:
        """Commit the open transaction, on a worker thread when so opened."""
        if not self._commit_in_thread:
            self._connection.commit()
            return
        done = asyncio.get_running_loop().run_in_executor(None, self._connection.commit)
        try:
            await asyncio.shield(done)
        except asyncio.CancelledError:
            # Nobody may use the connection before the commit has ended, either way.
            await asyncio.wait({done})
            raise

    async def close(self) -> None:
        """Close the connection."""
        self._connection.close()


async def connect_inline(path: Path, *, commit_in_thread: bool = False) -> InlineConnection:
    """Open `path` in autocommit mode, as the store opens aiosqlite.

    `commit_in_thread=True` lets `commit` run on a worker thread; the store's lock keeps every
    other statement off the connection until it has ended.
    """
    connection = sqlite3.connect(path, isolation_level=None,
                                 check_same_thread=not commit_in_thread)
    return InlineConnection(connection, commit_in_thread=commit_in_thread)
