"""What dispatcher.ingest.mqtt uses of aiomqtt and paho is still there, in the shape it expects.

A new aiomqtt or paho release that moves any of it fails here, before a broker is involved;
tests/integration/test_manual_ack.py shows against Mosquitto that the acknowledgement works.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import aiomqtt
import paho.mqtt.client as mqtt

from dispatcher.config.settings import MqttSettings
from dispatcher.ingest.mqtt import Inbox, ManualAckClient, make_client


def parameters(function: Callable[..., object]) -> list[str]:
    return list(inspect.signature(function).parameters)


def test_aiomqtt_takes_a_queue_class() -> None:
    queue_type = inspect.signature(aiomqtt.Client.__init__).parameters["queue_type"]
    assert queue_type.kind is inspect.Parameter.KEYWORD_ONLY


def test_paho_acknowledges_on_request() -> None:
    assert parameters(mqtt.Client.manual_ack_set) == ["self", "on"]
    assert parameters(mqtt.Client.ack) == ["self", "mid", "qos"]
    # The constructor's option documents that the two belong to paho's public API.
    assert "manual_ack" in parameters(mqtt.Client.__init__)


async def test_the_client_keeps_paho_where_it_is_reached_for() -> None:
    client = ManualAckClient("127.0.0.1")
    # The private attribute ManualAckClient relies on: aiomqtt's paho client.
    assert isinstance(client._client, mqtt.Client)  # noqa: SLF001


async def test_aiomqtt_queues_messages_in_the_clients_inbox() -> None:
    client = make_client(MqttSettings(client_id="surface", topics=("t/#",)))
    assert isinstance(client.inbox, Inbox)
    # aiomqtt's own view of its queue sees what is put in the inbox.
    assert len(client.messages) == 0
    for mid, payload in ((1, b"1"), (2, b"2")):
        client.inbox.put_nowait(
            aiomqtt.Message("t/a", payload, qos=1, retain=False, mid=mid, properties=None))
    assert len(client.messages) == 2
    assert [m.payload for m in client.inbox.take(5)] == [b"1", b"2"]
    assert client.inbox.take(5) == []


async def test_each_client_has_its_own_inbox() -> None:
    first, second = ManualAckClient("127.0.0.1"), ManualAckClient("127.0.0.1")
    assert first.inbox is not second.inbox
