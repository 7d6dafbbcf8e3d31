"""Inbound events: validation of raw payloads into immutable event objects."""

from __future__ import annotations

import functools
import json
import re
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, Union, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    TypeAdapter,
    ValidationError,
    create_model,
    model_validator,
)

from dispatcher.domain.identifiers import MAX_ID_CHARS, check_identifier
from dispatcher.domain.phones import canonical_e164
from dispatcher.errors import InvalidEvent

MAX_PAYLOAD_BYTES = 64 * 1024
SUPPORTED_SCHEMAS = (1,)

# Set while payloads stored in the past are parsed again (to fold an account): they passed the
# rules of their day, and a rule made stricter since must not make them unreadable.
_STORED: ContextVar[bool] = ContextVar("stored_payload", default=False)


class DeadLetterReason(StrEnum):
    """Why a payload became a dead letter."""

    TOO_LARGE = "too_large"
    NOT_UTF8 = "not_utf8"
    NOT_JSON = "not_json"
    NOT_OBJECT = "not_object"
    UNKNOWN_SCHEMA = "unknown_schema"
    UNKNOWN_TYPE = "unknown_type"
    INVALID = "invalid"
    INTERNAL_ERROR = "internal_error"  # validating, folding or storing it raised; see the detail


class EventType(StrEnum):
    """The event types (docs/events.md)."""

    OVERDUE = "account.overdue"
    UPDATED = "account.updated"
    RESOLVED = "account.resolved"
    PROMISE = "account.promise"
    HOLD = "account.hold"
    RELEASE = "account.release"
    OPT_OUT = "contact.opt_out"
    OPT_IN = "contact.opt_in"


class HoldReason(StrEnum):
    """Reasons for a hard hold: no contact at all until released."""

    CEASE = "cease"
    ATTORNEY = "attorney"
    DISPUTE = "dispute"
    BANKRUPTCY = "bankruptcy"
    DECEASED = "deceased"
    COMPLAINT = "complaint"
    HARDSHIP = "hardship"
    DO_NOT_CALL = "do_not_call"
    MANUAL = "manual"


class ResolvedReason(StrEnum):
    """Why an account no longer needs contact."""

    PAID = "paid"
    SETTLED = "settled"
    CLOSED = "closed"
    WRITTEN_OFF = "written_off"


class OptChannel(StrEnum):
    """The channel an opt-out or opt-in applies to."""

    SMS = "sms"
    CALL = "call"
    ALL = "all"


def _check_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown IANA time zone {name!r}") from None
    return name


_REGION = re.compile(r"^[A-Z]{2}(-[A-Z0-9]{1,3})?$")


def _check_region(code: str) -> str:
    if not _REGION.fullmatch(code):
        raise ValueError(f"not an ISO 3166-2 code (e.g. US-CA, CN-31): {code!r}")
    return code


def _check_ascii_decimal(amount: str) -> str:
    # `\d` in the pattern also matches other scripts' digits, which no ledger reads as the same.
    if not amount.isascii() and not _STORED.get():
        raise ValueError("an amount is written with ASCII digits 0-9 only")
    return amount


def _check_identifier(value: str) -> str:
    return value if _STORED.get() else check_identifier(value)


# RFC 3339 date-time (its section 5.6): seconds required, an offset required (`Z` or +hh:mm).
_RFC3339 = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?"
                      r"([Zz]|[+-][0-9]{2}:[0-9]{2})")


def _check_rfc3339(value: object) -> object:
    # Runs before pydantic's own parsing, which in lax mode also takes epoch numbers and digits.
    if _STORED.get() or (isinstance(value, str) and _RFC3339.fullmatch(value)):
        return value
    raise ValueError("expected an RFC 3339 date-time string with an offset, "
                     "e.g. 2026-12-01T09:00:00-05:00 or 2026-12-01T14:00:00Z")


# A promise or hold dated past 2199 is a typo or an attack, and the calendar ends at 9999: days
# added to such a date (a promise's grace period) would overflow.
EARLIEST_DATE, LATEST_DATE = date(1970, 1, 1), date(2199, 12, 31)


