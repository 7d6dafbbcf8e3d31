"""Opening a store: the one place that picks the backend.

A store is named by a `Path` (a SQLite file) or by a `postgresql://` URL (a PostgreSQL
database, the schema on its search path); `is_postgres_url` tells them apart in text.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, closing
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from dispatcher.store.base import CLAIM_LEASE, Store
from dispatcher.store.sqlite.migrations import SCHEMA_VERSION as SQLITE_SCHEMA_VERSION
from dispatcher.store.sqlite.migrations import restore_throwaway_indexes
from dispatcher.store.sqlite.snapshot import read_snapshot
from dispatcher.store.sqlite.store import GROUP_COMMIT, SqliteStore
from dispatcher.store.sqlite.store import check_writable as check_sqlite_writable
from dispatcher.store.transfer import BATCH_ROWS, CopyResult, Progress

__all__ = ["StoreLocation", "check_writable", "copy_store", "describe_store", "is_postgres_url",
           "is_shared", "keepable", "location_from_text", "migrate_store", "open_store",
           "postgres_schema"]

# A SQLite file, or the URL of a PostgreSQL database.
StoreLocation = Path | str

_POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def is_postgres_url(text: str) -> bool:
    """Whether `text` names a PostgreSQL database."""
    return text.startswith(_POSTGRES_SCHEMES)


def is_shared(where: StoreLocation) -> bool:
    """Whether several daemons may share the store: a PostgreSQL database, never a SQLite
    file (one daemon each)."""
    return not isinstance(where, Path)


def location_from_text(text: str) -> StoreLocation:
    """A location written as text (a process argument): a URL, else a file path."""
    return text if is_postgres_url(text) else Path(text)


def describe_store(where: StoreLocation) -> str:
    """`sqlite PATH` or `postgresql host:port/database (schema S)`, for messages and logs."""
    if isinstance(where, Path):
        return f"sqlite {where}"
    from dispatcher.store.postgres.schema import describe

    schema = postgres_schema(where)
    return f"postgresql {describe(where)}" + (f" (schema {schema})" if schema else "")


def postgres_schema(url: str) -> str | None:
    """The schema a PostgreSQL URL keeps the tables in (`?search_path=`, its first entry)."""
    values = parse_qs(urlsplit(url).query).get("search_path")
    first = values[0].split(",")[0].strip().strip('"') if values else ""
    return first or None


# A throw-away store's writes per commit (`open_store(group_commit=...)`), as `simulate` asks.
THROWAWAY_GROUP_COMMIT = GROUP_COMMIT


def keepable(path: Path) -> None:
    """Make a closed throw-away SQLite store (`open_store(durable=False)`) one to keep: give it
    back the indexes it went without, so that readers of every kind find them."""
    restore_throwaway_indexes(path)


def check_writable(where: StoreLocation) -> None:
    """Refuse a SQLite store the daemon could not write; a PostgreSQL server answers for itself
    when the store opens (one that cannot be reached is `StoreUnwritable` there)."""
    if isinstance(where, Path):
        check_sqlite_writable(where)


@asynccontextmanager
async def open_store(where: StoreLocation, *, create: bool = True,
                     claim_lease: timedelta = CLAIM_LEASE, wal_checkpoints: bool = True,
                     durable: bool = True, inline: bool = False,
                     group_commit: int = 1) -> AsyncIterator[Store]:
    """Open the store for the length of a `async with` block; due accounts it claims are leased
    to it for `claim_lease`. The options after that are SQLite's
    (dispatcher.store.sqlite.store.SqliteStore.open); PostgreSQL has no use for them."""
    if isinstance(where, Path):
        sqlite = await SqliteStore.open(where, create=create, claim_lease=claim_lease,
                                        wal_checkpoints=wal_checkpoints, durable=durable,
                                        inline=inline, group_commit=group_commit)
        try:
            yield sqlite
        finally:
            await sqlite.close()
        return
    # Imported here: a SQLite deployment never loads the PostgreSQL driver.
    from dispatcher.store.postgres.store import PostgresStore

    postgres = await PostgresStore.open(where, create=create, claim_lease=claim_lease)
    try:
        yield postgres
    finally:
        await postgres.close()


async def migrate_store(where: StoreLocation) -> tuple[int, int]:
    """Apply the store's pending migrations (creating it if need be); the schema version before
    and after."""
    if isinstance(where, Path):
        before = await asyncio.to_thread(_sqlite_version, where)
        store = await SqliteStore.open(where)
        await store.close()
        return before, SQLITE_SCHEMA_VERSION
    from dispatcher.store.postgres.schema import migrate
    from dispatcher.store.postgres.store import connect

    pool = await connect(where)
    try:
        async with pool.acquire() as conn:
            return await migrate(conn, where, create=True)
    finally:
        await pool.close()


async def copy_store(source: Path, target: str, *, batch_rows: int | None = None,
                     progress: Progress = lambda table, rows: None) -> CopyResult:
    """Copy the SQLite store at `source` into the empty PostgreSQL store at `target` (migrated
    first), streaming `batch_rows` rows at a time, in one transaction that commits only a copy
    whose row counts and audit head equal the source's."""
    from dispatcher.store.postgres.copy import copy_into

    with read_snapshot(source) as snapshot:
        return await copy_into(target, snapshot, batch_rows=batch_rows or BATCH_ROWS,
                               progress=progress)


def _sqlite_version(path: Path) -> int:
    """`PRAGMA user_version` of a SQLite file, 0 when there is none yet."""
    if not path.exists():
        return 0
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        row = db.execute("PRAGMA user_version").fetchone()
    return int(row[0]) if row else 0
