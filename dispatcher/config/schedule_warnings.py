"""`check-config`'s warnings about the schedule: lawful but likely not what was meant.

A window reaching outside a profile's hours, a stage without a window on some weekday, a stage
asking for more attempts a day than its windows and gap leave room for: the gate and the planner
handle each safely (nothing unlawful is ever planned), so each is a warning, not a problem.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import time
from pathlib import Path

from dispatcher.compliance.policy import Limits
from dispatcher.compliance.profiles import RegionProfiles
from dispatcher.errors import ConfigProblem
from schedules.model import Schedule, Stage, TimeWindow, Weekday


@dataclass(frozen=True)
class Hours:
    """The lawful hours a profile (or its rule for one region) sets, and whom they govern."""

    label: str  # "profile us (regions US)", "profile us, region US-MA"
    start: time
    end: time


def _minutes(at: time) -> int:
    return at.hour * 60 + at.minute


def _clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _span(start: time, end: time) -> str:
    return f"{start.strftime('%H:%M')}-{end.strftime('%H:%M')}"


def hours_in_force(regions: RegionProfiles) -> list[Hours]:
    """The distinct lawful hours of every profile the deployment maps a region to, and of each
    such profile's rule for a region mapped to it."""
    found: list[Hours] = []
    seen: set[tuple[str, time, time]] = set()
    for name in sorted(set(regions.mapping.values())):
        profile = regions.profiles[name]
        mapped = sorted(r for r, p in regions.mapping.items() if p == name)
        candidates: list[tuple[str, Limits]] = [
            (f"profile {name} (regions {', '.join(mapped)})", profile.limits)]
        candidates += [(f"profile {name}, region {region}", limits)
                       for region, limits in sorted(profile.regional.items())
                       if regions.profile_for(region) == name]
        for label, limits in candidates:
            key = (name, limits.hours_start, limits.hours_end)
            if key not in seen:
                seen.add(key)
                found.append(Hours(label, limits.hours_start, limits.hours_end))
    return found


def _window_warnings(schedule: Schedule, hours: list[Hours]) -> Iterator[tuple[str, str]]:
    used = {name for stage in schedule.stages for name in stage.windows}
    for name, window in schedule.windows.items():
        if name not in used:
            continue
        for lawful in hours:
            if lawful.start <= window.start and window.end <= lawful.end:
                continue
            outside = (window.end <= lawful.start or window.start >= lawful.end)
            how = "lies outside" if outside else "reaches outside"
            fits = [h.label for h in hours
                    if h.start <= window.start and window.end <= h.end]
            meant = (f"fine if the window is there for {', '.join(fits)}, whose hours it fits"
                     if fits else "narrow the window if that is not meant")
            yield (f"windows.{name}", (
                f"{_span(window.start, window.end)} {how} the lawful hours of {lawful.label}, "
                f"{_span(lawful.start, lawful.end)}: for its debtors no attempt is made outside "
                f"them (the gate refuses it); {meant}"))


def _day_intervals(stage: Stage, windows: Mapping[str, TimeWindow],
                   day: Weekday) -> list[tuple[int, int]]:
    """The stage's windows on `day` as (first minute, last minute) an attempt may start, merged."""
    spans = sorted((_minutes(w.start), _minutes(w.end) - 1)
                   for w in (windows[n] for n in stage.windows) if day in w.days)
    merged: list[tuple[int, int]] = []
    for start, last in spans:
        if merged and start <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], last))
        else:
            merged.append((start, last))
    return merged


def most_attempts(intervals: list[tuple[int, int]], gap: int, wanted: int) -> int:
    """How many attempts, at most `wanted`, fit in `intervals` at least `gap` minutes apart."""
    count, at = 0, None
    for start, last in intervals:
        moment = start if at is None else max(start, at + gap)
        while moment <= last and count < wanted:
            count, at = count + 1, moment
            if gap == 0:
                return wanted
            moment = at + gap
    return count


def _stage_warnings(schedule: Schedule) -> Iterator[tuple[str, str]]:
    for index, stage in enumerate(schedule.stages):
        key = f"stages[{index}]"
        by_day = {day: _day_intervals(stage, schedule.windows, day) for day in Weekday}
        missing = [day.name.lower() for day, spans in by_day.items() if not spans]
        if missing:
            yield (f"{key}.windows", (
                f"stage {stage.name!r} has no window on {', '.join(missing)}: it never "
                f"contacts anyone on those days"))
        short: dict[int, list[str]] = {}
        for day, spans in by_day.items():
            room = most_attempts(spans, stage.min_gap_minutes, stage.attempts_per_day)
            if spans and room < stage.attempts_per_day:
                short.setdefault(room, []).append(day.name.lower())
        for room, days in sorted(short.items()):
            where = ", ".join(f"{_clock(s)}-{_clock(e + 1)}" for s, e in
                              _day_intervals(stage, schedule.windows, Weekday[days[0].upper()]))
            yield (f"{key}.attempts_per_day", (
                f"stage {stage.name!r} asks for {stage.attempts_per_day} attempts a day, but its "
                f"windows on {', '.join(days)} ({where}) with {stage.min_gap_minutes} minutes "
                f"between attempts leave room for {room}"))


def schedule_warnings(schedule: Schedule, schedule_path: Path,
                      regions: RegionProfiles) -> list[ConfigProblem]:
    """Each warning about the schedule, with its file and key."""
    found = [*_window_warnings(schedule, hours_in_force(regions)), *_stage_warnings(schedule)]
    return [ConfigProblem(str(schedule_path), key, reason) for key, reason in found]
