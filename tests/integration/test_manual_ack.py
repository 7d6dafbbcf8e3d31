"""The broker forgets a message only when `ack` is called: what ingest relies on, on stock paho."""

from __future__ import annotations

import asyncio

import aiomqtt

from dispatcher.config.settings import MqttSettings
from dispatcher.ingest.mqtt import ManualAckClient, make_client
from tests.support import Broker


def settings_for(broker: Broker) -> MqttSettings:
    return MqttSettings(url=broker.url, client_id="ack-test", topics=("t/#",))


async def receive_one(client: aiomqtt.Client) -> aiomqtt.Message:
    async with asyncio.timeout(5):
        return await anext(aiter(client.messages))


def acknowledge(client: ManualAckClient, messages: list[aiomqtt.Message]) -> None:
    for message in messages:
        client.ack(message.mid, message.qos)


async def publish(broker: Broker, payload: bytes) -> None:
    async with aiomqtt.Client("127.0.0.1", broker.port) as publisher:
        await publisher.publish("t/x", payload, qos=1)


async def nothing_arrives(client: aiomqtt.Client, broker: Broker) -> bool:
    """Whether the session had nothing queued: a marker published now is the first to arrive
    (the broker delivers what a session kept before anything newer)."""
    await publish(broker, b"marker")
    return (await receive_one(client)).payload == b"marker"


async def flush(client: aiomqtt.Client) -> None:
    """Return once the broker has read everything sent before on this connection: it answers
    a QoS 1 publish only after the packets ahead of it (MQTT keeps a connection's order)."""
    await client.publish("flush/x", b"", qos=1)


async def take(client: ManualAckClient, count: int, seconds: float = 10) -> list[aiomqtt.Message]:
    """The `count` messages that arrive next, taken as they queue up (at most `seconds`)."""
    got = [await receive_one(client)]
    async with asyncio.timeout(seconds):
        while len(got) < count:
            await asyncio.sleep(0.02)
            got += client.inbox.take(count - len(got))
    return got


async def test_unacknowledged_message_is_redelivered_to_the_next_session(broker: Broker) -> None:
    settings = settings_for(broker)
    first = make_client(settings)
    async with first:
        await first.subscribe("t/#", qos=1)
        await publish(broker, b"one")
        message = await receive_one(first)
        assert message.payload == b"one"
        # No ack: a second connection with the same client id takes the session over,
        # as a restarted daemon would, and must get the message again.
        second = make_client(settings)
        async with second:
            again = await receive_one(second)
            assert again.payload == b"one"
            second.ack(again.mid, again.qos)
            await flush(second)
    third = make_client(settings)
    async with third:
        assert await nothing_arrives(third, broker)


async def test_acknowledged_message_is_not_redelivered(broker: Broker) -> None:
    settings = settings_for(broker)
    first = make_client(settings)
    async with first:
        await first.subscribe("t/#", qos=1)
        await publish(broker, b"two")
        received = await receive_one(first)
        first.ack(received.mid, received.qos)
        await flush(first)
    second = make_client(settings)
    async with second:
        assert await nothing_arrives(second, broker)


async def test_session_keeps_messages_published_while_away(broker: Broker) -> None:
    settings = settings_for(broker)
    async with make_client(settings) as client:
        await client.subscribe("t/#", qos=1)
    for n in range(5):
        await publish(broker, f"m{n}".encode())
    client = make_client(settings)
    async with client:
        got = await take(client, 5)
        assert [m.payload for m in got] == [f"m{n}".encode() for n in range(5)]
        acknowledge(client, got)


async def test_the_broker_forgets_exactly_the_messages_acknowledged(broker: Broker) -> None:
    settings = settings_for(broker)
    async with make_client(settings) as client:
        await client.subscribe("t/#", qos=1)
    for n in range(300):
        await publish(broker, f"m{n}".encode())
    client = make_client(settings)
    async with client:
        got = await take(client, 300)
        assert [m.payload for m in got] == [f"m{n}".encode() for n in range(300)]
        acknowledge(client, got[:200])
        await flush(client)
    client = make_client(settings)
    async with client:
        again = await take(client, 100)
        # The broker forgot those 200 and only those.
        assert [m.payload for m in again] == [f"m{n}".encode() for n in range(200, 300)]
        acknowledge(client, again)
        await flush(client)
        assert await nothing_arrives(client, broker)  # and redelivers no more than those


async def test_unacknowledged_message_is_redelivered_after_a_reconnect(broker: Broker) -> None:
    settings = settings_for(broker)
    async with make_client(settings) as client:
        await client.subscribe("t/#", qos=1)
    await publish(broker, b"kept")
    await publish(broker, b"forgotten")
    first = make_client(settings)
    async with first:
        kept, forgotten = await take(first, 2)
        assert (kept.payload, forgotten.payload) == (b"kept", b"forgotten")
        first.ack(forgotten.mid, forgotten.qos)
        await flush(first)
    # The connection closed with one message acknowledged and one not: only that one comes back.
    second = make_client(settings)
    async with second:
        again = await receive_one(second)
        assert again.payload == b"kept"
        second.ack(again.mid, again.qos)
        await flush(second)
        assert await nothing_arrives(second, broker)
