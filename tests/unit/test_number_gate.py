"""The gate's rules about one phone number across accounts, and the profile key that caps it.

As in test_gate.py, the debtor of account A-1 lives in Chicago and "now" is Thursday 2026-12-10
10:00 CST; other accounts list the debtor's mobile number too.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from dispatcher.compliance.gate import (
    DAILY_CAP,
    MIN_GAP,
    NUMBER_DAILY_CAP,
    NUMBER_MIN_GAP,
    NUMBER_TURN,
    Budget,
    Facts,
    number_refusals,
    refusals,
    time_refusals,
)
from dispatcher.compliance.policy import Limits, looser_than_legal
from dispatcher.config.settings import load_config
from dispatcher.domain.contact import NumberClaim, PastAttempt
from dispatcher.errors import ConfigError
from tests.unit.test_gate import (
    EPS,
    HOME,
    MOBILE,
    NOW,
    call,
    ct,
    facts,
    limits,
    reasons,
    retry_of,
    text,
    to_debtor,
)

SHIPPED = Path(__file__).resolve().parents[2] / "config"
TOMORROW = ct("2026-12-11T00:00")
ONE_A_DAY = Budget(attempts_per_day=1, min_gap_minutes=0)
MASKED = "+13*******00"


def shared(*, history: Sequence[PastAttempt] = (), others: Sequence[PastAttempt] = (),
           claims: Sequence[NumberClaim] = (), last_used: dict[str, datetime] | None = None,
           ) -> Facts:
    """Account A-1's facts with what other accounts on its numbers did and plan."""
    return replace(facts(history=history), number_history=tuple(others),
                   number_claims=tuple(claims), number_last_used=last_used or {})


def claim(account_id: str, planned_at: datetime, last_used: datetime | None = None,
          number: str = MOBILE) -> NumberClaim:
    return NumberClaim(account_id, number, planned_at, last_used)


def cap(per_number: int | None = None, **changes: Any) -> Limits:
    return limits(attempts_per_day=1, attempts_per_number_per_day=per_number, **changes)


def three_a_day(per_number: int | None = None) -> Limits:
    """Three attempts a day for the account, calls or texts alike."""
    return limits(attempts_per_day=3, calls_per_day=3, sms_per_day=3,
                  attempts_per_number_per_day=per_number)


# --- number_daily_cap and the turn after another account's attempt -----------------------


@pytest.mark.parametrize(
    ("rules", "budget", "known", "expected"),
    [
        # The profile's attempts_per_day (1) caps the number when the key is unset.
        pytest.param(cap(), ONE_A_DAY, shared(others=[call(ct("2026-12-10T08:30"))]),
                     [NUMBER_DAILY_CAP], id="another-account-used-it-today"),
        pytest.param(cap(), ONE_A_DAY, shared(others=[text(ct("2026-12-10T08:30"))]),
                     [NUMBER_DAILY_CAP], id="a-text-counts-too"),
        pytest.param(cap(), ONE_A_DAY, shared(others=[call(ct("2026-12-09T23:30"))]), [],
                     id="local-yesterday"),
        pytest.param(cap(), ONE_A_DAY, shared(others=[call(ct("2026-12-10T08:30"),
                                                           number=HOME)]), [],
                     id="another-number"),
        # Under the cap, the number is still that account's today: accounts take turns.
        pytest.param(three_a_day(), Budget(3, 0),
                     shared(others=[call(ct("2026-12-10T08:30"))]), [NUMBER_TURN],
                     id="under-the-cap-another-accounts-day"),
        pytest.param(three_a_day(2), Budget(3, 0),
                     shared(history=[call(ct("2026-12-10T07:00"))],
                            others=[call(ct("2026-12-10T08:30"))]),
                     [NUMBER_DAILY_CAP], id="own-and-others-counted-together"),
        # An explicit number cap below the account's own caps binds a lone account too.
        pytest.param(three_a_day(1), Budget(3, 0),
                     shared(history=[call(ct("2026-12-10T08:30"))]), [NUMBER_DAILY_CAP],
                     id="explicit-cap-lone-account"),
        # Its own attempt already refused by daily_cap, a lone account gets no second reason.
        pytest.param(cap(), ONE_A_DAY, shared(history=[call(ct("2026-12-10T08:30"))]),
                     [DAILY_CAP], id="lone-account-daily-cap-says-it"),
    ],
)
def test_number_daily_cap(rules: Limits, budget: Budget, known: Facts,
                          expected: list[str]) -> None:
    found = time_refusals(to_debtor(), known, rules, budget, NOW)
    assert reasons(found) == expected
    for reason in expected:
        assert retry_of(found, reason) == TOMORROW
    if NUMBER_DAILY_CAP in expected or NUMBER_TURN in expected:
        detail = next(r.detail for r in found if r.reason in (NUMBER_DAILY_CAP, NUMBER_TURN))
        assert MASKED in detail
        assert MOBILE not in detail


