"""A fleet of daemons on one PostgreSQL store and one broker (a shared group), under faults: a
member killed mid-burst, the database stopped mid-burst. Every event is stored once, every due
account decided once (those a killed member had claimed too, once its lease ran out), no attempt
sent twice, and the audit log verifies."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from dispatcher.config.settings import load_config
from dispatcher.domain.clock import VirtualClock
from dispatcher.errors import StoreError
from dispatcher.service.app import Dispatcher
from dispatcher.store import open_store
from tests.integration.publish import publish_all
from tests.integration.test_twilio_crash import COUNTRIES, _number_in_daytime, _schedule_due_now
from tests.postgres import store_rows
from tests.support import (
    ROOT,
    Broker,
    Daemon,
    free_port,
    make_config,
    wait_until,
)

EVENTS = 20_000
ACCOUNTS = 2_000
# The shortest lease allowed: what a killed member had claimed is free again before the slot.
LEASE_SECONDS = 30
FLEET = ("one", "two", "three")
PG_BIN = Path("/usr/lib/postgresql/15/bin")


@dataclass
class Member:
    """One daemon of the fleet: its config, process and health port."""

    config: Path
    daemon: Daemon
    port: int


def _events(now: datetime, number: str, zone: str) -> Iterator[bytes]:
    """EVENTS events over ACCOUNTS accounts, each account's debtor on a number of its own."""
    for n in range(EVENTS):
        account = n % ACCOUNTS
        yield json.dumps({
            "schema": 1, "event_id": f"e-{n:06d}", "type": "account.overdue",
            "occurred_at": now.isoformat(), "account_id": f"A-{account:04d}",
            "data": {"days_past_due": 3 + n // ACCOUNTS, "amount_due": "9.00", "currency": "USD",
                     "debtor": {"name": "Pat Doe", "timezone": zone,
                                "phones": [{"number": f"{number[:-4]}{account:04d}",
                                            "type": "mobile", "sms_consent": True,
                                            "call_consent": True}]}},
        }).encode()


def _fleet(tmp_path: Path, broker: Broker, daemons: list[Daemon], store_url: str,
           now: datetime, zone: str) -> list[Member]:
    """Three daemons, one store, one shared group; each its own client id and health port."""
    fleet = []
    for name in FLEET:
        port = free_port()
        config = make_config(
            tmp_path / name, broker.url, client_id=f"disp-{name}", store_url=store_url,
            log_format="text",
            extra=('[contact]\nschedule = "now"\nsweep_seconds = 0.2\n'
                   '[compliance.limits]\ncontact_on_holidays = true\n'
                   # Whichever country's number is in daytime now has a profile.
                   '[compliance.regions]\n' + "".join(f'{c} = "us"\n' for c in COUNTRIES)))
        text = config.read_text().replace("[mqtt]\n", '[mqtt]\nshared_group = "fleet"\n', 1)
        text = text.replace("[store]\n", f"[store]\nclaim_lease_seconds = {LEASE_SECONDS}\n", 1)
        # Debug: the line for each delivery the provider took, which _sends counts.
        text = text.replace('log_level = "info"', 'log_level = "debug"', 1)
        config.write_text(text.replace("port = 0", f"port = {port}"))
        _schedule_due_now(config.parent, zone, now)
        daemon = Daemon(config)
        daemons.append(daemon)
        fleet.append(Member(config, daemon, port))
    for member in fleet:
        member.daemon.start()
    return fleet


async def _until(predicate: Callable[[], bool], seconds: float, what: str) -> None:
    """Poll a condition off the loop, so that publishing goes on meanwhile."""
    deadline = time.monotonic() + seconds
    while not await asyncio.to_thread(predicate):
        assert time.monotonic() < deadline, f"timed out after {seconds}s waiting for {what}"
        await asyncio.sleep(0.3)


def _count(store_url: str, sql: str) -> int:
    return int(store_rows(store_url, sql)[0][0])


def _stored(store_url: str) -> int:
    try:
        return _count(store_url, "SELECT COUNT(*) FROM events")
    except (OSError, ConnectionError):
        return 0


