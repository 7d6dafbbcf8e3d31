"""PostgreSQL for the tests: a database of the session's own, a fresh schema for each test.

The server is the one on $DISPATCHER_TEST_POSTGRES (default: the local one, user postgres, which
`scripts/test` starts when it is installed but stopped). Each session creates
`dispatcher_test_<random>` and drops it at the end, so that runs never collide.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import sqlite3
import threading
from collections.abc import Coroutine, Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg

ADMIN_URL = os.environ.get("DISPATCHER_TEST_POSTGRES",
                           "postgresql://postgres@127.0.0.1:5432/postgres")

_T = TypeVar("_T")


def run_async(coroutine: Coroutine[Any, Any, _T]) -> _T:
    """Run a coroutine to completion from sync code, also while a test's loop is running."""
    found: list[_T] = []
    failed: list[BaseException] = []

    def target() -> None:
        try:
            found.append(asyncio.run(coroutine))
        except BaseException as exc:  # handed to the caller's thread
            failed.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if failed:
        raise failed[0]
    return found[0]


def with_database(url: str, database: str) -> str:
    """`url` naming another database."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", "", ""))


async def _admin(url: str, *statements: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


def create_database() -> str:
    """A new empty database; its URL."""
    name = f"dispatcher_test_{secrets.token_hex(6)}"
    run_async(_admin(ADMIN_URL, f"CREATE DATABASE {name}"))
    return with_database(ADMIN_URL, name)


def drop_database(url: str) -> None:
    """Drop a database that create_database made, whoever is still connected to it."""
    name = urlsplit(url).path.strip("/")
    run_async(_admin(ADMIN_URL, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


def create_schema(database_url: str) -> str:
    """A new empty schema in the database; a URL whose search path is that schema."""
    name = f"t_{secrets.token_hex(6)}"
    run_async(_admin(database_url, f"CREATE SCHEMA {name}"))
    return f"{database_url}?search_path={name}"


def drop_schema(url: str) -> None:
    """Drop the schema of a URL that create_schema made, with everything in it."""
    name = url.rpartition("search_path=")[2]
    run_async(_admin(url.partition("?")[0], f"DROP SCHEMA IF EXISTS {name} CASCADE"))


async def _fetch(url: str, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    conn = await asyncpg.connect(url)
    try:
        return [tuple(row) for row in await conn.fetch(sql, *params)]
    finally:
        await conn.close()


def store_rows(where: Path | str, sql: str,
               params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Rows of a query (with `?` marks) run on either store from outside, as tuples."""
    if isinstance(where, Path):
        with closing(sqlite3.connect(where)) as db:
            return list(db.execute(sql, params))
    count = iter(range(1, len(params) + 1))
    return run_async(_fetch(where, re.sub(r"\?", lambda _: f"${next(count)}", sql), params))


def store_execute(where: Path | str, sql: str, params: tuple[Any, ...] = ()) -> None:
    """Run one statement (with `?` marks) on either store from outside, committed."""
    if isinstance(where, Path):
        with closing(sqlite3.connect(where)) as db, db:
            db.execute(sql, params)
        return
    count = iter(range(1, len(params) + 1))
    run_async(_admin_params(where, re.sub(r"\?", lambda _: f"${next(count)}", sql), params))


async def _admin_params(url: str, sql: str, params: tuple[Any, ...]) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql, *params)
    finally:
        await conn.close()


@contextmanager
def holding_write_lock(where: Path | str) -> Iterator[None]:
    """For the length of the block, hold the lock every writer of the store takes first, from a
    connection of its own (a long maintenance job, a backup)."""
    if isinstance(where, Path):
        holder = sqlite3.connect(where, isolation_level=None, timeout=10)
        try:
            holder.execute("BEGIN EXCLUSIVE")
            yield
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        return
    # The connection lives on a loop of its own, in a thread, while the caller's code runs.
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever)
    thread.start()

    def run(coroutine: Coroutine[Any, Any, _T]) -> _T:
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result(30)

    try:
        conn = run(asyncpg.connect(where))
        try:
            run(conn.execute("BEGIN"))
            run(conn.execute("SELECT id FROM audit_head WHERE id = 1 FOR UPDATE"))
            yield
        finally:
            run(conn.close())
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()
