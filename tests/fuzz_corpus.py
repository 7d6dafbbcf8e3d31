"""Payloads for fuzzing ingest: valid events, a corpus of hostile payloads, hypothesis strategies.

Valid events are dated now, since events dated in the future are refused. Every payload carries
an event id of its own (when it has one at all), so that each can be found again in the store.
"""

from __future__ import annotations

import json
import string
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import strategies as st

ZONES = ("America/Chicago", "America/New_York", "America/Los_Angeles", "Asia/Shanghai")
REGIONS = ("US-TX", "US-NY", "US-CA", "CN-31")
# 555-0100..0199 are the fictional numbers of the North American plan.
NUMBERS = tuple(f"+1512555{n:04d}" for n in range(100, 200))
ID_CHARS = string.ascii_letters + string.digits + "-_.:"


def stamp(at: datetime) -> str:
    """An RFC 3339 time with an offset, as upstream systems send it."""
    return at.isoformat()


def overdue(event_id: str, account_id: str, at: datetime, *, number: str = NUMBERS[0],
            amount: str = "120.50") -> dict[str, Any]:
    """A valid account.overdue event."""
    return {
        "schema": 1, "event_id": event_id, "type": "account.overdue", "occurred_at": stamp(at),
        "account_id": account_id,
        "data": {"days_past_due": 12, "amount_due": amount, "currency": "USD",
                 "debtor": {"name": "Jo Doe", "timezone": "America/Chicago", "region": "US-TX",
                            "phones": [{"number": number, "type": "mobile",
                                        "sms_consent": True, "call_consent": True}]},
                 "contacts": [{"contact_id": f"{account_id}-c1", "name": "Al Roe",
                               "relation": "brother", "number": NUMBERS[99],
                               "role": "emergency"}]},
    }


def follow_up(kind: str, event_id: str, account_id: str, at: datetime,
              number: str = NUMBERS[0]) -> dict[str, Any]:
    """A valid event of another type for an account that an overdue event opened."""
    data: dict[str, dict[str, Any]] = {
        "account.updated": {"days_past_due": 13},
        "account.promise": {"due_on": (at + timedelta(days=7)).date().isoformat(),
                            "amount": "50.00"},
        "account.hold": {"reason": "dispute"},
        "account.release": {"reason": "dispute"},
        "contact.opt_out": {"number": number, "channel": "sms"},
        "contact.opt_in": {"number": number, "channel": "sms"},
        "account.resolved": {"reason": "paid"},
    }
    return {"schema": 1, "event_id": event_id, "type": kind, "occurred_at": stamp(at),
            "account_id": account_id, "data": data[kind]}


FOLLOW_UPS = ("account.updated", "account.promise", "account.hold", "account.release",
              "contact.opt_out", "contact.opt_in", "account.resolved")


