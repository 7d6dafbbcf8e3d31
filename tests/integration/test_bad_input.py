"""Contract section 5: each kind of bad input becomes an audited, counted dead letter."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.integration.inprocess import metrics_once, running, wait_for
from tests.integration.publish import publish_all
from tests.support import Broker, encode, make_config, overdue_event, query, stored_events


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
    ("offset-less time", _event(occurred_at="2026-12-01T09:00:00"), "invalid", "occurred_at"),
]


@pytest.mark.parametrize(("payload", "reason", "detail"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
async def test_bad_input_becomes_dead_letter(tmp_path: Path, broker: Broker, payload: bytes,
                                             reason: str, detail: str) -> None:
    config = make_config(tmp_path / "cfg", broker.url)
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
