"""No payload stops intake: events dated out of range, amid valid ones, in a real daemon."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.integration.publish import publish_all
from tests.postgres import holding_write_lock
from tests.support import (
    Broker,
    Daemon,
    encode,
    make_config,
    overdue_event,
    query,
    store_of,
    stored_events,
    wait_until,
)

# event_id -> (occurred_at, words the dead letter's detail must hold)
POISON = {
    "p-no-utc-late": ("9999-12-31T23:59:59-05:00", "outside the supported range"),
    "p-no-utc-early": ("0001-01-01T00:00:00+01:00", "outside the supported range"),
    "p-far-future": ("9999-12-31T00:00:00Z", "later than its receipt"),
    "p-before-1970": ("1969-07-20T20:17:00Z", "is before 1970-01-01"),
}


def healthz(daemon: Daemon) -> tuple[int, dict[str, Any]]:
    """GET /healthz of a daemon subprocess (its port is in its start-up log line)."""
    started = next(json.loads(line) for line in daemon.new_log().splitlines()
                   if '"dispatcher started"' in line)
    try:
        with urllib.request.urlopen(f"http://{started['webhook']}/healthz", timeout=15) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _at(moment: datetime) -> str:
    return moment.isoformat()


@pytest.mark.parametrize("writer", ["process", "inline"])
def test_events_dated_out_of_range_are_dead_letters_and_intake_goes_on(
        tmp_path: Path, broker: Broker, daemons: list[Daemon], writer: str,
        store_url: str) -> None:
    config = make_config(tmp_path / "cfg", broker.url, extra=f'[ingest]\nwriter = "{writer}"\n',
                         max_future_seconds=None, store_url=store_url)
    daemon = Daemon(config)
    daemons.append(daemon)
    daemon.start()
    now = datetime.now(UTC)
    valid = [encode(overdue_event(n, occurred_at=_at(now - timedelta(seconds=n))))
             for n in range(400)]
    poison = {event_id: encode(overdue_event(0, f"A-{event_id}", occurred_at=at)
                               | {"event_id": event_id})
              for event_id, (at, _) in POISON.items()}
    payloads = [*valid[:100], poison["p-no-utc-late"], *valid[100:200], poison["p-no-utc-early"],
                *valid[200:300], poison["p-far-future"], poison["p-before-1970"], *valid[300:]]
    asyncio.run(publish_all(broker.port, payloads))

    wait_until(lambda: stored_events(config) == len(valid)
               and len(query(config, "SELECT 1 FROM dead_letters")) == len(POISON),
               30, "every valid event stored and every poison set aside")
    assert daemon.process is not None
    assert daemon.process.poll() is None, "the daemon stopped"
    letters = {row[0]: row[1:] for row in query(
        config, "SELECT event_id, reason, detail, payload FROM dead_letters")}
    assert set(letters) == set(POISON)
    for event_id, (_, words) in POISON.items():
        reason, detail, payload = letters[event_id]
        assert reason == "invalid"
        assert words in detail
        assert bytes(payload) == poison[event_id]
    audited = [json.loads(r[0])["event_id"] for r in query(
        config, "SELECT record FROM audit WHERE kind = 'event'")]
    assert sorted(audited) == sorted(f"e-{n:06d}" for n in range(len(valid)))  # each once
    status, body = healthz(daemon)
    assert (status, body["problems"]) == (200, {})
    assert "Traceback" not in daemon.new_log()
    assert daemon.terminate() == 0


def test_an_overdue_dated_far_ahead_does_not_outrank_a_real_resolution(
        tmp_path: Path, broker: Broker, daemons: list[Daemon], store_url: str) -> None:
    config = make_config(tmp_path / "cfg", broker.url, max_future_seconds=None,
                         store_url=store_url)
    daemon = Daemon(config)
    daemons.append(daemon)
    daemon.start()
    now = datetime.now(UTC)
    opened = overdue_event(1, "A-PAID", occurred_at=_at(now - timedelta(days=1)))
    from_the_future = overdue_event(2, "A-PAID", occurred_at="9999-12-31T00:00:00Z")
    resolved = {"schema": 1, "event_id": "e-paid", "type": "account.resolved",
                "occurred_at": _at(now), "account_id": "A-PAID", "data": {"reason": "paid"}}
    asyncio.run(publish_all(broker.port, [encode(opened), encode(from_the_future),
                                          encode(resolved)]))
    wait_until(lambda: stored_events(config) == 2, 20, "the real events stored")
    assert query(config, "SELECT status FROM accounts WHERE account_id = 'A-PAID'") == [
        ("resolved",)]
    assert query(config, "SELECT reason FROM dead_letters") == [("invalid",)]
    assert query(config, "SELECT 1 FROM audit WHERE kind = 'attempt' AND "
                         "account_id = 'A-PAID'") == []
    assert daemon.terminate() == 0


def test_a_batch_stuck_behind_a_lock_turns_healthz_503_until_it_commits(
        tmp_path: Path, broker: Broker, daemons: list[Daemon], store_url: str) -> None:
    # Another process holds the store's write lock (a long maintenance job, a backup): the
    # broker is connected and nothing failed, but intake is not advancing.
    config = make_config(tmp_path / "cfg", broker.url, extra="[ingest]\nstall_seconds = 0.5\n",
                         store_url=store_url)
    daemon = Daemon(config)
    daemons.append(daemon)
    daemon.start()
    wait_until(lambda: healthz(daemon)[0] == 200, 20, "a healthy daemon")
    now = datetime.now(UTC)
    with holding_write_lock(store_of(config)):
        asyncio.run(publish_all(broker.port, [encode(overdue_event(n, occurred_at=_at(now)))
                                              for n in range(5)]))
        wait_until(lambda: "intake" in healthz(daemon)[1]["problems"], 8,
                   "/healthz naming intake")
        status, body = healthz(daemon)
        assert status == 503
        assert "waited" in body["problems"]["intake"]
        assert stored_events(config) == 0
    wait_until(lambda: stored_events(config) == 5, 20, "the batch committed")
    wait_until(lambda: healthz(daemon)[0] == 200, 20, "healthy again")
    assert daemon.terminate() == 0
