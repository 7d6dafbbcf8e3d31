"""Where might the debtor be? Candidate IANA time zones from the zone, region and phone numbers.

Location is uncertain more often than not (docs/compliance.md, "Time of day"): the explicit
zone, the address region and the area code of each number can disagree. Every source contributes
its zones; the quiet-hours rule then has to hold in all of them.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources

import phonenumbers
from phonenumbers import timezone as number_zones

# US states by ISO 3166-2 code. Several states span two zones; all of them count.
_EASTERN, _CENTRAL, _MOUNTAIN = "America/New_York", "America/Chicago", "America/Denver"
_ARIZONA, _PACIFIC = "America/Phoenix", "America/Los_Angeles"
_ALASKA, _ALEUTIAN, _HAWAII = "America/Anchorage", "America/Adak", "Pacific/Honolulu"
_US_STATES: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(("CT", "DC", "DE", "GA", "MA", "MD", "ME", "NC", "NH", "NJ", "NY", "OH",
                     "PA", "RI", "SC", "VA", "VT", "WV"), (_EASTERN,)),
    **dict.fromkeys(("AL", "AR", "IA", "IL", "LA", "MN", "MO", "MS", "OK", "WI"), (_CENTRAL,)),
    **dict.fromkeys(("CO", "MT", "NM", "UT", "WY"), (_MOUNTAIN,)),
    **dict.fromkeys(("CA", "NV", "WA"), (_PACIFIC,)),
    **dict.fromkeys(("FL", "IN", "KY", "MI", "TN"), (_EASTERN, _CENTRAL)),
    **dict.fromkeys(("KS", "NE", "ND", "SD", "TX"), (_CENTRAL, _MOUNTAIN)),
    "AZ": (_ARIZONA, _MOUNTAIN),  # the Navajo Nation keeps daylight saving time
    "ID": (_MOUNTAIN, _PACIFIC),
    "OR": (_PACIFIC, _MOUNTAIN),
    "AK": (_ALASKA, _ALEUTIAN),
    "HI": (_HAWAII,),
}
# Countries whose civil time is one zone although tzdata lists more (China keeps Beijing time).
_ONE_ZONE_COUNTRIES = {"CN": ("Asia/Shanghai",)}
# A "location" that maps to more zones than this says nothing (non-geographic numbers).
_MAX_ZONES_PER_NUMBER = 6


@dataclass(frozen=True)
class CandidateZone:
    """One zone the debtor may be in, and what suggested it."""

    zone: str
    source: str  # "timezone", "region" or "number:+1512..."


@functools.cache
def _country_zones() -> dict[str, tuple[str, ...]]:
    text = resources.files("tzdata").joinpath("zoneinfo", "zone.tab").read_text()
    zones: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            country, _, zone = line.split("\t")[:3]
            zones.setdefault(country, []).append(zone)
    return {country: tuple(names) for country, names in zones.items()}


def region_zones(region: str) -> tuple[str, ...]:
    """Zones of an ISO 3166-2 region ('US-TX') or country ('IN'); empty when unknown."""
    country, _, subdivision = region.partition("-")
    if country == "US" and subdivision in _US_STATES:
        return _US_STATES[subdivision]
    if country in _ONE_ZONE_COUNTRIES:
        return _ONE_ZONE_COUNTRIES[country]
    return _country_zones().get(country, ())


@functools.lru_cache(maxsize=65536)
def number_zones_for(number: str) -> tuple[str, ...]:
    """Zones a number's area code points at; empty when it says nothing about location."""
    try:
        zones = number_zones.time_zones_for_number(phonenumbers.parse(number, None))
    except phonenumbers.NumberParseException:
        return ()
    if not zones or "Etc/Unknown" in zones or len(zones) > _MAX_ZONES_PER_NUMBER:
        return ()
    return tuple(zones)


def candidate_zones(timezone: str | None, region: str | None,
                    numbers: Iterable[str]) -> tuple[CandidateZone, ...]:
    """Every zone suggested by the explicit zone, the region and each number, without repeats."""
    return _candidate_zones(timezone, region, tuple(numbers))


@functools.lru_cache(maxsize=1 << 14)
def _candidate_zones(timezone: str | None, region: str | None,
                     numbers: tuple[str, ...]) -> tuple[CandidateZone, ...]:
    found: list[CandidateZone] = []
    if timezone:
        found.append(CandidateZone(timezone, "timezone"))
    if region:
        found.extend(CandidateZone(zone, "region") for zone in region_zones(region))
    for number in numbers:
        found.extend(CandidateZone(zone, f"number:{number}") for zone in number_zones_for(number))
    seen: set[str] = set()
    unique = []
    for candidate in found:
        if candidate.zone not in seen:
            seen.add(candidate.zone)
            unique.append(candidate)
    return tuple(unique)
