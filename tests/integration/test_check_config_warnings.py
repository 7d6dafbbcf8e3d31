"""`check-config` warns (file, key, reason; exit code unchanged) of a schedule that is lawful but
likely not what was meant: a window outside a mapped profile's hours, a stage without a window
on some weekday, a stage asking for more attempts a day than its windows and gap allow."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dispatcher.config.schedule_warnings import most_attempts
from tests.support import make_config

ROOT = Path(__file__).resolve().parents[2]

SCHEDULE = """
name = "standard"
[windows]
{windows}
[[stages]]
name = "early"
days_past_due = [1, 5]
channels = ["sms", "call"]
attempts_per_day = {attempts}
min_gap_minutes = {gap}
windows = [{names}]
"""
EVERY_DAY = '["mon", "tue", "wed", "thu", "fri", "sat", "sun"]'


def configured(folder: Path, windows: str, names: str, *, attempts: int = 1, gap: int = 240,
               regions: str = "") -> Path:
    """A config folder whose schedule has `windows` and one stage using `names`."""
    config = make_config(folder, "mqtt://127.0.0.1:1", extra=regions)
    (folder / "schedules" / "standard.toml").write_text(SCHEDULE.format(
        windows=windows, names=names, attempts=attempts, gap=gap))
    return config


def check(config: Path) -> tuple[int, list[str]]:
    """`dispatcher check-config` in a process of its own: exit code and its warnings."""
    done = subprocess.run([sys.executable, "-m", "dispatcher", "check-config", "--config",
                           str(config)], capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.stderr == ""
    return done.returncode, [line for line in done.stdout.splitlines()
                             if line.startswith("warning: ")]


def test_a_window_outside_a_mapped_profiles_hours_is_named_for_each_profile(
        tmp_path: Path) -> None:
    # US 08:00-21:00, India 08:00-19:00 (config/profiles): 18:00-21:30 is outside both.
    config = configured(tmp_path / "cfg", f'''
day = {{ start = "08:00", end = "18:00", days = {EVERY_DAY} }}
late = {{ start = "18:00", end = "21:30", days = {EVERY_DAY} }}''', '"day", "late"',
                        regions='[compliance.regions]\nUS = "us"\nIN = "in"\n')
    code, warnings = check(config)
    assert code == 0
    file = tmp_path / "cfg" / "schedules" / "standard.toml"
    assert warnings == [
        f"warning: {file}: windows.late: 18:00-21:30 reaches outside the lawful hours of "
        "profile in (regions IN), 08:00-19:00: for its debtors no attempt is made outside them "
        "(the gate refuses it); narrow the window if that is not meant",
        f"warning: {file}: windows.late: 18:00-21:30 reaches outside the lawful hours of "
        "profile us (regions US), 08:00-21:00: for its debtors no attempt is made outside them "
        "(the gate refuses it); narrow the window if that is not meant"]


def test_a_window_that_fits_another_mapped_profile_says_so(tmp_path: Path) -> None:
    config = configured(tmp_path / "cfg", f'''
day = {{ start = "08:00", end = "21:00", days = {EVERY_DAY} }}''', '"day"',
                        regions='[compliance.regions]\nUS = "us"\nIN = "in"\n')
    code, warnings = check(config)
    assert code == 0
    (warning,) = warnings
    assert "windows.day: 08:00-21:00 reaches outside the lawful hours of profile in" in warning
    assert warning.endswith("fine if the window is there for profile us (regions US), whose "
                            "hours it fits")


def test_an_unused_window_and_a_window_inside_the_hours_are_not_named(tmp_path: Path) -> None:
    config = configured(tmp_path / "cfg", f'''
day = {{ start = "09:00", end = "20:00", days = {EVERY_DAY} }}
night = {{ start = "21:00", end = "23:00", days = {EVERY_DAY} }}''', '"day"')
    assert check(config) == (0, [])


def test_a_stage_without_a_window_on_some_weekdays(tmp_path: Path) -> None:
    config = configured(tmp_path / "cfg", '''
week = { start = "09:00", end = "17:00", days = ["mon", "tue", "wed", "thu", "fri"] }
sat = { start = "10:00", end = "12:00", days = ["sat"] }''', '"week", "sat"')
    code, warnings = check(config)
    assert code == 0
    file = tmp_path / "cfg" / "schedules" / "standard.toml"
    assert warnings == [f"warning: {file}: stages[0].windows: stage 'early' has no window on "
                        "sun: it never contacts anyone on those days"]


def test_a_stage_asking_more_attempts_than_its_windows_and_gap_allow(tmp_path: Path) -> None:
    # Weekdays 09:00-12:00 and 13:00-17:00: with 4 hours between them, 09:00 and 13:00 fit,
    # no third; Saturday 10:00-12:00 fits one.
    config = configured(tmp_path / "cfg", '''
am = { start = "09:00", end = "12:00", days = ["mon", "tue", "wed", "thu", "fri"] }
pm = { start = "13:00", end = "17:00", days = ["mon", "tue", "wed", "thu", "fri"] }
sat = { start = "10:00", end = "12:00", days = ["sat", "sun"] }''', '"am", "pm", "sat"',
                        attempts=3)
    code, warnings = check(config)
    assert code == 0
    file = tmp_path / "cfg" / "schedules" / "standard.toml"
    assert warnings == [
        f"warning: {file}: stages[0].attempts_per_day: stage 'early' asks for 3 attempts a day, "
        "but its windows on sat, sun (10:00-12:00) with 240 minutes between attempts leave room "
        "for 1",
        f"warning: {file}: stages[0].attempts_per_day: stage 'early' asks for 3 attempts a day, "
        "but its windows on mon, tue, wed, thu, fri (09:00-12:00, 13:00-17:00) with 240 minutes "
        "between attempts leave room for 2"]


def test_warnings_come_beside_problems_without_changing_the_exit_code(tmp_path: Path) -> None:
    config = configured(tmp_path / "cfg", '''
week = { start = "09:00", end = "17:00", days = ["mon"] }''', '"week"')
    assert check(config)[0] == 0
    broken = make_config(tmp_path / "bad", "mqtt://user:pw@host")
    shutil.copy(tmp_path / "cfg" / "schedules" / "standard.toml",
                tmp_path / "bad" / "schedules" / "standard.toml")
    assert check(broken)[0] == 1


def test_the_shipped_config_warns_only_of_its_shared_evening(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "config", tmp_path / "config")
    code, warnings = check(tmp_path / "config" / "dispatcher.toml")
    assert code == 0
    (warning,) = warnings
    assert ": windows.evening: 17:00-22:00 reaches outside the lawful hours of profile us " \
           "(regions US), 08:00-21:00" in warning
    assert warning.endswith("fine if the window is there for profile cn (regions CN-44), "
                            "whose hours it fits")


@pytest.mark.parametrize(("intervals", "gap", "wanted", "room"), [
    ([(0, 59)], 60, 3, 1),  # 00:00-01:00: the minute at 01:00 is not in it
    ([(0, 60)], 60, 3, 2),
    ([(0, 10), (100, 110), (200, 210)], 100, 5, 3),
    ([(0, 10), (50, 60), (100, 110)], 100, 5, 2),
    ([(0, 10)], 0, 4, 4),
    ([], 60, 2, 0),
])
def test_most_attempts(intervals: list[tuple[int, int]], gap: int, wanted: int,
                       room: int) -> None:
    assert most_attempts(intervals, gap, wanted) == room
