"""Turning one raw payload into an accepted event or a dead letter: the first step of ingest."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from dispatcher.domain.clock import utc_rfc3339
from dispatcher.domain.events import (
    DeadLetterReason,
    clean_text,
    decode_payload,
    parse_event,
    peek_identity,
)
from dispatcher.errors import InvalidEvent
from dispatcher.store import Accepted, Inbound, Rejected

# No event of a collections system happened before the Unix epoch; earlier dates are typos or
# attacks, and far-off ones would outrank every real event of the account.
EARLIEST_OCCURRED_AT = datetime(1970, 1, 1, tzinfo=UTC)
DETAIL_LIMIT = 500


def classify(payload: bytes, topic: str, max_bytes: int,
             replay_of: int | None = None) -> Inbound:
    """Turn one raw payload into an accepted event or a dead letter with its reason."""
    if len(payload) > max_bytes:
        return Rejected(payload, topic, DeadLetterReason.TOO_LARGE,
                        f"{len(payload)} bytes; the limit is {max_bytes}")
    try:
        return Accepted(parse_event(payload), payload, topic, replay_of)
    except InvalidEvent as exc:
        return rejected(payload, topic, exc.reason, exc.detail)
    except OverflowError as exc:
        # A time at the edge of the calendar (9999-12-31 with a negative offset) has no UTC form.
        return rejected(payload, topic, DeadLetterReason.INVALID,
                        f"a date or time is outside the supported range ({exc})")
    except Exception as exc:  # no payload may stop intake; the detail names it
        return rejected(payload, topic, DeadLetterReason.INTERNAL_ERROR, describe(exc))


def rejected(payload: bytes, topic: str, reason: str, detail: str) -> Rejected:
    """A dead letter for `payload`, with whatever identity can be read from it."""
    try:
        identity = peek_identity(decode_payload(payload))
    except Exception:  # InvalidEvent, or whatever a hostile payload provokes
        identity = {}
    return Rejected(payload, topic, reason, clean_text(detail)[:DETAIL_LIMIT], identity)


def describe(error: BaseException) -> str:
    """An exception as a dead letter's detail: its type and message, of bounded length."""
    return clean_text(f"{type(error).__name__}: {error}")[:DETAIL_LIMIT]


def time_problem(occurred_at: datetime, now: datetime, max_future: timedelta) -> str | None:
    """Why an event dated `occurred_at` cannot be true when received at `now`; None if it can."""
    if occurred_at < EARLIEST_OCCURRED_AT:
        return (f"occurred_at: {utc_rfc3339(occurred_at)} is before "
                f"{utc_rfc3339(EARLIEST_OCCURRED_AT)}")
    # A difference of two times cannot overflow, as `now + max_future` could.
    if occurred_at - now > max_future:
        return (f"occurred_at: {utc_rfc3339(occurred_at)} is later than its receipt at "
                f"{utc_rfc3339(now)} plus {max_future.total_seconds():g}s")
    return None


def check_time(item: Inbound, now: datetime, max_future: timedelta) -> Inbound:
    """The item as it is, or a dead letter (`invalid`) when its time cannot be true at `now`."""
    if isinstance(item, Rejected):
        return item
    event = item.event
    problem = time_problem(event.occurred_at, now, max_future)
    if problem is None:
        return item
    return Rejected(item.payload, item.topic, DeadLetterReason.INVALID, problem,
                    {"event_id": event.event_id, "event_type": event.type.value,
                     "account_id": event.account_id})


def classify_batch(raw: Iterable[tuple[str, bytes]], *, max_bytes: int, now: datetime,
                   max_future: timedelta) -> list[Inbound]:
    """Classify (topic, payload) pairs received at `now`, times checked against `now`."""
    return [check_time(classify(payload, topic, max_bytes), now, max_future)
            for topic, payload in raw]


def as_bytes(payload: object) -> bytes:
    """MQTT payloads arrive as bytes; anything else is encoded as received."""
    if isinstance(payload, bytes | bytearray):
        return bytes(payload)
    return b"" if payload is None else str(payload).encode()
