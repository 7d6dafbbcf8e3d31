"""A reload that changes the contact policy reaches the plans already made: after the next sweep
every stored plan is the one `explain` computes under the new config; a reload that leaves the
policy as it was re-plans nothing."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from dispatcher.config.settings import load_config
from dispatcher.contact.decide import plan_from_json
from dispatcher.contact.explain import explain
from dispatcher.domain.clock import VirtualClock, utc_rfc3339
from dispatcher.service.app import Dispatcher
from schedules.planner import PlannedAttempt
from tests.integration.inprocess import sweeps, wait_for
from tests.integration.publish import publish_all
from tests.support import Broker, evening_schedule, make_config, overdue_at

START = datetime(2026, 12, 7, 6, 0, tzinfo=UTC)  # Monday, before 08:00 in every US zone
ACCOUNTS = {  # account: days past due, number, zone, region
    "A-1": (8, "+15125550100", "America/Chicago", "US-TX"),
    "A-2": (20, "+12125550101", "America/New_York", "US-NY"),
    "A-3": (12, "+14155550102", "America/Los_Angeles", "US-CA"),
    "A-4": (2, "+15125550103", "America/Chicago", "US-TX"),
    "A-5": (25, "+13035550104", "America/Denver", "US-CO"),
}
# The evening moves to hours it did not cover: every plan has to move with it.
EVENING = evening_schedule("18:00", "19:00")
MOVED = evening_schedule("19:30", "20:30")
REPLANNED = "due for a fresh decision"

Plans = dict[str, tuple[str, str] | None]


@asynccontextmanager
async def planned(broker: Broker, tmp_path: Path,
                  store_url: str) -> AsyncIterator[tuple[Dispatcher, Path]]:
    """The daemon on a clock stopped at START, with every account ingested and planned."""
    path = make_config(tmp_path, broker.url, store_url=store_url,
                       extra='[contact]\nschedule = "evening"\nsweep_seconds = 0.02\n')
    (tmp_path / "schedules" / "evening.toml").write_text(EVENING)
    daemon = Dispatcher(load_config(path), clock=VirtualClock(START))
    async with daemon:
        task = asyncio.create_task(daemon.run())
        await wait_for(lambda: daemon.health.mqtt_connected, 10, "connected")
        await publish_all(broker.port, [json.dumps(overdue_at(START, a, *facts)).encode()
                                        for a, facts in ACCOUNTS.items()])
        stored = daemon.metrics.events_in.labels("stored")
        await wait_for(lambda: stored._value.get() == len(ACCOUNTS), 10,  # noqa: SLF001
                       "stored")
        await a_sweep_after(daemon)
        try:
            yield daemon, path
        finally:
            daemon.request_stop()
            await task


async def a_sweep_after(daemon: Dispatcher) -> None:
    """Return once a sweep has started and ended after this call."""
    target = sweeps(daemon) + 2
    await wait_for(lambda: sweeps(daemon) >= target, 10, "a sweep")


def edit(path: Path, old: str, new: str) -> None:
    """Replace `old` in a config file, which must hold it."""
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


async def reloaded(daemon: Dispatcher, version: str) -> dict[str, Any]:
    """Once the daemon has seen an edited config file and a sweep has passed, the audit record
    of the reload from `version`."""
    await wait_for(lambda: daemon.config.version != version, 10, "the reload")
    await a_sweep_after(daemon)
    return [r async for r in daemon.store.audit_records() if r["kind"] == "config"][-1]


def headline(text: str) -> tuple[str, str] | None:
    """The instant and rule of the next attempt `explain` prints, or None for none."""
    lines = text.splitlines()
    first = lines[lines.index("next attempt:") + 1].strip()
    if first.startswith("none."):
        return None
    rule = lines[lines.index("next attempt:") + 2].strip()
    assert rule.startswith("rule: ")
    return first.split(": ", 1)[0], rule.removeprefix("rule: ")


async def stored_plans(daemon: Dispatcher) -> Plans:
    """Each account's stored plan as (instant, rule), or None when it is no attempt."""
    contexts = await daemon.store.contexts(list(ACCOUNTS), START)
    found: Plans = {}
    for account, context in contexts.items():
        plan = plan_from_json(context.plan_json).plan
        found[account] = ((utc_rfc3339(plan.at), plan.rule) if isinstance(plan, PlannedAttempt)
                          else None)
    return found


async def explained(daemon: Dispatcher) -> tuple[Plans, list[str]]:
    """What `explain` says of each account: its headline, and the accounts for which it notes
    a different stored plan."""
    headlines: Plans = {}
    noted = []
    for account in ACCOUNTS:
        text, found = await explain(daemon.store, daemon.config, account, daemon.clock.now())
        assert found
        headlines[account] = headline(text)
        if "the engine's stored plan" in text:
            noted.append(account)
    return headlines, noted


async def test_a_moved_evening_window_reaches_every_stored_plan(
        broker: Broker, tmp_path: Path, caplog: pytest.LogCaptureFixture, store_url: str) -> None:
    caplog.set_level(logging.INFO)
    async with planned(broker, tmp_path, store_url) as (daemon, path):
        before = await stored_plans(daemon)
        assert (before, []) == await explained(daemon)
        assert all(before.values())
        version = daemon.config.version
        edit(path.parent / "schedules" / "evening.toml", EVENING, MOVED)
        record = await reloaded(daemon, version)
        after = await stored_plans(daemon)
        assert (after, []) == await explained(daemon)
    assert all(after[a] != before[a] for a in ACCOUNTS)
    assert record["status"] == "loaded"
    assert record["replanned"] == len(ACCOUNTS)
    assert [r.getMessage() for r in caplog.records if REPLANNED in r.getMessage()] == [
        f"stored plans of {len(ACCOUNTS)} accounts due for a fresh decision: the contact policy "
        f"changed (config {record['config_version']})"]


async def test_a_reload_that_leaves_the_contact_policy_as_it_was_replans_nothing(
        broker: Broker, tmp_path: Path, caplog: pytest.LogCaptureFixture, store_url: str) -> None:
    caplog.set_level(logging.INFO)
    async with planned(broker, tmp_path, store_url) as (daemon, path):
        before = await stored_plans(daemon)
        version = daemon.config.version
        edit(path, "sweep_seconds = 0.02", "sweep_seconds = 0.03")
        record = await reloaded(daemon, version)
        assert await stored_plans(daemon) == before
    assert record["status"] == "loaded"
    assert "replanned" not in record
    assert not [r for r in caplog.records if REPLANNED in r.getMessage()]
