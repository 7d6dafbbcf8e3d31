"""The numbers index (`party_numbers`) follows each account's latest debtor and contacts."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from dispatcher.ingest.classify import classify
from dispatcher.store import StoreLocation, open_store
from tests.postgres import store_rows
from tests.support import encode, overdue_event

NOW = datetime(2026, 12, 1, 15, tzinfo=UTC)


def _numbers(path: StoreLocation) -> list[tuple[Any, ...]]:
    return sorted(store_rows(path, "SELECT number, party, contact_id FROM party_numbers "
                                   "WHERE account_id = 'A-1'"))


def _event(n: int, minute: int, phones: list[str],
           contacts: list[tuple[str, str]] | None = None) -> dict[str, Any]:
    event = overdue_event(n, "A-1", occurred_at=f"2026-12-01T09:{minute:02d}:00+00:00")
    event["data"]["debtor"]["phones"] = [
        {"number": number, "type": "mobile", "sms_consent": True, "call_consent": True}
        for number in phones]
    if contacts is not None:
        event["data"]["contacts"] = [
            {"contact_id": cid, "name": "Sam Roe", "relation": "sibling", "number": number,
             "role": "emergency"} for cid, number in contacts]
    return event


async def _record(path: StoreLocation, *events: dict[str, Any]) -> None:
    async with open_store(path) as store:
        await store.record_batch([classify(encode(e), "t", 65536) for e in events], now=NOW,
                                 config_version="v")


async def test_numbers_follow_the_latest_debtor_and_contacts(store_at: StoreLocation) -> None:
    path = store_at
    await _record(path, _event(1, 0, ["+15125550100"]))
    assert _numbers(path) == [("+15125550100", "debtor", None)]

    # A refresh with the same numbers keeps them; a new number replaces the old one.
    await _record(path, _event(2, 1, ["+15125550100"]))
    assert _numbers(path) == [("+15125550100", "debtor", None)]
    await _record(path, _event(3, 2, ["+15125550177"], [("c1", "+15125550142")]))
    assert _numbers(path) == [("+15125550142", "third_party", "c1"),
                              ("+15125550177", "debtor", None)]

    # The same number under another contact id is a change too.
    await _record(path, _event(4, 3, ["+15125550177"], [("c2", "+15125550142")]))
    assert _numbers(path) == [("+15125550142", "third_party", "c2"),
                              ("+15125550177", "debtor", None)]


async def test_a_late_event_does_not_bring_back_old_numbers(store_at: StoreLocation) -> None:
    path = store_at
    await _record(path, _event(1, 5, ["+15125550177"]))
    # Older than what the account already reflects: replayed in order, the newest still wins.
    await _record(path, _event(2, 0, ["+15125550100"]))
    assert _numbers(path) == [("+15125550177", "debtor", None)]
