"""Publishing test events with QoS 1 from the test process."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import aiomqtt


async def publish_all(port: int, payloads: Iterable[bytes], *,
                      topic: str = "collections/events/test", window: int = 200) -> int:
    """Publish every payload with QoS 1 (each acknowledged by the broker); return how many."""
    count = 0
    async with aiomqtt.Client("127.0.0.1", port, identifier=None,
                              max_inflight_messages=window) as client:
        client.pending_calls_threshold = window + 1  # a window of publishes in flight is intended
        pending: list[asyncio.Task[None]] = []
        for payload in payloads:
            pending.append(asyncio.create_task(client.publish(topic, payload, qos=1)))
            count += 1
            if len(pending) >= window:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    return count
