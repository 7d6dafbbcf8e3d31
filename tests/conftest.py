"""Shared fixtures: a Mosquitto of the test's own, config folders pointing at it, and a store
on SQLite or on PostgreSQL (a database of the session's own, a schema of the test's own)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests import postgres
from tests.support import SQLITE_STORE_URL, STORES, Broker, Daemon


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """A fresh Mosquitto with persistence, on a free loopback port."""
    b = Broker(tmp_path / "broker")
    b.start()
    yield b
    b.stop()


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    """Daemons a test starts; every one is killed at the end if still running."""
    started: list[Daemon] = []
    yield started
    for daemon in started:
        daemon.ensure_stopped()


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A database of this test session's own on the local PostgreSQL, dropped at the end."""
    try:
        url = postgres.create_database()
    except (OSError, ConnectionError) as exc:
        pytest.fail(f"PostgreSQL is not reachable at {postgres.ADMIN_URL} ({exc}); "
                    "`bash scripts/test` starts it, or set DISPATCHER_TEST_POSTGRES")
    yield url
    postgres.drop_database(url)


@pytest.fixture
def postgres_url(postgres_database: str) -> Iterator[str]:
    """A URL whose search path is a fresh, empty schema, dropped after the test."""
    url = postgres.create_schema(postgres_database)
    yield url
    postgres.drop_schema(url)


@pytest.fixture(params=STORES)
def store_at(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    """Where a test's store is: a SQLite file, then a PostgreSQL schema."""
    if request.param == "sqlite":
        return tmp_path / "s.db"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture(params=STORES)
def new_store_url(request: pytest.FixtureRequest) -> Iterator[Callable[[], str]]:
    """Makes `[store] url`s for a test's configs, on SQLite, then on PostgreSQL: each config
    folder's own SQLite file, or a fresh schema per call (dropped after the test)."""
    made: list[str] = []
    database = "" if request.param == "sqlite" else request.getfixturevalue("postgres_database")

    def new() -> str:
        if not database:
            return SQLITE_STORE_URL
        made.append(postgres.create_schema(database))
        return made[-1]

    yield new
    for url in made:
        postgres.drop_schema(url)


@pytest.fixture(scope="module", params=STORES)
def module_store_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """The `[store] url` of a daemon that a module's tests share: SQLite, then a PostgreSQL
    schema of the module's own."""
    if request.param == "sqlite":
        yield SQLITE_STORE_URL
        return
    url = postgres.create_schema(request.getfixturevalue("postgres_database"))
    yield url
    postgres.drop_schema(url)


@pytest.fixture
def store_url(new_store_url: Callable[[], str]) -> str:
    """The `[store] url` of a test's config (make_config's `store_url`): a SQLite file in the
    config's folder, then a fresh PostgreSQL schema."""
    return new_store_url()
