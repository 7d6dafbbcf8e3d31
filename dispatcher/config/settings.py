"""Service configuration: TOML files validated once into immutable objects."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    ValidationError,
    field_validator,
)

from dispatcher.audit.keys import (
    KEY_VARIABLE,
    CheckpointKeyError,
    key_id,
    signer_from,
)
from dispatcher.compliance.policy import Limits, apply_overrides, looser_than_legal
from dispatcher.compliance.profiles import ProfileLimits, RegionProfiles, region_code_problem
from dispatcher.config.tomlfiles import read_toml
from dispatcher.contact.templates import Purpose, TemplateSet, debt_terms, load_templates
from dispatcher.domain.contact import Medium, Party
from dispatcher.domain.events import E164, MAX_PAYLOAD_BYTES
from dispatcher.domain.phones import canonical_e164
from dispatcher.errors import ConfigError, ConfigProblem
from dispatcher.store.base import CLAIM_LEASE, MIN_CLAIM_LEASE
from dispatcher.store.factory import postgres_schema
from schedules.model import THIRD_PARTY_TEMPLATE, Schedule


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL")
    return value.rstrip("/")


HttpUrl = Annotated[str, AfterValidator(_http_url)]


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ServiceSettings(_Section):
    """[service]: logging and lifecycle."""

    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["json", "text"] = "text"
    # A summary line every so many seconds (0: none).
    log_summary_seconds: float = Field(default=60.0, ge=0, le=86400)
    shutdown_grace_seconds: float = Field(default=10.0, gt=0, le=600)


_SHARE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")


class MqttSettings(_Section):
    """[mqtt]: broker connection, session and topics."""

    url: str = "mqtt://127.0.0.1:1883"
    client_id: str = Field(default="dispatcher-1", min_length=1, max_length=128)
    topics: tuple[str, ...] = Field(default=("collections/events/#",), min_length=1)
    # Set: every topic is subscribed as `$share/<group>/<topic>`, so that the daemons of one
    # group share the events instead of each receiving all of them.
    shared_group: str | None = None
    out_prefix: str = "collections/attempts"
    session_expiry_seconds: int = Field(default=7 * 24 * 3600, ge=60, le=0xFFFFFFFE)
    receive_maximum: int = Field(default=2000, ge=1, le=65535)
    keepalive_seconds: int = Field(default=30, ge=5, le=3600)
    reconnect_min_seconds: float = Field(default=0.5, gt=0, le=60)
    reconnect_max_seconds: float = Field(default=30.0, gt=0, le=3600)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("mqtt", "mqtts"):
            raise ValueError("scheme must be mqtt:// or mqtts://")
        if not parts.hostname:
            raise ValueError("no host in the URL")
        if parts.username or parts.password:
            raise ValueError("credentials do not belong in the URL: set MQTT_USERNAME and "
                             "MQTT_PASSWORD in the environment")
        try:
            _ = parts.port
        except ValueError:
            raise ValueError("the port is not a number between 0 and 65535") from None
        return value

    @field_validator("topics")
    @classmethod
    def _topics(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for topic in value:
            levels = topic.split("/")
            if not topic or any(("#" in lv and lv != "#") or ("+" in lv and lv != "+")
                                for lv in levels) or ("#" in levels[:-1]):
                raise ValueError(f"not a valid MQTT topic filter: {topic!r}")
        return value

    @field_validator("shared_group")
    @classmethod
    def _group(cls, value: str | None) -> str | None:
        if value is not None and not _SHARE_NAME.fullmatch(value):
            raise ValueError("must be 1-64 letters, digits, '-', '_' or '.' (a shared "
                             "subscription's name has no '/', '+' or '#')")
        return value

    @property
    def subscriptions(self) -> tuple[str, ...]:
        """The topic filters to subscribe: the topics, through the shared group when set."""
        if self.shared_group is None:
            return self.topics
        return tuple(f"$share/{self.shared_group}/{topic}" for topic in self.topics)

    @field_validator("out_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not value or "#" in value or "+" in value or value.endswith("/"):
            raise ValueError("must be a topic without wildcards or a trailing '/'")
        return value

    @property
    def host(self) -> str:
        """The broker's host name."""
        return urlsplit(self.url).hostname or ""

    @property
    def tls(self) -> bool:
        """Whether the connection uses TLS."""
        return urlsplit(self.url).scheme == "mqtts"

    @property
    def port(self) -> int:
        """The broker's port, defaulting by scheme."""
        return urlsplit(self.url).port or (8883 if self.tls else 1883)