def valid_events(prefix: str, count: int, now: Callable[[], datetime]) -> list[dict[str, Any]]:
    """`count` valid events of every type, each dated `now()` when it is built."""
    events = []
    for n in range(count):
        account = f"{prefix}-A{n // 3}"
        event_id = f"{prefix}-{n:05d}"
        if n % 3 == 0:
            events.append(overdue(event_id, account, now(), number=NUMBERS[n % 90]))
        else:
            kind = FOLLOW_UPS[n % len(FOLLOW_UPS)]
            events.append(follow_up(kind, event_id, account, now(), NUMBERS[(n // 3 * 3) % 90]))
    return events


def encode(event: Any, *, ascii_only: bool = True) -> bytes:
    """JSON bytes; with `ascii_only` off, non-ASCII text is sent as UTF-8 rather than escaped."""
    return json.dumps(event, ensure_ascii=ascii_only).encode("utf-8")


def with_key_twice(event: dict[str, Any], key: str, first: Any) -> bytes:
    """The event's JSON with `key` written twice: `first`, then the event's own value."""
    body = encode(event)
    return b"{" + encode(key) + b": " + encode(first) + b", " + body[1:]


def replace_text(payload: bytes, old: str, new: bytes) -> bytes:
    """The payload with the JSON string `old` replaced by raw JSON text `new`."""
    target = encode(old)
    assert payload.count(target) == 1, f"{old!r} must occur once"
    return payload.replace(target, new)


@dataclass(frozen=True)
class Respelled:
    """A number in digits of another script: refusing it is right, and so is storing it, but
    then only in its one ASCII spelling, so that an opt-out of either spelling covers both."""

    ascii_number: str
    account_id: str


@dataclass(frozen=True)
class Hostile:
    """A payload that must become exactly one dead letter with a reason, and never an event."""

    name: str
    payload: bytes
    event_ids: tuple[str, ...] = ()  # the ids it names, none of which may be stored
    respelled: Respelled | None = None  # set when storing it respelled is right too


def _set(event: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    target = event
    keys = path.split(".")
    for key in keys[:-1]:
        target = target[int(key)] if isinstance(target, list) else target[key]
    target[keys[-1]] = value
    return event


def hostile_corpus(now: datetime) -> list[Hostile]:
    """Hostile and malformed payloads, each of which the daemon must dead-letter and survive."""
    cases: list[Hostile] = []

    def event(name: str, path: str | None = None, value: Any = None, *,
              ascii_only: bool = True, respelled: str | None = None) -> None:
        event_id = f"c-{name}"
        base = overdue(event_id, f"C-{name}", now)
        if path is not None:
            _set(base, path, value)
        ids = (base["event_id"],) if isinstance(base.get("event_id"), str) else ()
        spelling = Respelled(respelled, f"C-{name}") if respelled else None
        cases.append(Hostile(name, encode(base, ascii_only=ascii_only), ids, spelling))

    # Times that cannot be converted to UTC, or that no upstream system could mean.
    event("year-9999", "occurred_at", "9999-12-31T23:59:59-05:00")
    event("year-0001", "occurred_at", "0001-01-01T00:00:00+01:00")
    event("far-future", "occurred_at", stamp(now + timedelta(days=3650)))
    event("before-1970", "occurred_at", "1969-07-20T20:17:40+00:00")
    event("epoch-number", "occurred_at", int(now.timestamp()))
    event("epoch-digit-string", "occurred_at", str(int(now.timestamp())))
    event("epoch-float", "occurred_at", now.timestamp())
    event("time-without-offset", "occurred_at", now.replace(tzinfo=None).isoformat())
    event("occurred-at-null", "occurred_at", None)
    # Dates at the calendar's end: a promise's grace period added to one overflows.
    for kind, key in (("account.promise", "due_on"), ("account.hold", "until")):
        name = f"{key}-year-9999"
        dated = follow_up(kind, f"c-{name}", f"C-{name}", now)
        dated["data"][key] = "9999-12-31"
        cases.append(Hostile(name, encode(dated), (dated["event_id"],)))

    # Identifiers that cannot be MQTT topic levels, or are not text a person could read.
    for field in ("account_id", "event_id", "data.contacts.0.contact_id"):
        short = field.rsplit(".", 1)[-1]
        for label, bad in (("control", "E\u0001X"), ("nul", "E\u0000X"), ("slash", "E/X"),
                           ("plus", "E+X"), ("hash", "E#X"), ("noncharacter", "E\uffffX"),
                           ("long", "E" * 10_000), ("space", "E X"), ("empty", ""),
                           ("del", "E\u007fX"), ("newline", "E\nX")):
            event(f"{short}-{label}", field, bad)
    # A lone surrogate can only arrive as a JSON escape: Python cannot encode it as UTF-8.
    for field in ("event_id", "account_id"):
        name = f"{field}-lone-surrogate"
        plain = encode(overdue(f"c-{name}", f"C-{name}", now))
        marker = f"c-{name}" if field == "event_id" else f"C-{name}"
        escaped = json.dumps(marker + "\ud800").encode()  # ensure_ascii writes \ud800
        cases.append(Hostile(name, replace_text(plain, marker, escaped)))

    # Numbers and amounts in digits other than ASCII ones.
    arabic = str.maketrans("0123456789", "".join(chr(0x0660 + d) for d in range(10)))
    fullwidth = str.maketrans("0123456789", "".join(chr(0xFF10 + d) for d in range(10)))
    mixed = "+1" + "3125550142".translate(arabic)  # "+1" then Arabic-Indic digits
    event("number-arabic-indic", "data.debtor.phones.0.number", mixed, ascii_only=False,
          respelled="+13125550142")
    event("number-arabic-indic-escaped", "data.debtor.phones.0.number", mixed,
          respelled="+13125550142")
    # Numbers 90-98 are the corpus's own: an opt-out row is keyed by number alone.
    event("number-fullwidth", "data.debtor.phones.0.number", NUMBERS[91].translate(fullwidth),
          respelled=NUMBERS[91])
    event("contact-number-arabic-indic", "data.contacts.0.number", NUMBERS[92].translate(arabic),
          respelled=NUMBERS[92])
    event("amount-arabic-indic", "data.amount_due", "100".translate(arabic), ascii_only=False)
    event("amount-fullwidth", "data.amount_due", "120.50".translate(fullwidth))
    event("amount-number", "data.amount_due", 120.5)
    event("amount-nan-string", "data.amount_due", "NaN")
    opt_out = follow_up("contact.opt_out", "c-opt-out-arabic", "C-opt-out-arabic", now)
    opt_out["data"]["number"] = NUMBERS[93].translate(arabic)
    cases.append(Hostile("opt-out-number-arabic-indic", encode(opt_out), ("c-opt-out-arabic",),
                         Respelled(NUMBERS[93], "C-opt-out-arabic")))

    # Duplicate keys: which of the two values counts is up to the parser, so neither may.
    dup = overdue("c-dup-event-id-2", "C-dup-event-id", now)
    cases.append(Hostile("duplicate-event-id", with_key_twice(dup, "event_id", "c-dup-event-id-1"),
                         ("c-dup-event-id-1", "c-dup-event-id-2")))
    dup = overdue("c-dup-account", "C-dup-account-2", now)
    cases.append(Hostile("duplicate-account-id",
                         with_key_twice(dup, "account_id", "C-dup-account-1"), ("c-dup-account",)))
    dup = overdue("c-dup-type", "C-dup-type", now)
    cases.append(Hostile("duplicate-type", with_key_twice(dup, "type", "account.resolved"),
                         ("c-dup-type",)))
    dup = overdue("c-dup-phone-number", "C-dup-phone-number", now, number=NUMBERS[94])
    phone = encode(dup["data"]["debtor"]["phones"][0])
    twice = b'{"number": "' + NUMBERS[95].encode() + b'", ' + phone[1:]
    cases.append(Hostile("duplicate-phone-number", encode(dup).replace(phone, twice),
                         ("c-dup-phone-number",)))

    # Schema versions: only the integer 1.
    for label, schema in (("1.0", 1.0), ("true", True), ("string", "1"), ("2", 2), ("999", 999),
                          ("0", 0), ("null", None), ("1e400", "1e400")):
        name = f"schema-{label}"
        versioned = overdue(f"c-{name}", f"C-{name}", now)
        if schema == "1e400":
            payload = replace_text(encode({**versioned, "schema": "MARK"}), "MARK", b"1e400")
        else:
            payload = encode({**versioned, "schema": schema})
        cases.append(Hostile(name, payload, (f"c-{name}",)))
    missing = overdue("c-schema-missing", "C-schema-missing", now)
    del missing["schema"]
    cases.append(Hostile("schema-missing", encode(missing), ("c-schema-missing",)))

    # JSON literals Python accepts but JSON does not, and numbers no float can hold.
    for label, literal in (("nan", b"NaN"), ("infinity", b"Infinity"), ("minus-infinity",
                                                                       b"-Infinity"),
                           ("1e400", b"1e400"), ("huge-int", b"9" * 5000)):
        for path in ("data.days_past_due", "occurred_at"):
            name = f"{label}-in-{path.rsplit('.', 1)[-1]}"
            marked = _set(overdue(f"c-{name}", f"C-{name}", now), path, "MARK")
            cases.append(Hostile(name, replace_text(encode(marked), "MARK", literal),
                                 (f"c-{name}",)))

    # Types and shapes.
    event("unknown-type", "type", "account.exploded")
    event("type-empty", "type", "")
    event("type-number", "type", 7)
    event("type-null", "type", None)
    event("type-list", "type", ["account.overdue"])
    event("type-object", "type", {"name": "account.overdue"})
    event("schema-list", "schema", [1])
    event("data-null", "data", None)
    event("data-list", "data", [])
    event("days-string", "data.days_past_due", "12")
    event("days-bool", "data.days_past_due", True)
    event("consent-string", "data.debtor.phones.0.sms_consent", "true")
    extra = overdue("c-extra-top-level-key", "C-extra-top-level-key", now)
    extra["trace_id"] = "abc"
    cases.append(Hostile("extra-top-level-key", encode(extra), ("c-extra-top-level-key",)))
    extra = overdue("c-extra-debtor-key", "C-extra-debtor-key", now)
    extra["data"]["debtor"]["ssn"] = "000-00-0000"
    cases.append(Hostile("extra-debtor-key", encode(extra), ("c-extra-debtor-key",)))
    event("huge-name", "data.debtor.name", "N" * 60_000)
    event("name-empty", "data.debtor.name", "")

    # Not an event at all.
    cases += [
        Hostile("empty", b""),
        Hostile("whitespace", b" \n\t "),
        Hostile("top-level-array", b"[1, 2, 3]"),
        Hostile("top-level-null", b"null"),
        Hostile("top-level-string", b'"account.overdue"'),
        Hostile("top-level-number", b"1"),
        Hostile("top-level-true", b"true"),
        Hostile("empty-object", b"{}"),
        Hostile("not-json", b"{this is not json"),
        Hostile("truncated-event", encode(overdue("c-truncated", "C-truncated", now))[:-7],
                ("c-truncated",)),
        Hostile("trailing-junk", encode(overdue("c-trailing", "C-trailing", now)) + b" junk",
                ("c-trailing",)),
        Hostile("two-objects", encode(overdue("c-two-1", "C-two", now))
                + encode(overdue("c-two-2", "C-two", now)), ("c-two-1", "c-two-2")),
        Hostile("event-in-array", b"[" + encode(overdue("c-in-array", "C-in-array", now)) + b"]",
                ("c-in-array",)),
        Hostile("non-utf8", b"\xff\xfe{}"),
        Hostile("non-utf8-in-string",
                replace_text(encode(overdue("c-non-utf8", "C-non-utf8", now)), "C-non-utf8",
                             b'"C-\xc3\x28"'), ("c-non-utf8",)),
        Hostile("utf8-bom", b"\xef\xbb\xbf" + encode(overdue("c-bom", "C-bom", now)),
                ("c-bom",)),
        Hostile("utf16", json.dumps(overdue("c-utf16", "C-utf16", now)).encode("utf-16"),
                ("c-utf16",)),
        Hostile("nesting-arrays-10000", b"[" * 10_000 + b"]" * 10_000),
        Hostile("nesting-objects-10000", b'{"a":' * 10_000 + b"1" + b"}" * 10_000),
        Hostile("nesting-unclosed", b"[" * 10_000),
        Hostile("nesting-in-data", replace_text(
            encode(_set(overdue("c-deep-data", "C-deep-data", now), "data", "MARK")), "MARK",
            b'{"a":' * 5_000 + b"1" + b"}" * 5_000), ("c-deep-data",)),
        Hostile("string-60k", encode("x" * 60_000)),
        Hostile("payload-1mb", encode(_set(overdue("c-1mb", "C-1mb", now), "data.debtor.name",
                                           "M" * 1_000_000)), ("c-1mb",)),
        Hostile("payload-1mb-junk", bytes(range(256)) * 4096),
        Hostile("nul-bytes", b"\x00" * 64),
    ]
    return cases


# Hypothesis: valid events with random field values, then random mutations of them.

_ids = st.text(ID_CHARS, min_size=1, max_size=40)
_amounts = st.builds(lambda units, cents: f"{units}.{cents:02d}", st.integers(0, 10**9),
                     st.integers(0, 99))
_names = st.text(min_size=1, max_size=80)
_phone = st.fixed_dictionaries({
    "number": st.sampled_from(NUMBERS), "type": st.sampled_from(["mobile", "home", "work"]),
    "sms_consent": st.booleans(), "call_consent": st.booleans()})
_debtor: st.SearchStrategy[dict[str, Any]] = st.fixed_dictionaries(
    {"name": _names, "phones": st.lists(_phone, max_size=3, unique_by=lambda p: p["number"])},
    optional={"timezone": st.sampled_from(ZONES), "region": st.sampled_from(REGIONS),
              "locale": st.sampled_from(["en-US", "zh-CN", "es"])})
_contact = st.fixed_dictionaries({
    "contact_id": _ids, "name": _names, "relation": st.sampled_from(["brother", "friend"]),
    "number": st.sampled_from(NUMBERS), "role": st.sampled_from(["emergency", "guarantor"])})
_data: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "account.overdue": st.fixed_dictionaries(
        {"days_past_due": st.integers(1, 100_000), "amount_due": _amounts,
         "currency": st.sampled_from(["USD", "CNY", "EUR"]), "debtor": _debtor},
        optional={"contacts": st.lists(_contact, max_size=3)}),
    "account.updated": st.fixed_dictionaries(
        {"days_past_due": st.integers(1, 100_000)}, optional={"amount_due": _amounts}),
    "account.resolved": st.fixed_dictionaries(
        {"reason": st.sampled_from(["paid", "settled", "closed", "written_off"])}),
    "account.promise": st.fixed_dictionaries(
        {"due_on": st.dates().map(str)}, optional={"amount": _amounts}),
    "account.hold": st.fixed_dictionaries({"reason": st.sampled_from(["dispute", "cease"])}),
    "account.release": st.fixed_dictionaries({"reason": st.sampled_from(["dispute", "cease"])}),
    "contact.opt_out": st.fixed_dictionaries(
        {"number": st.sampled_from(NUMBERS), "channel": st.sampled_from(["sms", "call", "all"])}),
    "contact.opt_in": st.fixed_dictionaries(
        {"number": st.sampled_from(NUMBERS), "channel": st.sampled_from(["sms", "call", "all"])}),
}


@st.composite
def valid_event(draw: st.DrawFn, event_id: str) -> dict[str, Any]:
    """A valid event of any type, dated within the last minute, with the given id."""
    kind = draw(st.sampled_from(sorted(_data)))
    age = draw(st.integers(0, 60))
    offset = draw(st.sampled_from([0, -5 * 60, -8 * 60, 8 * 60, 5 * 60 + 30]))
    at = (datetime.now(UTC) - timedelta(seconds=age)).astimezone(
        timezone(timedelta(minutes=offset)))
    return {"schema": 1, "event_id": event_id, "type": kind, "occurred_at": stamp(at),
            "account_id": draw(_ids), "data": draw(_data[kind])}


_json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
_json_values = st.recursive(_json_scalars, lambda inner: st.lists(inner, max_size=3)
                            | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                            max_leaves=8)
_control = st.sampled_from([chr(c) for c in (*range(32), 127)] + ["\u2028", "\ufeff", "\uffff"])


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside a JSON document."""
    out = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, inner in value.items():
            out += _paths(inner, (*prefix, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            out += _paths(inner, (*prefix, index))
    return out


def _parent(doc: Any, path: tuple[Any, ...]) -> Any:
    for step in path[:-1]:
        doc = doc[step]
    return doc


@st.composite
def mutated_payload(draw: st.DrawFn, event_id: str) -> bytes:
    """A valid event, then none or more of: a key dropped, a value's type changed, control
    characters inserted, a key written twice, a time moved anywhere, the bytes wrapped in junk."""
    event = draw(valid_event(event_id))
    duplicate: tuple[str, Any] | None = None
    for _ in range(draw(st.integers(0, 3))):
        if not (paths := _paths(event)):
            break
        path = draw(st.sampled_from(paths))
        parent = _parent(event, path)
        mutation = draw(st.sampled_from(["drop", "retype", "control", "duplicate", "time"]))
        if mutation == "drop":
            del parent[path[-1]]
        elif mutation == "retype":
            parent[path[-1]] = draw(_json_values)
        elif mutation == "control" and isinstance(parent[path[-1]], str):
            text = parent[path[-1]]
            at = draw(st.integers(0, len(text)))
            parent[path[-1]] = text[:at] + draw(_control) + text[at:]
        elif mutation == "duplicate" and len(path) == 1:
            duplicate = (path[0], draw(_json_values))
        elif mutation == "time":
            moment = draw(st.datetimes(timezones=st.timezones()))
            event["occurred_at"] = moment.isoformat()
    payload = encode(event, ascii_only=draw(st.booleans()))
    if duplicate is not None:
        key, first = duplicate
        payload = b"{" + encode(key) + b": " + encode(first) + b", " + payload[1:]
    wrap = draw(st.sampled_from(["none"] * 6 + ["prefix", "suffix", "array", "truncate"]))
    junk = draw(st.binary(min_size=1, max_size=8))
    if wrap == "prefix":
        payload = junk + payload
    elif wrap == "suffix":
        payload = payload + junk
    elif wrap == "array":
        payload = b"[" + payload + b"]"
    elif wrap == "truncate":
        payload = payload[:draw(st.integers(0, len(payload) - 1))]
    return payload
