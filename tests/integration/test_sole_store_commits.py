"""A throw-away store (as `simulate` opens it) that commits many writes at a time: the file gets
them all by the time the store is closed, and a write or commit that fails undoes every write
since the last commit and stops every later one, instead of letting later writes build on what
is gone. Its audit observers hear of a write once it is committed, never of one undone.

SQLite only: a durable store commits each write on its own.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from dispatcher.errors import StoreError
from dispatcher.store.sqlite import SqliteStore
from dispatcher.store.sqlite.store import GROUP_COMMIT

pytestmark = pytest.mark.sqlite

_NOW = datetime(2026, 12, 1, 9, tzinfo=UTC)


class _Refused(Exception):
    pass


async def _open(path: Path, group: int = GROUP_COMMIT) -> SqliteStore:
    return await SqliteStore.open(path, durable=False, inline=True, group_commit=group)


async def _insert(store: SqliteStore, value: str) -> None:
    async with store._write() as db:  # noqa: SLF001 - a write no store method makes
        await db.execute("INSERT INTO notes(value) VALUES (?)", (value,))


async def _refused_write(store: SqliteStore) -> None:
    async with store._write() as db:  # noqa: SLF001
        await db.execute("INSERT INTO notes(value) VALUES ('failed')")
        raise _Refused


async def _ending_write(store: SqliteStore) -> None:
    async with store._write() as db:  # noqa: SLF001
        # As a full disk or an I/O error would: the transaction ends under the write.
        await db.execute("ROLLBACK")
        raise _Refused


def _notes(path: Path) -> list[str]:
    with sqlite3.connect(path) as db:
        return [row[0] for row in db.execute("SELECT value FROM notes ORDER BY rowid")]


async def _with_notes(path: Path) -> None:
    store = await _open(path)
    async with store._write() as db:  # noqa: SLF001
        await db.execute("CREATE TABLE notes(value TEXT NOT NULL)")
    await store.close()


async def test_every_write_reaches_the_file_once_the_store_is_closed(tmp_path: Path) -> None:
    path = tmp_path / "sim.db"
    await _with_notes(path)
    store = await _open(path)
    written = [f"n{n}" for n in range(GROUP_COMMIT * 2 + 5)]  # two commits and a remainder
    for value in written:
        await _insert(store, value)
    rows = await store._fetch("SELECT value FROM notes ORDER BY rowid")  # noqa: SLF001
    assert [row[0] for row in rows] == written  # the store's own reads see every write
    await store.close()
    assert _notes(path) == written


@pytest.mark.parametrize("fail", [_refused_write, _ending_write],
                         ids=["a write raises", "SQLite ends the transaction"])
async def test_a_failed_write_undoes_the_writes_since_the_last_commit_and_stops_later_ones(
        tmp_path: Path, fail: Callable[[SqliteStore], Awaitable[None]]) -> None:
    path = tmp_path / "sim.db"
    await _with_notes(path)
    store = await _open(path)
    committed = [f"n{n}" for n in range(GROUP_COMMIT)]
    for value in [*committed, "undone"]:
        await _insert(store, value)
    with pytest.raises(_Refused):
        await fail(store)
    with pytest.raises(StoreError, match="no more writes"):
        await _insert(store, "later")
    await store.close()
    assert _notes(path) == committed


async def test_a_commit_that_fails_stops_every_later_write(tmp_path: Path) -> None:
    path = tmp_path / "sim.db"
    await _with_notes(path)
    store = await _open(path)
    async with store._write() as db:  # noqa: SLF001
        # A deferred foreign key is checked at COMMIT: a row that breaks it fails the commit.
        await db.execute("CREATE TABLE parents(id INTEGER PRIMARY KEY)")
        await db.execute("CREATE TABLE children(parent INTEGER REFERENCES parents(id) "
                         "DEFERRABLE INITIALLY DEFERRED)")
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
        assert db.execute("SELECT name FROM sqlite_master WHERE name = 'children'"
                          ).fetchall() == []


async def test_a_store_that_commits_each_write_keeps_working_after_a_failed_one(
        tmp_path: Path) -> None:
    path = tmp_path / "sim.db"
    await _with_notes(path)
    store = await _open(path, group=1)
    await _insert(store, "before")
    with pytest.raises(_Refused):
        await _refused_write(store)
    await _insert(store, "after")
    await store.close()
    assert _notes(path) == ["before", "after"]


def _kinds(told: list[Sequence[dict[str, Any]]]) -> list[str]:
    return [record["kind"] for records in told for record in records]


async def test_audit_observers_are_told_of_writes_once_they_commit(tmp_path: Path) -> None:
    path = tmp_path / "sim.db"
    store = await _open(path)
    told: list[Sequence[dict[str, Any]]] = []
    store.audit_observers.append(told.append)
    for n in range(GROUP_COMMIT - 1):
        await store.append_audit([{"kind": f"note-{n}"}], now=_NOW)
    assert told == []  # none of them is in the file yet
    await store.append_audit([{"kind": "the write that commits"}], now=_NOW)
    assert _kinds(told) == [*(f"note-{n}" for n in range(GROUP_COMMIT - 1)),
                            "the write that commits"]
    told.clear()
    await store.append_audit([{"kind": "left for the close"}], now=_NOW)
    assert told == []
    await store.close()
    assert _kinds(told) == ["left for the close"]
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT COUNT(*) FROM audit").fetchone()[0] == GROUP_COMMIT + 1


async def test_audit_observers_are_never_told_of_writes_a_failure_undid(tmp_path: Path) -> None:
    path = tmp_path / "sim.db"
    await _with_notes(path)
    store = await _open(path)
    told: list[Sequence[dict[str, Any]]] = []
    store.audit_observers.append(told.append)
    await store.append_audit([{"kind": "undone"}], now=_NOW)
    with pytest.raises(_Refused):
        await _refused_write(store)
    await store.close()
    assert told == []
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT COUNT(*) FROM audit").fetchone()[0] == 0
