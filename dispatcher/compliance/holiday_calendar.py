"""Public holidays of a debtor's region (the `holidays` package): no-contact days by default."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from functools import cache, lru_cache

import holidays


@lru_cache(maxsize=1 << 12)
def holiday_on(day: date, region: str | None) -> str | None:
    """The name of the public holiday on `day` in an ISO 3166-2 region ("US-TX", "IN"), or None."""
    if not region:
        return None
    country, _, subdivision = region.strip().upper().partition("-")
    subdivisions = subdivisions_of(country)
    if subdivisions is None:
        return None
    # An unknown subdivision ("CN-31": the package has no Chinese provinces) still has the
    # country's national holidays.
    return _calendar(country, subdivisions.get(subdivision), day.year).get(day)


@cache
def _country_codes() -> frozenset[str]:
    """Every country code (and alias: "GB", "UK") the package has, read from its registry."""
    return frozenset(holidays.registry.EntityLoader.get_country_codes(include_aliases=True))


@cache
def subdivisions_of(country: str) -> Mapping[str, str] | None:
    """The country's subdivision codes by upper case; None when the package lacks the country.

    Imports that country's module only: listing every country imports all of them (~0.1 s).
    """
    if country not in _country_codes():
        return None
    return {code.upper(): code for code in getattr(holidays, country).subdivisions}


@cache
def _language(country: str) -> str | None:
    # Without an explicit language, names follow the process's LANG/LANGUAGE: pin them so that
    # the audit log reads the same on every host. English where the package has it.
    calendar = holidays.country_holidays(country)
    languages = calendar.supported_languages
    if "en_US" in languages:
        return "en_US"
    english = sorted(lang for lang in languages if lang.startswith("en"))
    return english[0] if english else calendar.default_language


@lru_cache(maxsize=1024)
def _calendar(country: str, subdivision: str | None, year: int) -> holidays.HolidayBase:
    # expand=False: a cached calendar is shared and must never grow on lookup.
    return holidays.country_holidays(country, subdiv=subdivision, years=year, expand=False,
                                     language=_language(country))
