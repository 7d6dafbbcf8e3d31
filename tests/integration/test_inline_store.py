"""The writer process's store: statements on the loop's thread, a durable commit on a worker.

SQLite only: the inline connection is the SQLite store's.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dispatcher.ingest.classify import classify
from dispatcher.store import Store, open_store
from dispatcher.store.sqlite import SqliteStore
from dispatcher.store.sqlite.inline import InlineConnection
from tests.support import encode, overdue_event

pytestmark = pytest.mark.sqlite

NOW = datetime(2026, 12, 1, 15, tzinfo=UTC)


def _connection(store: Store) -> sqlite3.Connection:
    assert isinstance(store, SqliteStore)
    db = store._db  # noqa: SLF001 - the test watches which thread runs each statement
    assert isinstance(db, InlineConnection)
    return db._connection  # noqa: SLF001


def _events(path: Path) -> int:
    with sqlite3.connect(path) as other:
        return int(other.execute("SELECT COUNT(*) FROM events").fetchone()[0])


async def test_a_durable_commit_runs_on_a_worker_thread(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    async with open_store(path, inline=True) as store:
        threads: dict[str, set[int]] = {}
        _connection(store).set_trace_callback(
            lambda sql: threads.setdefault(sql.split()[0], set()).add(threading.get_ident()))
        item = classify(encode(overdue_event(1)), "t", 65536)
        await store.record_batch([item], now=NOW, config_version="v")
        assert _events(path) == 1
    loop_thread = threading.get_ident()
    assert threads["INSERT"] == {loop_thread}
    assert threads["COMMIT"]
    assert loop_thread not in threads["COMMIT"]


async def test_a_throw_away_store_commits_on_the_loop_thread(tmp_path: Path) -> None:
    async with open_store(tmp_path / "store.db", inline=True, durable=False) as store:
        threads: set[int] = set()
        _connection(store).set_trace_callback(
            lambda sql: threads.add(threading.get_ident()) if sql == "COMMIT" else None)
        item = classify(encode(overdue_event(1)), "t", 65536)
        await store.record_batch([item], now=NOW, config_version="v")
    assert threads == {threading.get_ident()}


async def test_a_cancelled_caller_waits_for_the_commit_to_end(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    async with open_store(path, inline=True) as store:
        committing, release = threading.Event(), threading.Event()

        def hold_commit(sql: str) -> None:
            if sql == "COMMIT":
                committing.set()
                release.wait(10)

        _connection(store).set_trace_callback(hold_commit)
        item = classify(encode(overdue_event(1)), "t", 65536)
        task = asyncio.create_task(store.record_batch([item], now=NOW, config_version="v"))
        assert await asyncio.to_thread(committing.wait, 10)
        task.cancel()
        # The time under test: a caller that let go of the commit on cancel would be done
        # within it. This one is still waiting: the store's lock is held, nothing else may run.
        await asyncio.sleep(0.05)
        assert not task.done()
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await task
        _connection(store).set_trace_callback(None)
        assert _events(path) == 1
        # The connection is free again and the chain continues.
        second = classify(encode(overdue_event(2)), "t", 65536)
        await store.record_batch([second], now=NOW, config_version="v")
        assert await store.count_events() == 2
