"""Ingest semantics against a real broker: duplicates, out-of-order events, outbox, health."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import aiohttp
import aiomqtt

from dispatcher.audit.chain import canonical_json
from dispatcher.domain.accounts import AccountStatus
from tests.integration.inprocess import metrics_once, running, wait_for
from tests.integration.publish import publish_all
from tests.support import Broker, encode, make_config, overdue_event, query, stored_events


async def test_duplicate_event_ids_are_acknowledged_and_ignored(tmp_path: Path, broker: Broker,
                                                                store_url: str) -> None:
    config = make_config(tmp_path / "cfg", broker.url, store_url=store_url)
    async with running(config) as dispatcher:
        first = overdue_event(1, "A-1")
        again = overdue_event(1, "A-1", days=99)  # same event_id, other content
        await publish_all(broker.port, [encode(first), encode(again), encode(first)])
        await publish_all(broker.port, [encode(overdue_event(2, "A-2"))])
        await wait_for(lambda: stored_events(config) == 2, 10, "two distinct events")
        state = await dispatcher.store.account("A-1")
        assert state is not None
        assert state.days_past_due == 3
        assert len(query(config, "SELECT 1 FROM audit WHERE kind = 'event'")) == 2
        text = await metrics_once(dispatcher.webhook_port,
                                  'dispatcher_events_in_total{result="stored"} 2.0')
        assert 'dispatcher_events_in_total{result="duplicate"} 2.0' in text


def has_events(config: Path, count: int) -> bool:
    """Exactly `count` events are stored."""
    return stored_events(config) == count


async def test_out_of_order_events_resolve_by_occurred_at(tmp_path: Path, broker: Broker,
                                                          store_url: str) -> None:
    config = make_config(tmp_path / "cfg", broker.url, store_url=store_url)
    newer_update = {"schema": 1, "event_id": "u-2", "type": "account.updated",
                    "occurred_at": "2026-12-03T10:00:00Z", "account_id": "A-7",
                    "data": {"amount_due": "80.00"}}
    older_overdue = overdue_event(1, "A-7", occurred_at="2026-12-01T10:00:00Z")
    older_resolve = {"schema": 1, "event_id": "r-1", "type": "account.resolved",
                     "occurred_at": "2026-11-30T10:00:00Z", "account_id": "A-7",
                     "data": {"reason": "paid"}}
    async with running(config) as dispatcher:
        # Arrive newest first, one at a time, so that each is its own batch.
        for published, event in enumerate((newer_update, older_overdue, older_resolve), 1):
            await publish_all(broker.port, [encode(event)])
            await wait_for(partial(has_events, config, published), 10, "event stored")
        state = await dispatcher.store.account("A-7")
    assert state is not None
    # The overdue (Dec 1) is newer than the resolve (Nov 30): the account is open, and the
    # update (Dec 3) wins over the overdue's amount although it arrived first.
    assert state.status is AccountStatus.OPEN
    assert state.amount_due == "80.00"
    assert state.days_past_due == 3


async def test_opt_out_applies_to_the_number_and_newest_statement_wins(
        tmp_path: Path, broker: Broker, store_url: str) -> None:
    config = make_config(tmp_path / "cfg", broker.url, store_url=store_url)

    def opt(event_id: str, kind: str, when: str, channel: str) -> bytes:
        return encode({"schema": 1, "event_id": event_id, "type": f"contact.{kind}",
                       "occurred_at": when, "account_id": "A-1",
                       "data": {"number": "+15125550100", "channel": channel}})

    # In the past: an opt-in dated after its receipt is not applied.
    day = datetime.now(UTC).replace(microsecond=0) - timedelta(days=3)
    async with running(config) as dispatcher:
        await publish_all(broker.port, [
            opt("o-2", "opt_in", (day + timedelta(days=1)).isoformat(), "sms"),
            opt("o-1", "opt_out", day.isoformat(), "all"),  # older, arrives later
        ])
        await wait_for(lambda: stored_events(config) == 2, 10, "both stored")
        states = {o.channel: o.opted_out for o in await dispatcher.store.opt_outs("+15125550100")}
    assert states == {"sms": False, "call": True}
    kinds = [r[0] for r in query(config, "SELECT kind FROM audit ORDER BY seq")]
    assert kinds.count("opt_out") == 2


async def test_attempt_records_are_published_to_the_out_topic(tmp_path: Path, broker: Broker,
                                                              store_url: str) -> None:
    config = make_config(tmp_path / "cfg", broker.url, store_url=store_url)
    async with aiomqtt.Client("127.0.0.1", broker.port) as watcher:
        # One level: the accounts' records, not the signed head under `_audit/head`.
        await watcher.subscribe("collections/attempts/+", qos=1)
        async with running(config) as dispatcher:
            stored = await dispatcher.store.append_audit([
                {"kind": "attempt", "account_id": "A-9", "attempt_id": "t-1", "channel": "sms",
                 "party": "debtor", "to": "+15125550100", "config_version": "x"},
                {"kind": "hold", "account_id": "A-9", "reason": "hold:cease"},
            ], now=dispatcher.clock.now())
            async with asyncio.timeout(10):
                message = await anext(aiter(watcher.messages))
            await wait_for(lambda: not query(config, "SELECT 1 FROM audit WHERE published = 0"),
                           10, "marked published")
    assert str(message.topic) == "collections/attempts/A-9"
    assert isinstance(message.payload, bytes)
    assert message.payload.decode() == canonical_json(stored[0])
    # Only attempt/suppressed/outcome records are published; the hold record was not.
    assert json.loads(message.payload)["kind"] == "attempt"
    assert query(config, "SELECT published FROM audit WHERE kind = 'hold'") == [(None,)]


async def test_healthz_reports_broker_and_store(tmp_path: Path, broker: Broker,
                                               store_url: str) -> None:
    config = make_config(tmp_path / "cfg", broker.url, store_url=store_url)
    async with running(config) as dispatcher:
        url = f"http://127.0.0.1:{dispatcher.webhook_port}/healthz"
        async with aiohttp.ClientSession() as http, http.get(url) as response:
            assert response.status == 200
            body = await response.json()
        assert body == {"status": "ok", "mqtt_connected": True, "store_writable": True,
                        "due_lag_seconds": 0.0, "problems": {}}
        broker.stop()
        await wait_for(lambda: not dispatcher.health.mqtt_connected, 10, "disconnect noticed")
        async with aiohttp.ClientSession() as http, http.get(url) as response:
            assert response.status == 503
            body = await response.json()
            assert body["mqtt_connected"] is False
            assert body["problems"] == {"mqtt": "not connected to the broker"}
        broker.start()
        await wait_for(lambda: dispatcher.health.mqtt_connected, 10, "reconnected")


async def test_inline_writer_stores_events_and_dead_letters(tmp_path: Path, broker: Broker,
                                                            store_url: str) -> None:
    config = make_config(tmp_path / "cfg", broker.url, extra='[ingest]\nwriter = "inline"',
                         store_url=store_url)
    async with running(config) as dispatcher:
        await publish_all(broker.port, [encode(overdue_event(n)) for n in range(50)]
                          + [b"nope", encode(overdue_event(3))])
        await metrics_once(dispatcher.webhook_port,
                           'dispatcher_events_in_total{result="dead_letter"} 1.0')
    assert stored_events(config) == 50
    assert query(config, "SELECT reason FROM dead_letters") == [("not_json",)]
    assert len(query(config, "SELECT 1 FROM audit WHERE kind = 'event'")) == 50
