"""Small asyncio helpers shared by the daemon's loops."""

from __future__ import annotations

import asyncio
import contextlib


async def pause(seconds: float, stop: asyncio.Event) -> None:
    """Sleep for `seconds`, or less if `stop` is set meanwhile."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await stop.wait()
