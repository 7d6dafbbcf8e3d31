"""Values kept per schedule: one dict for each schedule object, a new one for a new schedule."""

from __future__ import annotations

import tomllib
from pathlib import Path

from schedules.model import PerSchedule, Schedule

STANDARD = Path(__file__).resolve().parents[2] / "config" / "schedules" / "standard.toml"


def _schedule() -> Schedule:
    return Schedule.model_validate(tomllib.loads(STANDARD.read_text()))


def test_one_schedule_keeps_its_dict_and_another_gets_its_own() -> None:
    kept: PerSchedule[str, int] = PerSchedule()
    first, second = _schedule(), _schedule()
    kept.of(first)["a"] = 1
    assert kept.of(first) == {"a": 1}
    assert kept.of(first) is kept.of(first)
    assert first == second  # equal, yet a reloaded schedule is worked out afresh
    assert kept.of(second) == {}


def test_schedules_replaced_by_reloads_are_forgotten() -> None:
    kept: PerSchedule[str, int] = PerSchedule()
    made = [_schedule() for _ in range(100)]
    for schedule in made:
        kept.of(schedule)["a"] = 1
    assert len(kept._kept) <= 65  # noqa: SLF001 - the bound is the point
    assert kept.of(made[-1]) == {"a": 1}