class IngestSettings(_Section):
    """[ingest]: how inbound events are batched into commits."""

    batch_max_events: int = Field(default=1000, ge=1, le=10_000)
    # "process": validation and commits run in a writer process on another core.
    writer: Literal["process", "inline"] = "process"
    max_payload_bytes: int = Field(default=MAX_PAYLOAD_BYTES, ge=1024, le=MAX_PAYLOAD_BYTES)
    # An event dated later than its receipt plus this is a dead letter (`invalid`): a clock a
    # little ahead is tolerated, a date that would outrank every real event is not.
    max_future_seconds: float = Field(default=300, ge=0, le=366 * 86400)
    # /healthz reports 503 when a received batch has waited longer than this to be committed.
    stall_seconds: float = Field(default=60, gt=0, le=86400)


class StoreSettings(_Section):
    """[store]: where state and the audit log live."""

    url: str = "sqlite://../var/dispatcher.db"
    # How long a due account a daemon claimed stays its own (dispatcher.store.base.CLAIM_LEASE
    # says why it has a floor); an account a dead daemon claimed waits this long for another.
    claim_lease_seconds: float = Field(default=CLAIM_LEASE.total_seconds(), le=86400)

    @property
    def claim_lease(self) -> timedelta:
        """`claim_lease_seconds` as a duration."""
        return timedelta(seconds=self.claim_lease_seconds)

    @field_validator("claim_lease_seconds")
    @classmethod
    def _lease(cls, value: float) -> float:
        least = MIN_CLAIM_LEASE.total_seconds()
        if not value >= least:
            raise ValueError(
                f"must be at least {least:g} seconds: a shorter lease could run out while the "
                "daemon that claimed an account is still deciding it, and another daemon would "
                "decide it too")
        return value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if value.startswith(POSTGRES_SCHEMES):
            if urlsplit(value).password is not None:
                raise ValueError("a password in the store url is refused: give it in the "
                                 "environment (PGPASSWORD) or in a passfile (~/.pgpass)")
            return value
        if not value.startswith("sqlite:") or not sqlite_path_part(value):
            raise ValueError("only sqlite:///absolute/path, sqlite://relative/path or "
                             "postgresql://user@host:port/database is supported")
        return value


POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def sqlite_path_part(url: str) -> str:
    """The path written in a sqlite: URL ('sqlite:///var/x.db' gives '/var/x.db')."""
    rest = url.removeprefix("sqlite:")
    if rest.startswith("//"):
        rest = rest[2:]
    while rest.startswith("//"):
        rest = rest[1:]
    return rest


class ChannelSettings(_Section):
    """[channels]: which delivery provider is used."""

    provider: Literal["sandbox", "twilio"] = "sandbox"
    # The sandbox's scripted outcomes (docs/simulate.md), relative to the config file.
    sandbox_outcomes: str | None = None


class TwilioSettings(_Section):
    """[twilio]: provider endpoint and sender; credentials come from the environment."""

    api_base: HttpUrl = "https://api.twilio.com"
    from_number: str | None = None
    messaging_service_sid: str | None = Field(default=None, pattern=r"^MG[0-9a-f]{32}$")
    calls_per_second: float = Field(default=1.0, gt=0, le=100)  # Twilio: 1 call/s per account
    messages_per_second: float = Field(default=1.0, gt=0, le=1000)  # 1 SMS/s per long code
    request_timeout_seconds: float = Field(default=10.0, gt=0, le=120)

    @field_validator("from_number")
    @classmethod
    def _from_number(cls, value: str | None) -> str | None:
        return None if value is None else canonical_e164(value)


