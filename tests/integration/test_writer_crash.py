"""A writer process that dies on a message: intake goes on, and only that message is set aside."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.integration.crashing_writer import BLOCK_FILE, CRASH_MARK
from tests.integration.inprocess import running, wait_for
from tests.integration.publish import publish_all
from tests.support import Broker, encode, make_config, overdue_event, query, stored_events

WRITER = "tests.integration.crashing_writer"


async def _health(port: int | None) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as http, \
            http.get(f"http://127.0.0.1:{port}/healthz") as response:
        return response.status, await response.json()


async def test_a_message_the_writer_dies_on_is_found_and_set_aside(
        tmp_path: Path, broker: Broker, monkeypatch: pytest.MonkeyPatch, store_url: str) -> None:
    block = tmp_path / "writer-blocked"
    monkeypatch.setenv(BLOCK_FILE, str(block))
    config = make_config(tmp_path / "cfg", broker.url, store_url=store_url)
    poison = encode(overdue_event(999, f"A-{CRASH_MARK.decode()}"))
    valid = [encode(overdue_event(n)) for n in range(300)]
    async with running(config, writer_module=WRITER) as dispatcher:
        port = dispatcher.webhook_port
        await publish_all(broker.port, valid[:10])
        await wait_for(lambda: stored_events(config) == 10, 20, "the first events")
        assert (await _health(port))[0] == 200

        # The writer dies on the poison and, while the file exists, cannot be started again.
        block.touch()
        await publish_all(broker.port, [*valid[10:150], poison, *valid[150:]])
        await wait_for(lambda: "cannot start" in dispatcher.health.problems.active().get(
            "writer", ""), 20, "the writer failure noticed")
        status, body = await _health(port)
        assert status == 503
        assert "cannot start" in body["problems"]["writer"]
        assert stored_events(config) < len(valid)

        block.unlink()
        await wait_for(lambda: stored_events(config) == len(valid), 60, "every valid event")
        await wait_for(lambda: bool(query(config, "SELECT 1 FROM dead_letters")), 20,
                       "the poison set aside")
        status, body = await _health(port)
        assert (status, body["problems"]) == (200, {})

    letters = query(config, "SELECT reason, detail, payload, event_id FROM dead_letters")
    assert len(letters) == 1
    reason, detail, payload, event_id = letters[0]
    assert (reason, bytes(payload), event_id) == ("internal_error", poison, "e-000999")
    assert "the ingest writer failed twice on this message" in detail
    events = [json.loads(r[0])["event_id"] for r in query(
        config, "SELECT record FROM audit WHERE kind = 'event'")]
    assert sorted(events) == sorted(f"e-{n:06d}" for n in range(300))  # each exactly once

    # Everything was acknowledged: a new session of the same client gets nothing again.
    async with running(config, writer_module=WRITER) as dispatcher:
        await publish_all(broker.port, [encode(overdue_event(1000))])
        await wait_for(lambda: stored_events(config) == 301, 20, "a fresh event")
    assert len(query(config, "SELECT 1 FROM dead_letters")) == 1
    assert len(query(config, "SELECT 1 FROM audit WHERE kind = 'event'")) == 301
