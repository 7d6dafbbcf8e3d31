"""Contact limits of a jurisdiction profile, and the check that an operator only tightens them.

A profile file carries `[limits]` (the defaults a deployment gets) and `[legal]` (the loosest
values a deployment may configure, from the sources named in the file). The service config's
`[compliance.limits]` may change any limit toward safety freely, and toward risk only as far as
`[legal]` allows; `check-config` names every key that goes further.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import time
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class GuarantorRule(StrEnum):
    """When guarantors may be called; ordered from safest to loosest."""

    NEVER = "never"
    WHEN_UNREACHABLE = "when_unreachable"


class Limits(BaseModel):
    """Every limit the compliance gate enforces, per person per debt unless said otherwise."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    hours_start: time = time(8, 0)  # earliest local time, in every candidate zone
    hours_end: time = time(21, 0)  # attempts end before this local time
    contact_on_sundays: bool = True
    contact_on_holidays: bool = False
    attempts_per_day: int = Field(default=1, ge=0, le=10)  # every channel, per person
    calls_per_day: int = Field(default=1, ge=0, le=10)  # per person, within attempts_per_day
    sms_per_day: int = Field(default=1, ge=0, le=10)  # per person, within attempts_per_day
    # Every channel, every account on one phone number; None: `attempts_per_day`.
    attempts_per_number_per_day: int | None = Field(default=None, ge=0, le=10)
    min_gap_minutes: int = Field(default=240, ge=0, le=10_080)  # same number, any channel
    calls_per_7_days: int = Field(default=7, ge=0, le=50)  # Reg F 1006.14(b)(2)(i)
    sms_per_7_days: int = Field(default=7, ge=0, le=50)
    contacts_per_7_days: int = Field(default=14, ge=0, le=100)  # every channel
    conversation_cooldown_days: int = Field(default=7, ge=0, le=60)  # Reg F 1006.14(b)(2)(ii)
    conversations_per_day: int = Field(default=1, ge=0, le=10)
    third_party_calls_per_contact: int = Field(default=1, ge=0, le=10)  # per account, ever
    guarantors: GuarantorRule = GuarantorRule.WHEN_UNREACHABLE
    guarantor_calls_per_7_days: int = Field(default=2, ge=0, le=50)
    unreachable_after_attempts: int = Field(default=8, ge=1, le=100)
    unreachable_after_days: int = Field(default=7, ge=1, le=90)
    unreachable_distinct_windows: int = Field(default=3, ge=1, le=24)
    promise_grace_days: int = Field(default=2, ge=0, le=60)
    call_work_numbers: bool = False

    @property
    def number_daily_cap(self) -> int:
        """Attempts a phone number may get per local day, whichever accounts list it."""
        if self.attempts_per_number_per_day is None:
            return self.attempts_per_day
        return self.attempts_per_number_per_day

    @model_validator(mode="after")
    def _hours_make_a_window(self) -> Limits:
        if not self.hours_start < self.hours_end:
            raise ValueError(f"hours_start {self.hours_start} must be before hours_end "
                             f"{self.hours_end}")
        return self


# Which way is safer for each limit: "lower" means a smaller value contacts less.
Direction = Literal["lower", "higher", "false", "true", "order"]
SAFER: dict[str, Direction] = {
    "hours_start": "higher",
    "hours_end": "lower",
    "contact_on_sundays": "false",
    "contact_on_holidays": "false",
    "attempts_per_day": "lower",
    "calls_per_day": "lower",
    "sms_per_day": "lower",
    "attempts_per_number_per_day": "lower",
    "min_gap_minutes": "higher",
    "calls_per_7_days": "lower",
    "sms_per_7_days": "lower",
    "contacts_per_7_days": "lower",
    "conversation_cooldown_days": "higher",
    "conversations_per_day": "lower",
    "third_party_calls_per_contact": "lower",
    "guarantors": "order",
    "guarantor_calls_per_7_days": "lower",
    "unreachable_after_attempts": "higher",
    "unreachable_after_days": "higher",
    "unreachable_distinct_windows": "higher",
    "promise_grace_days": "higher",
    "call_work_numbers": "false",
}
_GUARANTOR_ORDER = list(GuarantorRule)
# A limit left unset takes another's value; it is compared as that value.
_UNSET_MEANS: dict[str, str] = {"attempts_per_number_per_day": "attempts_per_day"}


def _looser(direction: Direction, value: Any, bound: Any) -> bool:
    if direction == "lower":
        return bool(value > bound)
    if direction == "higher":
        return bool(value < bound)
    if direction == "false":
        return bool(value) and not bound
    if direction == "true":
        return not value and bool(bound)
    return _GUARANTOR_ORDER.index(value) > _GUARANTOR_ORDER.index(bound)


def looser_than_legal(limits: Limits, legal: Limits) -> list[tuple[str, str]]:
    """(key, reason) for every limit in `limits` that is looser than `legal` allows."""
    problems = []
    for key, direction in SAFER.items():
        value, bound = _value(limits, key), _value(legal, key)
        if _looser(direction, value, bound):
            problems.append((key, f"{_text(value)} is looser than the profile allows "
                                  f"({_text(bound)}; {_explain(direction)})"))
    return problems


def _value(limits: Limits, key: str) -> Any:
    value = getattr(limits, key)
    return getattr(limits, _UNSET_MEANS[key]) if value is None else value


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, time):
        return value.strftime("%H:%M")
    return str(value)


def _explain(direction: Direction) -> str:
    return {"lower": "it may only be lowered", "higher": "it may only be raised",
            "false": "it may only be false", "true": "it may only be true",
            "order": "allowed: " + ", then ".join(_GUARANTOR_ORDER)}[direction]


def apply_overrides(base: Limits, overrides: Mapping[str, Any]) -> Limits:
    """`base` with the operator's `[compliance.limits]` values; validation errors propagate."""
    return Limits.model_validate({**base.model_dump(), **overrides})
