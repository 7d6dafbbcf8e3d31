"""load_config: the shipped config, every problem named by file, key and reason."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import pytest

from dispatcher.compliance.policy import Limits
from dispatcher.compliance.profiles import limits_for
from dispatcher.config.settings import (
    LoadedConfig,
    load_config,
    provider_secret_problem,
    resolve_store_path,
)
from dispatcher.errors import ConfigError, ConfigProblem
from dispatcher.store.factory import describe_store

SHIPPED = Path(__file__).resolve().parents[2] / "config"
TWILIO_ENV = {"TWILIO_ACCOUNT_SID": "AC" + "0" * 32, "TWILIO_AUTH_TOKEN": "token"}


def write_config(folder: Path, text: str) -> Path:
    """A config file plus the shipped profile, schedules and templates beside it."""
    (folder / "profiles").mkdir(exist_ok=True)
    shutil.copy(SHIPPED / "profiles" / "us.toml", folder / "profiles" / "us.toml")
    shutil.copytree(SHIPPED / "schedules", folder / "schedules", dirs_exist_ok=True)
    shutil.copy(SHIPPED / "templates.toml", folder / "templates.toml")
    path = folder / "dispatcher.toml"
    path.write_text(text, encoding="utf-8")
    return path


def limits_of(config: LoadedConfig, region: str) -> Limits:
    """The limits that apply to a debtor in `region`, which a profile must cover."""
    applied = limits_for(config.regions, region)
    assert applied is not None, region
    return applied.limits


def problems_of(path: Path, environ: dict[str, str] | None = None) -> list[ConfigProblem]:
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ or {})
    assert caught.value.problems
    return caught.value.problems


def keys(problems: list[ConfigProblem]) -> set[str]:
    return {p.key for p in problems}


def test_the_shipped_config_loads() -> None:
    path = SHIPPED / "dispatcher.toml"
    config = load_config(path, {})
    assert config.settings.mqtt.url == "mqtt://127.0.0.1:1883"
    assert config.settings.mqtt.topics == ("collections/events/#",)
    assert config.settings.channels.provider == "sandbox"
    assert config.settings.compliance.profile == "us"
    assert config.profile.profile.name == "us"
    assert config.files == (path, SHIPPED / "profiles" / "us.toml", SHIPPED / "profiles" /
                            "cn.toml", SHIPPED / "schedules" / "standard.toml",
                            SHIPPED / "templates.toml")
    assert config.limits == config.profile.limits
    assert config.regions.mapping == {"US": "us", "CN-44": "cn"}
    assert config.schedule.name == "standard"
    assert len(config.version) == 16
    int(config.version, 16)
    assert config.store_path == (SHIPPED.parent / "var" / "dispatcher.db").resolve()


def test_an_empty_config_takes_the_defaults(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, ""), {})
    assert config.settings.mqtt.port == 1883
    assert not config.settings.mqtt.tls
    assert config.profile.records.retention_years >= 1


def test_a_syntax_error_names_the_file(tmp_path: Path) -> None:
    path = write_config(tmp_path, '[mqtt]\nurl = "mqtt://127.0.0.1:1883\n')
    [problem] = problems_of(path)
    assert (problem.file, problem.key) == (str(path), "(syntax)")
    assert problem.reason


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.toml"
    [problem] = problems_of(path)
    assert (problem.file, problem.key) == (str(path), "(file)")


def test_an_unknown_key_is_named(tmp_path: Path) -> None:
    path = write_config(tmp_path, '[mqtt]\nurll = "mqtt://127.0.0.1:1883"\n')
    assert problems_of(path) == [ConfigProblem(str(path), "mqtt.urll", "unknown key")]


def test_an_unknown_section_is_named(tmp_path: Path) -> None:
    path = write_config(tmp_path, "[mqq]\nurl = 1\n")
    assert problems_of(path) == [ConfigProblem(str(path), "mqq", "unknown section")]


@pytest.mark.parametrize(
    ("url", "word"),
    [
        ("http://127.0.0.1:1883", "scheme"),
        ("127.0.0.1:1883", "scheme"),
        ("mqtt://", "host"),
        ("mqtt://127.0.0.1:99999", "port"),
    ],
)
def test_a_bad_mqtt_url_is_named(tmp_path: Path, url: str, word: str) -> None:
    path = write_config(tmp_path, f'[mqtt]\nurl = "{url}"\n')
    [problem] = problems_of(path)
    assert (problem.file, problem.key) == (str(path), "mqtt.url")
    assert word in problem.reason


@pytest.mark.parametrize("url", ["mqtt://svc:s3cr3t@broker:1883", "mqtts://svc@broker",
                                 "mqtt://:s3cr3t@broker"])
def test_credentials_in_the_mqtt_url_are_refused(tmp_path: Path, url: str) -> None:
    path = write_config(tmp_path, f'[mqtt]\nurl = "{url}"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path, {})
    [problem] = caught.value.problems
    assert problem.key == "mqtt.url"
    assert "MQTT_USERNAME" in problem.reason
    assert "s3cr3t" not in str(caught.value)


def test_mqtts_url_means_tls_on_8883(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, '[mqtt]\nurl = "mqtts://broker.example"\n'), {})
    assert (config.settings.mqtt.host, config.settings.mqtt.port) == ("broker.example", 8883)
    assert config.settings.mqtt.tls


TWILIO = '[channels]\nprovider = "twilio"\n[twilio]\nfrom_number = "+15005550006"\n'


def test_twilio_without_credentials_loads_and_names_both_variables_for_run(
        tmp_path: Path) -> None:
    # Only `run` talks to the provider; every other command loads the config without them.
    config = load_config(write_config(tmp_path, TWILIO), {})
    problem = provider_secret_problem(config, {})
    assert problem is not None
    assert problem.key == "channels.provider"
    assert "TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN" in problem.reason


def test_twilio_with_one_credential_names_the_other(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, TWILIO), {})
    problem = provider_secret_problem(
        config, {"TWILIO_ACCOUNT_SID": TWILIO_ENV["TWILIO_ACCOUNT_SID"]})
    assert problem is not None
    assert "TWILIO_AUTH_TOKEN" in problem.reason
    assert "TWILIO_ACCOUNT_SID" not in problem.reason


def test_twilio_with_credentials_loads(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, TWILIO), TWILIO_ENV)
    assert config.settings.channels.provider == "twilio"
    assert provider_secret_problem(config, TWILIO_ENV) is None
    sandbox = load_config(write_config(tmp_path, ""), {})
    assert provider_secret_problem(sandbox, {}) is None


def test_a_missing_profile_file_is_named(tmp_path: Path) -> None:
    path = write_config(tmp_path, '[compliance]\nprofile = "xx"\n')
    [problem] = problems_of(path)
    assert (problem.file, problem.key) == (str(path), "compliance.profile")
    assert "xx.toml" in problem.reason


def test_a_bad_profile_file_is_named(tmp_path: Path) -> None:
    path = write_config(tmp_path, "")
    profile = tmp_path / "profiles" / "us.toml"
    profile.write_text('[profile]\nname = "us"\ndescription = "d"\nnotice = "n"\n')
    problems = problems_of(path)
    assert {(p.file, p.key) for p in problems} == {
        (str(profile), "records"), (str(profile), "limits"), (str(profile), "legal")}


@pytest.mark.parametrize(("key", "value", "allowed"), [
    ("hours_start", "07:30:00", False),   # earlier than 08:00 is looser
    ("hours_start", "09:00:00", True),
    ("hours_end", "21:30:00", False),
    ("hours_end", "20:00:00", True),
    ("calls_per_7_days", "8", False),     # Reg F's presumption is 7
    ("calls_per_7_days", "3", True),
    ("conversation_cooldown_days", "6", False),
    ("conversation_cooldown_days", "10", True),
    ("attempts_per_day", "3", True),      # the profile's [legal] allows up to 3
    ("attempts_per_day", "4", False),
    ("min_gap_minutes", "60", False),
    ("third_party_calls_per_contact", "2", False),
    ("third_party_calls_per_contact", "0", True),
    ("contact_on_holidays", "true", True),
    ("call_work_numbers", "true", False),
    ("guarantors", '"never"', True),
    ("unreachable_after_attempts", "5", False),
    ("unreachable_after_attempts", "12", True),
])
def test_an_operator_may_tighten_but_not_loosen_the_profile(
        tmp_path: Path, key: str, value: str, allowed: bool) -> None:
    path = write_config(tmp_path, f"[compliance.limits]\n{key} = {value}\n")
    if allowed:
        config = load_config(path, {})
        assert str(getattr(config.limits, key)).lower() in (value.strip('"'), value + ":00")
        assert config.limits != config.profile.limits
        return
    [problem] = problems_of(path)
    assert (problem.file, problem.key) == (str(path), f"compliance.limits.{key}")
    assert "looser than the profile allows" in problem.reason


def test_an_unknown_limit_is_named(tmp_path: Path) -> None:
    path = write_config(tmp_path, "[compliance.limits]\ncalls_per_week = 3\n")
    [problem] = problems_of(path)
    assert problem.key == "compliance.limits.calls_per_week"
    assert problem.reason == "unknown key"


def test_a_profile_whose_defaults_exceed_its_legal_bounds_is_refused(tmp_path: Path) -> None:
    path = write_config(tmp_path, "")
    profile = tmp_path / "profiles" / "us.toml"
    profile.write_text(profile.read_text().replace("calls_per_7_days = 7                #",
                                                   "calls_per_7_days = 9                #"))
    [problem] = problems_of(path)
    assert (problem.file, problem.key) == (str(profile), "limits.calls_per_7_days")


@pytest.mark.parametrize("name", ["us", "cn", "uk", "in"])
def test_every_shipped_profile_loads_within_its_own_bounds(tmp_path: Path, name: str) -> None:
    path = write_config(tmp_path, f'[compliance]\nprofile = "{name}"\n')
    shutil.copy(SHIPPED / "profiles" / f"{name}.toml", tmp_path / "profiles" / f"{name}.toml")
    config = load_config(path, {})
    assert config.limits == config.profile.limits


def test_a_schedule_naming_a_missing_or_wrong_template_is_refused(tmp_path: Path) -> None:
    path = write_config(tmp_path, "")
    schedule = tmp_path / "schedules" / "standard.toml"
    text = schedule.read_text().replace('name = "early"', 'name = "early"\n'
                                        'sms_template = "call_script"', 1)
    schedule.write_text(text.replace('name = "late"', 'name = "late"\ncall_template = "nope"', 1))
    problems = problems_of(path)
    assert {(p.file, p.key) for p in problems} == {
        (str(schedule), "stages[0].sms_template"), (str(schedule), "stages[2].call_template")}


def test_a_schedule_naming_a_template_of_another_purpose_is_refused(tmp_path: Path) -> None:
    # The voicemail as the call: whoever answers would never be asked to confirm who they are;
    # the call script as the voicemail: a machine would be told about the debt.
    path = write_config(tmp_path, "")
    schedule = tmp_path / "schedules" / "standard.toml"
    text = schedule.read_text().replace('name = "early"', 'name = "early"\n'
                                        'call_template = "voicemail"', 1)
    schedule.write_text(text.replace('name = "late"', 'name = "late"\n'
                                     'voicemail_template = "call_script"', 1))
    problems = problems_of(path)
    assert {(p.file, p.key, p.reason) for p in problems} == {
        (str(schedule), "stages[0].call_template",
         "template 'voicemail' has purpose voicemail; needs collection"),
        (str(schedule), "stages[2].voicemail_template",
         "template 'call_script' has purpose collection; needs voicemail")}


@pytest.mark.parametrize(("key", "value", "term"), [
    ("business", "Acme Debt Recovery", "debt"),
    ("business", "ＡＣＭＥ ＣＯＬＬＥＣＴＩＯＮＳ", "collections"),  # noqa: RUF001  (full width)
    ("business", "速达催收", "催收"), ("agent", "Alex the Collector", "collector")])
def test_a_business_or_agent_name_that_reveals_the_debt_is_refused(
        tmp_path: Path, key: str, value: str, term: str) -> None:
    path = write_config(tmp_path, f'[contact]\n{key} = "{value}"\n')
    [problem] = problems_of(path)
    assert (problem.file, problem.key) == (str(path), f"contact.{key}")
    assert "must not reveal debt collection" in problem.reason
    assert repr(term) in problem.reason


def test_several_problems_in_one_file_are_all_reported(tmp_path: Path) -> None:
    path = write_config(tmp_path, (
        '[service]\nlog_level = "loud"\n'
        '[mqtt]\nurl = "http://broker"\nurll = "x"\n'
        "[webhook]\nport = 70000\n"
        '[twilio]\nfrom_number = "12345"\n'
    ))
    problems = problems_of(path)
    assert keys(problems) == {"service.log_level", "mqtt.url", "mqtt.urll", "webhook.port",
                              "twilio.from_number"}
    assert {p.file for p in problems} == {str(path)}


def test_problems_of_every_kind_are_reported_at_once(tmp_path: Path) -> None:
    # A typo, a provider without its number and a missing profile: one run names all three.
    path = write_config(tmp_path, (
        '[mqtt]\nurll = "mqtt://127.0.0.1:1883"\n'
        '[channels]\nprovider = "twilio"\n'
        '[compliance]\nprofile = "xx"\n'
    ))
    assert keys(problems_of(path)) == {"mqtt.urll", "twilio.from_number", "compliance.profile"}


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:///var/lib/x.db", "/var/lib/x.db"),
        ("sqlite:////var/lib/x.db", "/var/lib/x.db"),
    ],
)
def test_an_absolute_store_path(tmp_path: Path, url: str, expected: str) -> None:
    assert resolve_store_path(url, tmp_path) == Path(expected)


def test_a_relative_store_path_is_relative_to_the_config_folder(tmp_path: Path) -> None:
    assert resolve_store_path("sqlite://data/x.db", tmp_path) == \
        (tmp_path / "data" / "x.db").resolve()
    config = load_config(write_config(tmp_path, '[store]\nurl = "sqlite://data/x.db"\n'), {})
    assert config.store_path == (tmp_path / "data" / "x.db").resolve()


@pytest.mark.parametrize("url", ["mysql://db/x", "postgresql://me:secret@db/x", "x.db"])
def test_a_store_url_neither_sqlite_nor_postgresql_without_password_is_refused(
        tmp_path: Path, url: str) -> None:
    path = write_config(tmp_path, f'[store]\nurl = "{url}"\n')
    assert keys(problems_of(path)) == {"store.url"}


def test_the_claim_lease_is_five_minutes_unless_set(tmp_path: Path) -> None:
    assert load_config(write_config(tmp_path, ""), {}).settings.store.claim_lease == \
        timedelta(minutes=5)
    config = load_config(write_config(tmp_path, "[store]\nclaim_lease_seconds = 45\n"), {})
    assert config.settings.store.claim_lease == timedelta(seconds=45)


@pytest.mark.parametrize(("value", "reason"), [
    ("29.5", "must be at least 30 seconds: a shorter lease could run out while the daemon "
             "that claimed an account is still deciding it"),
    ("0", "must be at least 30 seconds"),
    ("-300", "must be at least 30 seconds"),
    ("nan", "less than or equal to 86400"),
    ("inf", "less than or equal to 86400"),
    ("86401", "less than or equal to 86400"),
    ('"five minutes"', "valid number"),
])
def test_a_claim_lease_out_of_bounds_is_refused_with_its_reason(tmp_path: Path, value: str,
                                                               reason: str) -> None:
    path = write_config(tmp_path, f"[store]\nclaim_lease_seconds = {value}\n")
    [problem] = problems_of(path)
    assert (problem.file, problem.key) == (str(path), "store.claim_lease_seconds")
    assert reason in problem.reason


@pytest.mark.parametrize(("url", "heads"), [
    ("postgresql://me@db:5432/x", "x.heads.jsonl"),
    ("postgres://db/x?search_path=a", "x.a.heads.jsonl"),
    ("postgres://db/x?search_path=b,public", "x.b.heads.jsonl"),
])
def test_a_postgresql_url_names_the_store_and_the_heads_file(tmp_path: Path, url: str,
                                                             heads: str) -> None:
    config = load_config(write_config(tmp_path, f'[store]\nurl = "{url}"\n'), {})
    assert config.store_location == url
    # Two stores in the schemas of one database never share a heads file.
    assert config.head_file == (tmp_path / ".." / "var" / heads).resolve()
    with pytest.raises(ValueError, match="PostgreSQL"):
        _ = config.store_path


def test_the_config_version_follows_the_profile_file(tmp_path: Path) -> None:
    path = write_config(tmp_path, "")
    first = load_config(path, {}).version
    assert load_config(path, {}).version == first
    profile = tmp_path / "profiles" / "us.toml"
    profile.write_text(profile.read_text() + "\n# reviewed by counsel\n")
    second = load_config(path, {}).version
    assert second != first
    path.write_text("# a comment\n")
    assert load_config(path, {}).version not in (first, second)


def test_a_state_rule_tightens_the_limits_for_debtors_in_that_state(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, ""), {})
    massachusetts = limits_of(config, "US-MA")
    assert massachusetts.contacts_per_7_days == 2
    assert limits_of(config, "US-TX") == config.limits
    assert limits_of(config, "US") == config.limits
    assert limits_for(config.regions, None) is None


def test_a_state_rule_may_not_loosen_the_deployment(tmp_path: Path) -> None:
    path = write_config(tmp_path, "")
    profile = tmp_path / "profiles" / "us.toml"
    profile.write_text(profile.read_text().replace("contacts_per_7_days = 2 ",
                                                   "contacts_per_7_days = 30 "))
    [problem] = problems_of(path)
    assert (problem.file, problem.key) == (str(profile), "regions.US-MA.contacts_per_7_days")
    assert "looser" in problem.reason


def test_twilio_needs_a_from_number_for_calls(tmp_path: Path) -> None:
    path = write_config(tmp_path, '[channels]\nprovider = "twilio"\n[twilio]\n'
                                  'messaging_service_sid = "MG' + "0" * 32 + '"\n')
    [problem] = problems_of(path, TWILIO_ENV)
    assert problem.key == "twilio.from_number"
    assert "calls" in problem.reason


def test_config_numbers_are_kept_in_ascii_e164(tmp_path: Path) -> None:
    full_width = "\uff0b" + "".join(chr(0xFF10 + int(d)) for d in "15125550199")
    path = write_config(tmp_path, f'[channels]\nprovider = "twilio"\n[twilio]\n'
                                  f'from_number = "{full_width}"\n'
                                  f'[contact]\ncallback = "{full_width}"\n')
    settings = load_config(path, TWILIO_ENV).settings
    assert settings.twilio.from_number == "+15125550199"
    assert settings.contact.callback == "+15125550199"


@pytest.mark.parametrize(("value", "word"), [
    ('"03:30+05:00"', "without an offset"),
    ('"25:00"', "hour value is outside"),
    ("330", "time"),
])
def test_a_bad_retention_time_is_named(tmp_path: Path, value: str, word: str) -> None:
    path = write_config(tmp_path, f"[retention]\nrun_at = {value}\n")
    [problem] = problems_of(path)
    assert (problem.file, problem.key) == (str(path), "retention.run_at")
    assert word in problem.reason


def test_retention_time_takes_toml_times_and_strings(tmp_path: Path) -> None:
    for value, expected in (("04:15:00", "04:15:00"), ('"04:15"', "04:15:00")):
        path = write_config(tmp_path, f"[retention]\nrun_at = {value}\n")
        assert load_config(path, {}).settings.retention.run_at.isoformat() == expected


def test_a_postgresql_store_is_described_with_its_schema() -> None:
    assert describe_store("postgresql://me@db:5432/x") == "postgresql db:5432/x"
    assert describe_store("postgresql://me@db/x?search_path=tenant_a") == \
        "postgresql db:5432/x (schema tenant_a)"


def test_a_log_format_or_summary_interval_out_of_range_is_named(tmp_path: Path) -> None:
    path = write_config(tmp_path, '[service]\nlog_format = "xml"\nlog_summary_seconds = -1\n')
    problems = {p.key: p.reason for p in problems_of(path)}
    assert problems == {"service.log_format": "Input should be 'json' or 'text'",
                        "service.log_summary_seconds": "Input should be greater than or equal "
                                                       "to 0"}


def test_the_summary_interval_defaults_to_a_minute_and_zero_turns_it_off(
        tmp_path: Path) -> None:
    assert load_config(write_config(tmp_path, ""), {}).settings.service.log_summary_seconds == 60
    off = write_config(tmp_path, "[service]\nlog_summary_seconds = 0\n")
    assert load_config(off, {}).settings.service.log_summary_seconds == 0