# --- number_min_gap ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("others", "now", "expected", "retry_at"),
    [
        # Late yesterday (local), early today: another day, but not 4 hours apart.
        pytest.param([call(ct("2026-12-09T22:00"))], ct("2026-12-10T01:00"), [NUMBER_MIN_GAP],
                     ct("2026-12-10T02:00"), id="3h-after-another-account"),
        pytest.param([call(ct("2026-12-09T22:00"))], ct("2026-12-10T02:00"), [], None,
                     id="4h-after"),
        pytest.param([call(ct("2026-12-09T22:00"), number=HOME)], ct("2026-12-10T01:00"), [],
                     None, id="another-number"),
    ],
)
def test_number_min_gap(others: list[PastAttempt], now: datetime, expected: list[str],
                        retry_at: datetime | None) -> None:
    found = number_refusals(to_debtor(), shared(others=others),
                            limits(attempts_per_day=1, min_gap_minutes=240), ONE_A_DAY, now)
    assert reasons(found) == expected
    if expected:
        assert retry_of(found, NUMBER_MIN_GAP) == retry_at


def test_the_stage_gap_holds_across_accounts_too() -> None:
    known = shared(others=[call(ct("2026-12-09T22:00"))])
    found = number_refusals(to_debtor(), known, limits(min_gap_minutes=60),
                            Budget(attempts_per_day=1, min_gap_minutes=300),
                            ct("2026-12-10T02:30"))
    assert reasons(found) == [NUMBER_MIN_GAP]
    assert retry_of(found, NUMBER_MIN_GAP) == ct("2026-12-10T03:00")


# --- number_turn: whose day it is ----------------------------------------------------------

LONG_AGO = ct("2026-10-01T09:00")  # before the 35 days of the account's own history


@pytest.mark.parametrize(
    ("known", "expected", "retry_at"),
    [
        # A-0 never used the number; A-1 neither: the smaller account id goes first.
        pytest.param(shared(claims=[claim("A-0", ct("2026-12-10T15:00"))]), [NUMBER_TURN],
                     TOMORROW, id="tie-smaller-id-first"),
        pytest.param(shared(claims=[claim("A-2", ct("2026-12-10T15:00"))]), [], None,
                     id="tie-larger-id-waits"),
        # Never used it goes before having used it, however long ago.
        pytest.param(shared(claims=[claim("A-9", ct("2026-12-10T15:00"))],
                            last_used={MOBILE: LONG_AGO}), [NUMBER_TURN], TOMORROW,
                     id="never-before-long-ago"),
        pytest.param(shared(history=[call(ct("2026-12-08T09:00"))],
                            claims=[claim("A-0", ct("2026-12-10T15:00"),
                                          ct("2026-12-09T09:00"))]), [], None,
                     id="the-other-used-it-later"),
        pytest.param(shared(history=[call(ct("2026-12-08T09:00"))],
                            claims=[claim("A-9", ct("2026-12-10T15:00"),
                                          ct("2026-12-07T09:00"))]), [NUMBER_TURN], TOMORROW,
                     id="the-other-waited-longer"),
        # A claim on another day leaves today free; consecutive claims push the retry on.
        pytest.param(shared(claims=[claim("A-0", ct("2026-12-11T09:00"))]), [], None,
                     id="claimed-tomorrow"),
        pytest.param(shared(claims=[claim("A-0", ct("2026-12-10T09:00")),
                                    claim("A-00", ct("2026-12-11T09:00")),
                                    claim("A-000", ct("2026-12-13T09:00"))]),
                     [NUMBER_TURN], ct("2026-12-12T00:00"), id="first-free-day"),
        pytest.param(shared(claims=[claim("A-0", ct("2026-12-10T15:00"), number=HOME)]), [],
                     None, id="another-number"),
    ],
)
def test_number_turn(known: Facts, expected: list[str], retry_at: datetime | None) -> None:
    found = number_refusals(to_debtor(), known, limits(), ONE_A_DAY, NOW)
    assert reasons(found) == expected
    if expected:
        assert retry_of(found, NUMBER_TURN) == retry_at


