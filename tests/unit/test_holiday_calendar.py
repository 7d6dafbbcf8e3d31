"""holiday_on: national and regional holidays by ISO 3166-2 region, with safe fallbacks."""

from __future__ import annotations

from datetime import date

import holidays
import pytest

from dispatcher.compliance.holiday_calendar import holiday_on, subdivisions_of


@pytest.mark.parametrize(
    ("day", "region", "name"),
    [
        (date(2026, 12, 25), "US", "Christmas Day"),
        (date(2026, 12, 25), "US-TX", "Christmas Day"),
        # Independence Day falls on a Saturday in 2026: the Friday is the observed holiday.
        (date(2026, 7, 3), "US", "Independence Day (observed)"),
        # Texas-only holiday.
        (date(2026, 3, 2), "US-TX", "Texas Independence Day"),
        (date(2026, 3, 2), "US", None),
        # A federal holiday Texas does not keep as a state holiday.
        (date(2026, 10, 12), "US", "Columbus Day"),
        (date(2026, 10, 12), "US-TX", None),
        # Spring Festival 2027 begins on February 6.
        (date(2027, 2, 6), "CN", "Chinese New Year (Spring Festival)"),
        (date(2027, 2, 4), "CN", None),
        (date(2026, 1, 26), "IN", "Republic Day"),
        (date(2026, 1, 26), "IN-MH", "Republic Day"),
        # A normal weekday (Wednesday).
        (date(2026, 12, 9), "US", None),
        (date(2026, 12, 9), "IN", None),
        # Case and surrounding space do not matter.
        (date(2026, 12, 25), " us-tx ", "Christmas Day"),
    ],
)
def test_holidays_by_region(day: date, region: str, name: str | None) -> None:
    assert holiday_on(day, region) == name


@pytest.mark.parametrize(
    ("region", "day", "name"),
    [
        ("US-ZZ", date(2026, 12, 25), "Christmas Day"),
        ("US-ZZ", date(2026, 3, 2), None),
        ("US-", date(2026, 7, 3), "Independence Day (observed)"),
        # The package has no Chinese provinces: Shanghai gets the national calendar.
        ("CN-31", date(2027, 2, 6), "Chinese New Year (Spring Festival)"),
        ("IN-ZZ", date(2026, 1, 26), "Republic Day"),
    ],
)
def test_an_unknown_subdivision_falls_back_to_the_national_holidays(
        region: str, day: date, name: str | None) -> None:
    assert holiday_on(day, region) == name


@pytest.mark.parametrize("region", ["XX", "XX-YY", "", None, "-TX"])
def test_an_unknown_country_or_no_region_has_no_holiday(region: str | None) -> None:
    assert holiday_on(date(2026, 12, 25), region) is None


def test_names_do_not_depend_on_the_process_locale(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        monkeypatch.setenv(name, "zh_CN.UTF-8")
    # 2028: a year no other test has put in the cache.
    assert holiday_on(date(2028, 1, 26), "CN") == "Chinese New Year (Spring Festival)"


def test_each_country_and_its_subdivisions_are_the_packages_own_listing() -> None:
    listed = holidays.list_supported_countries(include_aliases=True)
    assert {"US", "GB", "UK", "IN", "CN"} <= set(listed)
    for country, codes in listed.items():
        assert subdivisions_of(country) == {code.upper(): code for code in codes}
    assert subdivisions_of("XX") is None