def _check_calendar_date(day: date) -> date:
    if not EARLIEST_DATE <= day <= LATEST_DATE and not _STORED.get():
        raise ValueError(f"{day.isoformat()} is outside {EARLIEST_DATE.isoformat()} to "
                         f"{LATEST_DATE.isoformat()}")
    return day


CalendarDate = Annotated[date, AfterValidator(_check_calendar_date)]
E164 = Annotated[str, AfterValidator(canonical_e164)]
TimeZoneName = Annotated[str, AfterValidator(_check_timezone)]
RegionCode = Annotated[str, AfterValidator(_check_region)]
Decimal = Annotated[str, Field(pattern=r"^\d{1,15}(\.\d{1,4})?$"),
                    AfterValidator(_check_ascii_decimal)]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
Text = Annotated[str, Field(min_length=1, max_length=200)]
Identifier = Annotated[str, Field(min_length=1, max_length=MAX_ID_CHARS),
                       AfterValidator(_check_identifier)]
OccurredAt = Annotated[AwareDatetime, BeforeValidator(_check_rfc3339)]


class _Strict(BaseModel):
    # Unknown keys are refused: a misspelt consent flag must not be silently ignored.
    model_config = ConfigDict(frozen=True, extra="forbid")


class Phone(_Strict):
    """One of the debtor's numbers with its consent flags."""

    number: E164
    type: Literal["mobile", "home", "work"]
    sms_consent: StrictBool
    call_consent: StrictBool


LocalTime = Annotated[str, Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]


class AvoidHours(_Strict):
    """Local hours the consumer said are inconvenient, [start, end); may cross midnight."""

    start: LocalTime
    end: LocalTime

    @model_validator(mode="after")
    def _not_empty(self) -> AvoidHours:
        if self.start == self.end:
            raise ValueError("avoid_hours: start and end are the same time")
        return self


class Debtor(_Strict):
    """The person who owes the debt."""

    name: Text
    timezone: TimeZoneName | None = None
    region: RegionCode | None = None
    locale: Annotated[str, Field(pattern=r"^[a-z]{2,3}([-_][A-Za-z0-9]{2,8})*$")] | None = None
    phones: list[Phone] = Field(default_factory=list, max_length=20)
    # Times the consumer named as inconvenient, honoured like quiet hours (15 USC 1692c(a)(1),
    # Reg F 1006.6(b)(1)(i)).
    avoid_hours: list[AvoidHours] = Field(default_factory=list, max_length=10)

    @model_validator(mode="after")
    def _unique_numbers(self) -> Debtor:
        numbers = [p.number for p in self.phones]
        if len(numbers) != len(set(numbers)):
            raise ValueError("phones: a number is listed twice")
        return self


class Contact(_Strict):
    """A third party: an emergency contact or a guarantor."""

    contact_id: Identifier
    name: Text
    relation: Text
    number: E164
    role: Literal["emergency", "guarantor"]


class OverdueData(_Strict):
    """Data of `account.overdue`."""

    days_past_due: Annotated[StrictInt, Field(ge=1, le=100_000)]
    amount_due: Decimal
    currency: Currency
    debtor: Debtor
    contacts: list[Contact] | None = Field(default=None, max_length=50)


class UpdatedData(_Strict):
    """Data of `account.updated`: any subset of the overdue fields."""

    days_past_due: Annotated[StrictInt, Field(ge=1, le=100_000)] | None = None
    amount_due: Decimal | None = None
    currency: Currency | None = None
    debtor: Debtor | None = None
    contacts: list[Contact] | None = Field(default=None, max_length=50)

    @model_validator(mode="after")
    def _not_empty(self) -> UpdatedData:
        if not self.model_fields_set:
            raise ValueError("account.updated needs at least one field")
        return self


class ResolvedData(_Strict):
    """Data of `account.resolved`."""

    reason: ResolvedReason


class PromiseData(_Strict):
    """Data of `account.promise`."""

    due_on: CalendarDate
    amount: Decimal | None = None


class HoldData(_Strict):
    """Data of `account.hold`."""

    reason: HoldReason
    until: CalendarDate | None = None


class ReleaseData(_Strict):
    """Data of `account.release`."""

    reason: HoldReason


class OptData(_Strict):
    """Data of `contact.opt_out` and `contact.opt_in`."""

    number: E164
    channel: OptChannel


