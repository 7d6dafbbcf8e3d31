"""docs/event.schema.json against the real classifier: both accept the documented events, both
refuse the invalid ones, and they differ only where docs/events.md says JSON Schema cannot follow.

Every ```json block of docs/events.md is an event example, so the docs cannot drift from the code.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import available_timezones

import pytest
from hypothesis import given, settings
from jsonschema import Draft202012Validator

from dispatcher.domain.events import MAX_PAYLOAD_BYTES, EventType
from dispatcher.domain.identifiers import identifier_problem
from dispatcher.ingest.classify import classify_batch
from dispatcher.store import Accepted
from tests.fuzz_corpus import valid_event
from tests.unit.samples import VALID_DATA, envelope

DOCS = Path(__file__).resolve().parents[2] / "docs"
SCHEMA: dict[str, Any] = json.loads((DOCS / "event.schema.json").read_text(encoding="utf-8"))
VALIDATOR = Draft202012Validator(SCHEMA)
# Every example is dated before this receipt; the bounds relative to receipt are the daemon's.
RECEIVED = datetime(2027, 1, 1, tzinfo=UTC)
MAX_FUTURE = timedelta(seconds=300)
TOPIC = "collections/events/test"


def schema_accepts(payload: bytes) -> bool:
    """Whether the schema accepts the JSON value in `payload`."""
    return bool(VALIDATOR.is_valid(json.loads(payload)))


def classifier_verdict(payload: bytes, now: datetime = RECEIVED) -> str:
    """`accepted`, or the dead-letter reason and detail the daemon's intake gives `payload`."""
    [item] = classify_batch([(TOPIC, payload)], max_bytes=MAX_PAYLOAD_BYTES, now=now,
                            max_future=MAX_FUTURE)
    return "accepted" if isinstance(item, Accepted) else f"{item.reason}: {item.detail}"


def encode(value: object) -> bytes:
    """JSON bytes as a producer sends them."""
    return json.dumps(value).encode("utf-8")


def doc_examples() -> list[dict[str, Any]]:
    """The ```json blocks of docs/events.md, parsed."""
    text = (DOCS / "events.md").read_text(encoding="utf-8")
    return [json.loads(block) for block in re.findall(r"^```json\n(.*?)^```$", text,
                                                      re.MULTILINE | re.DOTALL)]


def with_change(kind: str, change: Callable[[dict[str, Any]], object]) -> dict[str, Any]:
    """The sample event of `kind`, changed in place by `change`."""
    event = envelope(kind)
    change(event)
    return event


