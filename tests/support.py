"""Test helpers: a real Mosquitto on a free port, config folders, a daemon subprocess, events."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import tomllib
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from dispatcher.audit.verify import LogVerification, verify_rows
from dispatcher.config.settings import resolve_store_path
from dispatcher.store import StoreLocation, is_postgres_url
from tests.postgres import store_execute, store_rows

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port on loopback that nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(predicate: Callable[[], bool], timeout: float, what: str,
               interval: float = 0.05) -> None:
    """Poll `predicate` until it holds; fail the test naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


async def verify_log(rows: Iterable[tuple[int, str]]) -> LogVerification:
    """What `dispatcher audit verify` concludes about (stored seq, record JSON) rows of a log
    that retention never pruned: the same function, fed from memory instead of the store."""
    async def feed() -> AsyncIterator[tuple[int, str]]:
        for row in rows:
            yield row

    return await verify_rows(feed(), None, ())


@dataclass
class Broker:
    """A Mosquitto process of the test's own, with persistence in a folder of its own."""

    folder: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    password_file: Path | None = None

    def conf(self) -> Path:
        """Write the broker's config file; the shipped config's limits, this test's port."""
        shipped = (ROOT / "config" / "mosquitto.conf").read_text()
        lines = [line for line in shipped.splitlines()
                 if not line.startswith(("listener", "persistence_location"))]
        lines += [f"listener {self.port} 127.0.0.1",
                  f"persistence_location {self.folder}/",
                  f"log_dest file {self.folder}/mosquitto.log"]
        if self.password_file is not None:
            lines = [line for line in lines if not line.startswith("allow_anonymous")]
            lines += ["allow_anonymous false", f"password_file {self.password_file}"]
        if os.geteuid() == 0:
            lines.append("user root")
        path = self.folder / "mosquitto.conf"
        path.write_text("\n".join(lines) + "\n")
        return path

    def start(self) -> None:
        """Start the broker and wait until it accepts connections."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(["mosquitto", "-c", str(self.conf())],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(self._accepts, 10, f"mosquitto on port {self.port}")

    def _accepts(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        """Stop gracefully (SIGTERM), so that persistence is written."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=15)
        self.process = None

    @property
    def url(self) -> str:
        """The broker's mqtt:// URL."""
        return f"mqtt://127.0.0.1:{self.port}"


# The fixtures' events carry fixed dates (December 2026) that may lie ahead of the wall clock;
# tests of the far-future check pass `max_future_seconds=None` to keep the shipped default.
FIXTURE_MAX_FUTURE_SECONDS = 366 * 86400

# A SQLite file in the config's own folder: every config folder has a store of its own.
SQLITE_STORE_URL = "sqlite://data/dispatcher.db"

# Each store as a parameter: its id selects it with `-k`, its mark with `-m`.
STORES = [pytest.param("sqlite", marks=pytest.mark.sqlite),
          pytest.param("postgresql", marks=pytest.mark.postgresql)]


def make_config(folder: Path, broker_url: str, *, extra: str = "", client_id: str = "disp-test",
                log_format: str = "json",
                max_future_seconds: float | None = FIXTURE_MAX_FUTURE_SECONDS,
                store_url: str = SQLITE_STORE_URL) -> Path:
    """A config folder: dispatcher.toml, the shipped profiles, schedules and templates."""
    if max_future_seconds is not None:
        extra = _in_table(extra, "ingest", f"max_future_seconds = {max_future_seconds}")
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copytree(ROOT / "config" / "profiles", folder / "profiles", dirs_exist_ok=True)
    shutil.copytree(ROOT / "config" / "schedules", folder / "schedules", dirs_exist_ok=True)
    shutil.copy(ROOT / "config" / "templates.toml", folder / "templates.toml")
    path = folder / "dispatcher.toml"
    path.write_text(f"""
[service]
log_level = "info"
log_format = "{log_format}"
shutdown_grace_seconds = 10

[mqtt]
url = "{broker_url}"
client_id = "{client_id}"
topics = ["collections/events/#"]
reconnect_min_seconds = 0.2
reconnect_max_seconds = 1.0

[store]
url = "{store_url}"

[webhook]
port = 0
{extra}
""")
    return path


def _in_table(extra: str, table: str, line: str) -> str:
    """`extra` with `line` first in its `[table]`, which is added at the end if missing."""
    header = f"[{table}]\n"
    if header in extra:
        return extra.replace(header, f"{header}{line}\n", 1)
    return f"{extra}\n{header}{line}\n"


def store_of(config: Path) -> StoreLocation:
    """The store a config file names: its SQLite file, or its PostgreSQL URL."""
    url = str(tomllib.loads(config.read_text())["store"]["url"])
    return url if is_postgres_url(url) else resolve_store_path(url, config.parent)


def db_path(config: Path) -> Path:
    """The SQLite file of a config whose store is SQLite."""
    where = store_of(config)
    assert isinstance(where, Path), f"{config} names a PostgreSQL store"
    return where


