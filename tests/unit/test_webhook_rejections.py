"""RejectionTally: one bounded record per route and minute, handed out once the minute ends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dispatcher.webhooks.rejections import SAMPLE_PATH_CHARS, RejectionTally

T0 = datetime(2026, 12, 1, 15, 0, 30, tzinfo=UTC)


def test_a_minute_is_handed_out_once_it_has_ended_with_its_counts() -> None:
    tally = RejectionTally()
    firsts = [tally.note("/a", "bad_signature" if n % 3 else "malformed_body",
                         path="/a?" + "x" * 10_000, remote="203.0.113.9",
                         now=T0 + timedelta(seconds=n % 29)) for n in range(900)]
    assert firsts.count(True) == 1
    assert tally.due(T0 + timedelta(seconds=29)) == []
    [record] = tally.due(T0 + timedelta(seconds=30))
    assert (record["route"], record["count"], record["reasons"]) == (
        "/a", 900, {"bad_signature": 600, "malformed_body": 300})
    assert record["window_start"] == "2026-12-01T15:00:00.000Z"
    assert len(record["sample"]["path"]) == SAMPLE_PATH_CHARS
    assert tally.due(T0 + timedelta(hours=1)) == []


def test_records_are_bounded_by_routes_times_minutes() -> None:
    tally = RejectionTally()
    for n in range(3 * 60 * 10):  # ten a second for three minutes, on two routes
        tally.note(f"/r{n % 2}", "missing_signature", path="/", remote=None,
                   now=T0 + timedelta(seconds=n / 10))
    records = tally.due(T0 + timedelta(minutes=5))
    assert len(records) == 2 * 4  # the flood touched four minutes (it started at :30)
    assert sum(r["count"] for r in records) == 1800


def test_everything_hands_out_the_open_minute_at_shutdown() -> None:
    tally = RejectionTally()
    tally.note("/a", "too_large", path="/a\udcff", remote="::1", now=T0)
    [record] = tally.due(T0, everything=True)
    assert record["sample"] == {"reason": "too_large", "path": "/a\\udcff", "remote": "::1"}
