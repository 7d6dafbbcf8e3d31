"""MQTT ingest: receive, validate, commit in batches, and only then acknowledge to the broker."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import aiomqtt

from dispatcher.clock import Clock
from dispatcher.errors import InvalidEvent
from dispatcher.events import (
    DeadLetterReason,
    clean_text,
    decode_payload,
    parse_event,
    peek_identity,
)
from dispatcher.metrics import Metrics
from dispatcher.mqtt import ack, take_queued
from dispatcher.store import Accepted, BatchResult, Inbound, Rejected, Store

log = logging.getLogger(__name__)


def classify(payload: bytes, topic: str, max_bytes: int,
             replay_of: int | None = None) -> Inbound:
    """Turn one raw payload into an accepted event or a dead letter with its reason."""
    if len(payload) > max_bytes:
        return Rejected(payload, topic, DeadLetterReason.TOO_LARGE,
                        f"{len(payload)} bytes; the limit is {max_bytes}")
    try:
        return Accepted(parse_event(payload), payload, topic, replay_of)
    except InvalidEvent as exc:
        try:
            identity = peek_identity(decode_payload(payload))
        except InvalidEvent:
            identity = {}
        return Rejected(payload, topic, exc.reason, clean_text(exc.detail), identity)


def as_bytes(payload: object) -> bytes:
    """MQTT payloads arrive as bytes; anything else is encoded as received."""
    if isinstance(payload, bytes | bytearray):
        return bytes(payload)
    return b"" if payload is None else str(payload).encode()


class Ingestor:
    """Moves messages from a connected client into the store, one committed batch at a time."""

    def __init__(self, store: Store, clock: Clock, metrics: Metrics, *, batch_max: int,
                 max_payload_bytes: int, config_version: Callable[[], str]) -> None:
        self._store = store
        self._clock = clock
        self._metrics = metrics
        self._batch_max = batch_max
        self._max_bytes = max_payload_bytes
        self._config_version = config_version

    async def run(self, client: aiomqtt.Client, stop: asyncio.Event) -> None:
        """Consume until `stop` is set (then finish what has arrived) or the connection drops."""
        messages = aiter(client.messages)
        stopping = asyncio.ensure_future(stop.wait())
        try:
            while not stop.is_set():
                receiving = asyncio.ensure_future(anext(messages))
                await asyncio.wait({receiving, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if not receiving.done():
                    receiving.cancel()
                    break
                batch = [receiving.result(), *take_queued(client, self._batch_max - 1)]
                await self.commit(client, batch)
            # Drain: what the broker already delivered is committed and acknowledged now.
            while batch := take_queued(client, self._batch_max):
                await self.commit(client, batch)
        finally:
            stopping.cancel()

    async def commit(self, client: aiomqtt.Client, batch: list[aiomqtt.Message]) -> BatchResult:
        """Validate and commit one batch, then acknowledge every message in it."""
        items = [classify(as_bytes(m.payload), str(m.topic), self._max_bytes) for m in batch]
        # Shielded: a batch that reached the store finishes even if this task is cancelled.
        result = await asyncio.shield(self._store.record_batch(
            items, now=self._clock.now(), config_version=self._config_version()))
        # Only now, with the batch committed, may the broker forget these messages.
        for message in batch:
            ack(client, message)
        self._count(result)
        return result

    def _count(self, result: BatchResult) -> None:
        metrics = self._metrics
        metrics.batches.inc()
        metrics.events_in.labels("stored").inc(result.stored)
        metrics.events_in.labels("duplicate").inc(result.duplicates)
        metrics.events_in.labels("dead_letter").inc(result.dead_letters)
        for reason in result.dead_letter_reasons:
            metrics.dead_letters.labels(reason).inc()
        metrics.last_commit.set(self._clock.now().timestamp())
        if result.dead_letters:
            reasons = ",".join(sorted({str(r) for r in result.dead_letter_reasons}))
            log.warning("dead letters stored", extra={"count": result.dead_letters,
                                                      "reasons": reasons})