def query(config: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Run a read-only query (`?` marks, SQL both stores speak) against the daemon's store
    from outside; nothing while the store or its tables do not exist yet."""
    where = store_of(config)
    if not isinstance(where, Path):
        try:
            return store_rows(where, sql, params)
        except asyncpg.UndefinedTableError:
            return []
    if not where.exists():
        return []
    with sqlite3.connect(f"file:{where}?mode=ro", uri=True, timeout=10) as db:
        try:
            return list(db.execute(sql, params))
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return []
            raise


def execute(config: Path, sql: str, params: tuple[Any, ...] = ()) -> None:
    """Run one statement (`?` marks) on the config's store from outside, committed."""
    store_execute(store_of(config), sql, params)


def stored_events(config: Path) -> int:
    """How many events the store holds."""
    rows = query(config, "SELECT COUNT(*) FROM events")
    return int(rows[0][0]) if rows else 0


def audited(config: Path, kind: str, key: str) -> list[Any]:
    """`key` of each audit record of `kind`, in order (decoded here: the stores' JSON
    functions differ)."""
    return [json.loads(record).get(key) for (record,) in query(
        config, "SELECT record FROM audit WHERE kind = ? ORDER BY seq", (kind,))]


class Daemon:
    """`python -m dispatcher run` as a child process, with its log in a file."""

    def __init__(self, config: Path, env: dict[str, str] | None = None) -> None:
        self.config = config
        self.env = env
        self.log = config.parent / "daemon.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, wait_connected: bool = True) -> None:
        """Start the daemon; optionally wait until it has connected to the broker."""
        self._offset = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "dispatcher", "run", "--config", str(self.config)],
                stdout=log, stderr=log, cwd=ROOT, env=self.env)
        if wait_connected:
            wait_until(lambda: "connected to broker" in self.new_log(), 20, "daemon connected")

    def new_log(self) -> str:
        """What the daemon logged since its latest start."""
        if not self.log.exists():
            return ""
        with self.log.open("rb") as f:
            f.seek(self._offset)
            return f.read().decode(errors="replace")

    def daemon_pid(self) -> int:
        """The daemon process: the only child of `dispatcher run` (its supervisor)."""
        assert self.process is not None
        pid = self.process.pid
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        assert len(children) == 1, children
        return int(children[0])

    def kill(self) -> None:
        """SIGKILL: no chance to drain or flush anything."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=10)

    def terminate(self, timeout: float = 20) -> int:
        """SIGTERM and wait for the exit code."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def ensure_stopped(self) -> None:
        """Clean up after a test."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


def overdue_event(n: int, account: str | None = None, *, occurred_at: str | None = None,
                  days: int = 3) -> dict[str, Any]:
    """A valid account.overdue event with a deterministic id."""
    return {
        "schema": 1,
        "event_id": f"e-{n:06d}",
        "type": "account.overdue",
        "occurred_at": occurred_at or f"2026-12-01T09:{(n // 60) % 60:02d}:{n % 60:02d}-05:00",
        "account_id": account or f"A-{n % 997:04d}",
        "data": {
            "days_past_due": days,
            "amount_due": "120.50",
            "currency": "USD",
            "debtor": {
                "name": "Jo Doe",
                "timezone": "America/Chicago",
                "region": "US-TX",
                "phones": [{"number": "+15125550100", "type": "mobile",
                            "sms_consent": True, "call_consent": True}],
            },
        },
    }


def overdue_at(at: datetime, account: str, days: int, number: str, zone: str, region: str,
               contacts: list[dict[str, str]] | None = None) -> dict[str, Any]:
    """An account.overdue event at `at` for a debtor with one mobile number in `zone`."""
    return {"schema": 1, "event_id": f"e-{account}", "type": "account.overdue",
            "occurred_at": at.isoformat(), "account_id": account,
            "data": {"days_past_due": days, "amount_due": "80.00", "currency": "USD",
                     "debtor": {"name": "Lee Ray", "timezone": zone, "region": region,
                                "phones": [{"number": number, "type": "mobile",
                                            "sms_consent": True, "call_consent": True}]},
                     "contacts": contacts or []}}


def evening_schedule(start: str, end: str) -> str:
    """A schedule file, `name = "evening"`, whose one stage calls once a day between `start` and
    `end` (HH:MM, the debtor's local time) on weekdays: a plan can only be in that window."""
    return (f'name = "evening"\n[windows]\nevening = {{ start = "{start}", end = "{end}" }}\n'
            '[[stages]]\nname = "any"\ndays_past_due = [1]\nchannels = ["call"]\n'
            'attempts_per_day = 1\nmin_gap_minutes = 240\nwindows = ["evening"]\n')


def encode(event: dict[str, Any]) -> bytes:
    """JSON bytes of an event."""
    return json.dumps(event).encode()


def start_daemon(folder: Path, broker: Broker, started: list[Daemon], *,
                 store_url: str = SQLITE_STORE_URL) -> tuple[Path, Daemon]:
    """Write a config for `broker` (and the store at `store_url`) under `folder`, start a daemon
    on it, and note it for cleanup."""
    config = make_config(folder, broker.url, store_url=store_url)
    daemon = Daemon(config)
    started.append(daemon)
    daemon.start()
    return config, daemon