@pytest.mark.parametrize(
    ("known", "reason"),
    [
        pytest.param(shared(others=[call(ct("2026-12-10T08:30"))]), NUMBER_DAILY_CAP,
                     id="cap"),
        pytest.param(shared(others=[call(ct("2026-12-10T07:30"))]), NUMBER_MIN_GAP, id="gap"),
        pytest.param(shared(claims=[claim("A-0", ct("2026-12-10T15:00")),
                                    claim("A-00", ct("2026-12-11T15:00"))]), NUMBER_TURN,
                     id="turn"),
    ],
)
def test_retry_at_is_the_earliest_allowed_instant(known: Facts, reason: str) -> None:
    rules = limits(attempts_per_day=1, min_gap_minutes=240)
    retry_at = retry_of(refusals(to_debtor(), known, rules, ONE_A_DAY, NOW), reason)
    assert retry_at is not None
    assert retry_at > NOW
    assert reason in reasons(refusals(to_debtor(), known, rules, ONE_A_DAY, retry_at - EPS))
    assert reason not in reasons(refusals(to_debtor(), known, rules, ONE_A_DAY, retry_at))


def test_the_accounts_own_gap_stays_min_gap() -> None:
    found = time_refusals(to_debtor(), shared(history=[call(ct("2026-12-10T08:00"))]),
                          limits(attempts_per_day=3, calls_per_day=3, min_gap_minutes=240),
                          Budget(3, 0), NOW)
    assert reasons(found) == [MIN_GAP]


# --- the profile key -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mine", "legal", "looser"),
    [
        pytest.param({}, {}, False, id="both-unset"),
        pytest.param({"attempts_per_number_per_day": 2}, {"attempts_per_number_per_day": 3},
                     False, id="lower"),
        pytest.param({"attempts_per_number_per_day": 4}, {"attempts_per_number_per_day": 3},
                     True, id="higher"),
        # Unset is attempts_per_day, on either side.
        pytest.param({"attempts_per_day": 3}, {"attempts_per_day": 3,
                                               "attempts_per_number_per_day": 2},
                     True, id="unset-follows-a-looser-daily-cap"),
        pytest.param({"attempts_per_number_per_day": 3}, {"attempts_per_day": 2}, True,
                     id="legal-unset-bounded-by-its-daily-cap"),
        pytest.param({"attempts_per_day": 2}, {"attempts_per_day": 3}, False,
                     id="unset-within"),
    ],
)
def test_the_number_cap_may_only_be_lowered(mine: dict[str, int], legal: dict[str, int],
                                            looser: bool) -> None:
    found = dict(looser_than_legal(Limits.model_validate(mine), Limits.model_validate(legal)))
    assert ("attempts_per_number_per_day" in found) is looser
    if looser:
        assert "it may only be lowered" in found["attempts_per_number_per_day"]


def _config(folder: Path, limits_text: str) -> Path:
    shutil.copytree(SHIPPED, folder / "cfg", ignore=shutil.ignore_patterns("*.db"))
    path = folder / "cfg" / "dispatcher.toml"
    path.write_text(path.read_text() + f"\n[compliance.limits]\n{limits_text}\n")
    return path


def test_a_deployment_may_lower_the_number_cap(tmp_path: Path) -> None:
    config = load_config(_config(tmp_path, "attempts_per_number_per_day = 0"), {})
    assert config.limits.number_daily_cap == 0
    shipped = load_config(SHIPPED / "dispatcher.toml", {}).limits
    assert shipped.attempts_per_number_per_day is None
    assert shipped.number_daily_cap == shipped.attempts_per_day


def test_a_deployment_may_not_raise_the_number_cap_past_the_profile(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(_config(tmp_path, "attempts_per_number_per_day = 4"), {})
    # Every profile the deployment maps regions to refuses it.
    problems = caught.value.problems
    assert {p.key for p in problems} == {"compliance.limits.attempts_per_number_per_day"}
    assert {p.reason for p in problems} == {
        f"4 is looser than profile {name!r} allows (3; it may only be lowered)"
        for name in load_config(SHIPPED / "dispatcher.toml", {}).regions.profiles}


def test_the_number_cap_follows_attempts_per_day_when_unset(tmp_path: Path) -> None:
    config = load_config(_config(tmp_path, "attempts_per_day = 1"), {})
    assert config.limits.attempts_per_number_per_day is None
    assert config.limits.number_daily_cap == 1
