"""The console's work-queue page and action through the WorkQueue Protocol: what the console
hands a queue (user, note, hold) and how it shows the items, on a real store and real HTTP.

The queue here is the test's own list: the Protocol is what a queue module is wired in by
(dispatcher/console/sources.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path

import pytest
from markupsafe import escape

from dispatcher.config.settings import load_config
from dispatcher.console.sources import (
    NoWorkQueue,
    PlannedAgenda,
    QueueActionError,
    QueueItem,
    Sources,
    WorkQueue,
)
from dispatcher.console.web import Console
from dispatcher.domain.clock import SystemClock
from dispatcher.service.metrics import Metrics
from dispatcher.store import open_store
from dispatcher.webhooks.server import Health, build_app, start_server
from tests.integration.console_support import (
    HOSTILE,
    REPLY_TEXT,
    TOKEN,
    USER,
    console_config,
    csrf_of,
    log_in,
    session,
)

pytestmark = pytest.mark.sqlite


class ListQueue:
    """Items in a list; resolving records who did what."""

    available = True

    def __init__(self) -> None:
        self.open = [QueueItem("7", "unclassified_reply", "2026-12-01T09:00:00.000Z", HOSTILE,
                               REPLY_TEXT, ("opt_out", "hold", "dismiss"))]
        self.done: list[tuple[str, str, str, str, str | None]] = []

    async def items(self, now: datetime) -> list[QueueItem]:
        return list(self.open)

    async def resolve(self, item_id: str, action: str, *, user: str, note: str,
                      now: datetime, hold: str | None = None) -> str:
        if item_id not in {i.item_id for i in self.open}:
            raise QueueActionError(f"no open item {item_id}")
        self.open = [i for i in self.open if i.item_id != item_id]
        self.done.append((item_id, action, user, note, hold))
        return f"item {item_id}: {action}"


@asynccontextmanager
async def _serve(tmp_path: Path, queue: WorkQueue) -> AsyncIterator[str]:
    config = load_config(console_config(tmp_path / "cfg", "mqtt://127.0.0.1:1"))
    async with open_store(config.store_location) as store:
        console = Console(store=store, config=lambda: config,
                          settings=config.settings.console, health=Health(), metrics=Metrics(),
                          clock=SystemClock(), token=TOKEN,
                          sources=Sources(PlannedAgenda(store), queue))
        runner, port = await start_server(build_app(store, Metrics(), Health(),
                                                    console.add_routes), "127.0.0.1", 0)
        try:
            yield f"http://127.0.0.1:{port}/console"
        finally:
            await runner.cleanup()


async def test_items_are_listed_escaped_and_resolved_with_the_user_note_and_hold(
        tmp_path: Path) -> None:
    queue = ListQueue()
    async with _serve(tmp_path, queue) as base, session() as http:
        await log_in(http, base)
        async with http.get(f"{base}/queue") as page:
            text = await page.text()
        assert str(escape(REPLY_TEXT.replace("+15125550177", "+15*******77"))) in text
        assert "<script>document" not in text
        assert str(escape(HOSTILE)) in text
        token = csrf_of(text)
        form = {"item": "7", "action": "hold", "hold": "dispute", "note": "said so"}
        async with http.post(f"{base}/queue/resolve", data=form) as refused:
            assert refused.status == 403  # no CSRF token
        assert queue.done == []
        async with http.post(f"{base}/queue/resolve",
                             data={**form, "csrf": token}) as done:
            assert done.status == 200
            assert "item 7: hold" in await done.text()
        assert queue.done == [("7", "hold", USER, "said so", "dispute")]
        async with http.post(f"{base}/queue/resolve",
                             data={**form, "csrf": token}) as again:
            assert again.status == 409
            assert "no open item 7" in await again.text()


async def test_without_a_queue_the_page_says_so_and_resolving_is_refused(
        tmp_path: Path) -> None:
    async with _serve(tmp_path, NoWorkQueue()) as base, session() as http:
        await log_in(http, base)
        async with http.get(f"{base}/queue") as page:
            text = await page.text()
        assert 'id="unavailable"' in text
        async with http.get(f"{base}/dead-letters") as page:
            token = csrf_of(await page.text())
        async with http.post(f"{base}/queue/resolve",
                             data={"item": "1", "action": "dismiss", "note": "x",
                                   "csrf": token}) as refused:
            assert refused.status == 409