class WebhookSettings(_Section):
    """[webhook]: the HTTP server for provider callbacks, health and metrics."""

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    public_url: HttpUrl = "http://127.0.0.1:8080"


class ConsoleSettings(_Section):
    """[console]: the operators' web pages under /console on the webhook server."""

    # None: on when users_file is set or DISPATCHER_CONSOLE_TOKEN is in `run`'s environment.
    # Strict: a string such as "no" is refused rather than read as true.
    enabled: StrictBool | None = None
    # Users and their password hashes (`dispatcher console adduser`); relative to the config
    # file's folder. Empty: nobody can log in with a password.
    users_file: str = ""
    session_minutes: int = Field(default=480, ge=1, le=7 * 24 * 60)
    # Set when a TLS-terminating proxy serves the console: the browser then sends the session
    # cookie over HTTPS only.
    secure_cookie: StrictBool = False
    # This many failed logins for one name within lockout_minutes lock that name for as long.
    max_failures: int = Field(default=5, ge=1, le=100)
    lockout_minutes: int = Field(default=15, ge=1, le=24 * 60)

    @field_validator("users_file")
    @classmethod
    def _users_file(cls, value: str) -> str:
        if any(ord(c) < 32 or c == "\x7f" for c in value):
            raise ValueError("must not contain control characters")
        return value



ProfileName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,31}$")]


class ComplianceSettings(_Section):
    """[compliance]: the jurisdiction profiles in force by region, and limits tightened."""

    profile: ProfileName = "us"
    # [compliance.regions]: ISO 3166 country or subdivision code -> profile name. Absent: the
    # main profile for the countries its [profile] declares. Keys are checked in load_config.
    regions: dict[str, ProfileName] | None = None
    # Checked against the [legal] bounds of every profile in use in load_config.
    limits: dict[str, Any] = Field(default_factory=dict)


def _reveals_nothing(value: str) -> str:
    # The business and agent names are said in call greetings and voicemails and sent in replies
    # to whoever texts in, before anyone is known to be the debtor (Reg F 1006.2(j)).
    if terms := debt_terms(value):
        raise ValueError("is said before the person is known to be the debtor, so it must not "
                         "reveal debt collection: " + ", ".join(repr(t) for t in terms))
    return value


class ContactSettings(_Section):
    """[contact]: the schedule, the templates and what messages say about the sender."""

    schedule: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,31}$")] = "standard"
    templates: str = "templates.toml"  # relative to the config file's folder
    business: Annotated[str, Field(min_length=1, max_length=60),
                        AfterValidator(_reveals_nothing)] = "Example Lending"
    callback: E164 = "+15125550199"
    agent: Annotated[str, Field(min_length=1, max_length=40),
                     AfterValidator(_reveals_nothing)] = "Alex"
    default_locale: str = "en"
    sweep_seconds: float = Field(default=1.0, gt=0, le=60)


def _public_key(value: str) -> str:
    try:
        key_id(value)
    except CheckpointKeyError as exc:
        raise ValueError(str(exc)) from None
    return value


def _naive_time(value: time) -> time:
    if value.tzinfo is not None:
        raise ValueError("run_at is a UTC time of day; write it without an offset")
    return value


class RetentionSettings(_Section):
    """[retention]: the daily job that prunes audit records past the profile's period."""

    enabled: bool = True
    run_at: Annotated[time, AfterValidator(_naive_time)] = time(3, 30)  # UTC, daily
    # Keys whose checkpoints `audit verify` trusts: the public half of DISPATCHER_CHECKPOINT_KEY,
    # and earlier keys still anchoring the log after a rotation.
    checkpoint_public_keys: tuple[Annotated[str, AfterValidator(_public_key)], ...] = ()