def _sends(fleet: list[Member]) -> Counter[str]:
    """How many times each attempt id was handed to the sandbox, over every member's log."""
    return Counter(re.findall(r"\bprovider took (at-[0-9a-f]{24}) ", "".join(
        m.daemon.log.read_text(errors="replace") for m in fleet)))


def _settled(store_url: str) -> bool:
    """Every account has its attempt and every attempt its outcome."""
    attempted = _count(store_url, "SELECT COUNT(DISTINCT account_id) FROM attempts")
    return (attempted == ACCOUNTS
            and _count(store_url, "SELECT COUNT(*) FROM attempts WHERE outcome IS NULL") == 0)


def _progress(store_url: str) -> str:
    """Where the accounts stand, for a test that timed out waiting for them."""
    due = store_rows(store_url, "SELECT next_attempt_at IS NULL, lease_owner IS NULL, "
                                "status, COUNT(*) FROM accounts GROUP BY 1, 2, 3")
    attempts = store_rows(store_url, "SELECT outcome, COUNT(*) FROM attempts GROUP BY 1")
    kinds = store_rows(store_url, "SELECT kind, COUNT(*) FROM audit GROUP BY 1")
    sample = store_rows(store_url, "SELECT account_id, next_attempt_at, lease_until, plan_json "
                                   "FROM accounts WHERE account_id NOT IN "
                                   "(SELECT account_id FROM attempts) LIMIT 3")
    return f"accounts {due}; attempts {attempts}; audit {kinds}; not attempted {sample}"


def _wait_settled(store_url: str) -> None:
    try:
        wait_until(lambda: _settled(store_url), 150, "every account attempted",
                   interval=1)
    except AssertionError as error:
        raise AssertionError(f"{error}: {_progress(store_url)}") from None


def _health(port: int) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _store_problem(port: int) -> str | None:
    """The problem `/healthz` names the store with, if it answers 503 with one."""
    try:
        status, body = _health(port)
    except OSError:
        return None
    # A running daemon names its store check; a supervisor waiting for the store, its reason.
    found = [f"{k}: {v}" for k, v in body.get("problems", {}).items()
             if "store" in k or "store" in v]
    return found[0] if status == 503 and found else None


def _reports_store(port: int) -> bool:
    return _store_problem(port) is not None


def _healthy(port: int) -> bool:
    try:
        return _health(port)[0] == 200
    except OSError:
        return False


def _check_exactly_once(store_url: str, fleet: list[Member]) -> Counter[str]:
    """Every event stored once, every account decided once, no attempt sent twice."""
    assert store_rows(store_url, "SELECT COUNT(*), COUNT(DISTINCT event_id) FROM events") == [
        (EVENTS, EVENTS)]
    assert _count(store_url, "SELECT COUNT(*) FROM dead_letters") == 0
    # One stage, one attempt a day: each account has exactly one attempt, at one instant.
    assert store_rows(store_url, "SELECT COUNT(*), COUNT(DISTINCT account_id), "
                                 "COUNT(DISTINCT account_id || '|' || at) FROM attempts") == [
        (ACCOUNTS,) * 3]
    outcomes = Counter(dict(store_rows(store_url, "SELECT outcome, COUNT(*) FROM attempts "
                                                  "GROUP BY outcome")))
    sends = _sends(fleet)
    assert max(sends.values()) == 1, [a for a, n in sends.items() if n > 1][:5]
    attempt_ids = {row[0] for row in store_rows(store_url, "SELECT attempt_id FROM attempts")}
    assert set(sends) <= attempt_ids
    # What the sandbox took was delivered; what a dying member recorded but never handed over
    # is marked for a person, never sent again blindly.
    assert outcomes["delivered"] == len(sends)
    assert outcomes["delivered"] + outcomes["unknown"] == ACCOUNTS, outcomes
    return outcomes


