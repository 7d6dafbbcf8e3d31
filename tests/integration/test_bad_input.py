"""Each kind of bad input becomes an audited, counted dead letter (docs/events.md)."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from tests.integration.inprocess import metrics_once, running, wait_for
from tests.integration.publish import publish_all
from tests.support import (
    STORES,
    Broker,
    encode,
    make_config,
    overdue_event,
    query,
    stored_events,
)


def _event(**changes: Any) -> bytes:
    event = overdue_event(1, "A-BAD")
    for path, value in changes.items():
        target = event
        keys = path.split("__")
        for key in keys[:-1]:
            target = target[int(key)] if isinstance(target, list) else target[key]
        if value is _DROP:
            del target[keys[-1]]
        else:
            target[keys[-1]] = value
    return encode(event)


_DROP = object()

CASES = [
    ("not json", b"{this is not json", "not_json", "line 1"),
    ("not utf-8", b"\xff\xfe{}", "not_utf8", "byte 0"),
    ("json array", b"[1, 2, 3]", "not_object", "list"),
    ("json string", b'"hello"', "not_object", "str"),
    ("too large", encode({"pad": "x" * (65 * 1024)}), "too_large", "limit is 65536"),
    ("unknown type", _event(type="account.exploded"), "unknown_type", "account.exploded"),
    ("unknown schema", _event(schema=2), "unknown_schema", "schema 2"),
    ("bad E.164 number", _event(data__debtor__phones__0__number="+1555"), "invalid",
     "data.debtor.phones.0.number"),
    ("unknown time zone", _event(data__debtor__timezone="Mars/Olympus"), "invalid",
     "data.debtor.timezone"),
    ("negative days", _event(data__days_past_due=-4), "invalid", "data.days_past_due"),
    ("missing account_id", _event(account_id=_DROP), "invalid", "account_id"),
    ("missing debtor", _event(data__debtor=_DROP), "invalid", "data.debtor"),
    ("lone surrogate in event_id", _event(event_id="e-\ud800"), "invalid", "event_id"),
    ("U+0000 in event_id", _event(event_id="e-\u0000"), "invalid", "event_id"),
    ("U+0000 in account_id", _event(account_id="A-\u0000"), "invalid", "account_id"),
    ("U+0000 in type", _event(type="account.\u0000"), "unknown_type", "account.\\x00"),
    ("offset-less time", _event(occurred_at="2026-12-01T09:00:00"), "invalid", "occurred_at"),
]


@pytest.mark.parametrize(("payload", "reason", "detail"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
async def test_bad_input_becomes_dead_letter(tmp_path: Path, broker: Broker, payload: bytes,
                                             reason: str, detail: str, store_url: str) -> None:
    config = make_config(tmp_path / "cfg", broker.url, store_url=store_url)
    async with running(config) as dispatcher:
        good = encode(overdue_event(2, "A-GOOD"))
        await publish_all(broker.port, [payload, good])
        await wait_for(lambda: stored_events(config) == 1, 10, "the good event after the bad")

        rows = query(config, "SELECT reason, detail, payload, topic FROM dead_letters")
        assert len(rows) == 1
        stored_reason, stored_detail, raw, topic = rows[0]
        assert stored_reason == reason
        assert detail in stored_detail
        assert bytes(raw) == payload  # the raw payload, byte for byte
        assert topic == "collections/events/test"

        audit = [json.loads(r[0]) for r in query(
            config, "SELECT record FROM audit WHERE kind = 'dead_letter'")]
        assert [a["reason"] for a in audit] == [reason]

        # The daemon counts a batch when the writer reports its commit, just after the store
        # shows it.
        text = await metrics_once(dispatcher.webhook_port,
                                  'dispatcher_events_in_total{result="stored"} 1.0')
        assert f'dispatcher_dead_letters_total{{reason="{reason}"}} 1.0' in text


# -- identifiers that cannot be a topic level -----------------------------------------------

async def _next_topics(watcher: aiomqtt.Client, count: int) -> list[str]:
    topics = []
    async with asyncio.timeout(10):
        async for message in watcher.messages:
            topics.append(str(message.topic))
            if len(topics) == count:
                return topics
    return topics


async def _topics_until(watcher: aiomqtt.Client, last: str) -> list[str]:
    topics: list[str] = []
    async with asyncio.timeout(20):
        async for message in watcher.messages:
            topics.append(str(message.topic))
            if topics[-1] == last:
                break
    return topics


def _attempt(account_id: str, n: int) -> dict[str, Any]:
    return {"kind": "attempt", "account_id": account_id, "attempt_id": f"t-{n}",
            "channel": "sms", "party": "debtor", "to": "+15125550100", "config_version": "x"}


async def test_an_account_id_that_breaks_the_topic_is_a_dead_letter(
        tmp_path: Path, broker: Broker, store_url: str) -> None:
    config = make_config(tmp_path / "cfg", broker.url, store_url=store_url)
    async with running(config):
        bad = _event(account_id="E\u0001X")
        await publish_all(broker.port, [bad, encode(overdue_event(2, "A-GOOD"))])
        await wait_for(lambda: stored_events(config) == 1, 10, "the good event after the bad")
        rows = query(config, "SELECT reason, detail FROM dead_letters")
    assert len(rows) == 1
    assert rows[0][0] == "invalid"
    assert rows[0][1].startswith("account_id: character U+0001")


BAD_TOPIC_LEVELS = ["E\u0001X", "E\u0000X", "E+X", "E#X", "$SYS", "E\u0085X"]
# Each store with each level it can hold: PostgreSQL's text cannot hold U+0000.
STORED_LEVELS = [pytest.param(store.values[0], level, marks=store.marks)
                 for store in STORES for level in BAD_TOPIC_LEVELS
                 if store.values[0] == "sqlite" or "\u0000" not in level]


@pytest.mark.parametrize(("new_store_url", "account_id"), STORED_LEVELS,
                         indirect=["new_store_url"])
async def test_a_record_that_cannot_be_published_does_not_block_the_outbox(
        tmp_path: Path, broker: Broker, account_id: str,
        caplog: pytest.LogCaptureFixture, store_url: str) -> None:
    # As rows written before ids were checked: straight into the store, bypassing validation.
    config = make_config(tmp_path / "cfg", broker.url, store_url=store_url)
    async with aiomqtt.Client("127.0.0.1", broker.port) as watcher:
        # One level: the accounts' records, not the signed head under `_audit/head`.
        await watcher.subscribe("collections/attempts/+", qos=1)
        with caplog.at_level(logging.INFO, logger="dispatcher"):
            async with running(config) as dispatcher:
                await dispatcher.store.append_audit(
                    [_attempt("A-1", 1), _attempt(account_id, 2), _attempt("A-3", 3)],
                    now=dispatcher.clock.now())
                first = await _next_topics(watcher, 2)
                await dispatcher.store.append_audit([_attempt("A-4", 4)],
                                                    now=dispatcher.clock.now())
                later = await _next_topics(watcher, 1)
                await wait_for(lambda: not query(
                    config, "SELECT 1 FROM audit WHERE published = 0"), 10, "outbox empty")
                text = await metrics_once(dispatcher.webhook_port,
                                          "dispatcher_audit_unpublishable_total 1.0")
                assert dispatcher.health.mqtt_connected
    assert first + later == [f"collections/attempts/A-{n}" for n in (1, 3, 4)]
    assert "dispatcher_audit_published_total 3.0" in text
    states = [(json.loads(record)["attempt_id"], published) for record, published in query(
        config, "SELECT record, published FROM audit WHERE kind = 'attempt' ORDER BY seq")]
    assert states == [("t-1", 1), ("t-2", 2), ("t-3", 1), ("t-4", 1)]
    # Connected once, never dropped; the record is named once in the log, by its seq.
    assert caplog.text.count("connected to broker") == 1
    assert "broker unreachable" not in caplog.text
    unpublishable = [r for r in caplog.records if "cannot be published" in r.getMessage()]
    assert len(unpublishable) == 1
    assert "+15125550100" not in caplog.text


@pytest.mark.parametrize(("account_id", "why"), [
    ("E\u0001X", "the broker dropped the connection each of 3 times"),
    ("E#X", "refused by the MQTT client"),
])
async def test_a_record_refused_on_the_way_is_given_up_without_the_topic_check(
        tmp_path: Path, broker: Broker, account_id: str, why: str,
        caplog: pytest.LogCaptureFixture, store_url: str) -> None:
    # Whatever else a client or broker may refuse: the outbox learns it from the refusal itself.
    config = make_config(tmp_path / "cfg", broker.url, store_url=store_url)
    async with aiomqtt.Client("127.0.0.1", broker.port) as watcher:
        # One level: the accounts' records, not the signed head under `_audit/head`.
        await watcher.subscribe("collections/attempts/+", qos=1)
        with caplog.at_level(logging.INFO, logger="dispatcher"):
            async with running(config, topic_problem=lambda record: None) as dispatcher:
                await dispatcher.store.append_audit(
                    [_attempt("A-1", 1), _attempt(account_id, 2), _attempt("A-3", 3)],
                    now=dispatcher.clock.now())
                topics = await _topics_until(watcher, "collections/attempts/A-3")
                await wait_for(lambda: dispatcher.health.mqtt_connected, 10, "connected")
    assert topics[-1] == "collections/attempts/A-3"
    assert set(topics) == {"collections/attempts/A-1", "collections/attempts/A-3"}
    assert query(config, "SELECT published FROM audit WHERE kind = 'attempt' ORDER BY seq") == [
        (1,), (2,), (1,)]
    assert why in caplog.text
