"""The work queue in the running daemon, through a real Mosquitto: a reply disputing the debt
stops contact at once, a person resumes it with `dispatcher queue resolve`, and both steps are
published under `<out prefix>/queue/...`."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiomqtt

from dispatcher.config.settings import load_config
from dispatcher.contact.replies import handle_reply
from dispatcher.domain.clock import VirtualClock
from dispatcher.service.app import Dispatcher
from dispatcher.store import Store
from tests.integration.inprocess import sweeps, wait_for, wait_for_async
from tests.integration.publish import publish_all
from tests.support import Broker, make_config

# A Monday morning in Chicago, before the command line's own (wall) clock: the person's action
# comes after the reply, as it does in production.
START = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)
NUMBER = "+15125550100"
PREFIX = "collections/attempts"


async def kinds(store: Store, kind: str) -> list[dict[str, Any]]:
    return [r async for r in store.audit_records() if r["kind"] == kind]


async def attempts_past(store: Store, count: int) -> list[dict[str, Any]] | None:
    found = await kinds(store, "attempt")
    return found if len(found) > count else None


def dispatcher_cli(config: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dispatcher", *argv, "--config", str(config)],
                          capture_output=True, text=True, timeout=120, check=False)


async def run_cli(config: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(dispatcher_cli, config, *argv)


async def next_due(store: Store, after: datetime) -> datetime | None:
    due = await store.next_due_at()
    return due if due is not None and due > after else None


async def two_sweeps(daemon: Dispatcher) -> None:
    """Wait until the daemon has completed two more due sweeps."""
    done = sweeps(daemon)
    await wait_for(lambda: sweeps(daemon) >= done + 2, 10, "two sweeps")


async def advance_until_attempt(daemon: Dispatcher, clock: VirtualClock, count: int,
                                steps: int = 20) -> list[dict[str, Any]]:
    """Move the clock to each next due instant until the engine makes attempt `count + 1`."""
    for _ in range(steps):
        found = await attempts_past(daemon.store, count)
        if found:
            return found
        due = await daemon.store.next_due_at()
        if due is not None and due > clock.now():
            clock.set(due)
        await two_sweeps(daemon)
    raise AssertionError(f"no attempt after {count}")


async def test_a_dispute_holds_at_once_and_a_person_resumes_contact(
        broker: Broker, tmp_path: Path, store_url: str) -> None:
    path = make_config(tmp_path, broker.url, store_url=store_url,
                       extra="[contact]\nsweep_seconds = 0.02\n")
    config = load_config(path, {})
    event = {"schema": 1, "event_id": "e-1", "type": "account.overdue",
             "occurred_at": (START - timedelta(hours=1)).isoformat(), "account_id": "A-1",
             "data": {"days_past_due": 25, "amount_due": "10.00", "currency": "USD",
                      "debtor": {"name": "Pat Doe", "timezone": "America/Chicago",
                                 "phones": [{"number": NUMBER, "type": "mobile",
                                             "sms_consent": True, "call_consent": True}]}}}
    clock = VirtualClock(START)
    async with aiomqtt.Client("127.0.0.1", broker.port) as watcher:
        await watcher.subscribe(f"{PREFIX}/queue/#", qos=1)
        async with Dispatcher(config, clock=clock) as daemon:
            store = daemon.store
            task = asyncio.create_task(daemon.run())
            await wait_for(lambda: daemon.health.mqtt_connected, 10, "connected")
            await publish_all(broker.port, [json.dumps(event).encode()])
            [first] = await advance_until_attempt(daemon, clock, 0)

            # The debtor answers; the daemon's webhook hands every inbound text to this.
            await handle_reply(store, NUMBER, "I dispute this debt. It is NOT mine.",
                               clock.now(), config_version=config.version,
                               max_payload_bytes=65536, message_id="SM-dispute")
            state = await store.account("A-1")
            assert state is not None
            assert [h.reason.value for h in state.holds] == ["dispute"]
            [hold] = await kinds(store, "hold")
            assert (hold["reason"], hold["status"]) == ("hold:dispute", "placed")

            # Days pass: the engine looks again, and sends nothing while the hold stands.
            for day in range(1, 4):
                clock.set(START + timedelta(days=day))
                await two_sweeps(daemon)
            assert len(await kinds(store, "attempt")) == 1
            assert any(r["reason"] == "hold:dispute" for r in await kinds(store, "suppressed"))

            listed = await run_cli(path, "queue", "list", "--format", "jsonl")
            assert listed.returncode == 0, listed.stderr
            [item] = [json.loads(line) for line in listed.stdout.splitlines()]
            assert (item["reason"], item["account_id"], item["state"]) == (
                "dispute", "A-1", "open")
            created = await anext(watcher.messages)
            assert str(created.topic) == f"{PREFIX}/queue/created/A-1"
            assert json.loads(bytes(created.payload))["item_id"] == item["id"]

            resolved = await run_cli(path, "queue", "resolve", str(item["id"]), "--action",
                                     "resume", "--note", "proof of the debt sent", "--by",
                                     "ana")
            assert resolved.returncode == 0, resolved.stderr
            message = await anext(watcher.messages)
            assert str(message.topic) == f"{PREFIX}/queue/resolved/A-1"
            body = json.loads(bytes(message.payload))
            assert (body["action"], body["by"], body["item_id"]) == ("resume", "ana",
                                                                      item["id"])
            state = await store.account("A-1")
            assert state is not None
            assert state.holds == ()

            # Contact resumes: the engine plans and sends again.
            due = await wait_for_async(lambda: next_due(store, START), 10,
                                       "the account due again")
            clock.set(max(due, clock.now()))
            attempts = await advance_until_attempt(daemon, clock, 1, steps=40)
            assert attempts[0]["attempt_id"] == first["attempt_id"]
            daemon.request_stop()
            await task
    verified = await run_cli(path, "audit", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
