"""Nothing lost, nothing doubled: SIGKILL the daemon and restart the broker mid-stream."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from functools import partial
from pathlib import Path

from tests.integration.publish import publish_all
from tests.support import (
    Broker,
    Daemon,
    audited,
    encode,
    overdue_event,
    query,
    start_daemon,
    stored_events,
    wait_until,
)

TOTAL = 5000


def reached(config: Path, threshold: int) -> bool:
    """At least `threshold` events are stored."""
    return stored_events(config) >= threshold


def assert_each_event_once(config: Path, total: int) -> None:
    """Every event id 0..total-1 is stored exactly once and audited exactly once."""
    ids = [row[0] for row in query(config, "SELECT event_id FROM events")]
    assert len(ids) == total
    assert set(ids) == {f"e-{n:06d}" for n in range(total)}
    events = audited(config, "event", "event_id")
    assert len(events) == total
    assert len(set(events)) == total


def test_sigkill_while_events_in_flight_loses_and_doubles_nothing(
        tmp_path: Path, broker: Broker, daemons: list[Daemon], store_url: str) -> None:
    config, daemon = start_daemon(tmp_path / "cfg", broker, daemons, store_url=store_url)

    published = threading.Event()

    def publish() -> None:
        payloads = (encode(overdue_event(n)) for n in range(TOTAL))
        asyncio.run(publish_all(broker.port, payloads))
        published.set()

    publisher = threading.Thread(target=publish)
    publisher.start()
    counts_at_kill = []
    for threshold in (800, 2500):
        wait_until(partial(reached, config, threshold), 60, f"{threshold} stored")
        daemon.kill()
        counts_at_kill.append(stored_events(config))
        daemon.start()
    publisher.join(timeout=120)
    assert published.is_set()
    wait_until(lambda: stored_events(config) >= TOTAL, 60, "all events stored")
    daemon.terminate()

    # The kills really happened mid-stream.
    assert all(count < TOTAL for count in counts_at_kill)
    assert_each_event_once(config, TOTAL)


def test_broker_restart_mid_stream_loses_nothing(
        tmp_path: Path, broker: Broker, daemons: list[Daemon], store_url: str) -> None:
    config, daemon = start_daemon(tmp_path / "cfg", broker, daemons, store_url=store_url)
    half = TOTAL // 2
    asyncio.run(publish_all(broker.port, (encode(overdue_event(n)) for n in range(half))))
    broker.stop()
    stored_while_down = stored_events(config)
    broker.start()
    wait_until(lambda: "connected to broker" in daemon.new_log().split("broker unreachable")[-1],
               30, "daemon reconnected")
    asyncio.run(publish_all(broker.port, (encode(overdue_event(n)) for n in range(half, TOTAL))))
    wait_until(lambda: stored_events(config) >= TOTAL, 60, "all events stored")
    assert daemon.terminate() == 0

    assert "broker unreachable" in daemon.new_log()
    assert stored_while_down <= half
    assert_each_event_once(config, TOTAL)


def writer_pid(daemon: Daemon) -> int:
    """The daemon's writer process (its only child)."""
    pid = daemon.daemon_pid()
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    assert len(children) == 1
    return int(children[0])


def test_sigkill_of_the_writer_process_loses_and_doubles_nothing(
        tmp_path: Path, broker: Broker, daemons: list[Daemon], store_url: str) -> None:
    config, daemon = start_daemon(tmp_path / "cfg", broker, daemons, store_url=store_url)
    first_writer = writer_pid(daemon)

    publisher = threading.Thread(target=lambda: asyncio.run(publish_all(
        broker.port, (encode(overdue_event(n)) for n in range(TOTAL)))))
    publisher.start()
    wait_until(partial(reached, config, 1000), 60, "1000 stored")
    os.kill(first_writer, signal.SIGKILL)
    count_at_kill = stored_events(config)
    publisher.join(timeout=120)
    wait_until(partial(reached, config, TOTAL), 60, "all events stored")

    assert count_at_kill < TOTAL
    assert "writer: restarting after" in daemon.new_log()
    assert "writer: working again" in daemon.new_log()
    assert writer_pid(daemon) != first_writer
    assert daemon.terminate() == 0
    assert_each_event_once(config, TOTAL)
