"""The contact schedule operators tune: stages by days past due and named local-time windows."""

from __future__ import annotations

import itertools
from datetime import time
from enum import IntEnum
from typing import Annotated, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from dispatcher.domain.contact import Medium

# The only template a third party ever hears: location, nothing about the debt.
THIRD_PARTY_TEMPLATE = "location_call"

Name = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,31}$")]


class Weekday(IntEnum):
    """Days as `date.weekday()` numbers them."""

    MON = 0
    TUE = 1
    WED = 2
    THU = 3
    FRI = 4
    SAT = 5
    SUN = 6


_WEEKDAY_NAMES = {day.name.lower(): day for day in Weekday}
WORKDAYS = (Weekday.MON, Weekday.TUE, Weekday.WED, Weekday.THU, Weekday.FRI)


class TimeWindow(BaseModel):
    """A named part of the day in the debtor's local time, on the given weekdays."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    start: time
    end: time
    days: tuple[Weekday, ...] = WORKDAYS

    @model_validator(mode="before")
    @classmethod
    def _day_names(cls, data: object) -> object:
        if isinstance(data, dict) and isinstance(data.get("days"), list):
            days = data["days"]
            data = {**data, "days": [_WEEKDAY_NAMES.get(d, d) if isinstance(d, str) else d
                                     for d in days]}
        return data

    @model_validator(mode="after")
    def _ordered(self) -> TimeWindow:
        if not self.start < self.end:
            raise ValueError(f"start {self.start} must be before end {self.end}")
        if not self.days:
            raise ValueError("days: at least one day")
        return self

    @property
    def minutes(self) -> int:
        """Length of the window in minutes."""
        return (self.end.hour * 60 + self.end.minute) - (self.start.hour * 60 + self.start.minute)


class Stage(BaseModel):
    """One stage of collection: which days past due, which channels, how often, when."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: Name
    days_past_due: tuple[Annotated[int, Field(ge=1)], Annotated[int, Field(ge=1)] | None]
    channels: tuple[Medium, ...] = Field(min_length=1)  # tried in this order, cyclically
    attempts_per_day: int = Field(ge=1, le=10)
    min_gap_minutes: int = Field(ge=0, le=1440)
    windows: tuple[Name, ...] = Field(min_length=1)
    sms_template: Name = "reminder_sms"
    call_template: Name = "call_script"
    voicemail_template: Name | None = "voicemail"
    purpose: str = ""

    @model_validator(mode="before")
    @classmethod
    def _open_range(cls, data: object) -> object:
        # `days_past_due = [19]` means 19 days and on.
        if isinstance(data, dict) and isinstance(data.get("days_past_due"), list):
            days = data["days_past_due"]
            if len(days) == 1:
                data = {**data, "days_past_due": [days[0], None]}
        return data

    @model_validator(mode="after")
    def _range(self) -> Stage:
        low, high = self.days_past_due
        if high is not None and high < low:
            raise ValueError(f"days_past_due: {high} is before {low}")
        return self

    def covers(self, days: int) -> bool:
        """True when an account `days` past due is in this stage."""
        low, high = self.days_past_due
        return low <= days and (high is None or days <= high)


class Schedule(BaseModel):
    """A schedule file (config/schedules/NAME.toml)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: Name
    description: str = ""
    windows: dict[Name, TimeWindow] = Field(min_length=1)
    stages: tuple[Stage, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> Schedule:
        for stage in self.stages:
            unknown = [w for w in stage.windows if w not in self.windows]
            if unknown:
                raise ValueError(f"stage {stage.name!r} names unknown windows {unknown}")
        ordered = sorted(self.stages, key=lambda s: s.days_past_due[0])
        for before, after in itertools.pairwise(ordered):
            high = before.days_past_due[1]
            if high is None or high >= after.days_past_due[0]:
                raise ValueError(f"stages {before.name!r} and {after.name!r} overlap")
        return self

    def stage_for(self, days_past_due: int) -> Stage | None:
        """The stage an account this many days past due is in, if any."""
        return next((s for s in self.stages if s.covers(days_past_due)), None)


_K = TypeVar("_K")
_V = TypeVar("_V")
# Schedules a PerSchedule keeps values for before it forgets them all: reloads replace them.
_SCHEDULES_KEPT = 64


class PerSchedule(Generic[_K, _V]):
    """Values worked out from a schedule, in a dict of that schedule's own: a schedule is
    immutable, and every plan asks the same few questions of the one in force."""

    def __init__(self) -> None:
        self._kept: dict[int, tuple[Schedule, dict[_K, _V]]] = {}

    def of(self, schedule: Schedule) -> dict[_K, _V]:
        """The dict kept for `schedule`, empty the first time it is asked for."""
        kept = self._kept.get(id(schedule))
        if kept is None or kept[0] is not schedule:
            if len(self._kept) > _SCHEDULES_KEPT:
                self._kept.clear()
            kept = self._kept[id(schedule)] = (schedule, {})
        return kept[1]
