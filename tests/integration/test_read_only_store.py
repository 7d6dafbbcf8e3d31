"""A store whose files turn unwritable under a running daemon: SQLite faults (SIGBUS) on its
mapped shared-memory file and the kernel kills the daemon process. The supervisor that
`dispatcher run` is keeps answering /healthz with the reason, restarts the daemon with backoff,
and intake carries on by itself once the files are writable again, with nothing lost or doubled.

The files are made immutable with `chattr +i` (the tests run as root in CI, on ext4), which is
what a file system remounted read-only after I/O errors looks like to SQLite.

SQLite only: these are SQLite's own files and its mapped shared memory.
"""

from __future__ import annotations

import asyncio
import gc
import json
import re
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.integration.publish import publish_all
from tests.support import (
    Broker,
    Daemon,
    db_path,
    encode,
    make_config,
    overdue_event,
    query,
    stored_events,
    wait_until,
)

pytestmark = pytest.mark.sqlite

FIRST, TOTAL = 50, 300


def _chattr(flag: str, files: list[Path]) -> None:
    result = subprocess.run(["chattr", flag, *map(str, files)], capture_output=True, text=True,
                            check=False)
    if result.returncode != 0:
        pytest.fail(f"`chattr {flag}` failed on {files[0].parent} (the test needs root and a "
                    f"file system with immutable files, such as ext4): {result.stderr.strip()}")


@pytest.fixture
def immutable() -> Iterator[list[Path]]:
    """Files the test makes immutable; made mutable again whatever happens (tmp cleanup)."""
    files: list[Path] = []
    yield files
    subprocess.run(["chattr", "-i", *map(str, files)], capture_output=True, check=False)


def _health(port: int) -> tuple[int, dict[str, Any]] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=15) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())
    except OSError:
        return None


def _outage_lines(log: str) -> list[str]:
    """The error and warning lines of a JSON log."""
    return [line for line in log.splitlines()
            if '"level": "error"' in line or '"level": "warning"' in line]


def test_a_store_turning_read_only_keeps_the_service_up_and_intake_resumes_by_itself(
        tmp_path: Path, broker: Broker, daemons: list[Daemon], immutable: list[Path]) -> None:
    config = make_config(tmp_path / "cfg", broker.url)
    daemon = Daemon(config)
    daemons.append(daemon)
    daemon.start()
    assert daemon.process is not None
    match = re.search(r'"webhook": "127\.0\.0\.1:(\d+)"', daemon.new_log())
    assert match, daemon.new_log()
    port = int(match.group(1))
    now = datetime.now(UTC).isoformat()
    events = [encode(overdue_event(n, occurred_at=now)) for n in range(TOTAL)]
    asyncio.run(publish_all(broker.port, events[:FIRST]))
    wait_until(lambda: stored_events(config) == FIRST, 30, "the first events")
    wait_until(lambda: (_health(port) or (0, {}))[0] == 200, 30, "/healthz ok")

    db = db_path(config)
    immutable.extend([db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")])
    assert all(f.exists() for f in immutable)
    gc.collect()  # the test's own read connections (tests.support.query) hold the files open
    before = len(daemon.new_log())
    _chattr("+i", immutable)
    asyncio.run(publish_all(broker.port, events[FIRST:]))

    def down_with_restarts() -> bool:
        assert daemon.process is not None
        assert daemon.process.poll() is None, f"`dispatcher run` died: {daemon.new_log()[-2000:]}"
        answer = _health(port)
        return (answer is not None and answer[0] == 503
                and answer[1].get("daemon_restarts", 0) >= 3)

    wait_until(down_with_restarts, 60, "/healthz 503 after several restarts", interval=0.2)
    assert daemon.process.poll() is None, f"`dispatcher run` died: {daemon.new_log()[-2000:]}"
    answer = _health(port)
    assert answer is not None
    status, body = answer
    assert status == 503
    assert body["status"] == "degraded"
    assert body["store_writable"] is False
    assert "not writable" in body["problems"]["daemon"]
    # One line when the daemon died and one when the reason changed, not one per restart.
    lines = _outage_lines(daemon.new_log()[before:])
    supervision = [line for line in lines if '"dispatcher.supervisor"' in line
                   or '"dispatcher.cli"' in line]
    assert len(supervision) <= 2, supervision
    assert "SIGBUS" in supervision[0]
    assert len(lines) <= 4, lines

    _chattr("-i", immutable)
    # Nothing was acknowledged unstored: the broker kept every event for the next daemon.
    wait_until(lambda: stored_events(config) == TOTAL, 60, "every event, once writable again")
    wait_until(lambda: (_health(port) or (0, {}))[0] == 200, 60, "/healthz ok again")
    assert daemon.process.poll() is None
    assert "daemon running again" in daemon.new_log()
    ids = [row[0] for row in query(config, "SELECT event_id FROM events")]
    assert sorted(ids) == sorted(f"e-{n:06d}" for n in range(TOTAL))
    audited = [row[0] for row in query(
        config, "SELECT json_extract(record, '$.event_id') FROM audit WHERE kind = 'event'")]
    assert sorted(audited) == sorted(ids)  # each exactly once
    assert "Traceback" not in daemon.new_log()
    assert daemon.terminate() == 0
