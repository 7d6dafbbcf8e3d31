"""The small, tested wrapper around aiomqtt/paho details: session, manual acks, queue drain."""

from __future__ import annotations

import copy
import logging
import os
import ssl
import struct
from collections.abc import Mapping, Sequence

import aiomqtt
import paho.mqtt.client as mqtt
from paho.mqtt import _packet
from paho.mqtt.enums import MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from dispatcher.config.settings import MqttSettings

log = logging.getLogger("dispatcher.mqtt")


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
    enable_buffered_reads(client)
    enable_fast_publish_decode()
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


_PUBACK = 0x40
_PUBACK_PACKET = struct.Struct("!BBH")  # type, remaining length 2, message id


def ack_all(client: aiomqtt.Client, acks: Sequence[tuple[int, int]]) -> None:
    """Acknowledge committed messages in one write: the PUBACKs leave as one buffer."""
    packet = b"".join(_PUBACK_PACKET.pack(_PUBACK, 2, mid) for mid, qos in acks if qos == 1)
    if packet:
        # The same bytes paho's ack() queues for each message, queued once.
        client._client._packet_queue(_PUBACK, packet, 0, 0)  # noqa: SLF001
    for mid, qos in acks:
        if qos == 2:  # not subscribed at QoS 2; kept correct all the same
            ack(client, mid, qos)


class _BufferedReads:
    """paho reads a packet in three or four recv calls and one packet per wake-up; this reads
    the socket in large chunks and parses every whole packet in them per wake-up."""

    def __init__(self, paho: mqtt.Client, chunk: int) -> None:
        self._paho = paho
        self._recv = paho._sock_recv  # noqa: SLF001
        self._chunk = chunk
        self._sock: object = None
        self._data = b""
        self._pos = 0
        self._refilled = False

    def recv(self, size: int) -> bytes:
        """paho's `_sock_recv`, served from the buffer; BlockingIOError ends a wake-up's work."""
        if self._paho._sock is not self._sock:  # noqa: SLF001 - a new connection
            self._sock, self._data, self._pos = self._paho._sock, b"", 0  # noqa: SLF001
        if self._pos >= len(self._data):
            if self._refilled:
                # One socket read per wake-up: the socket stays readable for the rest, so the
                # event loop wakes us again and other tasks run in between.
                raise BlockingIOError
            self._refilled = True
            self._data, self._pos = self._recv(self._chunk), 0
            if not self._data:
                return b""
        piece = self._data[self._pos:self._pos + size]
        self._pos += len(piece)
        return piece

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        """paho's `loop_read`, parsing packets until the chunk read in this wake-up is used."""
        paho = self._paho
        self._refilled = False
        while paho._sock is not None:  # noqa: SLF001
            rc = paho._packet_read()  # noqa: SLF001
            if rc == MQTTErrorCode.MQTT_ERR_AGAIN:
                return MQTTErrorCode.MQTT_ERR_SUCCESS
            if rc > 0:
                return paho._loop_rc_handle(rc)  # noqa: SLF001
        return MQTTErrorCode.MQTT_ERR_NO_CONN


def enable_buffered_reads(client: aiomqtt.Client, chunk: int = 65536) -> None:
    """Read the broker's stream in `chunk`-sized pieces and parse whole packets per wake-up."""
    reads = _BufferedReads(client._client, chunk)  # noqa: SLF001
    paho = client._client  # noqa: SLF001
    paho._sock_recv = reads.recv  # type: ignore[method-assign,assignment]  # noqa: SLF001
    paho.loop_read = reads.loop_read  # type: ignore[method-assign]


_EMPTY_PUBLISH_PROPERTIES = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
_paho_decode_publish = _packet.decode_publish


def _decode_publish(header: int, packet: bytes | bytearray,
                    protocol: MQTTProtocolVersion) -> _packet.PublishPacket:
    """paho's decode_publish, without building a Properties object (~30 us) from nothing:
    a v5 PUBLISH whose property length is zero gets a copy of an empty one."""
    qos = (header & 0x06) >> 1
    topic_end = 2 + int.from_bytes(packet[:2])
    properties_at = topic_end + (2 if qos else 0)
    if (protocol != MQTTProtocolVersion.MQTTv5 or len(packet) <= properties_at
            or packet[properties_at] != 0):
        return _paho_decode_publish(header, packet, protocol)
    return _packet.PublishPacket(
        dup=bool(header & 0x08), qos=qos, retain=bool(header & 0x01),
        topic=bytes(packet[2:topic_end]),
        mid=int.from_bytes(packet[topic_end:topic_end + 2]) if qos else 0,
        properties=copy.copy(_EMPTY_PUBLISH_PROPERTIES), payload=bytes(packet[properties_at + 1:]))


def enable_fast_publish_decode() -> None:
    """Install `_decode_publish` in paho (process-wide; same results, tested against paho's)."""
    _packet.decode_publish = _decode_publish
