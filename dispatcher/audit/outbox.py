"""Outbox: audit records of kind attempt/suppressed/outcome/queue are published to MQTT, at
least once.

A record that can never be published (its account id is no valid topic level, the MQTT client
refuses it, or the broker drops the connection each time it is sent) is logged once, marked in
the store and counted, and the records behind it flow on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import aiomqtt

from dispatcher.audit.anchor import HeadAnchor
from dispatcher.audit.chain import canonical_json
from dispatcher.audit.heads import head_topic
from dispatcher.domain.identifiers import identifier_problem
from dispatcher.domain.phones import mask_numbers_in
from dispatcher.service.aio import pause
from dispatcher.service.metrics import Metrics
from dispatcher.store import OutboxStore

log = logging.getLogger("dispatcher.publisher")

# A broker that drops the connection this many times while one record is in flight, and never
# acknowledges it in between, is refusing that record; fewer could be an ordinary outage.
DROPS_BEFORE_GIVING_UP = 3


# Why a record cannot be published under its topic, or None.
TopicCheck = Callable[[dict[str, object]], str | None]


async def always() -> bool:
    """A daemon alone with its store publishes every record itself."""
    return True


def topic_for(prefix: str, record: dict[str, object]) -> str:
    """`<out prefix>/<account_id>`; a queue item's record (created or resolved),
    `<out prefix>/queue/<status>/<account_id>`."""
    account = record.get("account_id") or "_"
    if record.get("kind") == "queue":
        return f"{prefix}/queue/{record.get('status')}/{account}"
    return f"{prefix}/{account}"


def topic_level_problem(record: dict[str, object]) -> str | None:
    """Why the record's account id cannot be the last level of its topic, or None."""
    account_id = record.get("account_id")
    if account_id is None:
        return None
    if not isinstance(account_id, str):
        return f"account_id is a {type(account_id).__name__}, not a string"
    problem = identifier_problem(account_id)
    return None if problem is None else f"account_id {problem}"


class AuditPublisher:
    """Publishes unpublished audit records in seq order and marks them once the broker has them.

    `held` says whether this daemon is the one, of those sharing the store, that publishes the
    records now; the heads it signs it publishes whatever `held` says.
    """

    def __init__(self, store: OutboxStore, metrics: Metrics, prefix: str, *,
                 poll_seconds: float = 0.5, batch: int = 200,
                 heads: HeadAnchor | None = None,
                 topic_problem: TopicCheck = topic_level_problem,
                 held: Callable[[], Awaitable[bool]] = always) -> None:
        self._store = store
        self._held = held
        self._heads = heads
        self._metrics = metrics
        self._prefix = prefix
        self._poll = poll_seconds
        self._batch = batch
        self._topic_problem = topic_problem
        self._in_flight: int | None = None
        self._dropped_seq: int | None = None
        self._drops = 0

    async def run(self, client: aiomqtt.Client, stop: asyncio.Event) -> None:
        """Publish until `stop` is set or the connection drops."""
        if self._heads is not None:
            self._heads.republish()
        try:
            while not stop.is_set():
                published = await self.publish_pending(client)
                await self.publish_head(client)
                if published < self._batch:
                    await pause(self._poll, stop)
        except BaseException:
            self._note_drop()
            raise

    async def publish_pending(self, client: aiomqtt.Client) -> int:
        """Publish one batch of pending records; return how many were settled (none while
        another daemon publishes them)."""
        if not await self._held():
            return 0
        records = await self._store.unpublished(self._batch)
        published: list[int] = []
        for record in records:
            seq = int(str(record["seq"]))
            problem = await self._publish(client, seq, record)
            if problem is None:
                published.append(seq)
                continue
            # Marked at once: a later drop of the connection must not bring it back.
            await self._store.mark_unpublishable([seq])
            self._metrics.unpublishable.inc()
            level = mask_numbers_in(ascii(record.get("account_id")))
            log.error(f"audit record {seq} cannot be published to {self._prefix}/{level}: "
                      f"{problem}; marked unpublishable, the records after it go on")
        if published:
            await self._store.mark_published(published)
            self._metrics.published.inc(len(published))
        return len(records)

    async def _publish(self, client: aiomqtt.Client, seq: int,
                       record: dict[str, object]) -> str | None:
        problem = self._topic_problem(record)
        if problem is not None:
            return problem
        if seq == self._dropped_seq and self._drops >= DROPS_BEFORE_GIVING_UP:
            drops, self._dropped_seq, self._drops = self._drops, None, 0
            return f"the broker dropped the connection each of {drops} times it was sent"
        # Left set when the connection drops meanwhile, for `_note_drop`.
        self._in_flight = seq
        try:
            # QoS 1: publish() returns once the broker has acknowledged the message.
            await client.publish(topic_for(self._prefix, record), canonical_json(record), qos=1)
        except (ValueError, TypeError, UnicodeError) as exc:
            self._in_flight = None
            return f"refused by the MQTT client: {exc}"
        self._in_flight = None
        if seq == self._dropped_seq:  # it got through: the drops were an outage
            self._dropped_seq, self._drops = None, 0
        return None

    async def publish_head(self, client: aiomqtt.Client) -> None:
        """Retain the newest signed head of the chain, if the broker lacks it."""
        head = self._heads.unpublished() if self._heads is not None else None
        if head is None or self._heads is None:
            return
        await client.publish(head_topic(self._prefix), canonical_json(head), qos=1, retain=True)
        self._heads.published(head)

    def _note_drop(self) -> None:
        seq = self._in_flight
        if seq is None:
            return
        self._drops = self._drops + 1 if seq == self._dropped_seq else 1
        self._dropped_seq = seq
