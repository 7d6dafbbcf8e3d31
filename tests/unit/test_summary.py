"""The periodic summary line: what happened since the last one, from the daemon's metrics."""

from __future__ import annotations

import asyncio
import io
import json

from dispatcher.service.logs import configure_logging
from dispatcher.service.metrics import Metrics
from dispatcher.service.summary import Summary
from tests.integration.inprocess import wait_for


def busy(metrics: Metrics) -> None:
    """Some traffic: the daemon counts it in these metrics as it goes."""
    metrics.events_in.labels("stored").inc(5)
    metrics.events_in.labels("dead_letter").inc(1)
    metrics.dead_letters.labels("invalid").inc()
    metrics.observe_audit([
        {"kind": "attempt", "channel": "sms"}, {"kind": "attempt", "channel": "call"},
        {"kind": "outcome", "channel": "sms", "status": "delivered"},
        {"kind": "outcome", "channel": "call", "status": "no-answer"},
        {"kind": "outcome", "channel": "sms", "status": "no-answer"},
        {"kind": "suppressed", "reason": "quiet_hours"}])


def test_a_summary_counts_what_happened_since_the_last_one(stream: io.StringIO) -> None:
    configure_logging("info", "text", stream)
    metrics, clock = Metrics(), iter([0.0, 60.0, 120.0])
    busy(metrics)  # before the summary began: not its business
    summary = Summary(metrics, monotonic=lambda: next(clock))
    busy(metrics)
    metrics.due_lag.set(2.5)
    assert summary.say() == {"seconds": 60, "events": 6, "attempts": 2,
                             "outcomes": {"delivered": 1, "no-answer": 2},
                             "suppressed": {"quiet_hours": 1}, "dead_letters": 1,
                             "due_lag": 2.5}
    metrics.due_lag.set(0)
    summary.say()
    first, second = stream.getvalue().splitlines()
    assert first.endswith("dispatcher.summary: summary seconds=60 events=6 attempts=2 "
                          "outcomes=delivered:1,no-answer:2 suppressed=quiet_hours:1 "
                          "dead_letters=1 due_lag=2.5")
    assert second.endswith("summary seconds=60 events=0 attempts=0 outcomes=- suppressed=- "
                           "dead_letters=0 due_lag=0.0")


async def test_the_queue_shows_only_when_there_is_one(stream: io.StringIO) -> None:
    configure_logging("info", "json", stream)
    sizes = iter([7])

    async def size() -> int:
        return next(sizes)  # a second call raises: a broken queue

    summary = Summary(Metrics(), size, monotonic=lambda: 0.0)
    summary.say(await summary.queue())
    summary.say(await summary.queue())
    without = Summary(Metrics(), monotonic=lambda: 0.0)
    without.say(await without.queue())
    entries = [json.loads(line) for line in stream.getvalue().splitlines()]
    summaries = [e for e in entries if e["message"] == "summary"]
    assert [e.get("queue") for e in summaries] == [7, None, None]
    assert summaries[0]["outcomes"] == {}
    assert any(e["message"].startswith("queue size unavailable") for e in entries)


async def test_run_says_one_every_interval_and_a_last_one_at_stop(stream: io.StringIO) -> None:
    configure_logging("info", "json", stream)
    metrics = Metrics()
    stop = asyncio.Event()
    task = asyncio.create_task(Summary(metrics).run(lambda: 0.05, stop))
    await wait_for(lambda: stream.getvalue().count("\n") >= 2, 10, "two summaries")
    busy(metrics)
    stop.set()
    await task
    entries = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert all(e["logger"] == "dispatcher.summary" for e in entries)
    assert sum(e["events"] for e in entries) == 6
    assert entries[-1]["attempts"] == 2


async def test_zero_says_nothing_until_a_reload_sets_an_interval(stream: io.StringIO) -> None:
    configure_logging("info", "json", stream)
    seconds = 0.0
    stop = asyncio.Event()
    task = asyncio.create_task(Summary(Metrics()).run(lambda: seconds, stop))
    await asyncio.sleep(0.1)
    assert stream.getvalue() == ""
    seconds = 0.05
    await wait_for(lambda: bool(stream.getvalue()), 10, "a summary")
    stop.set()
    await task
    assert json.loads(stream.getvalue().splitlines()[0])["message"] == "summary"
