"""Ingest benchmark: end-to-end events/s of the dispatcher vs bare aiomqtt subscribers.

Every consumer drains the same backlog from the same Mosquitto (started here with
config/mosquitto.conf): N events are queued for a persistent session, then the consumer connects
and the clock runs from connection to the last message acknowledged. The bare subscribers only
receive and acknowledge each message (manual ack):

- bare aiomqtt: aiomqtt with its defaults (MQTT 3.1.1) and `async for message in
  client.messages`: the reference rate;
- bare aiomqtt v5: the same over the dispatcher's own v5 session
  (dispatcher.ingest.mqtt.make_client);
- bare v5 drained: the dispatcher's own receive loop (whatever has arrived, taken from the
  client's queue in one go), with no processing at all.

The dispatcher receives, validates, commits to SQLite and then acknowledges. After an unmeasured
warm-up drain, the bare aiomqtt reference and the dispatcher are measured in `--rounds`
interleaved pairs, and the ratio is taken between their medians.
Run: `.venv/bin/python -m bench.ingest [--events 50000] [--rounds 3] [--writer process|inline]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from dispatcher.config.settings import MqttSettings, load_config
from dispatcher.ingest.classify import classify
from dispatcher.ingest.mqtt import ManualAckClient, make_client
from dispatcher.service.app import Dispatcher
from dispatcher.service.runtime import tune_gc
from dispatcher.store import open_store
from tests.integration.publish import publish_all
from tests.support import Broker, make_config, overdue_event


def make_events(count: int, accounts: int, seed: int = 7) -> list[bytes]:
    """A realistic mix: mostly overdue refreshes, some updates, holds, opt-outs; 1% arrive late."""
    rng = random.Random(seed)
    # Dated in the past day: intake refuses events dated more than a few minutes ahead.
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
    payloads = []
    for n in range(count):
        account = f"A-{rng.randrange(accounts):06d}"
        late = timedelta(hours=6) if rng.random() < 0.01 else timedelta(0)
        occurred = (start + timedelta(seconds=n) - late).isoformat()
        event: dict[str, Any] = overdue_event(n, account, days=1 + n % 60, occurred_at=occurred)
        roll = rng.random()
        if roll < 0.15:
            amount = f"{rng.randrange(9999)}.00"
            event |= {"type": "account.updated", "data": {"amount_due": amount}}
        elif roll < 0.20:
            event |= {"type": "account.hold", "data": {"reason": "dispute"}}
        elif roll < 0.25:
            event |= {"type": "contact.opt_out",
                      "data": {"number": "+15125550100", "channel": "sms"}}
        payloads.append(json.dumps(event).encode())
    return payloads


def _bare_client(broker: Broker, name: str, v5: bool) -> ManualAckClient:
    if v5:
        settings = MqttSettings(url=broker.url, client_id=f"bench-{name}",
                                topics=(f"bench/{name}/#",))
        return make_client(settings)
    # aiomqtt's defaults: MQTT 3.1.1; clean_session=False keeps the session across connections.
    return ManualAckClient("127.0.0.1", broker.port, identifier=f"bench-{name}",
                           clean_session=False)


async def bare_subscriber(broker: Broker, payloads: list[bytes], *, v5: bool,
                          drained: bool, name: str | None = None) -> float:
    """Messages/s of an aiomqtt subscriber that only receives and acknowledges each message."""
    name = name or f"{'v5' if v5 else 'v311'}-{'drained' if drained else 'documented'}"
    async with _bare_client(broker, name, v5) as client:
        await client.subscribe(f"bench/{name}/#", qos=1)
    await publish_all(broker.port, payloads, topic=f"bench/{name}/x")
    client = _bare_client(broker, name, v5)
    started = time.perf_counter()
    received = 0
    async with client:
        if drained:
            messages = aiter(client.messages)
            while received < len(payloads):
                batch = [await anext(messages), *client.inbox.take(1000)]
                for message in batch:
                    client.ack(message.mid, message.qos)
                received += len(batch)
        else:
            async for message in client.messages:
                client.ack(message.mid, message.qos)
                received += 1
                if received == len(payloads):
                    break
        elapsed = time.perf_counter() - started
    return received / elapsed


async def dispatcher_ingest(broker: Broker, payloads: list[bytes], folder: Path,
                            writer: str) -> float:
    """Events/s through the real Dispatcher: received, validated, committed, acknowledged."""
    # The engine's due sweep would plan contact for all 10,000 accounts inside the timed window
    # (on the daemon's core, ~200 us each): this benchmark measures ingest, so the sweep runs
    # once a minute here. bench/simulate.py measures the engine.
    extra = f'[ingest]\nwriter = "{writer}"\n[contact]\nsweep_seconds = 60\n'
    config_path = make_config(folder, broker.url, client_id="bench-dispatcher", extra=extra,
                              log_format="text")
    config = load_config(config_path)
    async with make_client(config.settings.mqtt) as client:
        await client.subscribe("collections/events/#", qos=1)
    await publish_all(broker.port, payloads, topic="collections/events/bench")
    async with Dispatcher(config) as dispatcher:
        stored = dispatcher.metrics.events_in.labels("stored")
        started = time.perf_counter()
        task = asyncio.create_task(dispatcher.run())
        while stored._value.get() < len(payloads):  # noqa: SLF001, ASYNC110 - poll a counter
            await asyncio.sleep(0.005)
        elapsed = time.perf_counter() - started
        dispatcher.request_stop()
        await task
        assert await dispatcher.store.count_events() == len(payloads)
    return len(payloads) / elapsed


async def store_alone(payloads: list[bytes], folder: Path, batch: int = 1000) -> float:
    """Events/s of validation plus commit alone, in one process, without MQTT: the writer
    process's ceiling (its store, and the next batch validated while the last one commits)."""
    async with open_store(folder / "alone.db", wal_checkpoints=False, inline=True) as store:
        started = time.perf_counter()
        items = [classify(p, "bench", 65536) for p in payloads[:batch]]
        for start in range(batch, len(payloads) + batch, batch):
            commit = asyncio.create_task(
                store.record_batch(items, now=datetime.now(UTC), config_version="bench"))
            await asyncio.sleep(0)  # the batch runs up to its commit, which leaves the thread
            items = [classify(p, "bench", 65536) for p in payloads[start:start + batch]]
            await commit
        return len(payloads) / (time.perf_counter() - started)