class PlannerSettings(_Section):
    """[planner]: how the planner learns when debtors answer."""

    # Off: slots are ranked by each debtor's own calls and the prior alone, never by what the
    # population's outcomes taught.
    learning: bool = True
    # Daily, UTC: the answer model is learned again from the call outcomes of the last
    # `learn_days` days (a quiet hour for the debtors is best: a material change re-plans).
    learn_at: Annotated[time, AfterValidator(_naive_time)] = time(6, 0)
    # Once the model rests on many calls it changes slowly: learn every this many days then.
    learn_every_days: int = Field(default=7, ge=1, le=28)
    learn_days: int = Field(default=28, ge=1, le=90)


class AuditSettings(_Section):
    """[audit]: the signed heads of the audit chain, kept outside the store."""

    # How often the daemon signs the chain's head while records are written.
    head_interval_seconds: float = Field(default=300.0, gt=0, le=86400)
    # The head file; empty: `<store file>.heads.jsonl` beside the store. Relative paths are
    # relative to the config file's folder.
    head_file: str = ""


def _country_code(value: str) -> str:
    if problem := region_code_problem(value, subdivisions=False):
        raise ValueError(problem)
    return value


class ProfileInfo(_Section):
    """[profile] of a jurisdiction profile file."""

    name: str
    description: str
    notice: str
    # The countries the profile is written for: a deployment without [compliance.regions]
    # contacts debtors of these countries only.
    countries: tuple[Annotated[str, AfterValidator(_country_code)], ...] = ()


class RecordsPolicy(_Section):
    """[records] of a jurisdiction profile: how long audit records are kept."""

    retention_years: int = Field(ge=1, le=50)


class Profile(BaseModel):
    """A jurisdiction profile (config/profiles/NAME.toml): limits, their legal bounds, records."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    profile: ProfileInfo
    records: RecordsPolicy
    limits: Limits
    legal: Limits
    # Stricter rules of a state or province (ISO 3166-2 code): only tightening is allowed.
    regions: dict[str, dict[str, Any]] = Field(default_factory=dict)


_Phrase = Annotated[str, Field(min_length=1, max_length=200)]
_Locale = Annotated[str, Field(pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")]


class StatementPhrases(_Section):
    """Phrases of one locale that make a reply a statement a person must act on."""

    dispute: tuple[_Phrase, ...] = Field(default=(), max_length=500)
    bereavement: tuple[_Phrase, ...] = Field(default=(), max_length=500)
    hardship: tuple[_Phrase, ...] = Field(default=(), max_length=500)
    complaint: tuple[_Phrase, ...] = Field(default=(), max_length=500)


class QueueSettings(_Section):
    """`[queue]`: the work queue for people (docs/queue.md)."""

    # Added to the shipped phrases (dispatcher/queue/statements.py), per locale.
    statements: dict[_Locale, StatementPhrases] = Field(default_factory=dict)


class Settings(_Section):
    """The whole service configuration."""

    service: ServiceSettings = ServiceSettings()
    mqtt: MqttSettings = MqttSettings()
    ingest: IngestSettings = IngestSettings()
    store: StoreSettings = StoreSettings()
    channels: ChannelSettings = ChannelSettings()
    twilio: TwilioSettings = TwilioSettings()
    webhook: WebhookSettings = WebhookSettings()
    compliance: ComplianceSettings = ComplianceSettings()
    contact: ContactSettings = ContactSettings()
    retention: RetentionSettings = RetentionSettings()
    planner: PlannerSettings = PlannerSettings()
    audit: AuditSettings = AuditSettings()
    console: ConsoleSettings = ConsoleSettings()
    queue: QueueSettings = QueueSettings()


@dataclass(frozen=True)
class LoadedConfig:
    """Validated settings plus where they came from and their version hash."""

    settings: Settings
    path: Path
    profile: Profile
    version: str
    files: tuple[Path, ...]
    limits: Limits  # the main profile's, with the operator's overrides
    schedule: Schedule
    templates: TemplateSet
    regions: RegionProfiles  # which profile governs each region, and its limits
    profiles: Mapping[str, Profile]  # every profile in use, the main one first

    @property
    def retention_years(self) -> int:
        """How long audit records are kept: the longest period of any profile in use."""
        return max(p.records.retention_years for p in self.profiles.values())

    @property
    def store_path(self) -> Path:
        """The SQLite file, with a relative path resolved against the config file's folder."""
        if self.store_is_postgres:
            raise ValueError("the store is a PostgreSQL database, not a file")
        return resolve_store_path(self.settings.store.url, self.path.parent)

    @property
    def store_is_postgres(self) -> bool:
        """Whether [store] url names a PostgreSQL database."""
        return self.settings.store.url.startswith(POSTGRES_SCHEMES)

    @property
    def store_location(self) -> Path | str:
        """What `open_store` opens: the SQLite file, or the PostgreSQL URL."""
        return self.settings.store.url if self.store_is_postgres else self.store_path

    @property
    def console_users_file(self) -> Path | None:
        """The console's users file, resolved against the config file's folder; None: unset."""
        named = self.settings.console.users_file
        if not named:
            return None
        path = Path(named)
        return path if path.is_absolute() else (self.path.parent / path).resolve()

    @property
    def head_file(self) -> Path:
        """Where the daemon keeps the signed heads of the audit chain."""
        named = self.settings.audit.head_file
        if not named and self.store_is_postgres:
            # Beside where the default SQLite file would be, named after the database and the
            # schema: two stores in one database keep heads of their own.
            url = self.settings.store.url
            name = urlsplit(url).path.strip("/") or "dispatcher"
            schema = postgres_schema(url)
            if schema:
                name = f"{name}.{schema}"
            return (self.path.parent / "../var" / f"{name}.heads.jsonl").resolve()
        if not named:
            store = self.store_path
            return store.with_name(f"{store.name}.heads.jsonl")
        path = Path(named)
        return path if path.is_absolute() else (self.path.parent / path).resolve()


