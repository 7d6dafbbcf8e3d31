"""An event whose fold raises becomes a dead letter; the rest of its batch is stored."""

from __future__ import annotations

from datetime import UTC, datetime

from dispatcher.ingest.classify import classify
from dispatcher.ingest.isolate import commit_isolating
from dispatcher.store import StoreLocation, open_store
from tests.postgres import store_execute
from tests.support import encode, overdue_event

NOW = datetime(2026, 12, 1, 15, tzinfo=UTC)


async def test_a_late_event_whose_replay_raises_is_set_aside_and_the_batch_is_stored(
        store_at: StoreLocation) -> None:
    path = store_at
    async with open_store(path) as store:
        first = classify(encode(overdue_event(1, "A-OLD", occurred_at="2026-12-01T10:00:00Z")),
                         "t", 65536)
        await store.record_batch([first], now=NOW, config_version="v")
    # A payload stored by an earlier version, which today's rules refuse: a late event for its
    # account replays the account's history, and that replay raises.
    store_execute(path, "UPDATE events SET payload = ? WHERE event_id = 'e-000001'", (b"{}",))

    late = classify(encode(overdue_event(2, "A-OLD", occurred_at="2026-12-01T09:00:00Z")),
                    "t", 65536)
    others = [classify(encode(overdue_event(n)), "t", 65536) for n in range(3, 9)]
    batch = [*others[:3], late, *others[3:]]
    async with open_store(path) as store:
        result = await commit_isolating(store, batch, now=NOW, config_version="v")
        letters = await store.dead_letters()
        assert await store.count_events() == 1 + len(others)
    assert (result.stored, result.dead_letters) == (len(others), 1)
    [letter] = letters
    assert (letter.reason, letter.event_id, letter.payload) == (
        "internal_error", "e-000002", late.payload)
    assert letter.detail.startswith("InvalidEvent: ")
