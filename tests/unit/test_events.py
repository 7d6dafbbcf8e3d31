"""parse_event: one valid example per type, one case per bad-input class, and key paths."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import BaseModel

from dispatcher.errors import InvalidEvent
from dispatcher.events import (
    MAX_PAYLOAD_BYTES,
    HoldData,
    OptData,
    OverdueData,
    PromiseData,
    ReleaseData,
    ResolvedData,
    UpdatedData,
    parse_event,
    peek_identity,
)
from tests.unit.samples import encode, envelope

DATA_CLASS: dict[str, type[BaseModel]] = {
    "account.overdue": OverdueData,
    "account.updated": UpdatedData,
    "account.resolved": ResolvedData,
    "account.promise": PromiseData,
    "account.hold": HoldData,
    "account.release": ReleaseData,
    "contact.opt_out": OptData,
    "contact.opt_in": OptData,
}


@pytest.mark.parametrize("kind", sorted(DATA_CLASS))
def test_valid_event_of_each_type_parses(kind: str) -> None:
    event = parse_event(encode(envelope(kind)))
    assert event.type == kind
    assert event.event_id == "e-2026-12-01-000001"
    assert event.account_id == "A-1001"
    assert type(event.data) is DATA_CLASS[kind]


def test_overdue_fields_are_kept() -> None:
    data = parse_event(encode(envelope("account.overdue"))).data
    assert isinstance(data, OverdueData)
    assert (data.days_past_due, data.amount_due, data.currency) == (12, "125.50", "USD")
    assert data.debtor.timezone == "America/Chicago"
    assert [p.number for p in data.debtor.phones] == ["+15125550100"]
    assert data.contacts is not None
    assert data.contacts[0].role == "guarantor"


def test_occurred_at_is_normalised_to_utc() -> None:
    event = parse_event(encode(envelope(occurred_at="2026-12-01T09:00:00-05:00")))
    assert event.occurred_at == datetime(2026, 12, 1, 14, 0, tzinfo=UTC)
    assert event.occurred_at.utcoffset() == timedelta(0)


def test_payload_of_exactly_the_limit_is_accepted() -> None:
    body = encode(envelope())
    padded = body + b" " * (MAX_PAYLOAD_BYTES - len(body))
    assert len(padded) == MAX_PAYLOAD_BYTES
    assert parse_event(padded).event_id == "e-2026-12-01-000001"


def _edit(change: Callable[[dict[str, Any]], None], kind: str = "account.overdue") -> bytes:
    raw = envelope(kind)
    change(raw)
    return encode(raw)


def _set(*path_and_value: Any, kind: str = "account.overdue") -> bytes:
    *path, value = path_and_value

    def change(raw: dict[str, Any]) -> None:
        target: Any = raw
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return _edit(change, kind)


def _drop(*path: str | int) -> bytes:
    def change(raw: dict[str, Any]) -> None:
        target: Any = raw
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]

    return _edit(change)


def _duplicate_phone(raw: dict[str, Any]) -> None:
    phones = raw["data"]["debtor"]["phones"]
    phones.append({**phones[0], "type": "home"})


TOO_BIG = b'{"schema": 1, "pad": "' + b"x" * MAX_PAYLOAD_BYTES + b'"}'

# (payload, expected reason, key path the detail must start with, or None)
BAD_INPUT: list[Any] = [
    pytest.param(TOO_BIG, "too_large", None, id="too_large"),
    pytest.param(json.dumps(envelope()).encode("utf-16"), "not_utf8", None, id="utf16"),
    pytest.param(b'{"name": "Ren\xe9"}', "not_utf8", None, id="latin1"),
    pytest.param(b'{"schema": 1,', "not_json", None, id="truncated_json"),
    pytest.param(b"", "not_json", None, id="empty"),
    pytest.param(b"[1, 2]", "not_object", None, id="json_array"),
    pytest.param(b'"account.overdue"', "not_object", None, id="json_string"),
    pytest.param(b"42", "not_object", None, id="json_number"),
    pytest.param(b"null", "not_object", None, id="json_null"),
    pytest.param(_set("schema", 2), "unknown_schema", None, id="schema_2"),
    pytest.param(_set("schema", "1"), "unknown_schema", None, id="schema_string"),
    pytest.param(_drop("schema"), "unknown_schema", None, id="schema_missing"),
    pytest.param(_set("schema", True), "unknown_schema", None, id="schema_true"),
    pytest.param(_set("type", "account.deleted"), "unknown_type", None, id="type_unknown"),
    pytest.param(_drop("type"), "unknown_type", None, id="type_missing"),
    pytest.param(_set("data", "debtor", "phones", 0, "number", "+1512555"), "invalid",
                 "data.debtor.phones.0.number", id="e164_invalid"),
    pytest.param(_set("data", "debtor", "phones", 0, "number", "5125550100"), "invalid",
                 "data.debtor.phones.0.number", id="e164_no_plus"),
    pytest.param(_set("data", "debtor", "phones", 0, "number", "+15125550100\n"), "invalid",
                 "data.debtor.phones.0.number", id="e164_trailing_newline"),
    pytest.param(_set("data", "number", "+1512555", kind="contact.opt_out"), "invalid",
                 "data.number", id="opt_out_bad_number"),
    pytest.param(_set("data", "debtor", "timezone", "Mars/Base"), "invalid",
                 "data.debtor.timezone", id="timezone_unknown"),
    pytest.param(_set("data", "days_past_due", 0), "invalid", "data.days_past_due", id="dpd_0"),
    pytest.param(_set("data", "days_past_due", -3), "invalid", "data.days_past_due",
                 id="dpd_negative"),
    pytest.param(_set("data", "days_past_due", "5"), "invalid", "data.days_past_due",
                 id="dpd_string"),
    pytest.param(_set("data", "days_past_due", True), "invalid", "data.days_past_due",
                 id="dpd_true"),
    pytest.param(_drop("event_id"), "invalid", "event_id", id="event_id_missing"),
    pytest.param(_drop("data"), "invalid", "data", id="data_missing"),
    pytest.param(_drop("data", "amount_due"), "invalid", "data.amount_due",
                 id="data_field_missing"),
    pytest.param(_drop("data", "debtor", "phones", 0, "sms_consent"), "invalid",
                 "data.debtor.phones.0.sms_consent", id="phone_consent_missing"),
    pytest.param(_set("occurred_at", "2026-12-01T09:00:00"), "invalid", "occurred_at",
                 id="occurred_at_naive"),
    pytest.param(_set("data", "debtor", "phones", 0, "sms_consnet", True), "invalid",
                 "data.debtor.phones.0.sms_consnet", id="phone_extra_key"),
    pytest.param(_set("data", {}, kind="account.updated"), "invalid", "data",
                 id="updated_empty"),
    pytest.param(_edit(_duplicate_phone), "invalid", "data.debtor", id="phone_duplicate"),
    pytest.param(_set("data", "currency", "usd"), "invalid", "data.currency",
                 id="currency_lowercase"),
    pytest.param(_set("data", "debtor", "region", "Texas"), "invalid", "data.debtor.region",
                 id="region_bad"),
    pytest.param(_set("data", "debtor", "region", "US-TX\n"), "invalid", "data.debtor.region",
                 id="region_trailing_newline"),
    pytest.param(_set("data", "reason", "bored", kind="account.hold"), "invalid",
                 "data.reason", id="hold_reason_unknown"),
    pytest.param(_set("data", "channel", "email", kind="contact.opt_in"), "invalid",
                 "data.channel", id="opt_in_channel_unknown"),
]


@pytest.mark.parametrize(("payload", "reason", "path"), BAD_INPUT)
def test_bad_input_is_refused_with_its_reason(payload: bytes, reason: str,
                                              path: str | None) -> None:
    with pytest.raises(InvalidEvent) as caught:
        parse_event(payload)
    assert caught.value.reason == reason
    assert caught.value.detail
    if path is not None:
        assert caught.value.detail.startswith(f"{path}: "), caught.value.detail


def test_peek_identity_picks_the_identity_fields() -> None:
    raw = envelope("account.hold")
    assert peek_identity(raw) == {
        "event_id": "e-2026-12-01-000001", "event_type": "account.hold", "account_id": "A-1001"}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"event_id": "e-1"}, {"event_id": "e-1"}),
        ({"event_id": 7, "type": None, "account_id": ["A"]}, {}),
        ({"event_id": "", "account_id": "x" * 129, "type": "t"}, {"event_type": "t"}),
        ([{"event_id": "e-1"}], {}),
        ("e-1", {}),
        (None, {}),
    ],
)
def test_peek_identity_skips_what_is_missing_or_not_a_short_string(
        raw: object, expected: dict[str, str]) -> None:
    assert peek_identity(raw) == expected