EventData = (
    OverdueData | UpdatedData | ResolvedData | PromiseData | HoldData | ReleaseData | OptData
)

_DATA_MODELS: dict[EventType, type[EventData]] = {
    EventType.OVERDUE: OverdueData,
    EventType.UPDATED: UpdatedData,
    EventType.RESOLVED: ResolvedData,
    EventType.PROMISE: PromiseData,
    EventType.HOLD: HoldData,
    EventType.RELEASE: ReleaseData,
    EventType.OPT_OUT: OptData,
    EventType.OPT_IN: OptData,
}


class _Envelope(_Strict):
    schema_: Literal[1] = Field(alias="schema")
    event_id: Identifier
    type: EventType
    occurred_at: OccurredAt
    account_id: Identifier
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Event:
    """A validated inbound event; `occurred_at` is normalised to UTC."""

    # A plain dataclass: its fields were validated already (by the models above), and building
    # it is the last step of every inbound event (model_construct cost ~4 us per event).
    event_id: str
    type: EventType
    occurred_at: datetime
    account_id: str
    data: EventData


def _first_error(exc: ValidationError, prefix: str = "") -> str:
    errors = exc.errors(include_url=False)
    parts = []
    for err in errors[:3]:
        loc = ".".join(str(p) for p in (prefix, *err["loc"]) if p != "")
        message = str(err["msg"]).removeprefix("Value error, ")
        parts.append(f"{loc or '(root)'}: {message}")
    more = f" (+{len(errors) - 3} more)" if len(errors) > 3 else ""
    return "; ".join(parts) + more


def peek_identity(raw: object) -> dict[str, str]:
    """Pick event_id, event_type and account_id out of a payload, when present, for dead letters."""
    if not isinstance(raw, dict):
        return {}
    out = {}
    for source, target in (("event_id", "event_id"), ("type", "event_type"),
                           ("account_id", "account_id")):
        value = raw.get(source)
        if isinstance(value, str) and 0 < len(value) <= 128:
            out[target] = clean_text(value)
    return out


def clean_text(text: str) -> str:
    """Text safe to store and hash: JSON escapes can smuggle lone surrogates into a str, and
    U+0000, which PostgreSQL's text cannot hold; both are written as backslash escapes."""
    return text.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")


