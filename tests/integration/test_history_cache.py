"""A store that holds its SQLite file alone (`simulate`'s) keeps accounts' attempts in memory:
what it reads from there is what its history query reads from the file, whatever was written.

SQLite only: the cache is the exclusive SQLite store's.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dispatcher.contact.engine import outcome_record
from dispatcher.domain.contact import Medium, Outcome, PastAttempt, Role
from dispatcher.ingest.classify import classify
from dispatcher.store import AttemptRow, OutcomeRow, Store, open_store
from dispatcher.store.sqlite import SqliteStore
from dispatcher.store.sqlite.inline import InlineConnection
from dispatcher.store.sqlite.store import GROUP_COMMIT
from tests.support import encode, overdue_at, overdue_event

pytestmark = pytest.mark.sqlite

START = datetime(2026, 12, 1, 15, tzinfo=UTC)
ACCOUNTS = ["A-1", "A-2", "A-3"]


def _sqlite(store: Store) -> SqliteStore:
    assert isinstance(store, SqliteStore)
    return store


@contextmanager
def _uncached(store: SqliteStore) -> Iterator[None]:
    kept = store._history_cache  # noqa: SLF001 - the test reads around the cache
    assert kept is not None
    store._history_cache = None  # noqa: SLF001
    try:
        yield
    finally:
        store._history_cache = kept  # noqa: SLF001


async def _both(store: SqliteStore, since: datetime
                ) -> tuple[dict[str, tuple[PastAttempt, ...]], dict[str, tuple[PastAttempt, ...]]]:
    """The accounts' attempts from the cache, and as the history query reads them."""
    cached = await store._history(ACCOUNTS, since)  # noqa: SLF001
    with _uncached(store):
        read = await store._history(ACCOUNTS, since)  # noqa: SLF001
    return cached, read


def _attempt(n: int, account: str, at: datetime, role: Role = Role.DEBTOR) -> AttemptRow:
    person = "debtor" if role is Role.DEBTOR else f"c-{account}"
    return AttemptRow(f"at-{n}", account, person, role, f"+1212555{n:04d}", Medium.CALL,
                      "middle", "day", "rule", "template", at, 10)


async def _decide(store: Store, *attempts: AttemptRow) -> None:
    await store.record_decisions(attempts=attempts, plans=[], audit=[], now=START,
                                 config_version="v")


async def _outcome(store: Store, attempt_id: str, outcome: Outcome, at: datetime) -> None:
    await store.record_outcomes([OutcomeRow(attempt_id, outcome, at)], now=at,
                                config_version="v", audit_for=outcome_record)


