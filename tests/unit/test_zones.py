"""Candidate zones from the explicit zone, the region and the numbers."""

from __future__ import annotations

import pytest

from dispatcher.domain.zones import candidate_zones, number_zones_for, region_zones


@pytest.mark.parametrize(
    ("region", "zones"),
    [
        ("US-CA", ("America/Los_Angeles",)),
        ("US-TX", ("America/Chicago", "America/Denver")),
        ("US-FL", ("America/New_York", "America/Chicago")),
        ("CN-31", ("Asia/Shanghai",)),
        ("CN-65", ("Asia/Shanghai",)),
        ("IN-MH", ("Asia/Kolkata",)),
        ("GB-LND", ("Europe/London",)),
        ("XX-01", ()),
    ],
)
def test_region_zones(region: str, zones: tuple[str, ...]) -> None:
    assert region_zones(region) == zones


def test_a_country_without_a_table_entry_uses_every_zone_tzdata_lists() -> None:
    assert "America/Sao_Paulo" in region_zones("BR-SP")
    assert len(region_zones("BR-SP")) > 1


@pytest.mark.parametrize(
    ("number", "zones"),
    [
        ("+15125550100", ("America/Chicago",)),
        ("+12125550100", ("America/New_York",)),
        ("+19075550100", ("America/Adak", "America/Anchorage")),
        ("+15005550006", ()),  # non-geographic: says nothing about location
        ("+447700900123", ()),  # UK mobile: no area
    ],
)
def test_number_zones(number: str, zones: tuple[str, ...]) -> None:
    assert number_zones_for(number) == zones


def test_candidates_come_from_every_source_once_each() -> None:
    candidates = candidate_zones("America/Chicago", "US-TX",
                                 ["+15125550100", "+12125550100", "+15005550006"])
    assert [(c.zone, c.source) for c in candidates] == [
        ("America/Chicago", "timezone"),
        ("America/Denver", "region"),
        ("America/New_York", "number:+12125550100"),
    ]


def test_no_source_no_candidates() -> None:
    assert candidate_zones(None, None, ["+447700900123"]) == ()