def resolve_store_path(url: str, base: Path) -> Path:
    """Resolve a sqlite: URL to a file path; relative paths are relative to `base`."""
    path = Path(sqlite_path_part(url))
    return path if path.is_absolute() else (base / path).resolve()


def _problems(path: Path, exc: ValidationError, prefix: str = "") -> list[ConfigProblem]:
    problems = []
    for err in exc.errors(include_url=False):
        key = ".".join(str(p) for p in (prefix, *err["loc"]) if p != "") or "(root)"
        reason = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            reason = "unknown key"
        problems.append(ConfigProblem(str(path), key, reason))
    return problems


def _validate_sections(path: Path, data: dict[str, Any]) -> tuple[dict[str, Any],
                                                                   list[ConfigProblem]]:
    """Validate each section on its own, so that one bad section hides no other problem."""
    sections: dict[str, Any] = {}
    problems = [ConfigProblem(str(path), key, "unknown section")
                for key in data if key not in Settings.model_fields]
    for name, field in Settings.model_fields.items():
        model = field.annotation
        assert isinstance(model, type)
        assert issubclass(model, BaseModel)
        try:
            sections[name] = model.model_validate(data.get(name, {}))
        except ValidationError as exc:
            problems.extend(_problems(path, exc, prefix=name))
    return sections, problems


def _environment_problems(path: Path, sections: Mapping[str, Any],
                          environ: Mapping[str, str]) -> list[ConfigProblem]:
    problems = []
    channels, twilio = sections.get("channels"), sections.get("twilio")
    # The provider's credentials are not asked for here: only `run` talks to the provider
    # (provider_secret_problem); a reviewer reads the log and the report without them.
    if (isinstance(channels, ChannelSettings) and channels.provider == "twilio"
            and isinstance(twilio, TwilioSettings) and not twilio.from_number):
        problems.append(ConfigProblem(str(path), "twilio.from_number",
                                      "provider 'twilio' needs from_number: calls are "
                                      "placed from it (a messaging service sends SMS only)"))
    retention = sections.get("retention")
    if isinstance(retention, RetentionSettings):
        problems.extend(_checkpoint_key_problems(path, retention, environ))
    if environ.get("MQTT_PASSWORD") and not environ.get("MQTT_USERNAME"):
        problems.append(ConfigProblem(str(path), "mqtt.url",
                                      "MQTT_PASSWORD is set but MQTT_USERNAME is not"))
    return problems