def _audit_verifies(config: Path) -> str:
    done = subprocess.run([sys.executable, "-m", "dispatcher", "audit", "verify", "--config",
                           str(config)], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          check=False)
    said = done.stdout + done.stderr
    assert done.returncode == 0, said
    assert said.startswith("OK: "), said
    return said


def _stop_all(fleet: list[Member]) -> None:
    for member in fleet:
        assert member.daemon.terminate(timeout=30) == 0, member.daemon.new_log()[-2000:]


@pytest.mark.slow
# Real time: the first slot is one to two minutes away.
@pytest.mark.timeout(300)
def test_a_member_killed_mid_burst_loses_nothing_and_doubles_nothing(
        tmp_path: Path, broker: Broker, daemons: list[Daemon], postgres_url: str) -> None:
    now = datetime.now(UTC)
    number, zone = _number_in_daytime(now)
    started = time.monotonic()
    fleet = _fleet(tmp_path, broker, daemons, postgres_url, now, zone)
    victim = fleet[1]
    dead_pid = victim.daemon.daemon_pid()
    held: list[int] = []

    async def burst() -> None:
        sending = asyncio.create_task(publish_all(broker.port, _events(now, number, zone)))
        await _until(lambda: _stored(postgres_url) >= EVENTS // 4, 90, "a quarter stored")
        victim.daemon.kill()
        # What it had claimed and not committed: the others decide it when the lease runs out.
        held.append(_count(postgres_url, "SELECT COUNT(*) FROM accounts WHERE lease_owner "
                                         f"LIKE '%:{dead_pid}:%'"))
        await sending

    asyncio.run(burst())
    published = time.monotonic() - started
    time.sleep(5)
    victim.daemon.start()
    wait_until(lambda: _stored(postgres_url) == EVENTS, 90, "every event stored", interval=0.5)
    _wait_settled(postgres_url)
    # Sweeps after the last attempt: none may decide or send again.
    time.sleep(3)
    _stop_all(fleet)
    outcomes = _check_exactly_once(postgres_url, fleet)
    said = _audit_verifies(fleet[0].config)
    print(f"\nfleet kill: published {EVENTS} in {published:.1f}s, settled in "
          f"{time.monotonic() - started:.1f}s; outcomes {dict(outcomes)}; {held[0]} accounts "
          f"under the killed process's lease when it died; {said.strip()}")


@dataclass
class Server:
    """A PostgreSQL server of the test's own, on a free port, which the test may stop."""

    folder: Path
    port: int

    def _run(self, *argv: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run([*prefix, *argv], check=True, capture_output=True, timeout=60)

    def init(self) -> None:
        """initdb with trust auth."""
        self._run(str(PG_BIN / "initdb"), "-D", str(self.folder / "data"), "-A", "trust",
                  "-U", "postgres")

    def start(self) -> None:
        """Start on the port; wait until it accepts connections."""
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.folder / "data"), "-w",
                  "-l", str(self.folder / "server.log"),
                  "-o", f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1",
                  "start")

    def stop(self) -> None:
        """Stop at once, dropping every connection."""
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.folder / "data"), "-w", "-m", "fast",
                  "stop")

    @property
    def url(self) -> str:
        """The URL of its `postgres` database."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"


@pytest.fixture
def own_server() -> Iterator[Server]:
    """A fresh PostgreSQL server, removed with its files at the end."""
    folder = Path(tempfile.mkdtemp(prefix="fleet-pg-"))
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    server = Server(folder, free_port())
    server.init()
    server.start()
    yield server
    with contextlib.suppress(subprocess.CalledProcessError):  # already stopped
        server.stop()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.slow
# Real time: the first slot is one to two minutes away.
@pytest.mark.timeout(300)
def test_the_store_stopped_mid_burst_is_reported_then_nothing_is_lost_or_doubled(
        tmp_path: Path, broker: Broker, daemons: list[Daemon], own_server: Server) -> None:
    now = datetime.now(UTC)
    number, zone = _number_in_daytime(now)
    started = time.monotonic()
    url = own_server.url
    fleet = _fleet(tmp_path, broker, daemons, url, now, zone)
    reported: dict[int, str] = {}

    async def burst() -> None:
        sending = asyncio.create_task(publish_all(broker.port, _events(now, number, zone)))
        await _until(lambda: _stored(url) >= EVENTS // 4, 90, "a quarter stored")
        await asyncio.to_thread(own_server.stop)
        down = time.monotonic()
        for member in fleet:
            await _until(partial(_reports_store, member.port), 15,
                           f"{member.config.parent.name} reports the store")
            reported[member.port] = _store_problem(member.port) or ""
        await asyncio.sleep(max(0.0, 20 - (time.monotonic() - down)))
        await asyncio.to_thread(own_server.start)
        await sending

    asyncio.run(burst())
    published = time.monotonic() - started
    for member in fleet:
        wait_until(partial(_healthy, member.port), 60,
                   f"{member.config.parent.name} healthy again", interval=0.5)
    wait_until(lambda: _stored(url) == EVENTS, 90, "every event stored", interval=0.5)
    _wait_settled(url)
    time.sleep(3)
    _stop_all(fleet)
    # The outage is waited out in the daemon: none of them dies of it.
    for member in fleet:
        assert "the daemon process exited" not in member.daemon.log.read_text(), member.config
    outcomes = _check_exactly_once(url, fleet)
    said = _audit_verifies(fleet[0].config)
    print(f"\nfleet store outage: published {EVENTS} in {published:.1f}s, settled in "
          f"{time.monotonic() - started:.1f}s; outcomes {dict(outcomes)}; reported "
          f"{sorted(set(reported.values()))}; {said.strip()}")


async def test_a_read_while_the_server_is_down_is_a_store_error(own_server: Server) -> None:
    async with open_store(own_server.url) as store:
        await asyncio.to_thread(own_server.stop)
        with pytest.raises(StoreError, match="PostgreSQL"):
            await store.unpublished(10)
        await asyncio.to_thread(own_server.start)
        assert await store.unpublished(10) == []


async def test_claims_a_failed_sweep_could_not_give_back_are_given_back_by_the_next(
        broker: Broker, tmp_path: Path, postgres_url: str) -> None:
    start = datetime(2026, 12, 7, 6, 0, tzinfo=UTC)
    config = load_config(make_config(tmp_path, broker.url, store_url=postgres_url,
                                     extra="[contact]\nsweep_seconds = 0.02\n"), {})
    event = json.dumps({
        "schema": 1, "event_id": "e-1", "type": "account.overdue",
        "occurred_at": start.isoformat(), "account_id": "A-1",
        "data": {"days_past_due": 25, "amount_due": "10.00", "currency": "USD",
                 "debtor": {"name": "Pat Doe", "timezone": "America/Chicago",
                            "phones": [{"number": "+15125550100", "type": "mobile",
                                        "sms_consent": True, "call_consent": True}]}}})
    async with Dispatcher(config, clock=VirtualClock(start)) as daemon:
        store = daemon.store
        record, release = store.record_decisions, store.release_claims
        failed: list[str] = []

        async def record_once(**kwargs: Any) -> list[dict[str, Any]]:
            if not failed:
                failed.append("record")
                raise StoreError("the server went away (injected)")
            return await record(**kwargs)

        async def release_once(account_ids: Sequence[str]) -> None:
            if failed == ["record"]:
                failed.append("release")
                raise StoreError("the server went away (injected)")
            await release(account_ids)

        store.record_decisions = record_once  # type: ignore[method-assign]
        store.release_claims = release_once  # type: ignore[method-assign]
        task = asyncio.create_task(daemon.run())
        await _until(lambda: daemon.health.mqtt_connected, 10, "connected")
        await publish_all(broker.port, [event.encode()])
        # The virtual clock stands still: the lease left behind would never run out.
        await _until(lambda: failed == ["record", "release"], 10, "the injected failures")
        await _until(lambda: bool(store_rows(postgres_url, "SELECT 1 FROM accounts WHERE "
                                                           "plan_json IS NOT NULL")),
                     10, "the plan recorded")
        daemon.request_stop()
        await task