@pytest.fixture(params=[1, GROUP_COMMIT], ids=["a commit per write", "grouped commits"])
async def store(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[SqliteStore]:
    async with open_store(tmp_path / "sim.db", durable=False, inline=True,
                          group_commit=request.param) as opened:
        made = _sqlite(opened)
        await made.record_batch([classify(encode(overdue_event(n, a)), "t", 65536)
                                 for n, a in enumerate(ACCOUNTS)], now=START,
                                config_version="v")
        yield made


async def test_the_cached_attempts_are_the_stored_ones_through_every_kind_of_write(
        store: SqliteStore) -> None:
    day = timedelta(days=1)
    await _decide(store, _attempt(1, "A-1", START), _attempt(2, "A-2", START),
                  _attempt(3, "A-1", START + timedelta(minutes=5), Role.EMERGENCY))
    cached, read = await _both(store, START - day)  # read from the file, then kept
    assert cached == read
    assert len(read["A-1"]) == 2
    await _outcome(store, "at-1", Outcome.NO_ANSWER, START + timedelta(minutes=1))
    await _outcome(store, "at-2", Outcome.NOT_SENT, START + timedelta(minutes=1))
    await _outcome(store, "at-1", Outcome.COMPLETED, START + timedelta(minutes=2))  # a repeat
    await _decide(store, _attempt(4, "A-1", START + 3 * day), _attempt(5, "A-3", START + day))
    cached, read = await _both(store, START - day)
    assert cached == read
    assert read["A-1"][0].outcome is Outcome.NO_ANSWER
    assert "A-2" not in read  # its only attempt was never sent
    # Later: the first debtor attempt falls out of the stretch read, the third party's stays.
    cached, read = await _both(store, START + day)
    assert cached == read
    assert [a.attempt_id for a in read["A-1"]] == ["at-3", "at-4"]
    # Earlier again: the accounts are read from the file, not from what was kept.
    cached, read = await _both(store, START - day)
    assert cached == read
    assert [a.attempt_id for a in read["A-1"]] == ["at-1", "at-3", "at-4"]


async def test_a_write_by_any_statement_reaches_the_cache(store: SqliteStore) -> None:
    await _decide(store, _attempt(1, "A-1", START), _attempt(2, "A-2", START),
                  _attempt(3, "A-3", START))
    await _outcome(store, "at-3", Outcome.NOT_SENT, START)
    await _both(store, START)  # A-3 is kept without its attempt, never sent
    async with store._write() as db:  # noqa: SLF001 - writes no store method makes
        await db.execute("DELETE FROM attempts WHERE attempt_id = 'at-1'")
        await db.execute("UPDATE attempts SET outcome = 'no-answer' WHERE attempt_id = 'at-3'")
    cached, read = await _both(store, START)
    assert cached == read
    assert sorted(read) == ["A-2", "A-3"]
    async with store._write() as db:  # noqa: SLF001
        await db.execute("UPDATE attempts SET account_id = 'A-3' WHERE attempt_id = 'at-2'")
    cached, read = await _both(store, START)
    assert cached == read
    assert [a.attempt_id for a in read["A-3"]] == ["at-2", "at-3"]


async def test_attempts_kept_out_of_time_order_are_read_in_time_order(
        store: SqliteStore) -> None:
    hour = timedelta(hours=1)
    await _decide(store, _attempt(1, "A-1", START), _attempt(2, "A-1", START + hour))
    await _both(store, START - hour)  # kept, in time order
    # Moved before the first: the two are now kept out of time order.
    async with store._write() as db:  # noqa: SLF001 - a write no store method makes
        await db.execute("UPDATE attempts SET at = ? WHERE attempt_id = 'at-2'",
                         ("2026-12-01T14:30:00.000000Z",))
    cached, read = await _both(store, START - hour)
    assert cached == read
    assert [a.attempt_id for a in read["A-1"]] == ["at-2", "at-1"]
    # Added after them but earlier than the last kept.
    await _decide(store, _attempt(3, "A-1", START - timedelta(minutes=10)))
    cached, read = await _both(store, START - hour)
    assert cached == read
    assert [a.attempt_id for a in read["A-1"]] == ["at-2", "at-3", "at-1"]


async def test_a_number_another_account_called_is_found_and_the_others_are_not_asked_about(
        tmp_path: Path) -> None:
    numbers = {"A-1": "+12125550101", "A-2": "+12125550102", "A-3": "+12125550103"}
    async with open_store(tmp_path / "sim.db", durable=False, inline=True) as opened:
        store = _sqlite(opened)
        await store.record_batch(
            [classify(encode(overdue_at(START, account, 10, number, "America/New_York",
                                        "US-NY")), "t", 65536)
             for account, number in numbers.items()], now=START, config_version="v")
        # A-1 calls its own number; A-3 calls A-2's (one it listed once, say).
        await _decide(store, _attempt(1, "A-1", START)._replace(number=numbers["A-1"]),
                      _attempt(2, "A-3", START)._replace(number=numbers["A-2"]))
        asked: list[str] = []
        db = store._db  # noqa: SLF001 - the statements the store runs are counted
        assert isinstance(db, InlineConnection)
        db.connection.set_trace_callback(asked.append)
        since = START - timedelta(days=2)
        cached = await store.contexts(ACCOUNTS, since)
        db.connection.set_trace_callback(None)
        with _uncached(store):
            read = await store.contexts(ACCOUNTS, since)
    assert cached == read
    assert [a.attempt_id for a in read["A-2"].number_history] == ["at-2"]
    assert read["A-1"].number_history == read["A-3"].number_history == ()
    # Of the three numbers, only the one an account that does not list it called was looked up
    # among the attempts.
    looked = [q for q in asked if "MIN(account_id), MAX(account_id) FROM attempts" in q]
    assert len(looked) == 1
    assert numbers["A-2"] in looked[0]
    assert numbers["A-1"] not in looked[0]
    assert numbers["A-3"] not in looked[0]
    # Opened again, the store knows who called what before it opened.
    async with open_store(tmp_path / "sim.db", durable=False, inline=True,
                          create=False) as opened:
        again = await _sqlite(opened).contexts(ACCOUNTS, since)
    assert again == read


@pytest.mark.parametrize("store", [1], indirect=True)  # grouped, a failed write ends the store
async def test_a_transaction_rolled_back_leaves_the_cache_as_the_file(
        store: SqliteStore) -> None:
    await _decide(store, _attempt(1, "A-1", START))
    await _both(store, START)
    with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
        # The second attempt's id is taken: the first attempt is rolled back with it.
        await _decide(store, _attempt(2, "A-1", START + timedelta(hours=1)),
                      _attempt(1, "A-2", START + timedelta(hours=1)))
    cached, read = await _both(store, START)
    assert cached == read
    assert [a.attempt_id for a in read["A-1"]] == ["at-1"]


@pytest.mark.parametrize("store", [GROUP_COMMIT], indirect=True)
async def test_a_failed_write_of_grouped_commits_leaves_the_cache_as_the_file(
        store: SqliteStore) -> None:
    await _decide(store, _attempt(1, "A-1", START))
    await _both(store, START)
    with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
        await _decide(store, _attempt(1, "A-2", START + timedelta(hours=1)))
    cached, read = await _both(store, START)
    assert cached == read
    # The write before it had not been committed yet: it went with the failed one.
    assert read == {}


async def test_only_a_store_that_holds_its_file_alone_keeps_attempts(tmp_path: Path) -> None:
    async with open_store(tmp_path / "store.db", inline=True) as durable:
        assert _sqlite(durable)._history_cache is None  # noqa: SLF001


# Writes a store method or anyone else may make, each on one of a few attempts, and reads.
_ids = st.sampled_from([f"at-{n}" for n in range(4)])
_row = st.tuples(_ids, st.sampled_from(ACCOUNTS), st.sampled_from([Role.DEBTOR, Role.EMERGENCY]),
                 st.integers(-72, 72))
_read = st.tuples(st.just("read"), st.integers(-72, 72))
_write = st.one_of(
    st.tuples(st.just("attempts"), st.lists(_row, min_size=1, max_size=2)),
    st.tuples(st.just("outcome"), _ids, st.sampled_from(list(Outcome))),
    st.tuples(st.just("raw"), st.sampled_from([
        "UPDATE attempts SET outcome = NULL WHERE attempt_id = ?",
        "UPDATE attempts SET outcome = 'not-sent' WHERE attempt_id = ?",
        "UPDATE attempts SET at = '2026-11-20T00:00:00.000000Z' WHERE attempt_id = ?",
        "UPDATE attempts SET account_id = 'A-2' WHERE attempt_id = ?",
        "DELETE FROM attempts WHERE attempt_id = ?",
        "INSERT OR REPLACE INTO attempts(attempt_id, account_id, person, role, number, medium, "
        "at) VALUES (?, 'A-3', 'debtor', 'debtor', '+12125550100', 'sms', "
        "'2026-12-01T16:00:00.000000Z')"]), _ids),
    _read, _read)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_write, max_size=30))
