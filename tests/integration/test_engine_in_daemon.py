"""The due sweep inside the daemon: a failing sweep neither stops the daemon nor loses work."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from dispatcher.config.settings import load_config
from dispatcher.domain.clock import VirtualClock
from dispatcher.service.app import Dispatcher
from dispatcher.store import Store
from tests.integration.inprocess import sweeps, wait_for, wait_for_async
from tests.integration.publish import publish_all
from tests.support import Broker, make_config

START = datetime(2026, 12, 7, 6, 0, tzinfo=UTC)


async def planned_after(store: Store, now: datetime) -> datetime | None:
    """When the store next has an account due, once that is later than `now` (planned)."""
    due = await store.next_due_at()
    return due if due is not None and due > now else None


async def kinds_of(store: Store) -> list[str]:
    """The kinds of the audit records, once an outcome is among them; else nothing."""
    kinds = [r["kind"] async for r in store.audit_records()]
    return kinds if "outcome" in kinds else []


async def test_a_failing_sweep_is_logged_and_retried(
        broker: Broker, tmp_path: Path, caplog: pytest.LogCaptureFixture, store_url: str) -> None:
    config = load_config(make_config(tmp_path, broker.url, store_url=store_url,
                                     extra="[contact]\nsweep_seconds = 0.02\n"), {})
    event = {"schema": 1, "event_id": "e-1", "type": "account.overdue",
             "occurred_at": START.isoformat(), "account_id": "A-1",
             "data": {"days_past_due": 25, "amount_due": "10.00", "currency": "USD",
                      "debtor": {"name": "Pat Doe", "timezone": "America/Chicago",
                                 "phones": [{"number": "+15125550100", "type": "mobile",
                                             "sms_consent": True, "call_consent": True}]}}}
    clock = VirtualClock(START)
    async with Dispatcher(config, clock=clock) as daemon:
        store = daemon.store
        real = store.record_decisions
        failures = 0

        async def failing_once(**kwargs: Any) -> list[dict[str, Any]]:
            nonlocal failures
            if failures == 0:
                failures += 1
                raise RuntimeError("disk full (injected)")
            return await real(**kwargs)

        store.record_decisions = failing_once  # type: ignore[method-assign]
        task = asyncio.create_task(daemon.run())
        with caplog.at_level(logging.ERROR, logger="dispatcher.app"):
            await wait_for(lambda: daemon.health.mqtt_connected, 10, "connected")
            await publish_all(broker.port, [json.dumps(event).encode()])
            await wait_for(lambda: failures == 1, 10, "the injected failure")
            # Later sweeps run normally: the next one records the plan the failed one lost.
            due = await wait_for_async(lambda: planned_after(store, clock.now()), 10,
                                       "the plan recorded")
            clock.set(due)
            await wait_for_async(lambda: kinds_of(store), 10, "the attempt and its outcome")
            settled = sweeps(daemon)
            # Sweeps after it find nothing more to send.
            await wait_for(lambda: sweeps(daemon) >= settled + 3, 10, "three more sweeps")
            assert not task.done()
        daemon.request_stop()
        await task
        kinds = [r["kind"] async for r in store.audit_records()]
    assert "due sweep failed" in caplog.text
    assert "disk full (injected)" in caplog.text
    assert kinds.count("attempt") == 1
    assert kinds.count("outcome") == 1


async def test_a_sweep_failing_again_and_again_logs_once_and_reports_unhealthy(
        broker: Broker, tmp_path: Path, caplog: pytest.LogCaptureFixture, store_url: str) -> None:
    config = load_config(make_config(tmp_path, broker.url, store_url=store_url,
                                     extra="[contact]\nsweep_seconds = 0.02\n"), {})
    async with Dispatcher(config, clock=VirtualClock(START)) as daemon:
        store = daemon.store
        real = store.claim_due
        failures = 0
        failing = True

        async def broken(now: datetime, limit: int) -> list[str]:
            nonlocal failures
            if failing:
                failures += 1
                raise RuntimeError("a bug (injected)")
            return await real(now, limit)

        store.claim_due = broken  # type: ignore[method-assign]
        task = asyncio.create_task(daemon.run())
        with caplog.at_level(logging.ERROR, logger="dispatcher"):
            await wait_for(lambda: failures >= 20, 10, "twenty failed sweeps")
            assert "sweep" in daemon.health.reasons()
            failing = False
            await wait_for(lambda: "sweep" not in daemon.health.reasons(), 10, "a good sweep")
        daemon.request_stop()
        await task
    # The traceback once, and one line for the outage: not one per sweep.
    assert caplog.text.count("due sweep failed") == 1
    assert caplog.text.count("Traceback") == 1
    assert caplog.text.count("a bug (injected)") <= 3
