"""The daemon and `simulate` share the engine: same events and outcomes, same attempts."""

from __future__ import annotations

import asyncio
import functools
import json
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from channels.sandbox import load_outcome_script
from dispatcher.config.settings import load_config
from dispatcher.contact.simulate import TICK, run_simulation
from dispatcher.domain.clock import VirtualClock
from dispatcher.service.app import Dispatcher
from tests.integration.inprocess import wait_for
from tests.integration.publish import publish_all
from tests.support import Broker, make_config, overdue_at

START = datetime(2026, 12, 7, 6, 0, tzinfo=UTC)
DAYS = 9
COMPARED = ("kind", "at", "account_id", "attempt_id", "channel", "party", "to", "stage",
            "rule", "window", "status", "reason")


def _events() -> list[dict[str, Any]]:
    def overdue(account: str, days: int, number: str, zone: str, region: str,
                contacts: list[dict[str, str]]) -> dict[str, Any]:
        return overdue_at(START, account, days, number, zone, region, contacts)
    sister = [{"contact_id": "c-9", "name": "Sam Ray", "relation": "sister",
               "number": "+13125550177", "role": "emergency"}]
    return [overdue("A-1", 2, "+15125550100", "America/Chicago", "US-TX", []),
            overdue("A-2", 9, "+12125550101", "America/New_York", "US-NY", []),
            overdue("A-3", 20, "+13125550102", "America/Chicago", "US-IL", sister)]


OUTCOMES = {"default": {"call": ["no-answer", "machine", "busy", "no-answer"]},
            "numbers": {"+15125550100": {"call": {"answers_between": ["18:00", "20:00"]}},
                        "+12125550101": {"call": ["no-answer", "completed", "no-answer"]}}}


def _ceil(moment: datetime) -> datetime:
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return epoch + -((moment - epoch) // -TICK) * TICK


def _reached(count: Callable[[], float], target: float) -> bool:
    return count() >= target


def _key(records: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [tuple(r.get(k) for k in COMPARED) for r in records
            if r["kind"] in ("attempt", "outcome", "suppressed", "promise")]


async def test_the_daemon_makes_the_same_attempts_as_simulate(
        broker: Broker, tmp_path: Path, store_url: str) -> None:
    (tmp_path / "outcomes.json").write_text(json.dumps(OUTCOMES))
    path = make_config(tmp_path, broker.url, store_url=store_url, extra=(
        '[channels]\nsandbox_outcomes = "outcomes.json"\n'
        '[contact]\nsweep_seconds = 0.02\n'))
    config = load_config(path, {})
    events = _events()
    (tmp_path / "events.jsonl").write_text("\n".join(json.dumps(e) for e in events))
    simulated = await run_simulation(config, tmp_path / "events.jsonl", START, DAYS,
                                     load_outcome_script(tmp_path / "outcomes.json"))

    clock = VirtualClock(START)
    async with Dispatcher(config, clock=clock) as daemon:
        task = asyncio.create_task(daemon.run())
        await wait_for(lambda: daemon.health.mqtt_connected, 10, "connected")
        await publish_all(broker.port, [json.dumps(e).encode() for e in events])
        stored = daemon.metrics.events_in.labels("stored")
        await wait_for(lambda: stored._value.get() == len(events), 10, "stored")  # noqa: SLF001
        end = START + timedelta(days=DAYS)
        # Move the virtual clock as simulate does: to each due instant, then let a sweep pass.
        def sweeps() -> float:
            return float(daemon.metrics.sweeps._value.get())  # noqa: SLF001

        while True:
            await wait_for(functools.partial(_reached, sweeps, sweeps() + 2), 10,
                           "a sweep after the clock moved")
            due = await daemon.store.next_due_at()
            if due is None or _ceil(due) >= end:
                break
            clock.set(max(_ceil(due), clock.now()))
        daemon.request_stop()
        await task
        produced = [r async for r in daemon.store.audit_records()]
        metrics = daemon.metrics.render().decode()

    assert _key(produced) == _key(simulated)
    assert len([r for r in produced if r["kind"] == "attempt"]) >= 10
    assert {r["party"] for r in produced if r["kind"] == "attempt"} == {"debtor", "third_party"}
    # The metrics count exactly what the audit log holds.
    sent = Counter(r["channel"] for r in produced if r["kind"] == "attempt")
    for channel, count in sent.items():
        assert f'dispatcher_attempts_total{{channel="{channel}"}} {float(count)}' in metrics
    answered = Counter((r["channel"], r["status"]) for r in produced if r["kind"] == "outcome")
    for (channel, status), count in answered.items():
        assert (f'dispatcher_outcomes_total{{channel="{channel}",outcome="{status}"}} '
                f'{float(count)}') in metrics
    refused = Counter(r["reason"] for r in produced if r["kind"] == "suppressed")
    for reason, count in refused.items():
        assert f'dispatcher_suppressed_total{{reason="{reason}"}} {float(count)}' in metrics
    assert "dispatcher_due_lag_seconds" in metrics
