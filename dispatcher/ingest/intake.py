"""MQTT ingest: receive, validate, commit in batches, and only then acknowledge to the broker."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

import aiomqtt

from dispatcher.domain.clock import Clock
from dispatcher.ingest.classify import as_bytes
from dispatcher.ingest.mqtt import ManualAckClient
from dispatcher.ingest.writers import BatchWriter
from dispatcher.service.metrics import Metrics
from dispatcher.store import BatchResult

log = logging.getLogger("dispatcher.ingest")


class Ingestor:
    """Moves messages from a connected client through a writer; acknowledges each committed batch.

    Up to `in_flight` batches are with the writer at once, so that receiving the next batch
    overlaps committing the last; acknowledgements follow commits in submission order.
    """

    def __init__(self, writer: BatchWriter, clock: Clock, metrics: Metrics, *, batch_max: int,
                 config_version: Callable[[], str], in_flight: int = 3) -> None:
        self._writer = writer
        self._clock = clock
        self._metrics = metrics
        self._batch_max = batch_max
        self._config_version = config_version
        self._in_flight = in_flight

    async def run(self, client: ManualAckClient, stop: asyncio.Event) -> None:
        """Consume until `stop` is set (then finish what has arrived) or the connection drops."""
        submitted: asyncio.Queue[_Submitted | None] = asyncio.Queue()
        slots = asyncio.Semaphore(self._in_flight)
        async with asyncio.TaskGroup() as group:
            group.create_task(self._acknowledge(submitted, slots), name="ingest-ack")
            try:
                await self._receive(client, stop, submitted, slots)
            finally:
                submitted.put_nowait(None)

    async def _receive(self, client: ManualAckClient, stop: asyncio.Event,
                       submitted: asyncio.Queue[_Submitted | None],
                       slots: asyncio.Semaphore) -> None:
        messages = aiter(client.messages)
        stopping = asyncio.ensure_future(stop.wait())
        receiving: asyncio.Future[aiomqtt.Message] | None = None
        try:
            while not stop.is_set():
                receiving = asyncio.ensure_future(anext(messages))
                await asyncio.wait({receiving, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if not receiving.done():
                    break
                await slots.acquire()
                batch = [receiving.result(), *client.inbox.take(self._batch_max - 1)]
                submitted.put_nowait(self._submit(client, batch))
            # Drain: what the broker already delivered is committed and acknowledged now.
            while True:
                await slots.acquire()
                if not (batch := client.inbox.take(self._batch_max)):
                    break
                submitted.put_nowait(self._submit(client, batch))
        finally:
            stopping.cancel()
            _discard(receiving)

    def _submit(self, client: ManualAckClient, batch: list[aiomqtt.Message]) -> _Submitted:
        raw = [(str(m.topic), as_bytes(m.payload)) for m in batch]
        future = self._writer.submit(raw, now=self._clock.now(),
                                     config_version=self._config_version())
        # Keep only what the acknowledgement needs: a waiting batch of full messages (each with
        # paho's property objects) makes the garbage collector's work grow several times over.
        return _Submitted(client, [(m.mid, m.qos) for m in batch], future)

    async def _acknowledge(self, submitted: asyncio.Queue[_Submitted | None],
                           slots: asyncio.Semaphore) -> None:
        while (item := await submitted.get()) is not None:
            result = await item.future
            # Only now, with the batch committed, may the broker forget these messages.
            for mid, qos in item.acks:
                item.client.ack(mid, qos)
            slots.release()
            self._count(result)

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


@dataclass(frozen=True)
class _Submitted:
    client: ManualAckClient
    acks: list[tuple[int, int]]
    future: asyncio.Future[BatchResult]


def _discard(future: asyncio.Future[aiomqtt.Message] | None) -> None:
    """Cancel a pending receive; a finished one's error is known already (the loop ended)."""
    if future is None:
        return
    if not future.done():
        future.cancel()
    elif not future.cancelled():
        future.exception()