def decode_payload(payload: bytes) -> dict[str, Any]:
    """Decode a raw payload into a JSON object, or raise InvalidEvent."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise InvalidEvent(DeadLetterReason.TOO_LARGE,
                           f"{len(payload)} bytes; the limit is {MAX_PAYLOAD_BYTES}")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidEvent(DeadLetterReason.NOT_UTF8, f"byte {exc.start}: {exc.reason}") from None
    try:
        raw = json.loads(text) if _STORED.get() else json.loads(
            text, object_pairs_hook=_refuse_duplicate_keys)
    except _DuplicateKey as exc:
        raise InvalidEvent(DeadLetterReason.INVALID,
                           f"duplicate key {exc.key!r}: a key may appear once per object") from None
    except json.JSONDecodeError as exc:
        raise InvalidEvent(DeadLetterReason.NOT_JSON,
                           f"line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except RecursionError:
        raise InvalidEvent(DeadLetterReason.NOT_JSON, "nested too deeply") from None
    if not isinstance(raw, dict):
        raise InvalidEvent(DeadLetterReason.NOT_OBJECT,
                           f"a JSON {type(raw).__name__} instead of an object")
    return raw


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _refuse_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # JSON parsers keep the last of two equal keys; which one the sender meant is unknowable.
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return obj


def _schema_supported(schema: object) -> bool:
    if _STORED.get():
        return schema in SUPPORTED_SCHEMAS and not isinstance(schema, bool)
    return type(schema) is int and schema in SUPPORTED_SCHEMAS


def validate_event(raw: dict[str, Any]) -> Event:
    """Validate a decoded JSON object as an inbound event, or raise InvalidEvent."""
    schema = raw.get("schema")
    if not _schema_supported(schema):
        raise InvalidEvent(DeadLetterReason.UNKNOWN_SCHEMA,
                           f"schema {schema!r}; supported: {list(SUPPORTED_SCHEMAS)}")
    kind = raw.get("type")
    if kind not in _DATA_MODELS:
        raise InvalidEvent(DeadLetterReason.UNKNOWN_TYPE, f"type {kind!r} is not known")
    try:
        envelope = _Envelope.model_validate(raw)
        data = _DATA_MODELS[envelope.type].model_validate(envelope.data)
    except ValidationError as exc:
        prefix = "data" if "envelope" in locals() else ""
        raise InvalidEvent(DeadLetterReason.INVALID, _first_error(exc, prefix)) from None
    return Event(
        event_id=envelope.event_id,
        type=envelope.type,
        occurred_at=envelope.occurred_at.astimezone(UTC),
        account_id=envelope.account_id,
        data=data,
    )


def _typed_envelope(kind: EventType, data_model: type[BaseModel]) -> type[BaseModel]:
    literal: Any = Literal[kind.value]
    model: type[BaseModel] = create_model(
        f"Envelope_{kind.name}", __base__=_Strict,
        schema_=(StrictInt, Field(alias="schema", ge=1, le=1)), event_id=(Identifier, ...),
        type=(literal, ...), occurred_at=(OccurredAt, ...),
        account_id=(Identifier, ...), data=(data_model, ...))
    return model


# One pass in pydantic-core from bytes to models; the same field types as the step-by-step path
# below, which runs only for payloads this one refuses, to name the precise reason.
_EVENT_UNION: Any = Annotated[
    Union[tuple(_typed_envelope(k, m) for k, m in _DATA_MODELS.items())],  # noqa: UP007
    Field(discriminator="type")]
_ANY_EVENT: TypeAdapter[Any] = TypeAdapter(_EVENT_UNION)


_JSON_WHITESPACE = b" \t\r\n"


@functools.cache
def _nested_fields(model: type[BaseModel]) -> tuple[str, ...]:
    return tuple(name for name, field in model.model_fields.items()
                 if _holds_model(field.annotation))


@functools.cache
def _fixed_key_count(model: type[BaseModel]) -> int | None:
    # A model of required scalar fields only always has all of them (a phone: 4 keys).
    fields = model.model_fields.values()
    if _nested_fields(model) or not all(f.is_required() for f in fields):
        return None
    return len(fields)


def _holds_model(annotation: object) -> bool:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return True
    return any(_holds_model(arg) for arg in get_args(annotation))


def _key_count(model: BaseModel) -> int:
    given = model.model_fields_set
    count = len(given)
    for name in _nested_fields(type(model)):
        if name not in given:
            continue
        value = getattr(model, name)
        if type(value) is list:
            first: BaseModel | None = value[0] if value else None
            if first is not None and (fixed := _fixed_key_count(type(first))) is not None:
                count += fixed * len(value)
            else:
                count += sum(_key_count(item) for item in value)
        elif value is not None:
            count += _key_count(value)
    return count


def _may_repeat_a_key(payload: bytes, typed: BaseModel) -> bool:
    # Every key of the payload ends in `"`, optional whitespace and `:`, and outside keys that
    # sequence occurs only inside strings. Unknown keys are refused, so the models hold every
    # distinct key: as many key ends as keys kept means no key was given twice. Rarely (a value
    # containing `":`) this says maybe, and the exact step-by-step path decides.
    ends = payload.translate(None, _JSON_WHITESPACE).count(b'":')
    return ends != _key_count(typed)


def _fast_parse(payload: bytes) -> Event | None:
    try:
        typed = _ANY_EVENT.validate_json(payload)
    except ValidationError:
        return None
    if not _STORED.get() and _may_repeat_a_key(payload, typed):
        return None
    return Event(
        event_id=typed.event_id, type=EventType(typed.type),
        occurred_at=typed.occurred_at.astimezone(UTC), account_id=typed.account_id,
        data=typed.data)


def parse_event(payload: bytes) -> Event:
    """Decode and validate one raw MQTT payload, or raise InvalidEvent with a reason code."""
    if len(payload) <= MAX_PAYLOAD_BYTES and (event := _fast_parse(payload)) is not None:
        return event
    return validate_event(decode_payload(payload))


def parse_stored_event(payload: bytes) -> Event:
    """Parse a payload stored earlier, under the rules it was accepted by (schema 1 stays)."""
    token = _STORED.set(True)
    try:
        return parse_event(payload)
    finally:
        _STORED.reset(token)
