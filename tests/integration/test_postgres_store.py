"""The PostgreSQL store: selection and refusal by config, `store migrate`, and a daemon on it."""

from __future__ import annotations

import asyncio
import io
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiomqtt
import pytest

from dispatcher.cli.main import main
from dispatcher.errors import StoreError, StoreUnwritable
from dispatcher.ingest.classify import classify
from dispatcher.store import Store, StoreLocation, open_store
from dispatcher.store.postgres.migrations import SCHEMA_VERSION
from dispatcher.store.postgres.store import PostgresStore
from dispatcher.store.sqlite.migrations import SCHEMA_VERSION as SQLITE_SCHEMA_VERSION
from tests.integration.inprocess import wait_for
from tests.integration.publish import publish_all
from tests.integration.test_twilio_crash import _number_in_daytime, _schedule_due_now
from tests.postgres import store_execute, store_rows
from tests.support import ROOT, Broker, Daemon, encode, free_port, make_config, overdue_event


def _cli(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    return main(list(argv), out=out), out.getvalue()


def test_store_migrate_applies_pending_migrations_then_has_nothing_to_do(
        tmp_path: Path, store_at: StoreLocation) -> None:
    url = store_at if isinstance(store_at, str) else f"sqlite://{store_at}"
    config = make_config(tmp_path / "cfg", "mqtt://127.0.0.1:1", store_url=url)
    code, out = _cli("store", "migrate", "--config", str(config))
    assert code == 0
    latest = SCHEMA_VERSION if isinstance(store_at, str) else SQLITE_SCHEMA_VERSION
    kind = "postgresql" if isinstance(store_at, str) else "sqlite"
    assert out.splitlines()[0].startswith(f"store: {kind} ")
    assert out.splitlines()[1] == (f"schema version 0 -> {latest}: {latest} migration(s) "
                                   "applied")
    code, out = _cli("store", "migrate", "--config", str(config))
    assert (code, out.splitlines()[1]) == (0, f"schema version {latest}: up to date")


@pytest.mark.postgresql
def test_a_password_in_the_store_url_is_refused_with_file_and_key(tmp_path: Path) -> None:
    config = make_config(tmp_path / "cfg", "mqtt://127.0.0.1:1",
                         store_url="postgresql://postgres:secret@127.0.0.1:5432/test")
    code, out = _cli("check-config", "--config", str(config))
    assert code == 1
    assert (f"{config}: store.url: a password in the store url is refused: give it in the "
            "environment (PGPASSWORD) or in a passfile (~/.pgpass)") in out
    assert "secret" not in out.replace("store url", "")


@pytest.mark.postgresql
async def test_a_schema_newer_than_the_code_is_refused(postgres_url: str) -> None:
    async with open_store(postgres_url):
        pass
    store_execute(postgres_url, "INSERT INTO schema_version(version) VALUES (?)",
                  (SCHEMA_VERSION + 1,))
    with pytest.raises(StoreError, match="newer than this dispatcher supports"):
        async with open_store(postgres_url):
            pass


@pytest.mark.postgresql
async def test_commands_that_read_refuse_a_database_without_the_schema(
        postgres_url: str) -> None:
    with pytest.raises(StoreError, match="dispatcher store migrate"):
        async with open_store(postgres_url, create=False):
            pass


@pytest.mark.postgresql
async def test_concurrent_appends_from_two_stores_make_one_chain(postgres_url: str) -> None:
    now = datetime(2026, 12, 1, tzinfo=UTC)
    async def append(store_name: str, store: Store, count: int) -> None:
        for n in range(count):
            await store.append_audit([{"kind": "config", "status": f"{store_name}-{n}"}],
                                     now=now)

    async with open_store(postgres_url) as one, open_store(postgres_url) as two:
        await asyncio.gather(append("one", one, 40), append("two", two, 40))
        rows = [row async for row in one.audit_rows()]
    seqs = [seq for seq, _ in rows]
    assert seqs == list(range(1, 81))
    previous = "0" * 64
    for _, text in rows:
        record = json.loads(text)
        assert record["prev_hash"] == previous
        previous = record["hash"]


@pytest.mark.postgresql
async def test_every_read_and_write_on_a_store_gone_away_is_a_store_error(
        postgres_url: str) -> None:
    # A daemon waits out a StoreError; any other error from these ends the daemon's process.
    now = datetime.now(UTC)
    async with open_store(postgres_url) as store:
        assert isinstance(store, PostgresStore)
        await store._pool.close()  # noqa: SLF001 - no connection to be had, as in an outage
        calls: dict[str, Callable[[], Awaitable[object]]] = {
            "claim_job": lambda: store.claim_job("job", now, timedelta(minutes=1)),
            "take_token": lambda: store.take_token("bucket", 10.0, 1),
            "release_jobs": store.release_jobs,
            "claim_due": lambda: store.claim_due(now, 10),
            "audit_head": store.audit_head,
            "account": lambda: store.account("A-1"),
            "count_events": store.count_events,
            "latest_checkpoint": store.latest_checkpoint,
            "prune_audit": lambda: store.prune_audit(
                cutoff=now, now=now, retention_years=7, signer=None, config_version="v",
                dry_run=True),
            "next_due_at": store.next_due_at,
            "ping": store.ping,
        }
        raised: dict[str, str] = {}
        for name, call in calls.items():
            try:
                await call()
            except Exception as exc:  # which method let which error through, all named at once
                raised[name] = f"{type(exc).__name__}: {exc}"
            else:
                raised[name] = "no error"
        wrong = {name: what for name, what in raised.items()
                 if not what.startswith("StoreError: PostgreSQL")}
        assert wrong == {}


@pytest.mark.postgresql
async def test_a_due_account_is_claimed_by_one_store_only(postgres_url: str) -> None:
    now = datetime(2026, 12, 1, 15, tzinfo=UTC)
    async with open_store(postgres_url) as one, open_store(postgres_url) as two:
        await one.record_batch([classify(encode(overdue_event(n, f"A-{n}")), "t", 65536)
                                for n in range(10)], now=now, config_version="v")
        first, second = await asyncio.gather(one.claim_due(now, 6), two.claim_due(now, 6))
        assert sorted(first + second) == sorted(f"A-{n}" for n in range(10))
        assert not set(first) & set(second)
        owners = store_rows(postgres_url, "SELECT DISTINCT lease_owner FROM accounts")
        assert len(owners) == 2
        await one.release_claims(first)
        assert sorted(await two.claim_due(now, 10)) == sorted(first)


@pytest.mark.slow
@pytest.mark.postgresql
# Real time: the first slot is one to two minutes away.
@pytest.mark.timeout(300)
async def test_a_daemon_on_postgresql_takes_events_sends_attempts_and_its_log_verifies(
        tmp_path: Path, broker: Broker, daemons: list[Daemon], postgres_url: str) -> None:
    now = datetime.now(UTC)
    number, zone = _number_in_daytime(now)
    config = make_config(tmp_path, broker.url, store_url=postgres_url, log_format="text",
                         extra=('[contact]\nschedule = "now"\nsweep_seconds = 0.2\n'
                                '[compliance.limits]\ncontact_on_holidays = true\n'
                                # Whichever country's number is in daytime now has a profile.
                                '[compliance.regions]\n' + "".join(
                                    f'{country} = "us"\n' for country in
                                    ("US", "GB", "DE", "IN", "JP", "AU", "BR"))))
    _schedule_due_now(config.parent, zone, now)
    daemon = Daemon(config)
    daemons.append(daemon)
    event = {"schema": 1, "event_id": "e-1", "type": "account.overdue",
             "occurred_at": now.isoformat(), "account_id": "A-1",
             "data": {"days_past_due": 3, "amount_due": "9.00", "currency": "USD",
                      "debtor": {"name": "Pat Doe", "timezone": zone,
                                 "phones": [{"number": number, "type": "mobile",
                                             "sms_consent": True, "call_consent": True}]}}}
    async with aiomqtt.Client("127.0.0.1", broker.port) as watcher:
        await watcher.subscribe("collections/attempts/+", qos=1)
        daemon.start()
        await publish_all(broker.port, [json.dumps(event).encode(), json.dumps(event).encode()])
        # A refusal on the way (`suppressed`, published too) does not end the wait.
        seen: list[dict[str, object]] = []
        async with asyncio.timeout(200):
            async for message in watcher.messages:
                assert str(message.topic) == "collections/attempts/A-1"
                assert isinstance(message.payload, bytes)
                seen.append(json.loads(message.payload))
                if seen[-1]["kind"] == "attempt":
                    break
    assert seen[-1]["kind"] == "attempt", seen
    await wait_for(lambda: bool(store_rows(postgres_url, "SELECT 1 FROM attempts WHERE "
                                                         "outcome IS NOT NULL")),
                   30, "the sandbox's outcome")
    assert daemon.terminate() == 0
    assert store_rows(postgres_url, "SELECT COUNT(*) FROM events") == [(1,)]
    verify = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "dispatcher", "audit", "verify", "--config", str(config), cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    said, _ = await asyncio.wait_for(verify.communicate(), 60)
    assert verify.returncode == 0, said.decode()
    assert said.decode().startswith("OK: ")
    kinds = [r[0] for r in store_rows(postgres_url, "SELECT kind FROM audit ORDER BY seq")]
    assert {"config", "event", "attempt", "outcome"} <= set(kinds)


@pytest.mark.postgresql
async def test_an_unreachable_server_is_unwritable_for_the_supervisor_to_wait() -> None:
    with pytest.raises(StoreUnwritable, match="cannot reach PostgreSQL"):
        async with open_store(f"postgresql://postgres@127.0.0.1:{free_port()}/none"):
            pass

