"""A process that sends "requests" through the shared limiter for a while, as a daemon does.

`python -m tests.integration.rate_taker URL KEY RATE BURST START SECONDS` waits for the wall
clock to reach START, acquires the limiter until START + SECONDS, and prints one JSON line: the
wall-clock time at which each request was let through.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from channels.rate import SharedLimiter
from channels.twilio import RateLimiter
from dispatcher.store import open_store


async def main(url: str, key: str, rate: float, burst: int, start: float,
               seconds: float) -> None:
    """Send through the limiter between `start` and `start + seconds`; print when each went."""
    async with open_store(url, create=False) as store:
        limiter = SharedLimiter(RateLimiter(rate), store, key, rate, burst=burst)
        await asyncio.sleep(max(0.0, start - time.time()))
        sent: list[float] = []
        while time.time() < start + seconds:
            await limiter.acquire()
            sent.append(time.time())
    print(json.dumps(sent))


if __name__ == "__main__":
    url, key, rate, burst, start, seconds = sys.argv[1:7]
    asyncio.run(main(url, key, float(rate), int(burst), float(start), float(seconds)))
