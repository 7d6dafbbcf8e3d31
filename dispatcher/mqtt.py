"""The small, tested wrapper around aiomqtt/paho details: session, manual acks, queue drain."""

from __future__ import annotations

import logging
import os
import ssl
from collections.abc import Mapping

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from dispatcher.settings import MqttSettings

log = logging.getLogger(__name__)


def make_client(settings: MqttSettings, environ: Mapping[str, str] = os.environ,
                *, client_id: str | None = None) -> aiomqtt.Client:
    """A v5 client with a persistent session and manual acknowledgement switched on."""
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    properties.SessionExpiryInterval = settings.session_expiry_seconds
    # Bounds how many unacknowledged QoS 1 messages the broker may push at us.
    properties.ReceiveMaximum = settings.receive_maximum
    client = aiomqtt.Client(
        settings.host,
        settings.port,
        identifier=client_id or settings.client_id,
        protocol=aiomqtt.ProtocolVersion.V5,
        clean_start=False,
        properties=properties,
        keepalive=settings.keepalive_seconds,
        username=environ.get("MQTT_USERNAME") or None,
        password=environ.get("MQTT_PASSWORD") or None,
        tls_context=ssl.create_default_context() if settings.tls else None,
        timeout=10,
    )
    enable_manual_ack(client)
    return client


def enable_manual_ack(client: aiomqtt.Client) -> None:
    """Stop paho from acknowledging QoS 1 messages on receipt; `ack` must be called instead."""
    client._client.manual_ack_set(True)  # noqa: SLF001


def ack(client: aiomqtt.Client, mid: int, qos: int) -> None:
    """Acknowledge one received message to the broker (PUBACK); call only after it is committed."""
    if qos > 0:
        client._client.ack(mid, qos)  # noqa: SLF001


def take_queued(client: aiomqtt.Client, limit: int) -> list[aiomqtt.Message]:
    """Take up to `limit` messages that have already arrived, without waiting."""
    queue = client._queue  # noqa: SLF001
    taken: list[aiomqtt.Message] = []
    while len(taken) < limit and not queue.empty():
        taken.append(queue.get_nowait())
    return taken
