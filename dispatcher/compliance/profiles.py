"""Which jurisdiction profile governs a debtor, chosen by the debtor's region, and its limits.

A deployment maps ISO 3166-1 countries (`CN`) and ISO 3166-2 subdivisions (`US-NY`) to
profiles; a subdivision's profile wins over its country's. A debtor whose region no profile
covers is never contacted (`no_profile`).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from importlib import resources

from dispatcher.compliance.gate import Refusal
from dispatcher.compliance.policy import Limits

NO_PROFILE = "no_profile"
# A debtor without a profile is looked at again this much later, so that a reload that maps the
# region takes effect without waiting for the account's next event.
NO_PROFILE_RETRY = timedelta(days=1)

# Regions are ISO codes: far fewer than this in any population.
_REMEMBERED_REGIONS = 4096

_CODE = re.compile(r"^[A-Z]{2}(-[A-Z0-9]{1,3})?$")


@functools.cache
def iso_countries() -> frozenset[str]:
    """Every ISO 3166-1 alpha-2 country code, as tzdata lists them (iso3166.tab)."""
    text = resources.files("tzdata").joinpath("zoneinfo", "iso3166.tab").read_text(
        encoding="utf-8")
    return frozenset(line.split("\t")[0] for line in text.splitlines()
                     if line and not line.startswith("#"))


def region_code_problem(code: str, *, subdivisions: bool = True) -> str | None:
    """Why `code` is not an ISO 3166-1 country (or, with `subdivisions`, an ISO 3166-2
    subdivision) code as events write them; None when it is one."""
    wanted = ("an ISO 3166-1 country (US) or ISO 3166-2 subdivision (US-NY) code"
              if subdivisions else "an ISO 3166-1 alpha-2 country code (US)")
    if not _CODE.fullmatch(code) or ("-" in code and not subdivisions):
        if _CODE.fullmatch(code.upper()):
            return f"write it in capitals ({code.upper()!r}), as events write regions"
        return f"not {wanted}"
    country = code.partition("-")[0]
    if country not in iso_countries():
        hint = " (the United Kingdom is GB)" if country == "UK" else ""
        return f"{country!r} is not an ISO 3166-1 country code{hint}"
    return None


@dataclass(frozen=True)
class ProfileLimits:
    """One profile as the deployment applies it: its limits with the operator's overrides, and
    its stricter rules per region (`[regions.X]`), each tightening those."""

    name: str
    limits: Limits
    regional: Mapping[str, Limits]


@dataclass(frozen=True)
class AppliedLimits:
    """The profile that governs a debtor and the limits it sets for them."""

    profile: str
    limits: Limits


@dataclass(frozen=True)
class RegionProfiles:
    """The deployment's profile per region or country, and each profile's limits."""

    mapping: Mapping[str, str]  # 'US', 'US-NY' -> profile name
    profiles: Mapping[str, ProfileLimits]
    # `limits_for`'s answers by region, asked for every decision and attempt. The mapping and
    # the profiles never change: a reload builds new RegionProfiles.
    _applied: dict[str, AppliedLimits | None] = field(default_factory=dict, init=False,
                                                      repr=False, compare=False)

    def profile_for(self, region: str | None) -> str | None:
        """The profile of `region` ('US-NY'): the subdivision's, else its country's, else None."""
        if not region:
            return None
        return self.mapping.get(region) or self.mapping.get(region.partition("-")[0])

    def applied(self, region: str) -> AppliedLimits | None:
        """`limits_for(self, region)`, remembered for each of a bounded number of regions."""
        try:
            return self._applied[region]
        except KeyError:
            found = _applied_limits(self, region)
            if len(self._applied) < _REMEMBERED_REGIONS:
                self._applied[region] = found
            return found


def limits_for(regions: RegionProfiles, region: str | None) -> AppliedLimits | None:
    """The profile and limits for a debtor in `region`, or None when no profile covers it.

    The limits are the profile's as the deployment set them, tightened by the profile's own
    rules for the region (`[regions.US-MA]`), else for its country.
    """
    return None if region is None else regions.applied(region)


def _applied_limits(regions: RegionProfiles, region: str) -> AppliedLimits | None:
    name = regions.profile_for(region)
    if name is None:
        return None
    profile = regions.profiles[name]
    regional = profile.regional
    limits = regional.get(region) or regional.get(region.partition("-")[0]) or profile.limits
    return AppliedLimits(name, limits)


def no_profile(region: str | None, now: datetime) -> Refusal:
    """The refusal for a debtor whose region no profile covers: nothing may reach them."""
    if not region:
        detail = ("the debtor's region is unknown (no region, and no number that tells the "
                  "country): no profile applies")
    else:
        detail = f"no profile covers region {region}"
    return Refusal(NO_PROFILE, detail, now + NO_PROFILE_RETRY)
