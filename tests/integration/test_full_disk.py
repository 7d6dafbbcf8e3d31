"""A full disk or a read-only store: the daemon stays up, says why on /healthz, acknowledges
nothing it has not stored, and carries on by itself once it can write again.

The store lives on a small tmpfs of the test's own (the tests run as root in CI), so that the
disk really fills: SQLite gets ENOSPC from the kernel, as on a production disk.

SQLite only: the disk that fills and the file system that turns read-only are the SQLite
file's; a PostgreSQL server's disk is the server's to report.
"""

from __future__ import annotations

import asyncio
import errno
import gc
import json
import os
import re
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.publish import publish_all
from tests.integration.test_poison_intake import healthz
from tests.support import (
    Broker,
    Daemon,
    encode,
    make_config,
    overdue_event,
    query,
    stored_events,
    wait_until,
)

pytestmark = pytest.mark.sqlite


def _mount(folder: Path, options: str) -> None:
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        pytest.fail(f"cannot mount a small tmpfs (the test needs root): {result.stderr}")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """The folder where make_config puts the store, on a 64 MiB tmpfs."""
    folder = tmp_path / "cfg" / "data"
    folder.mkdir(parents=True)
    _mount(folder, "size=64m")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], check=False)


def _fill(folder: Path) -> Path:
    """Fill the file system to the last byte with one file; return it."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        for size in (1 << 16, 1 << 12, 1 << 9, 1):
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
    finally:
        os.close(fd)
    return filler


def _health_at(port: int) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=15) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _problems(daemon: Daemon) -> dict[str, str]:
    status, body = healthz(daemon)
    assert (status == 200) == (not body["problems"])
    return dict(body["problems"])


def test_a_full_disk_stops_acknowledging_and_intake_resumes_when_space_returns(
        tmp_path: Path, broker: Broker, daemons: list[Daemon], small_disk: Path) -> None:
    config = make_config(tmp_path / "cfg", broker.url)
    daemon = Daemon(config)
    daemons.append(daemon)
    daemon.start()
    assert daemon.process is not None
    first = 200
    asyncio.run(publish_all(broker.port, [encode(overdue_event(n)) for n in range(first)]))
    wait_until(lambda: stored_events(config) == first, 20, "the first events")
    assert _problems(daemon) == {}

    filler = _fill(small_disk)
    total = 3000
    asyncio.run(publish_all(broker.port,
                            [encode(overdue_event(n)) for n in range(first, total)]))
    wait_until(lambda: "store" in _problems(daemon), 60, "/healthz naming the store")
    problems = _problems(daemon)
    assert "database or disk is full" in problems["store"]
    assert daemon.process.poll() is None, "the daemon died"
    held = stored_events(config)
    assert held < total
    wait_until(lambda: "retrying" in daemon.new_log(), 10, "the problem logged")
    log = daemon.new_log()
    # One line when the store starts failing (again), not one per retry.
    assert log.count("store: cannot commit") <= log.count("store: working again") + 1
    assert "Traceback" not in log

    filler.unlink()
    # Nothing was acknowledged before it was stored: the broker still had every event.
    wait_until(lambda: stored_events(config) == total, 60, "every event, once space returned")
    wait_until(lambda: _problems(daemon) == {}, 60, "/healthz ok again")
    assert daemon.process.poll() is None
    audited = [json.loads(r[0])["event_id"] for r in query(
        config, "SELECT record FROM audit WHERE kind = 'event'")]
    assert sorted(audited) == sorted(f"e-{n:06d}" for n in range(total))  # each exactly once
    assert query(config, "SELECT COUNT(*) FROM dead_letters") == [(0,)]
    assert daemon.terminate() == 0


def test_a_store_on_a_read_only_file_system_is_reported_and_the_daemon_starts_once_writable(
        tmp_path: Path, broker: Broker, daemons: list[Daemon], small_disk: Path) -> None:
    config = make_config(tmp_path / "cfg", broker.url)
    daemon = Daemon(config)
    daemons.append(daemon)
    daemon.start()
    asyncio.run(publish_all(broker.port, [encode(overdue_event(n)) for n in range(50)]))
    wait_until(lambda: stored_events(config) == 50, 20, "the first events")
    assert daemon.terminate() == 0

    gc.collect()  # the test's own read connections (tests.support.query) hold the files open
    _mount(small_disk, "remount,ro")  # SQLite would map its -shm file, and could not write it
    refused = Daemon(config)
    daemons.append(refused)
    refused.start(wait_connected=False)
    assert refused.process is not None
    # The supervisor stays up and says why on /healthz; the daemon is not started on this store.
    wait_until(lambda: '"webhook"' in refused.new_log(), 30, "the outage logged")
    port = re.search(r'"webhook": "127\.0\.0\.1:(\d+)"', refused.new_log())
    assert port is not None
    status, body = _health_at(int(port.group(1)))
    assert status == 503
    assert "is not writable" in body["problems"]["daemon"]
    assert refused.process.poll() is None
    assert "is not writable" in refused.new_log()  # said by the daemon, with the file's name
    assert "Traceback" not in refused.new_log()
    assert stored_events(config) == 50

    _mount(small_disk, "remount,rw")
    wait_until(lambda: "connected to broker" in refused.new_log(), 60, "the daemon started")
    asyncio.run(publish_all(broker.port, [encode(overdue_event(n)) for n in range(50, 60)]))
    wait_until(lambda: stored_events(config) == 60, 20, "intake once writable")
    assert refused.terminate() == 0