def setting(path: str, value: object, kind: str = "account.overdue") -> dict[str, Any]:
    """The sample event of `kind` with the value at a dotted path replaced."""
    def change(event: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = event
        for key in parents:
            target = target[int(key)] if isinstance(target, list) else target[key]
        target[int(last) if isinstance(target, list) else last] = value
    return with_change(kind, change)


def without(path: str, kind: str = "account.overdue") -> dict[str, Any]:
    """The sample event of `kind` without the key at a dotted path."""
    def change(event: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = event
        for key in parents:
            target = target[int(key)] if isinstance(target, list) else target[key]
        del target[last]
    return with_change(kind, change)


def valid_corpus() -> dict[str, dict[str, Any]]:
    """Events both must accept: the test samples, variations of them, and the docs' examples."""
    corpus = {f"sample {kind}": envelope(kind) for kind in VALID_DATA}
    corpus |= {
        "lowercase t and z": envelope(occurred_at="2026-12-01t09:00:00z"),
        "nine digits of a second": envelope(occurred_at="2026-12-01T09:00:00.123456789Z"),
        "offset with minutes": envelope(occurred_at="2026-12-01T19:30:00+05:30"),
        "29 February of a leap year": envelope(occurred_at="2024-02-29T12:00:00Z"),
        "identifier of 128 characters": envelope(event_id="e" * 128),
        "identifier in CJK": envelope(account_id="账户-1001"),
        "identifier with punctuation": envelope(event_id="crm:2026-12-01.0001_a@b"),
        "contacts null": setting("data.contacts", None),
        "no contacts": without("data.contacts"),
        "no phones": setting("data.debtor.phones", []),
        "debtor fields null": with_change("account.overdue", lambda e: e["data"]["debtor"].update(
            timezone=None, region=None, locale=None)),
        "country as region": setting("data.debtor.region", "IN"),
        "avoid hours across midnight": setting("data.debtor.avoid_hours",
                                               [{"start": "21:30", "end": "07:00"}]),
        "updated with null": setting("data", {"amount_due": None}, "account.updated"),
        "updated debtor": setting("data", {"debtor": {"name": "Dana D."}}, "account.updated"),
        "promise without amount": setting("data", {"due_on": "2199-12-31"}, "account.promise"),
        "hold until null": setting("data.until", None, "account.hold"),
        "hold without end": without("data.until", "account.hold"),
        "hold on the first date": setting("data.until", "1970-01-01", "account.hold"),
        "largest amount": setting("data.amount_due", "999999999999999.9999"),
        "largest days past due": setting("data.days_past_due", 100_000),
    }
    corpus |= {f"docs/events.md example {n}": example
               for n, example in enumerate(doc_examples(), 1)}
    return corpus


def invalid_corpus() -> dict[str, dict[str, Any] | list[Any]]:
    """Events both must refuse: one mistake each."""
    cases: dict[str, dict[str, Any] | list[Any]] = {
        f"no {key}": without(key) for key in
        ("schema", "event_id", "type", "occurred_at", "account_id", "data")}
    cases |= {
        "not an object": [envelope()],
        "schema 2": setting("schema", 2),
        "schema as a string": setting("schema", "1"),
        "schema true": setting("schema", True),
        "unknown type": setting("type", "account.exploded"),
        "type as a number": setting("type", 7),
        "unknown top-level key": setting("trace_id", "abc"),
        "data a list": setting("data", []),
        "data null": setting("data", None),
        "data of another type": setting("data", VALID_DATA["account.resolved"]),
        "occurred_at without offset": setting("occurred_at", "2026-12-01T09:00:00"),
        "occurred_at without seconds": setting("occurred_at", "2026-12-01T09:00Z"),
        "occurred_at a date": setting("occurred_at", "2026-12-01"),
        "occurred_at a number": setting("occurred_at", 1796000000),
        "occurred_at digits": setting("occurred_at", "1796000000"),
        "occurred_at with a space": setting("occurred_at", "2026-12-01 09:00:00Z"),
        "month 13": setting("occurred_at", "2026-13-01T09:00:00Z"),
        "30 February": setting("occurred_at", "2024-02-30T09:00:00Z"),
        "29 February of 2026": setting("occurred_at", "2026-02-29T09:00:00Z"),
        "29 February of 2100": setting("data.due_on", "2100-02-29", "account.promise"),
        "31 April": setting("occurred_at", "2026-04-31T09:00:00Z"),
        "hour 24": setting("occurred_at", "2026-12-01T24:00:00Z"),
        "leap second": setting("occurred_at", "2026-12-31T23:59:60Z"),
        "offset 24 hours": setting("occurred_at", "2026-12-01T09:00:00+24:00"),
        "offset without colon": setting("occurred_at", "2026-12-01T09:00:00+0500"),
        "before 1970": setting("occurred_at", "1969-07-20T20:17:40Z"),
        "ten digits of a second": setting("occurred_at", "2026-12-01T09:00:00.1234567890Z"),
        "empty event_id": setting("event_id", ""),
        "event_id of 129 characters": setting("event_id", "e" * 129),
        "event_id starting with $": setting("event_id", "$SYS"),
        "account_id with a slash": setting("account_id", "A/1"),
        "account_id with a plus": setting("account_id", "A+1"),
        "account_id with a hash": setting("account_id", "A#1"),
        "event_id with a space": setting("event_id", "e 1"),
        "event_id with a newline": setting("event_id", "e\n1"),
        "event_id ending in a newline": setting("event_id", "e1\n"),
        "event_id with NUL": setting("event_id", "e\x001"),
        "event_id with DEL": setting("event_id", "e\x7f1"),
        "event_id with NEL": setting("event_id", "e\x851"),
        "event_id with a no-break space": setting("event_id", "e\xa01"),
        "event_id with a line separator": setting("event_id", "e\u20281"),
        "event_id with an ideographic space": setting("event_id", "e\u30001"),
        "event_id with U+FFFF": setting("event_id", "e\uffff1"),
        "event_id with U+FDD0": setting("event_id", "e\ufdd01"),
        "event_id with U+10FFFF": setting("event_id", "e\U0010ffff1"),
        "event_id with a lone surrogate": setting("event_id", "e\ud8001"),
        "event_id a number": setting("event_id", 1),
        "contact_id with a slash": setting("data.contacts.0.contact_id", "C/1"),
        "days_past_due 0": setting("data.days_past_due", 0),
        "days_past_due over the limit": setting("data.days_past_due", 100_001),
        "days_past_due negative": setting("data.days_past_due", -3),
        "days_past_due a string": setting("data.days_past_due", "12"),
        "days_past_due true": setting("data.days_past_due", True),
        "days_past_due with a fraction": setting("data.days_past_due", 12.5),
        "amount a number": setting("data.amount_due", 125.5),
        "amount with a comma": setting("data.amount_due", "125,50"),
        "amount with five decimals": setting("data.amount_due", "1.12345"),
        "amount of sixteen digits": setting("data.amount_due", "1234567890123456"),
        "amount ending in a point": setting("data.amount_due", "12."),
        "negative amount": setting("data.amount_due", "-5.00"),
        "amount in exponent form": setting("data.amount_due", "1e3"),
        "amount in full-width digits": setting("data.amount_due", "\uff11\uff12"),
        "amount in Arabic-Indic digits": setting("data.amount_due", "\u0661\u0662"),
        "empty amount": setting("data.amount_due", ""),
        "lowercase currency": setting("data.currency", "usd"),
        "currency of four letters": setting("data.currency", "USDX"),
        "no debtor": without("data.debtor"),
        "debtor null": setting("data.debtor", None),
        "debtor without name": without("data.debtor.name"),
        "empty name": setting("data.debtor.name", ""),
        "name of 201 characters": setting("data.debtor.name", "N" * 201),
        "unknown debtor key": setting("data.debtor.ssn", "000-00-0000"),
        "phones null": setting("data.debtor.phones", None),
        "21 phones": setting("data.debtor.phones", [
            {"number": f"+1512555{n:04d}", "type": "home", "sms_consent": False,
             "call_consent": True} for n in range(100, 121)]),
        "phone type cell": setting("data.debtor.phones.0.type", "cell"),
        "consent as a string": setting("data.debtor.phones.0.sms_consent", "true"),
        "consent as 1": setting("data.debtor.phones.0.call_consent", 1),
        "phone without consent": without("data.debtor.phones.0.call_consent"),
        "unknown phone key": setting("data.debtor.phones.0.label", "cell"),
        "number without +": setting("data.debtor.phones.0.number", "15125550100"),
        "number with spaces": setting("data.debtor.phones.0.number", "+1 512 555 0100"),
        "number with dashes": setting("data.debtor.phones.0.number", "+1-512-555-0100"),
        "number of six digits": setting("data.debtor.phones.0.number", "+123456"),
        "number of sixteen digits": setting("data.debtor.phones.0.number", "+1234567890123456"),
        "number starting with 0": setting("data.debtor.phones.0.number", "+0125550100"),
        "same phone twice": setting("data.debtor.phones", [VALID_DATA["account.overdue"][
            "debtor"]["phones"][0]] * 2),
        "timezone empty": setting("data.debtor.timezone", ""),
        "timezone with a space": setting("data.debtor.timezone", "America/New York"),
        "timezone absolute": setting("data.debtor.timezone", "/etc/localtime"),
        "region lowercase": setting("data.debtor.region", "us-tx"),
        "region of three letters": setting("data.debtor.region", "USA"),
        "region subdivision too long": setting("data.debtor.region", "US-TEXA"),
        "locale uppercase": setting("data.debtor.locale", "EN"),
        "locale of one letter": setting("data.debtor.locale", "e"),
        "locale with a trailing dash": setting("data.debtor.locale", "en-"),
        "avoid_hours at 24:00": setting("data.debtor.avoid_hours",
                                        [{"start": "24:00", "end": "07:00"}]),
        "avoid_hours without a leading zero": setting("data.debtor.avoid_hours",
                                                      [{"start": "9:00", "end": "10:00"}]),
        "avoid_hours without end": setting("data.debtor.avoid_hours", [{"start": "09:00"}]),
        "eleven avoid_hours": setting("data.debtor.avoid_hours", [
            {"start": f"{h:02d}:00", "end": f"{h:02d}:30"} for h in range(11)]),
        "avoid_hours null": setting("data.debtor.avoid_hours", None),
        "contact role friend": setting("data.contacts.0.role", "friend"),
        "contact without relation": without("data.contacts.0.relation"),
        "contact number invalid shape": setting("data.contacts.0.number", "555-0199"),
        "51 contacts": setting("data.contacts", [
            {"contact_id": f"C-{n}", "name": "N", "relation": "friend",
             "number": "+15125550199", "role": "emergency"} for n in range(51)]),
        "updated with nothing": setting("data", {}, "account.updated"),
        "updated with an unknown key": setting("data", {"status": "open"}, "account.updated"),
        "resolved reason refunded": setting("data.reason", "refunded", "account.resolved"),
        "resolved without reason": setting("data", {}, "account.resolved"),
        "promise without due_on": setting("data", {"amount": "1.00"}, "account.promise"),
        "promise due_on with slashes": setting("data.due_on", "2026/12/10", "account.promise"),
        "promise due_on in 1969": setting("data.due_on", "1969-12-31", "account.promise"),
        "promise due_on in 2200": setting("data.due_on", "2200-01-01", "account.promise"),
        "promise due_on 9999": setting("data.due_on", "9999-12-31", "account.promise"),
        "promise amount a number": setting("data.amount", 50, "account.promise"),
        "hold reason vacation": setting("data.reason", "vacation", "account.hold"),
        "hold until month 13": setting("data.until", "2026-13-01", "account.hold"),
        "release without reason": setting("data", {}, "account.release"),
        "release with until": setting("data.until", "2026-12-06", "account.release"),
        "opt-out channel email": setting("data.channel", "email", "contact.opt_out"),
        "opt-in without number": without("data.number", "contact.opt_in"),
        "opt-out of an invalid shape": setting("data.number", "STOP", "contact.opt_out"),
    }
    return cases


VALID = valid_corpus()
INVALID = invalid_corpus()


def test_the_schema_is_a_valid_draft_2020_12_schema() -> None:
    Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_the_schema_names_every_event_type() -> None:
    assert SCHEMA["properties"]["type"]["enum"] == [t.value for t in EventType]
    branches = [branch["properties"]["type"]["const"] for branch in SCHEMA["oneOf"]]
    assert branches == [t.value for t in EventType]


def test_the_docs_show_an_example_of_every_event_type() -> None:
    assert sorted({example["type"] for example in doc_examples()}) == sorted(
        t.value for t in EventType)


@pytest.mark.parametrize("name", sorted(VALID))
def test_schema_and_classifier_accept_the_valid_event(name: str) -> None:
    payload = encode(VALID[name])
    assert list(VALIDATOR.iter_errors(json.loads(payload))) == []
    assert classifier_verdict(payload) == "accepted"


@pytest.mark.parametrize("name", sorted(INVALID))
def test_schema_and_classifier_refuse_the_invalid_event(name: str) -> None:
    payload = encode(INVALID[name])
    assert not schema_accepts(payload)
    assert classifier_verdict(payload) != "accepted"


def _twice(key: str, first: object) -> bytes:
    body = encode(envelope())
    return b"{" + encode(key) + b": " + encode(first) + b", " + body[1:]


# (payload, whether the schema accepts it, whether the classifier does): the rules JSON Schema
# cannot express, as docs/events.md lists them. Each entry proves its difference is real.
DIFFERENCES: dict[str, tuple[bytes, bool, bool]] = {
    "payload over 64 KiB": (encode(envelope()) + b" " * MAX_PAYLOAD_BYTES, True, False),
    "a key given twice": (_twice("event_id", "e-other"), True, False),
    "schema 1.0": (encode(setting("schema", 1.0)), True, False),
    "days_past_due 12.0": (encode(setting("data.days_past_due", 12.0)), True, False),
    "identifier over 256 UTF-8 bytes": (encode(envelope(account_id="账" * 100)), True, False),
    "before the epoch in UTC": (encode(envelope(occurred_at="1970-01-01T00:30:00+01:00")),
                                True, False),
    "later than receipt plus max_future_seconds": (
        encode(envelope(occurred_at="2027-01-01T00:05:01Z")), True, False),
    "number not valid for its country": (
        encode(setting("data.number", "+10000000000", "contact.opt_out")), True, False),
    "one number twice with other flags": (encode(setting("data.debtor.phones", [
        {"number": "+15125550100", "type": "mobile", "sms_consent": True, "call_consent": True},
        {"number": "+15125550100", "type": "home", "sms_consent": False, "call_consent": True},
    ])), True, False),
    "unknown time zone": (encode(setting("data.debtor.timezone", "Mars/Olympus_Mons")),
                          True, False),
    "avoid_hours of no length": (encode(setting("data.debtor.avoid_hours",
                                                [{"start": "12:00", "end": "12:00"}])),
                                 True, False),
    "number in Arabic-Indic digits": (encode(setting(
        "data.number", "+\u0661\u0665\u0661\u0662\u0665\u0665\u0665\u0660\u0661\u0660\u0660",
        "contact.opt_out")), False, True),
    "number with a zero-width space": (encode(setting(
        "data.number", "+1512\u200b5550100", "contact.opt_out")), False, True),
    "date as a midnight date-time": (encode(setting("data.due_on", "2026-12-10T00:00:00Z",
                                                    "account.promise")), False, True),
    "date as a Unix time": (encode(setting("data.due_on", 1796860800, "account.promise")),
                            False, True),
}


@pytest.mark.parametrize("name", sorted(DIFFERENCES))
def test_the_documented_differences_are_real(name: str) -> None:
    payload, schema_verdict, classifier_accepts = DIFFERENCES[name]
    assert schema_accepts(payload) is schema_verdict
    assert (classifier_verdict(payload) == "accepted") is classifier_accepts


def test_the_identifier_pattern_agrees_with_the_code_on_every_character() -> None:
    pattern = re.compile(SCHEMA["$defs"]["identifier"]["pattern"])
    disagree = [f"U+{code:04X}" for code in range(0x110000)
                if (pattern.search(f"a{chr(code)}b") is not None)
                is not (identifier_problem(f"a{chr(code)}b") is None)]
    assert disagree == []
    assert pattern.search("$a") is None
    assert identifier_problem("$a") is not None
    assert pattern.search("a$") is not None
    assert identifier_problem("a$") is None


def test_every_zone_of_the_database_matches_the_timezone_pattern() -> None:
    pattern = re.compile(SCHEMA["$defs"]["timezone"]["pattern"])
    assert sorted(z for z in available_timezones() if pattern.search(z) is None) == []


@settings(max_examples=200, deadline=None)
@given(valid_event("e-schema-property"))
def test_schema_and_classifier_agree_on_generated_events(event: dict[str, Any]) -> None:
    payload = encode(copy.deepcopy(event))
    verdict = classifier_verdict(payload, now=datetime.now(UTC))
    assert schema_accepts(payload) is (verdict == "accepted"), verdict
