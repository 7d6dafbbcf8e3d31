"""The one place that reaches past aiomqtt's public API: manual acknowledgement, queue drain."""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
from collections.abc import Mapping
from typing import Any

import aiomqtt
import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from dispatcher.config.settings import MqttSettings

log = logging.getLogger("dispatcher.mqtt")


class Inbox(asyncio.Queue[aiomqtt.Message]):
    """aiomqtt's queue of received messages, which also hands over whatever has arrived."""

    def take(self, limit: int) -> list[aiomqtt.Message]:
        """Take up to `limit` messages that have already arrived, without waiting."""
        taken: list[aiomqtt.Message] = []
        while len(taken) < limit and not self.empty():
            taken.append(self.get_nowait())
        return taken


class ManualAckClient(aiomqtt.Client):
    """aiomqtt's client whose QoS 1 messages stay unacknowledged until `ack` is called."""

    def __init__(self, hostname: str, port: int = 1883, **options: Any) -> None:
        made: list[Inbox] = []

        class _Inbox(Inbox):
            # aiomqtt builds its queue from the class it is given (`queue_type`, documented);
            # this one records the instance, so that the receive loop can drain it.
            def __init__(self, maxsize: int = 0) -> None:
                super().__init__(maxsize)
                made.append(self)

        super().__init__(hostname, port, queue_type=_Inbox, **options)
        (self.inbox,) = made
        # The one private name used. aiomqtt 2.5 has no API for manual acknowledgement, and
        # builds paho's client itself, so paho's `manual_ack=True` cannot be passed; paho's
        # public `manual_ack_set` and `ack` (paho >= 2.0) are called on the paho client that
        # aiomqtt keeps in `_client`, as aiomqtt's own methods do. tests/unit/test_mqtt_surface.py
        # fails if that attribute or those methods change.
        self._paho: mqtt.Client = self._client
        self._paho.manual_ack_set(True)

    def ack(self, mid: int, qos: int) -> None:
        """Acknowledge one received message to the broker (PUBACK); call only once committed."""
        if qos > 0:
            self._paho.ack(mid, qos)


def make_client(settings: MqttSettings, environ: Mapping[str, str] = os.environ,
                *, client_id: str | None = None) -> ManualAckClient:
    """A v5 client with a persistent session and manual acknowledgement switched on."""
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    properties.SessionExpiryInterval = settings.session_expiry_seconds
    # Bounds how many unacknowledged QoS 1 messages the broker may push at us.
    properties.ReceiveMaximum = settings.receive_maximum
    return ManualAckClient(
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
