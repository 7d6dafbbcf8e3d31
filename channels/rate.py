"""Provider rates that several daemons share: each request also takes a token of one bucket.

The bucket is kept where every daemon reaches it (the store); the channel knows it only through
`SharedRate`. A request takes its token just before it leaves and waits until it is due: by the
keeper's clock, over any T seconds the daemons together send at most `burst` + `rate` x T.
"""

from __future__ import annotations

import asyncio
from typing import Protocol


class SharedRate(Protocol):
    """A provider's rate as a token bucket that every daemon of a fleet takes from."""

    async def take_token(self, key: str, rate: float, burst: int) -> float:
        """Take the next token of the bucket `key` (`rate` a second, up to `burst` at once):
        the seconds until it is due, when the request may leave."""
        ...


class Limiter(Protocol):
    """Something a request waits for before it leaves."""

    async def acquire(self) -> None:
        """Wait until a request may be sent."""
        ...


class SharedLimiter:
    """The daemon's own limiter first, then the fleet's token, waited for in the calling task."""

    def __init__(self, local: Limiter, shared: SharedRate, key: str, rate: float, *,
                 burst: int = 1) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.local = local
        self.shared = shared
        self.key = key
        self.rate = rate
        self.burst = burst

    async def acquire(self) -> None:
        """Wait for the daemon's own limiter, then until the fleet's token is due."""
        await self.local.acquire()
        wait = await self.shared.take_token(self.key, self.rate, self.burst)
        if wait > 0:
            await asyncio.sleep(wait)
