"""Shared fixtures: a Mosquitto of the test's own and config folders pointing at it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

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
