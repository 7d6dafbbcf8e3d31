"""Writes of a store held exclusively (`simulate`'s throw-away store), committed many at a time:
each write is a savepoint that ends with it, the file gets them all by the time the store is
closed, a write that fails leaves the others, and a commit that fails (or a write whose
transaction SQLite ended) stops every later write.

SQLite only: a durable store commits each write on its own.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from dispatcher.errors import StoreError
from dispatcher.store.sqlite import SqliteStore
from dispatcher.store.sqlite.store import GROUP_COMMIT

pytestmark = pytest.mark.sqlite


class _Refused(Exception):
    pass


async def _insert(store: SqliteStore, value: str) -> None:
    async with store._write() as db:  # noqa: SLF001 - a write no store method makes
        await db.execute("INSERT INTO notes(value) VALUES (?)", (value,))


async def _refused_write(store: SqliteStore, value: str) -> None:
    async with store._write() as db:  # noqa: SLF001
        await db.execute("INSERT INTO notes(value) VALUES (?)", (value,))
        raise _Refused


async def _ending_write(store: SqliteStore) -> None:
    async with store._write() as db:  # noqa: SLF001
        # As a full disk or an I/O error would: the transaction ends under the write.
        await db.execute("ROLLBACK")
        raise _Refused


def _notes(path: Path) -> list[str]:
    with sqlite3.connect(path) as db:
        return [row[0] for row in db.execute("SELECT value FROM notes ORDER BY rowid")]


async def _sole(path: Path) -> SqliteStore:
    store = await SqliteStore.open(path, durable=False, inline=True)
    async with store._write() as db:  # noqa: SLF001
        await db.execute("CREATE TABLE notes(value TEXT NOT NULL)")
    return store


async def test_every_write_reaches_the_file_once_the_store_is_closed(tmp_path: Path) -> None:
    path = tmp_path / "sim.db"
    store = await _sole(path)
    written = [f"n{n}" for n in range(GROUP_COMMIT * 2 + 5)]  # two commits and a remainder
    for value in written:
        await _insert(store, value)
    async with store._write() as db:  # noqa: SLF001 - the store's own reads see every write
        assert len(list(await db.execute_fetchall("SELECT value FROM notes"))) == len(written)
    await store.close()
    assert _notes(path) == written


async def test_a_write_that_fails_leaves_the_writes_before_and_after_it(tmp_path: Path) -> None:
    path = tmp_path / "sim.db"
    store = await _sole(path)
    await _insert(store, "before")
    with pytest.raises(_Refused):
        await _refused_write(store, "failed")
    # The first write of a transaction can fail too: the next still begins where it should.
    for _ in range(GROUP_COMMIT - 2):
        await _insert(store, "filler")
    with pytest.raises(_Refused):
        await _refused_write(store, "failed first")
    await _insert(store, "after")
    await store.close()
    notes = _notes(path)
    assert notes == ["before", *["filler"] * (GROUP_COMMIT - 2), "after"]


async def test_a_commit_that_fails_stops_every_later_write(tmp_path: Path) -> None:
    path = tmp_path / "sim.db"
    store = await _sole(path)
    async with store._write() as db:  # noqa: SLF001
        # A deferred foreign key is checked at COMMIT: a row that breaks it fails the commit.
        await db.execute("CREATE TABLE parents(id INTEGER PRIMARY KEY)")
        await db.execute("CREATE TABLE children(parent INTEGER REFERENCES parents(id) "
                         "DEFERRABLE INITIALLY DEFERRED)")
    await store.close()
    store = await SqliteStore.open(path, durable=False, inline=True)
    async with store._write() as db:  # noqa: SLF001
        await db.execute("INSERT INTO children(parent) VALUES (7)")
    for _ in range(GROUP_COMMIT - 2):
        await _insert(store, "undone")
    with pytest.raises(sqlite3.IntegrityError):
        await _insert(store, "the write whose commit fails")
    with pytest.raises(StoreError, match="no more writes"):
        await _insert(store, "later")
    await store.close()
    assert _notes(path) == []
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT COUNT(*) FROM children").fetchone() == (0,)


async def test_a_write_whose_transaction_sqlite_ended_stops_every_later_write(
        tmp_path: Path) -> None:
    path = tmp_path / "sim.db"
    store = await _sole(path)
    await store.close()
    store = await SqliteStore.open(path, durable=False, inline=True)
    await _insert(store, "undone")
    with pytest.raises(_Refused):
        await _ending_write(store)
    with pytest.raises(StoreError, match="no more writes"):
        await _insert(store, "later")
    await store.close()
    assert _notes(path) == []
