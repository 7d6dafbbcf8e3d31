"""Broker credentials come from the environment; several writers keep one intact audit chain."""

from __future__ import annotations

import asyncio
import os
import subprocess
import threading
from datetime import UTC, datetime
from pathlib import Path

import aiomqtt

from dispatcher.audit.verify import LogVerification, verify_audit_log
from dispatcher.store import open_store
from tests.integration.publish import publish_all
from tests.support import (
    Broker,
    Daemon,
    encode,
    make_config,
    overdue_event,
    query,
    start_daemon,
    store_of,
    stored_events,
    wait_until,
)


def test_broker_password_comes_from_the_environment(tmp_path: Path, daemons: list[Daemon],
                                                    store_url: str) -> None:
    password_file = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(password_file), "disp", "s3cret"],
                   check=True, capture_output=True)
    password_file.chmod(0o600)
    broker = Broker(tmp_path / "broker", password_file=password_file)
    broker.start()
    try:
        config = make_config(tmp_path / "cfg", broker.url, store_url=store_url)
        without = Daemon(config, env={k: v for k, v in os.environ.items()
                                      if not k.startswith("MQTT_")})
        daemons.append(without)
        without.start(wait_connected=False)
        wait_until(lambda: "broker unreachable" in without.new_log(), 20, "refused login")
        assert "Not authorized" in without.new_log()
        assert without.terminate() == 0

        with_secrets = Daemon(config, env=os.environ | {"MQTT_USERNAME": "disp",
                                                        "MQTT_PASSWORD": "s3cret"})
        daemons.append(with_secrets)
        with_secrets.start()

        async def publish() -> None:
            async with aiomqtt.Client("127.0.0.1", broker.port, username="disp",
                                      password="s3cret") as client:
                await client.publish("collections/events/x", encode(overdue_event(1)), qos=1)

        asyncio.run(publish())
        wait_until(lambda: stored_events(config) == 1, 20, "event stored")
        assert with_secrets.terminate() == 0
        assert "s3cret" not in with_secrets.new_log()
    finally:
        broker.stop()


def test_cli_writes_during_ingest_keep_the_chain_intact(
        tmp_path: Path, broker: Broker, daemons: list[Daemon], store_url: str) -> None:
    config, daemon = start_daemon(tmp_path / "cfg", broker, daemons, store_url=store_url)
    total = 10_000
    publisher = threading.Thread(target=lambda: asyncio.run(publish_all(
        broker.port, (encode(overdue_event(n)) for n in range(total)))))
    publisher.start()

    async def append_while_ingest_runs() -> int:
        # What `dead-letters replay` does while the daemon runs: its own connection, own writes.
        probes = 0
        async with open_store(store_of(config)) as store:
            while stored_events(config) < total:
                await store.append_audit([{"kind": "config", "status": f"probe-{probes}"}],
                                         now=datetime.now(UTC))
                probes += 1
                await asyncio.sleep(0.005)  # paces the probes: not a wait for anything
        return probes

    written = asyncio.run(append_while_ingest_runs())
    publisher.join(timeout=120)
    assert daemon.terminate() == 0

    async def verify() -> LogVerification:
        async with open_store(store_of(config), create=False) as store:
            return await verify_audit_log(store)

    result = asyncio.run(verify())  # what `dispatcher audit verify` runs, on the daemon's store
    assert result.ok, result
    rows = [(int(seq), str(record)) for seq, record in
            query(config, "SELECT seq, record FROM audit ORDER BY seq")]
    probes = [seq for seq, record in rows if '"status":"probe-' in record]
    events = [seq for seq, record in rows if '"kind":"event"' in record]
    assert len(probes) == written
    assert len(events) == total
    # The writers really interleaved: some probe sits between two event records.
    assert any(min(events) < seq < max(events) for seq in probes)
