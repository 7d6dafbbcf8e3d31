"""Copying a store's rows into an empty PostgreSQL store, in one transaction.

The target is migrated first (a committed, empty schema is still an empty store). Then one
transaction locks the chain's head row, as every writer does, refuses a store that holds any
row, streams every table in with COPY, and commits only once each table's row count and the
chain's head equal the source's: a copy cut short leaves nothing behind, and can be run again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import asyncpg

from dispatcher.audit.chain import ChainHead
from dispatcher.errors import StoreError
from dispatcher.store.postgres.host import Conn
from dispatcher.store.postgres.schema import describe, migrate
from dispatcher.store.postgres.store import chain_head, connect
from dispatcher.store.transfer import CopyResult, Progress, Snapshot

# Tables of the schema itself, not of the data: never copied, never counted as data.
_SCHEMA_TABLES = ("audit_head", "schema_version")

Convert = Callable[[Any], Any]


async def copy_into(url: str, source: Snapshot, *, batch_rows: int,
                    progress: Progress) -> CopyResult:
    """Copy every table of `source` into the empty store at `url`; StoreError, with nothing
    committed but the schema, when it holds data or the copy does not match."""
    pool = await connect(url)
    try:
        async with pool.acquire() as conn:
            before, after = await migrate(conn, url, create=True)
            try:
                async with conn.transaction():
                    rows = await _copy(conn, url, source, batch_rows, progress)
                    head = await _check(conn, source, rows)
            except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                raise StoreError(f"PostgreSQL at {describe(url)}: {type(exc).__name__}: "
                                 f"{exc}; nothing was copied") from None
            # The planner's statistics now, rather than whenever autovacuum comes by.
            for table in rows:
                await conn.execute(f"ANALYZE {_quoted(table)}")
    finally:
        await pool.close()
    return CopyResult(rows, head, before, after)


async def _copy(conn: Conn, url: str, source: Snapshot, batch_rows: int,
                progress: Progress) -> dict[str, int]:
    if await conn.fetchval("SELECT id FROM audit_head WHERE id = 1 FOR UPDATE") is None:
        raise StoreError("the audit chain's head row is missing")
    target = await _columns(conn)
    await _refuse_data(conn, url, [t for t in target if t not in _SCHEMA_TABLES])
    rows: dict[str, int] = {}
    for table, columns in source.tables():
        converts = _converters(table, columns, target)
        copied = 0
        for batch in source.batches(table, columns, batch_rows):
            records = [tuple(c(v) for c, v in zip(converts, row, strict=True)) for row in batch]
            await conn.copy_records_to_table(table, records=records, columns=list(columns))
            copied += len(records)
        rows[table] = copied
        progress(table, copied)
    return rows


async def _check(conn: Conn, source: Snapshot, rows: dict[str, int]) -> ChainHead:
    """The copied head once every count and the head match the source's; else StoreError."""
    source.check_alone()
    for table, copied in rows.items():
        found = int(await conn.fetchval(f"SELECT COUNT(*) FROM {_quoted(table)}"))
        expected = source.count(table)
        if not found == copied == expected:
            raise StoreError(f"{table}: {expected} rows in the source, {copied} copied, {found} "
                             "in the target; nothing was copied")
    head, expected_head = await chain_head(conn), source.head()
    if head != expected_head:
        raise StoreError(f"the copy's audit head (seq {head.seq}, hash {head.hash}) differs "
                         f"from the source's (seq {expected_head.seq}, hash "
                         f"{expected_head.hash}); nothing was copied")
    return head


async def _columns(conn: Conn) -> dict[str, dict[str, str]]:
    """Each table of the schema on the search path: its columns and their types."""
    found: dict[str, dict[str, str]] = {}
    for table, column, kind in await conn.fetch(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position"):
        found.setdefault(str(table), {})[str(column)] = str(kind)
    return found


async def _refuse_data(conn: Conn, url: str, tables: Sequence[str]) -> None:
    """StoreError, saying how to empty it, when any of `tables` holds a row."""
    held = [f"{table} ({count})" for table in tables
            if (count := int(await conn.fetchval(f"SELECT COUNT(*) FROM {_quoted(table)}")))]
    if not held:
        return
    schema = await conn.fetchval("SELECT current_schema()")
    raise StoreError(
        f"{describe(url)} already holds data: {', '.join(held)}; a copy goes only into an empty "
        f"store. To copy again, empty it first: `DROP SCHEMA {schema} CASCADE; CREATE SCHEMA "
        f"{schema};` (as the schema's owner), or drop and create the database")


def _converters(table: str, columns: Sequence[str],
                target: dict[str, dict[str, str]]) -> list[Convert]:
    """How each source column's values become the target column's, refusing a column the
    target lacks."""
    if table not in target:
        raise StoreError(f"table {table} of the source has no counterpart in PostgreSQL")
    kinds = target[table]
    missing = [c for c in columns if c not in kinds]
    if missing:
        raise StoreError(f"{table}: column(s) {', '.join(missing)} of the source have no "
                         "counterpart in PostgreSQL")
    return [_CONVERTERS.get(kinds[c], _same) for c in columns]


def _same(value: Any) -> Any:
    return value


def _boolean(value: Any) -> bool | None:
    # SQLite keeps booleans as 0 and 1.
    return None if value is None else bool(value)


def _bytea(value: Any) -> bytes | None:
    return value.encode() if isinstance(value, str) else value


_CONVERTERS: dict[str, Convert] = {"boolean": _boolean, "bytea": _bytea}


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