async def test_whatever_is_written_the_cache_reads_as_the_file(
        tmp_path_factory: pytest.TempPathFactory, writes: list[tuple[object, ...]]) -> None:
    folder = tmp_path_factory.mktemp("sim")
    async with open_store(folder / "sim.db", durable=False, inline=True) as opened:
        store = _sqlite(opened)
        await store.record_batch([classify(encode(overdue_event(n, a)), "t", 65536)
                                  for n, a in enumerate(ACCOUNTS)], now=START,
                                 config_version="v")
        since = START - timedelta(hours=72)
        for write in writes:
            match write:
                case ("attempts", list(rows)):
                    made = [_attempt(int(i[3:]), account, START + timedelta(hours=hours), role)
                            for i, account, role, hours in rows]
                    # An id taken fails the batch: all of it is rolled back.
                    with contextlib.suppress(sqlite3.IntegrityError):
                        await _decide(store, *made)
                case ("outcome", str(attempt_id), Outcome() as outcome):
                    await _outcome(store, attempt_id, outcome, START)
                case ("raw", str(statement), str(attempt_id)):
                    async with store._write() as db:  # noqa: SLF001
                        await db.execute(statement, (attempt_id,))
                case ("read", int(hours)):
                    since = START + timedelta(hours=hours)
                    cached, read = await _both(store, since)
                    assert cached == read
        cached, read = await _both(store, since)
        assert cached == read
