"""`dispatcher run` as operators run it: signals, an absent broker, a bad config."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.publish import publish_all
from tests.support import (
    ROOT,
    Broker,
    Daemon,
    encode,
    free_port,
    make_config,
    overdue_event,
    start_daemon,
    stored_events,
    wait_until,
)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_drains_and_exits_zero(tmp_path: Path, broker: Broker, daemons: list[Daemon],
                                      sig: signal.Signals, store_url: str) -> None:
    config, daemon = start_daemon(tmp_path / "cfg", broker, daemons, store_url=store_url)
    asyncio.run(publish_all(broker.port, (encode(overdue_event(n)) for n in range(300))))
    assert daemon.process is not None
    daemon.process.send_signal(sig)
    assert daemon.process.wait(timeout=15) == 0
    log = daemon.new_log()
    assert "shutdown requested" in log
    assert "dispatcher stopped" in log
    # Whatever had not been committed is still queued at the broker for the next start.
    daemon.start()
    wait_until(lambda: stored_events(config) == 300, 20, "all 300 events")
    assert daemon.terminate() == 0


def test_unreachable_broker_is_named_and_retried_until_it_appears(
        tmp_path: Path, daemons: list[Daemon], store_url: str) -> None:
    broker = Broker(tmp_path / "late-broker", port=free_port())
    config = make_config(tmp_path / "cfg", broker.url, store_url=store_url)
    daemon = Daemon(config)
    daemons.append(daemon)
    daemon.start(wait_connected=False)
    wait_until(lambda: daemon.new_log().count("broker unreachable") >= 3, 20, "three retries")
    lines = [json.loads(line) for line in daemon.new_log().splitlines()
             if "broker unreachable" in line]
    assert all(f"broker unreachable at {broker.url}" in line["message"] for line in lines)
    assert all("\n" not in line["message"] for line in lines)
    broker.start()
    try:
        wait_until(lambda: "connected to broker" in daemon.new_log(), 20, "connected at last")
        asyncio.run(publish_all(broker.port, [encode(overdue_event(1))]))
        wait_until(lambda: stored_events(config) == 1, 10, "event stored")
        assert daemon.terminate() == 0
    finally:
        broker.stop()


def test_invalid_config_refuses_to_start(tmp_path: Path) -> None:
    config = make_config(tmp_path / "cfg", "ftp://nowhere", extra="[channels]\nprovider = 'fax'")
    result = subprocess.run([sys.executable, "-m", "dispatcher", "run", "--config", str(config)],
                            capture_output=True, text=True, cwd=ROOT, timeout=30, check=False)
    assert result.returncode == 2
    assert f"{config}: mqtt.url: scheme must be mqtt:// or mqtts://" in result.stderr
    assert f"{config}: channels.provider:" in result.stderr
    assert not (config.parent / "data").exists()
