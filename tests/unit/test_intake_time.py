"""An event's time must be possible at its receipt: not before 1970, not far past `now`."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from dispatcher.ingest.classify import classify, classify_batch, time_problem
from dispatcher.store import Accepted, Rejected
from tests.support import overdue_event

NOW = datetime(2026, 12, 1, 15, tzinfo=UTC)
TOLERANCE = timedelta(seconds=300)


def _payload(occurred_at: str) -> bytes:
    return json.dumps(overdue_event(1, "A-1", occurred_at=occurred_at)).encode()


@pytest.mark.parametrize("occurred_at", ["9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+01:00"])
def test_a_time_without_a_utc_form_is_invalid_not_an_exception(occurred_at: str) -> None:
    item = classify(_payload(occurred_at), "t", 65536)
    assert isinstance(item, Rejected)
    assert item.reason == "invalid"
    assert "outside the supported range" in item.detail
    assert item.identity["event_id"] == "e-000001"


@pytest.mark.parametrize(("occurred_at", "words"), [
    ("9999-12-31T23:59:59Z", "later than its receipt at 2026-12-01T15:00:00.000Z plus 300s"),
    ("2026-12-01T15:05:01Z", "later than its receipt"),
    ("1969-12-31T23:59:59Z", "is before 1970-01-01T00:00:00.000Z"),
    ("0001-01-02T00:00:00Z", "is before 1970"),
])
def test_a_time_out_of_range_is_invalid_with_a_clear_detail(occurred_at: str,
                                                            words: str) -> None:
    [item] = classify_batch([("t", _payload(occurred_at))], max_bytes=65536, now=NOW,
                            max_future=TOLERANCE)
    assert isinstance(item, Rejected)
    assert item.reason == "invalid"
    assert item.detail.startswith("occurred_at: ")
    assert words in item.detail
    assert item.identity == {"event_id": "e-000001", "event_type": "account.overdue",
                             "account_id": "A-1"}


@pytest.mark.parametrize("occurred_at", ["2026-12-01T15:05:00Z", "2026-12-01T10:00:00-05:00",
                                         "1970-01-01T00:00:00Z", "2001-01-01T00:00:00+14:00"])
def test_a_possible_time_is_accepted(occurred_at: str) -> None:
    [item] = classify_batch([("t", _payload(occurred_at))], max_bytes=65536, now=NOW,
                            max_future=TOLERANCE)
    assert isinstance(item, Accepted)


def test_the_tolerance_is_the_setting() -> None:
    ahead = NOW + timedelta(hours=1)
    assert time_problem(ahead, NOW, timedelta(hours=1)) is None
    assert time_problem(ahead, NOW, timedelta(minutes=59)) is not None
    assert time_problem(datetime.max.replace(tzinfo=UTC), NOW, TOLERANCE) is not None