async def main() -> None:
    """Run the measurements on one broker and print them side by side."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3,
                        help="pairs of bare aiomqtt and dispatcher runs, interleaved")
    parser.add_argument("--writer", choices=("process", "inline"), default="process",
                        help="[ingest] writer of the dispatcher under test")
    args = parser.parse_args()
    payloads = make_events(args.events, args.accounts)
    # The daemon runs with these collector settings (`dispatcher run`); the bare subscriber gets
    # them too, so that the comparison is like for like.
    tune_gc()
    pairs: list[tuple[float, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        broker = Broker(Path(tmp) / "broker")
        broker.start()
        try:
            # A first drain from a fresh broker is slower, whoever does it: warm up, unmeasured.
            await bare_subscriber(broker, payloads[:5000], v5=False, drained=False,
                                  name="warm-up")
            # This machine's speed drifts by tens of percent within minutes: the two rates are
            # measured in interleaved pairs (alternating which goes first), and the ratio is
            # taken between their medians.
            for round_ in range(args.rounds):
                folder = Path(tmp) / f"dispatcher-{round_}"
                if round_ % 2 == 0:
                    bare = await bare_subscriber(broker, payloads, v5=False, drained=False)
                    full = await dispatcher_ingest(broker, payloads, folder, args.writer)
                else:
                    full = await dispatcher_ingest(broker, payloads, folder, args.writer)
                    bare = await bare_subscriber(broker, payloads, v5=False, drained=False)
                pairs.append((bare, full))
            bare_v5 = await bare_subscriber(broker, payloads, v5=True, drained=False)
            drained = await bare_subscriber(broker, payloads, v5=True, drained=True)
            alone = await store_alone(payloads, Path(tmp))
        finally:
            broker.stop()
    bare, full = statistics.median(b for b, _ in pairs), statistics.median(f for _, f in pairs)
    print(f"events:                             {args.events} ({args.accounts} accounts), "
          f"{args.rounds} round(s)")
    for number, (one_bare, one_full) in enumerate(pairs, 1):
        print(f"  round {number}: bare aiomqtt {one_bare:9,.0f} msg/s, dispatcher "
              f"{one_full:9,.0f} events/s, ratio {one_full / one_bare:.2f}")
    print(f"bare aiomqtt, manual ack:           {bare:9,.0f} msg/s  "
          "(median; aiomqtt's defaults: MQTT 3.1.1, async for)")
    print(f"bare aiomqtt v5, manual ack:        {bare_v5:9,.0f} msg/s  "
          "(the dispatcher's v5 session, async for)")
    print(f"bare v5, drained, manual ack:       {drained:9,.0f} msg/s  "
          "(the dispatcher's own receive loop, no processing)")
    print(f"dispatcher end-to-end:              {full:9,.0f} events/s  "
          f"(median; received, validated, committed, acknowledged; {args.writer} writer)")
    print(f"ratio dispatcher / bare aiomqtt:    {full / bare:9.2f}  (of the medians; target >= "
          "0.75)")
    print(f"ratio dispatcher / bare aiomqtt v5: {full / bare_v5:9.2f}")
    print(f"ratio dispatcher / bare v5 drained: {full / drained:9.2f}")
    print(f"validate+commit alone, no MQTT:     {alone:9,.0f} events/s  (one process)")


if __name__ == "__main__":
    asyncio.run(main())
