"""Outbox: audit records of kind attempt/suppressed/outcome are published to MQTT, at least once."""

from __future__ import annotations

import asyncio
import logging

import aiomqtt

from dispatcher.aio import pause
from dispatcher.audit import canonical_json
from dispatcher.audit_heads import head_topic
from dispatcher.head_anchor import HeadAnchor
from dispatcher.metrics import Metrics
from dispatcher.store import Store

log = logging.getLogger(__name__)


def topic_for(prefix: str, record: dict[str, object]) -> str:
    """`<out prefix>/<account_id>` (contract section 2)."""
    return f"{prefix}/{record.get('account_id') or '_'}"


class AuditPublisher:
    """Publishes unpublished audit records in seq order and marks them once the broker has them."""

    def __init__(self, store: Store, metrics: Metrics, prefix: str, *,
                 poll_seconds: float = 0.5, batch: int = 200,
                 heads: HeadAnchor | None = None) -> None:
        self._store = store
        self._heads = heads
        self._metrics = metrics
        self._prefix = prefix
        self._poll = poll_seconds
        self._batch = batch

    async def run(self, client: aiomqtt.Client, stop: asyncio.Event) -> None:
        """Publish until `stop` is set or the connection drops."""
        if self._heads is not None:
            self._heads.republish()
        while not stop.is_set():
            published = await self.publish_pending(client)
            await self.publish_head(client)
            if published < self._batch:
                await pause(self._poll, stop)

    async def publish_pending(self, client: aiomqtt.Client) -> int:
        """Publish one batch of pending records; return how many."""
        records = await self._store.unpublished(self._batch)
        for record in records:
            # QoS 1: publish() returns once the broker has acknowledged the message.
            await client.publish(topic_for(self._prefix, record), canonical_json(record), qos=1)
        if records:
            await self._store.mark_published([int(r["seq"]) for r in records])
            self._metrics.published.inc(len(records))
        return len(records)

    async def publish_head(self, client: aiomqtt.Client) -> None:
        """Retain the newest signed head of the chain, if the broker lacks it."""
        head = self._heads.unpublished() if self._heads is not None else None
        if head is None or self._heads is None:
            return
        await client.publish(head_topic(self._prefix), canonical_json(head), qos=1, retain=True)
        self._heads.published(head)
