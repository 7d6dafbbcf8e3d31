"""Running the real Dispatcher inside the test's event loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import aiohttp

from dispatcher.config.settings import load_config
from dispatcher.service.app import Dispatcher

T = TypeVar("T")


async def wait_for(predicate: Callable[[], bool], seconds: float, what: str) -> None:
    """Poll a condition that other processes change, without blocking the loop."""
    await wait_for_async(lambda: _now(predicate()), seconds, what)


async def wait_for_async(check: Callable[[], Awaitable[T | None]], seconds: float, what: str) -> T:
    """Poll an async check (a store query, an HTTP fetch) until it returns something truthy,
    and return that; fail naming `what` after `seconds`."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not (found := await check()):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {seconds}s waiting for {what}")
        await asyncio.sleep(0.02)
    return found


async def _now(value: T) -> T:
    return value


def sweeps(daemon: Dispatcher) -> float:
    """How many due sweeps the daemon has completed (`dispatcher_sweeps_total`)."""
    return daemon.metrics.registry.get_sample_value("dispatcher_sweeps_total") or 0.0


@asynccontextmanager
async def running(config_path: Path, **options: Any) -> AsyncIterator[Dispatcher]:
    """A started, connected Dispatcher (`options` go to its constructor); stopped gracefully
    at the end of the block."""
    config = load_config(config_path)
    dispatcher = Dispatcher(config, **options)
    async with dispatcher:
        task = asyncio.create_task(dispatcher.run())
        await wait_for(lambda: dispatcher.health.mqtt_connected or task.done(), 10, "connected")
        try:
            yield dispatcher
            assert not task.done(), "the daemon stopped on its own"
        finally:
            dispatcher.request_stop()
            await task


async def metrics_once(port: int | None, line: str) -> str:
    """The /metrics text, fetched over HTTP until it contains `line` (at most 10 s)."""
    url = f"http://127.0.0.1:{port}/metrics"
    async with aiohttp.ClientSession() as http, asyncio.timeout(10):
        while True:
            async with http.get(url) as response:
                text = await response.text()
            if line in text:
                return text
            await asyncio.sleep(0.05)
