"""Inbound events (contract section 1): validation of raw payloads into immutable event objects."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, Union
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    TypeAdapter,
    ValidationError,
    create_model,
    model_validator,
)

from dispatcher.errors import InvalidEvent
from dispatcher.phones import validate_e164

MAX_PAYLOAD_BYTES = 64 * 1024
SUPPORTED_SCHEMAS = (1,)


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
    """The event types of contract section 1."""

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


E164 = Annotated[str, AfterValidator(validate_e164)]
TimeZoneName = Annotated[str, AfterValidator(_check_timezone)]
RegionCode = Annotated[str, AfterValidator(_check_region)]
Decimal = Annotated[str, Field(pattern=r"^\d{1,15}(\.\d{1,4})?$")]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
Text = Annotated[str, Field(min_length=1, max_length=200)]
Identifier = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[^\s/#+]+$")]


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
    # Extension of schema 1 (compliance.md, "Time of day"): times the consumer named as
    # inconvenient, honoured like quiet hours.
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

    due_on: date
    amount: Decimal | None = None


class HoldData(_Strict):
    """Data of `account.hold`."""

    reason: HoldReason
    until: date | None = None


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
    occurred_at: AwareDatetime
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
    """Text safe to store and hash: JSON escapes can smuggle lone surrogates into a str."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


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
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidEvent(DeadLetterReason.NOT_JSON,
                           f"line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except RecursionError:
        raise InvalidEvent(DeadLetterReason.NOT_JSON, "nested too deeply") from None
    if not isinstance(raw, dict):
        raise InvalidEvent(DeadLetterReason.NOT_OBJECT,
                           f"a JSON {type(raw).__name__} instead of an object")
    return raw


def validate_event(raw: dict[str, Any]) -> Event:
    """Validate a decoded JSON object as an event of contract section 1, or raise InvalidEvent."""
    schema = raw.get("schema")
    if schema not in SUPPORTED_SCHEMAS or isinstance(schema, bool):
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
        type=(literal, ...), occurred_at=(AwareDatetime, ...),
        account_id=(Identifier, ...), data=(data_model, ...))
    return model


# One pass in pydantic-core from bytes to models; the same field types as the step-by-step path
# below, which runs only for payloads this one refuses, to name the precise reason.
_EVENT_UNION: Any = Annotated[
    Union[tuple(_typed_envelope(k, m) for k, m in _DATA_MODELS.items())],  # noqa: UP007
    Field(discriminator="type")]
_ANY_EVENT: TypeAdapter[Any] = TypeAdapter(_EVENT_UNION)


def _fast_parse(payload: bytes) -> Event | None:
    try:
        typed = _ANY_EVENT.validate_json(payload)
    except ValidationError:
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
