"""The PUBLISH decoder ingest installs in paho gives paho's own results, packet for packet."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from paho.mqtt import _packet
from paho.mqtt.enums import MQTTProtocolVersion
from paho.mqtt.exception import MalformedPacket
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from dispatcher.ingest.mqtt import _decode_publish, _paho_decode_publish

V5 = MQTTProtocolVersion.MQTTv5


def publish_packet(topic: bytes, qos: int, mid: int, payload: bytes,
                   properties: bytes | None) -> tuple[int, bytes]:
    """A PUBLISH's header byte and the rest after the remaining length, as on the wire."""
    header = 0x30 | (qos << 1)
    body = len(topic).to_bytes(2) + topic + (mid.to_bytes(2) if qos else b"")
    if properties is not None:
        body += properties
    return header, body + payload


def with_content_type(value: str) -> bytes:
    props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    props.ContentType = value
    return bytes(props.pack())  # type: ignore[no-untyped-call]


def same(a: _packet.PublishPacket, b: _packet.PublishPacket) -> None:
    assert (a.dup, a.qos, a.retain, a.topic, a.mid, a.payload) == (
        b.dup, b.qos, b.retain, b.topic, b.mid, b.payload)
    assert type(a.payload) is type(b.payload)
    assert (a.properties is None) == (b.properties is None)
    if a.properties is not None and b.properties is not None:
        assert a.properties.json() == b.properties.json()  # type: ignore[no-untyped-call]
        assert a.properties.packetType == b.properties.packetType


@given(topic=st.binary(min_size=1, max_size=40), qos=st.integers(0, 1),
       mid=st.integers(1, 65535), payload=st.binary(max_size=300),
       content_type=st.none() | st.text(st.characters(min_codepoint=32, max_codepoint=126),
                                                   max_size=20), as_bytearray=st.booleans())
def test_v5_publish_decodes_like_paho(topic: bytes, qos: int, mid: int, payload: bytes,
                                      content_type: str | None, as_bytearray: bool) -> None:
    properties = b"\x00" if content_type is None else with_content_type(content_type)
    header, body = publish_packet(topic, qos, mid, payload, properties)
    packet = bytearray(body) if as_bytearray else body
    same(_decode_publish(header, packet, V5), _paho_decode_publish(header, packet, V5))


@given(topic=st.binary(min_size=1, max_size=40), qos=st.integers(0, 1),
       payload=st.binary(max_size=100))
def test_v311_publish_is_left_to_paho(topic: bytes, qos: int, payload: bytes) -> None:
    header, body = publish_packet(topic, qos, 7, payload, None)
    protocol = MQTTProtocolVersion.MQTTv311
    same(_decode_publish(header, body, protocol), _paho_decode_publish(header, body, protocol))


def test_each_message_gets_its_own_properties_object() -> None:
    header, body = publish_packet(b"t", 1, 1, b"x", b"\x00")
    first, second = _decode_publish(header, body, V5), _decode_publish(header, body, V5)
    assert first.properties is not second.properties


@pytest.mark.parametrize("body", [b"", b"\x00", b"\x00\x05ab", b"\x00\x01t\x00"])
def test_truncated_packets_fail_as_paho_fails(body: bytes) -> None:
    with pytest.raises(MalformedPacket):
        _decode_publish(0x32, body, V5)
    with pytest.raises(MalformedPacket):
        _paho_decode_publish(0x32, body, V5)
