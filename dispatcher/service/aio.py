"""Small asyncio helpers shared by the daemon's loops."""

from __future__ import annotations

import asyncio
import contextlib


async def pause(seconds: float, stop: asyncio.Event, *wake: asyncio.Event) -> None:
    """Sleep for `seconds`, or less if `stop` (or any of `wake`) is set meanwhile."""
    events = (stop, *wake)
    if any(e.is_set() for e in events):
        return
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
