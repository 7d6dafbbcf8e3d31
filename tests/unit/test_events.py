"""parse_event: one valid example per type, one case per bad-input class, and key paths."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import BaseModel

from dispatcher.domain.events import (
    MAX_PAYLOAD_BYTES,
    HoldData,
    OptData,
    OverdueData,
    PromiseData,
    ReleaseData,
    ResolvedData,
    UpdatedData,
    _fast_parse,
    parse_event,
    parse_stored_event,
    peek_identity,
)
from dispatcher.errors import InvalidEvent
from dispatcher.ingest.classify import classify
from dispatcher.store import Rejected
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


# -- identifiers: nothing that breaks an MQTT topic level, a log line or a terminal ----------

BAD_IDS = {
    "control_c0": "E\u0001X",
    "nul": "E\u0000X",
    "del": "E\u007fX",
    "control_c1": "E\u0085X",
    "noncharacter_fdd0": "E\ufdd0X",
    "noncharacter_fffe": "E\ufffeX",
    "noncharacter_plane_1": "E\U0001ffffX",
    "space": "E X",
    "no_break_space": "E\u00a0X",
    "line_separator": "E\u2028X",
    "ideographic_space": "E\u3000X",
    "slash": "E/X",
    "plus": "E+X",
    "hash": "E#X",
    "leading_dollar": "$SYS",
    "too_many_chars": "x" * 129,
    "too_many_bytes": "账" * 86,  # 86 characters, 258 UTF-8 bytes
}


@pytest.mark.parametrize("field", ["event_id", "account_id"])
@pytest.mark.parametrize("value", BAD_IDS.values(), ids=BAD_IDS.keys())
def test_envelope_ids_refuse_what_cannot_be_a_topic_level(field: str, value: str) -> None:
    with pytest.raises(InvalidEvent) as caught:
        parse_event(_set(field, value))
    assert caught.value.reason == "invalid"
    assert caught.value.detail.startswith(f"{field}: "), caught.value.detail


@pytest.mark.parametrize("value", BAD_IDS.values(), ids=BAD_IDS.keys())
def test_contact_ids_follow_the_same_rule(value: str) -> None:
    with pytest.raises(InvalidEvent) as caught:
        parse_event(_set("data", "contacts", 0, "contact_id", value))
    assert caught.value.reason == "invalid"
    assert caught.value.detail.startswith("data.contacts.0.contact_id: "), caught.value.detail


def test_id_detail_names_the_character() -> None:
    with pytest.raises(InvalidEvent) as caught:
        parse_event(_set("account_id", "E\u0001X"))
    assert "U+0001" in caught.value.detail


def test_lone_surrogate_in_an_id_is_refused() -> None:
    payload = encode(envelope()).replace(b'"A-1001"', b'"A-\\ud800"')
    with pytest.raises(InvalidEvent) as caught:
        parse_event(payload)
    assert (caught.value.reason, caught.value.detail.split(":")[0]) == ("invalid", "account_id")


def test_a_dead_letter_keeps_u0000_and_lone_surrogates_of_its_identity_as_escapes() -> None:
    # Stored as text on either store: PostgreSQL's text cannot hold U+0000.
    payload = encode(envelope()).replace(b'"A-1001"', b'"A-\\u0000\\ud800"')
    letter = classify(payload, "collections/events/x", 65536)
    assert isinstance(letter, Rejected)
    assert letter.identity["account_id"] == "A-\\x00\\ud800"
    assert "\x00" not in letter.detail


@pytest.mark.parametrize("value", ["A-1001", "账户-1001", "a$b", "x" * 128, "账" * 85, "e:1|2"])
def test_ordinary_ids_are_accepted(value: str) -> None:
    assert parse_event(_set("account_id", value)).account_id == value


# -- duplicate keys, schema, occurred_at ----------------------------------------------------

DUPLICATES = {
    "envelope": (b'"schema": 1,', b'"schema": 1, "event_id": "first",', "event_id"),
    "escaped_spelling": (b'"schema": 1,', b'"schema": 1, "event\\u005fid": "first",',
                         "event_id"),
    "whitespace_before_colon": (b'"schema": 1,', b'"schema" : 1, "schema"\n:1,', "schema"),
    "data": (b'"days_past_due": 12,', b'"days_past_due": 12, "days_past_due": 13,',
             "days_past_due"),
    "phone": (b'"sms_consent": true,', b'"sms_consent": false, "sms_consent": true,',
              "sms_consent"),
    "contact": (b'"role": "guarantor"', b'"role": "emergency", "role": "guarantor"', "role"),
}


@pytest.mark.parametrize(("old", "new", "key"), DUPLICATES.values(), ids=DUPLICATES.keys())
def test_duplicate_keys_are_refused_at_any_depth(old: bytes, new: bytes, key: str) -> None:
    payload = encode(envelope())
    assert old in payload
    with pytest.raises(InvalidEvent) as caught:
        parse_event(payload.replace(old, new, 1))
    assert caught.value.reason == "invalid"
    assert f"duplicate key {key!r}" in caught.value.detail


def test_a_key_like_text_inside_a_value_is_not_a_duplicate() -> None:
    # The cheap duplicate pre-check counts `":`; a name containing it must still be accepted.
    raw = envelope()
    raw["data"]["debtor"]["name"] = 'Dana "days_past_due": Debtor'
    assert parse_event(encode(raw)).data.debtor.name == 'Dana "days_past_due": Debtor'  # type: ignore[union-attr]


@pytest.mark.parametrize("schema", [b"1.0", b"1e0", b"1.00", b"true", b'"1"'])
def test_schema_must_be_the_integer_1(schema: bytes) -> None:
    payload = encode(envelope()).replace(b'"schema": 1,', b'"schema": ' + schema + b",")
    with pytest.raises(InvalidEvent) as caught:
        parse_event(payload)
    assert caught.value.reason == "unknown_schema"


@pytest.mark.parametrize("value", [
    1764597600, 1764597600.5, "1764597600", "2026-12-01", "2026-12-01T09:00:00-0500",
    "2026-12-01 09:00:00-05:00", "2026-12-01T09:00-05:00", "2026-12-01T09:00:00+05",
    "\uff12\uff10\uff12\uff16-12-01T09:00:00-05:00", "2026-12-01T09:00:00-05:00\n", True, None])
def test_occurred_at_must_be_an_rfc3339_string_with_an_offset(value: object) -> None:
    with pytest.raises(InvalidEvent) as caught:
        parse_event(_set("occurred_at", value))
    assert caught.value.reason == "invalid"
    assert caught.value.detail.startswith("occurred_at: "), caught.value.detail


@pytest.mark.parametrize(("value", "utc"), [
    ("2026-12-01T14:00:00Z", datetime(2026, 12, 1, 14, tzinfo=UTC)),
    ("2026-12-01t14:00:00z", datetime(2026, 12, 1, 14, tzinfo=UTC)),
    ("2026-12-01T09:00:00.250-05:00", datetime(2026, 12, 1, 14, 0, 0, 250000, tzinfo=UTC)),
    ("2026-12-01T19:30:00+05:30", datetime(2026, 12, 1, 14, tzinfo=UTC)),
])
def test_rfc3339_times_are_accepted(value: str, utc: datetime) -> None:
    assert parse_event(_set("occurred_at", value)).occurred_at == utc


def test_stored_payloads_accepted_under_older_rules_still_parse() -> None:
    # Events stored before the stricter rules are folded again later; they must not fail then.
    raw = envelope()
    raw["occurred_at"] = 1764597600
    raw["account_id"] = "E\u0001X"
    raw["data"]["amount_due"] = "\u0661\u0660\u0660"
    payload = encode(raw).replace(b'"schema": 1,', b'"schema": 1.0, "event_id": "first",', 1)
    with pytest.raises(InvalidEvent):
        parse_event(payload)
    event = parse_stored_event(payload)
    assert (event.event_id, event.account_id) == ("e-2026-12-01-000001", "E\u0001X")
    assert event.occurred_at == datetime(2025, 12, 1, 14, tzinfo=UTC)


# -- numbers and amounts: one spelling per number, ASCII decimals only ------------------------

SAME_NUMBER = {
    "arabic_indic": "+1\u0663\u0661\u0662\u0665\u0665\u0665\u0660\u0661\u0664\u0662",
    "extended_arabic_indic": "+1\u06f3\u06f1\u06f2\u06f5\u06f5\u06f5\u06f0\u06f1\u06f4\u06f2",
    "full_width": "\uff0b\uff11\uff13\uff11\uff12\uff15\uff15\uff15\uff10\uff11\uff14\uff12",
    "zero_width_space": "+1312\u200b5550142",
    "devanagari": "+\u0967\u0969\u0967\u0968\u096b\u096b\u096b\u0966\u0967\u096a\u0968",
}


@pytest.mark.parametrize("spelling", SAME_NUMBER.values(), ids=SAME_NUMBER.keys())
def test_numbers_are_stored_in_ascii_e164(spelling: str) -> None:
    overdue = parse_event(_set("data", "debtor", "phones", 0, "number", spelling)).data
    contact = parse_event(_set("data", "contacts", 0, "number", spelling)).data
    opt_out = parse_event(_set("data", "number", spelling, kind="contact.opt_out")).data
    assert isinstance(overdue, OverdueData)
    assert isinstance(opt_out, OptData)
    assert isinstance(contact, OverdueData)
    assert contact.contacts is not None
    assert overdue.debtor.phones[0].number == "+13125550142"
    assert contact.contacts[0].number == "+13125550142"
    assert opt_out.number == "+13125550142"


def test_two_spellings_of_one_number_are_one_number() -> None:
    def add_spelling(raw: dict[str, Any]) -> None:
        phones = raw["data"]["debtor"]["phones"]
        phones[0]["number"] = "+13125550142"
        phones.append({**phones[0], "number": SAME_NUMBER["arabic_indic"], "type": "home"})

    with pytest.raises(InvalidEvent) as caught:
        parse_event(_edit(add_spelling))
    assert "listed twice" in caught.value.detail


@pytest.mark.parametrize(("path", "kind"), [
    (("data", "amount_due"), "account.overdue"),
    (("data", "amount_due"), "account.updated"),
    (("data", "amount"), "account.promise"),
])
@pytest.mark.parametrize("amount", ["\u0661\u0660\u0660", "\uff11\uff10\uff10", "100.\u0665\u0660",
                                    "\u0967\u0966\u0966"])
def test_amounts_accept_ascii_decimals_only(path: tuple[str, str], kind: str,
                                            amount: str) -> None:
    with pytest.raises(InvalidEvent) as caught:
        parse_event(_set(*path, amount, kind=kind))
    assert caught.value.reason == "invalid"
    assert caught.value.detail.startswith(".".join(path) + ": "), caught.value.detail


@pytest.mark.parametrize("kind", sorted(DATA_CLASS))
def test_valid_events_take_the_one_pass_path(kind: str) -> None:
    # The duplicate-key pre-check must not send ordinary events down the slow path.
    assert _fast_parse(encode(envelope(kind))) is not None
    assert _fast_parse(json.dumps(envelope(kind), indent=2).encode()) is not None


@pytest.mark.parametrize(("kind", "key"), [("account.promise", "due_on"),
                                           ("account.hold", "until")])
@pytest.mark.parametrize("day", ["9999-12-31", "2200-01-01", "0001-01-01", "1969-12-31"])
def test_calendar_dates_past_any_real_promise_or_hold_are_invalid(kind: str, key: str,
                                                                  day: str) -> None:
    # Days added to 9999-12-31 (a promise's grace period) overflow the calendar.
    with pytest.raises(InvalidEvent) as caught:
        parse_event(_set("data", key, day, kind=kind))
    assert caught.value.reason == "invalid"
    assert caught.value.detail.startswith(f"data.{key}: "), caught.value.detail


@pytest.mark.parametrize(("kind", "key"), [("account.promise", "due_on"),
                                           ("account.hold", "until")])
@pytest.mark.parametrize("day", ["1970-01-01", "2199-12-31"])
def test_calendar_dates_within_range_are_accepted(kind: str, key: str, day: str) -> None:
    event = parse_event(_set("data", key, day, kind=kind))
    assert getattr(event.data, key).isoformat() == day


def test_a_stored_promise_dated_at_the_calendars_end_still_parses() -> None:
    # Accepted by an older version; the engine sets such an account aside rather than failing.
    payload = _set("data", "due_on", "9999-12-31", kind="account.promise")
    assert parse_stored_event(payload).data.due_on.year == 9999  # type: ignore[union-attr]
