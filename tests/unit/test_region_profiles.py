"""Profiles by region: the [compliance.regions] table, its default, its errors, the limits each
debtor gets, and the `no_profile` refusal of a debtor no profile covers."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest

from dispatcher.compliance.gate import Facts
from dispatcher.compliance.policy import Limits
from dispatcher.compliance.profiles import (
    NO_PROFILE,
    ProfileLimits,
    RegionProfiles,
    limits_for,
    region_code_problem,
)
from dispatcher.config.settings import LoadedConfig, load_config
from dispatcher.contact.account_facts import debtor_region
from dispatcher.contact.decide import StoredPlan, decide_for_region
from dispatcher.domain.accounts import AccountState, AccountStatus, fold
from dispatcher.domain.contact import Medium, Role, Target
from dispatcher.domain.events import Debtor, parse_event
from dispatcher.errors import ConfigError, ConfigProblem
from schedules.planner import NoAttempt, PlannedAttempt
from tests.support import encode

SHIPPED = Path(__file__).resolve().parents[2] / "config"
NOW = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai, a Tuesday


def write_config(folder: Path, text: str) -> Path:
    """A config file with every shipped profile, the schedules and templates beside it."""
    shutil.copytree(SHIPPED / "profiles", folder / "profiles", dirs_exist_ok=True)
    shutil.copytree(SHIPPED / "schedules", folder / "schedules", dirs_exist_ok=True)
    shutil.copy(SHIPPED / "templates.toml", folder / "templates.toml")
    path = folder / "dispatcher.toml"
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(path: Path) -> list[ConfigProblem]:
    with pytest.raises(ConfigError) as caught:
        load_config(path, {})
    assert caught.value.problems
    return caught.value.problems


def applied(config: LoadedConfig, region: str | None) -> tuple[str, Limits] | None:
    found = limits_for(config.regions, region)
    return None if found is None else (found.profile, found.limits)


# -- the mapping ---------------------------------------------------------------------------------


def test_without_a_table_the_main_profile_covers_its_own_countries(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, '[compliance]\nprofile = "us"\n'), {})
    assert config.settings.compliance.regions is None
    assert config.regions.mapping == {"US": "us"}
    assert applied(config, "US-TX") == ("us", config.limits)
    assert applied(config, "US") == ("us", config.limits)
    assert applied(config, "CN-31") is None
    assert applied(config, None) is None
    uk = load_config(write_config(tmp_path, '[compliance]\nprofile = "uk"\n'), {})
    assert uk.regions.mapping == {"GB": "uk"}


@pytest.mark.parametrize(("name", "country"), [("us", "US"), ("cn", "CN"), ("uk", "GB"),
                                               ("in", "IN")])
def test_every_shipped_profile_declares_its_country(tmp_path: Path, name: str,
                                                    country: str) -> None:
    config = load_config(write_config(tmp_path, f'[compliance]\nprofile = "{name}"\n'), {})
    assert config.profile.profile.countries == (country,)


def test_each_region_gets_its_own_profile_and_that_profiles_state_rules(tmp_path: Path) -> None:
    path = write_config(tmp_path, '[compliance]\nprofile = "us"\n'
                                  '[compliance.regions]\nUS = "us"\nCN = "cn"\n')
    cn = tmp_path / "profiles" / "cn.toml"
    cn.write_text(cn.read_text() + "\n[regions.CN-11]\nhours_end = 21:00:00\n")
    config = load_config(path, {})
    us_limits = config.limits
    assert [p.profile.name for p in config.profiles.values()] == ["us", "cn"]
    assert config.files[1:3] == (tmp_path / "profiles" / "us.toml", cn)
    shanghai = applied(config, "CN-31")
    assert shanghai is not None
    assert shanghai[0] == "cn"
    assert (shanghai[1].hours_start, shanghai[1].hours_end) == (time(8), time(22))
    assert shanghai[1] == config.regions.profiles["cn"].limits != us_limits
    beijing = applied(config, "CN-11")
    assert beijing is not None
    assert (beijing[0], beijing[1].hours_end) == ("cn", time(21))
    massachusetts = applied(config, "US-MA")
    assert massachusetts is not None
    assert (massachusetts[0], massachusetts[1].contacts_per_7_days) == ("us", 2)
    assert applied(config, "US-NY") == ("us", us_limits)
    assert applied(config, "IN-MH") is None


def test_a_subdivision_wins_over_its_country(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, '[compliance.regions]\nCN = "cn"\n'
                                                'CN-31 = "in"\n'), {})
    assert applied(config, "CN-44") == ("cn", config.regions.profiles["cn"].limits)
    shanghai = applied(config, "CN-31")
    assert shanghai is not None
    assert (shanghai[0], shanghai[1].hours_end) == ("in", time(19))
    # The main profile (us) governs records and the report, not debtors it does not cover.
    assert applied(config, "US-TX") is None
    assert config.profile.profile.name == "us"


def test_operator_limits_tighten_every_profile_in_use(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, '[compliance.regions]\nUS = "us"\nCN = "cn"\n'
                                                "[compliance.limits]\ncalls_per_7_days = 5\n"), {})
    assert {name: p.limits.calls_per_7_days for name, p in config.regions.profiles.items()} == \
        {"us": 5, "cn": 5}
    massachusetts = applied(config, "US-MA")
    assert massachusetts is not None
    assert massachusetts[1].calls_per_7_days == 5


def test_retention_is_the_longest_of_the_profiles_in_use(tmp_path: Path) -> None:
    path = write_config(tmp_path, '[compliance.regions]\nUS = "us"\nCN = "cn"\n')
    cn = tmp_path / "profiles" / "cn.toml"
    cn.write_text(cn.read_text().replace("retention_years = 5", "retention_years = 7"))
    config = load_config(path, {})
    assert (config.profile.records.retention_years, config.retention_years) == (5, 7)


def test_the_config_version_follows_every_profile_in_use(tmp_path: Path) -> None:
    path = write_config(tmp_path, '[compliance.regions]\nUS = "us"\nCN = "cn"\n')
    first = load_config(path, {}).version
    cn = tmp_path / "profiles" / "cn.toml"
    cn.write_text(cn.read_text() + "\n# reviewed\n")
    assert load_config(path, {}).version != first


# -- what load_config refuses --------------------------------------------------------------------


def test_an_unknown_profile_name_is_refused_for_each_key_naming_it(tmp_path: Path) -> None:
    path = write_config(tmp_path, '[compliance.regions]\nUS = "us"\nCN = "cm"\nHK = "cm"\n')
    problems = problems_of(path)
    assert [(p.file, p.key) for p in problems] == [(str(path), "compliance.regions.CN"),
                                                   (str(path), "compliance.regions.HK")]
    assert all(p.reason == f"no profile file {tmp_path / 'profiles' / 'cm.toml'}"
               for p in problems)


def test_a_profile_name_that_is_no_name_is_refused(tmp_path: Path) -> None:
    [problem] = problems_of(write_config(tmp_path, '[compliance.regions]\nUS = "../us"\n'))
    assert problem.key == "compliance.regions.US"
    assert "pattern" in problem.reason


@pytest.mark.parametrize(("key", "words"), [
    ("UK", "'UK' is not an ISO 3166-1 country code (the United Kingdom is GB)"),
    ("us", "write it in capitals ('US')"),
    ("us-ny", "write it in capitals ('US-NY')"),
    ("USA", "not an ISO 3166-1 country (US) or ISO 3166-2 subdivision (US-NY) code"),
    ("US-", "not an ISO 3166-1 country"),
    ("US-NEWY", "not an ISO 3166-1 country"),
    ("ZZ", "'ZZ' is not an ISO 3166-1 country code"),
    ("XX-01", "'XX' is not an ISO 3166-1 country code"),
])
def test_a_bad_region_key_is_refused_with_its_reason(tmp_path: Path, key: str,
                                                     words: str) -> None:
    path = write_config(tmp_path, f'[compliance.regions]\nUS = "us"\n"{key}" = "cn"\n')
    [problem] = problems_of(path)
    assert (problem.file, problem.key) == (str(path), f"compliance.regions.{key}")
    assert words in problem.reason


def test_good_region_codes() -> None:
    for code in ("US", "GB", "CN-31", "US-NY", "IN-MH", "GB-ENG"):
        assert region_code_problem(code) is None, code
    assert region_code_problem("US-NY", subdivisions=False) is not None


def test_an_override_looser_than_any_mapped_profile_is_refused_naming_it(tmp_path: Path) -> None:
    # 21:30 is within cn's bounds (22:00), not us's (21:00); the main profile here is cn.
    path = write_config(tmp_path, '[compliance]\nprofile = "cn"\n'
                                  '[compliance.regions]\nCN = "cn"\nUS = "us"\n'
                                  "[compliance.limits]\nhours_end = 21:30:00\n")
    [problem] = problems_of(path)
    assert (problem.file, problem.key) == (str(path), "compliance.limits.hours_end")
    assert problem.reason == ("21:30 is looser than profile 'us' allows (21:00; it may only be "
                              "lowered)")
    # Without the US mapped, cn alone allows it.
    (tmp_path / "dispatcher.toml").write_text(path.read_text().replace('US = "us"\n', ""))
    assert load_config(path, {}).limits.hours_end == time(21, 30)


def test_a_table_that_maps_nothing_is_refused(tmp_path: Path) -> None:
    path = write_config(tmp_path, "[compliance.regions]\n")
    [problem] = problems_of(path)
    assert (problem.file, problem.key) == (str(path), "compliance.regions")
    assert "no debtor could be contacted" in problem.reason


def test_a_main_profile_without_countries_needs_the_table(tmp_path: Path) -> None:
    path = write_config(tmp_path, "")
    us = tmp_path / "profiles" / "us.toml"
    us.write_text("\n".join(line for line in us.read_text().splitlines()
                            if not line.startswith("countries")))
    [problem] = problems_of(path)
    assert (problem.file, problem.key) == (str(us), "profile.countries")
    assert "[compliance.regions]" in problem.reason
    path.write_text('[compliance.regions]\nUS = "us"\n')
    assert load_config(path, {}).regions.mapping == {"US": "us"}


def test_a_profile_country_must_be_an_iso_country(tmp_path: Path) -> None:
    path = write_config(tmp_path, '[compliance]\nprofile = "uk"\n')
    uk = tmp_path / "profiles" / "uk.toml"
    uk.write_text(uk.read_text().replace('countries = ["GB"]', 'countries = ["GB", "UK"]'))
    [problem] = problems_of(path)
    assert (problem.file, problem.key) == (str(uk), "profile.countries.1")
    assert "the United Kingdom is GB" in problem.reason


# -- each debtor under their own profile, or none ------------------------------------------------


def shanghai_debtor(region: str | None = "CN-31") -> AccountState:
    event = {"schema": 1, "event_id": "e-cn", "type": "account.overdue",
             "occurred_at": "2026-11-30T10:00:00+08:00", "account_id": "A-CN",
             "data": {"days_past_due": 3, "amount_due": "100.00", "currency": "CNY",
                      "debtor": {"name": "Li Wei", "timezone": "Asia/Shanghai",
                                 **({"region": region} if region else {}),
                                 "phones": [{"number": "+8613900139000", "type": "mobile",
                                             "sms_consent": True, "call_consent": True}]}}}
    return fold("A-CN", [parse_event(encode(event))])


def facts_of(state: AccountState) -> Facts:
    return Facts(state=state, zones=("Asia/Shanghai",), home_zone="Asia/Shanghai",
                 holiday_region=debtor_region(state.debtor))


def test_the_region_is_the_debtors_else_their_first_numbers_country() -> None:
    assert debtor_region(shanghai_debtor().debtor) == "CN-31"
    assert debtor_region(shanghai_debtor(None).debtor) == "CN"
    assert debtor_region(Debtor(name="No Phone")) is None
    assert debtor_region(None) is None


def test_an_uncovered_debtor_is_refused_with_no_profile_and_a_planned_attempt_cancelled(
        tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, '[compliance]\nprofile = "us"\n'), {})
    facts = facts_of(shanghai_debtor())
    decision = decide_for_region(config.regions, facts, StoredPlan(None), config.schedule,
                                 now=NOW, attempt_id="at-1", policy_digest=None)
    assert decision.send is None
    assert isinstance(decision.plan, NoAttempt)
    [refusal] = decision.plan.reasons
    assert (refusal.reason, refusal.detail) == (NO_PROFILE, "no profile covers region CN-31")
    assert decision.plan.retry_at == refusal.retry_at
    assert refusal.retry_at is not None
    assert refusal.retry_at > NOW
    [suppressed] = decision.suppressed
    assert suppressed.reasons == (refusal,)
    assert suppressed.planned is None
    # Audited once: the same refusal next time records nothing new.
    again = decide_for_region(config.regions, facts, decision.stored(StoredPlan(None)),
                              config.schedule, now=NOW + timedelta(days=1), attempt_id="at-2",
                              policy_digest=None)
    assert again.suppressed == ()
    # An attempt planned under an earlier config (that mapped CN) is cancelled, and says so.
    planned = PlannedAttempt(NOW, Target(Role.DEBTOR, "debtor", "+8613900139000", "mobile",
                                         Medium.SMS), "early", "morning", "r", "reminder_sms")
    cancelled = decide_for_region(config.regions, facts, StoredPlan(planned), config.schedule,
                                  now=NOW, attempt_id="at-3", policy_digest=None)
    assert cancelled.send is None
    [suppressed] = cancelled.suppressed
    assert suppressed.planned == planned
    assert [r.reason for r in suppressed.reasons] == [NO_PROFILE]


def test_a_debtor_with_no_known_region_is_refused_too(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, ""), {})
    state = fold("A-X", [parse_event(encode({
        "schema": 1, "event_id": "e-x", "type": "account.overdue",
        "occurred_at": "2026-11-30T10:00:00Z", "account_id": "A-X",
        "data": {"days_past_due": 3, "amount_due": "1.00", "currency": "USD",
                 "debtor": {"name": "Nobody Known"}}}))])
    facts = Facts(state=state, zones=(), home_zone=None, holiday_region=debtor_region(
        state.debtor))
    decision = decide_for_region(config.regions, facts, StoredPlan(None), config.schedule,
                                 now=NOW, attempt_id="at-1", policy_digest=None)
    assert isinstance(decision.plan, NoAttempt)
    [refusal] = decision.plan.reasons
    assert refusal.reason == NO_PROFILE
    assert "region is unknown" in refusal.detail


def test_a_resolved_or_new_account_keeps_its_own_reason(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, ""), {})
    state = shanghai_debtor()
    for status, reason, audited in ((AccountStatus.RESOLVED, "resolved", True),
                                    (AccountStatus.UNKNOWN, "not_overdue", False)):
        facts = facts_of(state.model_copy(update={"status": status}))
        decision = decide_for_region(config.regions, facts, StoredPlan(None), config.schedule,
                                     now=NOW, attempt_id="at-1", policy_digest=None)
        assert isinstance(decision.plan, NoAttempt)
        assert [r.reason for r in decision.plan.reasons] == [reason]
        assert bool(decision.suppressed) is audited


@pytest.mark.parametrize(("profile", "sent"), [("cn", True), ("us", False)])
def test_an_attempt_at_2130_in_shanghai_goes_under_cn_and_not_under_us(
        tmp_path: Path, profile: str, sent: bool) -> None:
    config = load_config(write_config(tmp_path, f'[compliance.regions]\nUS = "us"\n'
                                                f'CN = "{profile}"\n'), {})
    late = datetime(2026, 12, 1, 13, 30, tzinfo=UTC)  # 21:30 in Shanghai: cn ends at 22:00
    planned = PlannedAttempt(late, Target(Role.DEBTOR, "debtor", "+8613900139000", "mobile",
                                          Medium.SMS), "early", "evening", "r", "reminder_sms")
    decision = decide_for_region(config.regions, facts_of(shanghai_debtor()),
                                 StoredPlan(planned), config.schedule, now=late,
                                 attempt_id="at-1", policy_digest=None)
    if sent:
        assert decision.send == planned
        assert decision.suppressed == ()
    else:
        assert decision.send is None
        assert [r.reason for r in decision.suppressed[0].reasons] == ["quiet_hours"]


def test_limits_for_reads_only_what_it_is_given() -> None:
    strict = Limits(hours_end=time(20))
    regions = RegionProfiles({"CN": "cn", "CN-31": "x"},
                             {"cn": ProfileLimits("cn", Limits(), {}),
                              "x": ProfileLimits("x", Limits(), {"CN-31": strict})})
    found = limits_for(regions, "CN-31")
    assert found is not None
    assert (found.profile, found.limits) == ("x", strict)
    other = limits_for(regions, "CN-44")
    assert other is not None
    assert (other.profile, other.limits) == ("cn", Limits())
    assert limits_for(regions, "JP-13") is None
