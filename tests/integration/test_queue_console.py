"""The console wired to the real work queue (dispatcher.console.sources.StoreWorkQueue): a reply
stating a dispute is listed, and a person resolves it over real HTTP, audited with their name."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dispatcher.config.settings import LoadedConfig, load_config
from dispatcher.console.sources import QUEUE_SHOWN, PlannedAgenda, Sources, StoreWorkQueue
from dispatcher.console.web import Console
from dispatcher.contact.replies import handle_reply
from dispatcher.domain.clock import SystemClock
from dispatcher.ingest.classify import classify
from dispatcher.queue.items import QueueItem, State, list_items
from dispatcher.service.metrics import Metrics
from dispatcher.store import Store, open_store
from dispatcher.webhooks.server import Health, build_app, start_server
from tests.integration.console_support import (
    TOKEN,
    USER,
    console_config,
    csrf_of,
    log_in,
    session,
)
from tests.support import encode, overdue_event

pytestmark = pytest.mark.sqlite
T0 = datetime(2026, 11, 2, 15, 0, tzinfo=UTC)


@asynccontextmanager
async def _console(store: Store, config: LoadedConfig) -> AsyncIterator[str]:
    """The console over `store` with the real work queue, served on a free port: its base URL."""
    console = Console(store=store, config=lambda: config, settings=config.settings.console,
                      health=Health(), metrics=Metrics(), clock=SystemClock(), token=TOKEN,
                      sources=Sources(PlannedAgenda(store),
                                      StoreWorkQueue(store, lambda: config.version)))
    runner, port = await start_server(build_app(store, Metrics(), Health(), console.add_routes),
                                      "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{port}/console"
    finally:
        await runner.cleanup()


async def test_the_console_lists_and_resolves_the_real_queue(tmp_path: Path) -> None:
    config = load_config(console_config(tmp_path / "cfg", "mqtt://127.0.0.1:1"))
    async with open_store(config.store_location) as store:
        await store.record_batch([classify(encode(overdue_event(1, "A-1")), "t", 65536)],
                                 now=T0, config_version="test")
        await handle_reply(store, "+15125550100", "I dispute this debt", T0,
                           config_version="test", max_payload_bytes=65536, message_id="SM1")
        [item] = await list_items(store)
        async with _console(store, config) as base, session() as http:
            await log_in(http, base)
            async with http.get(f"{base}/queue") as page:
                text = await page.text()
            assert "dispute" in text
            assert "+15125550100" not in text
            form = {"item": str(item.id), "action": "resume", "note": "proof sent",
                    "csrf": csrf_of(text)}
            async with http.post(f"{base}/queue/resolve", data=form) as done:
                assert done.status == 200, await done.text()
            async with http.post(f"{base}/queue/resolve", data=form) as again:
                assert again.status == 409
                assert "already resolved" in await again.text()
        [resolved] = await list_items(store, state=State.RESOLVED)
        assert (resolved.resolved_by, resolved.action) == (USER, "resume")
        state = await store.account("A-1")
        assert state is not None
        assert state.holds == ()


async def test_a_flood_of_dead_letters_lists_the_oldest_page_and_says_more_wait(
        tmp_path: Path) -> None:
    config = load_config(console_config(tmp_path / "cfg", "mqtt://127.0.0.1:1"))
    async with open_store(config.store_location) as store:
        flood = [classify(b"{not json %d" % n, "t", 65536) for n in range(QUEUE_SHOWN + 1)]
        await store.record_batch(flood, now=T0, config_version="test")
        assert await store.open_queue_items() == QUEUE_SHOWN + 1
        async with _console(store, config) as base, session() as http:
            await log_in(http, base)
            async with http.get(f"{base}/queue") as page:
                assert page.status == 200
                text = await page.text()
    assert text.count('name="item"') == QUEUE_SHOWN
    assert 'id="truncated"' in text
    oldest = min(i.id for i in await _all_open(config))
    assert f'name="item" value="{oldest}"' in text


async def _all_open(config: LoadedConfig) -> list[QueueItem]:
    async with open_store(config.store_location) as store:
        return await list_items(store)
