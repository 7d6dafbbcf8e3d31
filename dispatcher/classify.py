"""Turning one raw payload into an accepted event or a dead letter: the first step of ingest."""

from __future__ import annotations

from dispatcher.errors import InvalidEvent
from dispatcher.events import (
    DeadLetterReason,
    clean_text,
    decode_payload,
    parse_event,
    peek_identity,
)
from dispatcher.store import Accepted, Inbound, Rejected


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
