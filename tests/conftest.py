"""Shared fixtures: a Mosquitto of the test's own, config folders pointing at it, and a store
on SQLite or on PostgreSQL (a database of the session's own, a schema of the test's own)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import postgres
from tests.support import Broker, Daemon


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


@pytest.fixture(params=["sqlite", "postgresql"])
def store_at(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    """Where a test's store is: a SQLite file, then a PostgreSQL schema."""
    if request.param == "sqlite":
        return tmp_path / "s.db"
    url: str = request.getfixturevalue("postgres_url")
    return url