PROVIDER_SECRETS: Mapping[str, tuple[str, ...]] = {
    "twilio": ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN")}


def provider_secret_problem(config: LoadedConfig,
                            environ: Mapping[str, str]) -> ConfigProblem | None:
    """The credentials the configured provider needs and `environ` lacks, as one problem."""
    provider = config.settings.channels.provider
    missing = [name for name in PROVIDER_SECRETS.get(provider, ()) if not environ.get(name)]
    if not missing:
        return None
    return ConfigProblem(str(config.path), "channels.provider",
                         f"provider {provider!r} needs {' and '.join(missing)} in the "
                         "environment")


def _checkpoint_key_problems(path: Path, retention: RetentionSettings,
                             environ: Mapping[str, str]) -> list[ConfigProblem]:
    key = "retention.checkpoint_public_keys"
    try:
        signer = signer_from(environ)
    except CheckpointKeyError as exc:
        return [ConfigProblem(str(path), key, str(exc))]
    if signer is not None and signer.public_key not in retention.checkpoint_public_keys:
        return [ConfigProblem(str(path), key, (
            f"must list {signer.public_key!r}, the public key of {KEY_VARIABLE}, so that "
            "audit verify can check the checkpoints it signs"))]
    return []


_Model = TypeVar("_Model", bound=BaseModel)


def _load_named(path: Path, key: str, folder: str, name: str,
                model: type[_Model]) -> tuple[_Model | None, bytes, list[ConfigProblem]]:
    """A file the config names by `key` (config/<folder>/<name>.toml), validated as `model`."""
    named = path.parent / folder / f"{name}.toml"
    if not named.is_file():
        return None, b"", [ConfigProblem(str(path), key, f"no {folder[:-1]} file {named}")]
    try:
        data, raw = read_toml(named)
        return model.model_validate(data), raw, []
    except ConfigError as exc:
        return None, b"", exc.problems
    except ValidationError as exc:
        return None, b"", _problems(named, exc)


def _effective_limits(path: Path, profile_path: Path, profile: Profile,
                      overrides: Mapping[str, Any], *,
                      name: str | None) -> tuple[Limits | None, list[ConfigProblem]]:
    """The profile's limits with the operator's overrides; `name` is said in each problem
    (when several profiles are in use, an override may be too loose for one of them only)."""
    problems = [ConfigProblem(str(profile_path), f"limits.{key}", reason)
                for key, reason in looser_than_legal(profile.limits, profile.legal)]
    try:
        limits = apply_overrides(profile.limits, overrides)
    except ValidationError as exc:
        return None, problems + _problems(path, exc, prefix="compliance.limits")
    # A profile default beyond its own bounds is the profile file's problem, named above.
    said = "the profile allows" if name is None else f"profile {name!r} allows"
    problems += [ConfigProblem(str(path), f"compliance.limits.{key}",
                               reason.replace("the profile allows", said))
                 for key, reason in looser_than_legal(limits, profile.legal) if key in overrides]
    return limits, problems


def _regional_limits(profile_path: Path, profile: Profile,
                     limits: Limits) -> tuple[dict[str, Limits], list[ConfigProblem]]:
    """Each region's limits: the deployment's, tightened by the region's rules."""
    found: dict[str, Limits] = {}
    problems = []
    for region, overrides in profile.regions.items():
        try:
            regional = apply_overrides(limits, overrides)
        except ValidationError as exc:
            problems += _problems(profile_path, exc, prefix=f"regions.{region}")
            continue
        looser = [(key, reason) for key, reason in looser_than_legal(regional, limits)
                  if key in overrides]
        problems += [ConfigProblem(str(profile_path), f"regions.{region}.{key}",
                                   reason.replace("the profile allows", "the profile's limits"))
                     for key, reason in looser]
        # A region can only make the deployment stricter; a looser deployment value stays.
        found[region] = Limits.model_validate(
            {**regional.model_dump(), **{k: getattr(limits, k) for k, _ in looser}})
    return found, problems


@dataclass(frozen=True)
class _InForce:
    """The profiles a config puts in force, the main one first, and what they govern."""

    profiles: dict[str, Profile]
    raw: tuple[bytes, ...]
    paths: tuple[Path, ...]
    limits: Limits
    regions: RegionProfiles


def _explicit_mapping(path: Path, regions: Mapping[str, str]) -> list[ConfigProblem]:
    """The problems of a [compliance.regions] table's keys."""
    problems = [ConfigProblem(str(path), f"compliance.regions.{key}", reason)
                for key in regions if (reason := region_code_problem(key))]
    if not regions:
        problems.append(ConfigProblem(
            str(path), "compliance.regions", "maps no region to a profile, so no debtor could "
            "be contacted: map at least one country (US = \"us\"), or remove the table to "
            "contact the countries of the main profile"))
    return problems


def _default_mapping(compliance: ComplianceSettings, main: Profile,
                     main_path: Path) -> tuple[dict[str, str], list[ConfigProblem]]:
    """Without [compliance.regions]: the main profile for the countries it declares."""
    if not main.profile.countries:
        return {}, [ConfigProblem(
            str(main_path), "profile.countries", "declares no country and the config has no "
            "[compliance.regions], so no debtor could be contacted: list the ISO 3166-1 "
            "countries the profile is for (countries = [\"US\"]), or map regions to profiles "
            "in [compliance.regions]")]
    return dict.fromkeys(main.profile.countries, compliance.profile), []


def _profiles_in_force(path: Path,
                       compliance: ComplianceSettings) -> tuple[_InForce | None,
                                                                list[ConfigProblem]]:
    """Load the main profile and every profile [compliance.regions] names; each one's limits
    with the operator's overrides (checked against each one's [legal]) and regional rules."""
    problems: list[ConfigProblem] = []
    loaded: dict[str, tuple[Profile, bytes, Path]] = {}
    main, raw, found = _load_named(path, "compliance.profile", "profiles", compliance.profile,
                                   Profile)
    problems += found
    if main is not None:
        loaded[compliance.profile] = (main, raw, path.parent / "profiles" /
                                      f"{compliance.profile}.toml")
    if compliance.regions is not None:
        problems += _explicit_mapping(path, compliance.regions)
        for name in sorted(set(compliance.regions.values()) - {compliance.profile}):
            keys = [key for key, value in compliance.regions.items() if value == name]
            named = path.parent / "profiles" / f"{name}.toml"
            if not named.is_file():
                problems += [ConfigProblem(str(path), f"compliance.regions.{key}",
                                           f"no profile file {named}") for key in keys]
                continue
            profile, raw, found = _load_named(path, f"compliance.regions.{keys[0]}", "profiles",
                                              name, Profile)
            problems += found
            if profile is not None:
                loaded[name] = (profile, raw, named)
    if main is None:
        return None, problems
    if compliance.regions is None:
        mapping, found = _default_mapping(compliance, main, loaded[compliance.profile][2])
        problems += found
    else:
        mapping = dict(compliance.regions)
    several = len(loaded) > 1
    applied: dict[str, ProfileLimits] = {}
    for name, (profile, _, profile_path) in loaded.items():
        limits, found = _effective_limits(path, profile_path, profile, compliance.limits,
                                          name=name if several else None)
        problems += found
        if limits is not None:
            regional, found = _regional_limits(profile_path, profile, limits)
            problems += found
            applied[name] = ProfileLimits(name, limits, regional)
    if problems or set(applied) != set(loaded):
        return None, problems
    return _InForce(profiles={name: p for name, (p, _, _) in loaded.items()},
                    raw=tuple(raw for _, raw, _ in loaded.values()),
                    paths=tuple(p for _, _, p in loaded.values()),
                    limits=applied[compliance.profile].limits,
                    regions=RegionProfiles(mapping, applied)), []


def _template_problems(schedule_path: Path, schedule: Schedule,
                       templates: TemplateSet) -> list[ConfigProblem]:
    """Every template the schedule names exists and fits its medium, party and purpose."""
    wanted: list[tuple[str, str, Medium, Party, tuple[Purpose, ...]]] = [
        ("(planner)", THIRD_PARTY_TEMPLATE, Medium.CALL, Party.THIRD_PARTY, (Purpose.LOCATION,))]
    for index, stage in enumerate(schedule.stages):
        key = f"stages[{index}]"
        wanted += [(f"{key}.sms_template", stage.sms_template, Medium.SMS, Party.DEBTOR,
                    tuple(Purpose)),
                   (f"{key}.call_template", stage.call_template, Medium.CALL, Party.DEBTOR,
                    (Purpose.COLLECTION,))]
        if stage.voicemail_template:
            wanted.append((f"{key}.voicemail_template", stage.voicemail_template, Medium.CALL,
                           Party.DEBTOR, (Purpose.VOICEMAIL,)))
    problems = []
    for key, template_id, medium, party, purposes in wanted:
        template = templates.templates.get(template_id)
        if template is None:
            problems.append(ConfigProblem(str(schedule_path), key,
                                          f"no template {template_id!r} in {templates.path}"))
        elif template.medium is not medium or template.party is not party:
            problems.append(ConfigProblem(
                str(schedule_path), key, f"template {template_id!r} is for {template.medium} to "
                                         f"{template.party}; needs {medium} to {party}"))
        elif template.purpose not in purposes:
            problems.append(ConfigProblem(
                str(schedule_path), key, f"template {template_id!r} has purpose "
                                         f"{template.purpose}; needs "
                                         + " or ".join(p.value for p in purposes)))
    return problems


def load_config(path: Path, environ: Mapping[str, str] = os.environ) -> LoadedConfig:
    """Read and validate the config file and the files it names; raise ConfigError on problems.

    Every problem found is reported at once, each with its file, key and reason.
    """
    data, raw = read_toml(path)
    sections, problems = _validate_sections(path, data)
    problems.extend(_environment_problems(path, sections, environ))
    compliance, contact = sections.get("compliance"), sections.get("contact")
    in_force = None
    if isinstance(compliance, ComplianceSettings):
        in_force, profile_problems = _profiles_in_force(path, compliance)
        problems.extend(profile_problems)
    schedule, schedule_raw, templates = None, b"", None
    if isinstance(contact, ContactSettings):
        schedule, schedule_raw, schedule_problems = _load_named(
            path, "contact.schedule", "schedules", contact.schedule, Schedule)
        problems.extend(schedule_problems)
        try:
            templates = load_templates(path.parent / contact.templates)
        except ConfigError as exc:
            problems.extend(exc.problems)
        if schedule is not None and templates is not None:
            problems.extend(_template_problems(
                path.parent / "schedules" / f"{contact.schedule}.toml", schedule, templates))
    if problems or in_force is None or schedule is None or templates is None:
        raise ConfigError(problems)
    settings = Settings(**sections)
    schedule_path = path.parent / "schedules" / f"{settings.contact.schedule}.toml"
    digest = hashlib.sha256(b"\0".join((raw, *in_force.raw, schedule_raw,
                                         templates.version.encode()))).hexdigest()[:16]
    return LoadedConfig(settings=settings, path=path,
                        profile=in_force.profiles[settings.compliance.profile], version=digest,
                        files=(path, *in_force.paths, schedule_path, templates.path),
                        limits=in_force.limits, schedule=schedule, templates=templates,
                        regions=in_force.regions, profiles=in_force.profiles)
