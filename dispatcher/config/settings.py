"""Service configuration: TOML files validated once into immutable objects."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import time
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
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
from dispatcher.config.tomlfiles import read_toml
from dispatcher.contact.templates import Purpose, TemplateSet, debt_terms, load_templates
from dispatcher.domain.contact import Medium, Party
from dispatcher.domain.events import E164, MAX_PAYLOAD_BYTES
from dispatcher.domain.phones import canonical_e164
from dispatcher.errors import ConfigError, ConfigProblem
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
    shutdown_grace_seconds: float = Field(default=10.0, gt=0, le=600)


class MqttSettings(_Section):
    """[mqtt]: broker connection, session and topics."""

    url: str = "mqtt://127.0.0.1:1883"
    client_id: str = Field(default="dispatcher-1", min_length=1, max_length=128)
    topics: tuple[str, ...] = Field(default=("collections/events/#",), min_length=1)
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

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith("sqlite:") or not sqlite_path_part(value):
            raise ValueError("only sqlite:///absolute/path or sqlite://relative/path is "
                             "supported for now")
        return value


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



class ComplianceSettings(_Section):
    """[compliance]: the jurisdiction profile in force, and limits tightened from it."""

    profile: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,31}$")] = "us"
    # Checked against the profile's [legal] bounds in load_config.
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
    learn_days: int = Field(default=28, ge=1, le=90)


class AuditSettings(_Section):
    """[audit]: the signed heads of the audit chain, kept outside the store."""

    # How often the daemon signs the chain's head while records are written.
    head_interval_seconds: float = Field(default=300.0, gt=0, le=86400)
    # The head file; empty: `<store file>.heads.jsonl` beside the store. Relative paths are
    # relative to the config file's folder.
    head_file: str = ""


class ProfileInfo(_Section):
    """[profile] of a jurisdiction profile file."""

    name: str
    description: str
    notice: str


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


@dataclass(frozen=True)
class LoadedConfig:
    """Validated settings plus where they came from and their version hash."""

    settings: Settings
    path: Path
    profile: Profile
    version: str
    files: tuple[Path, ...]
    limits: Limits
    schedule: Schedule
    templates: TemplateSet
    regional_limits: Mapping[str, Limits]

    @property
    def store_path(self) -> Path:
        """The SQLite file, with a relative path resolved against the config file's folder."""
        return resolve_store_path(self.settings.store.url, self.path.parent)

    @property
    def head_file(self) -> Path:
        """Where the daemon keeps the signed heads of the audit chain."""
        named = self.settings.audit.head_file
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
                      overrides: Mapping[str, Any]) -> tuple[Limits | None, list[ConfigProblem]]:
    problems = [ConfigProblem(str(profile_path), f"limits.{key}", reason)
                for key, reason in looser_than_legal(profile.limits, profile.legal)]
    try:
        limits = apply_overrides(profile.limits, overrides)
    except ValidationError as exc:
        return None, problems + _problems(path, exc, prefix="compliance.limits")
    # A profile default beyond its own bounds is the profile file's problem, named above.
    problems += [ConfigProblem(str(path), f"compliance.limits.{key}", reason)
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
    profile, profile_raw, limits = None, b"", None
    regional: dict[str, Limits] = {}
    if isinstance(compliance, ComplianceSettings):
        profile, profile_raw, profile_problems = _load_named(
            path, "compliance.profile", "profiles", compliance.profile, Profile)
        problems.extend(profile_problems)
        if profile is not None:
            profile_path = path.parent / "profiles" / f"{compliance.profile}.toml"
            limits, limit_problems = _effective_limits(path, profile_path, profile,
                                                       compliance.limits)
            problems.extend(limit_problems)
            if limits is not None:
                regional, regional_problems = _regional_limits(profile_path, profile, limits)
                problems.extend(regional_problems)
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
    if problems or profile is None or limits is None or schedule is None or templates is None:
        raise ConfigError(problems)
    settings = Settings(**sections)
    profile_path = path.parent / "profiles" / f"{settings.compliance.profile}.toml"
    schedule_path = path.parent / "schedules" / f"{settings.contact.schedule}.toml"
    digest = hashlib.sha256(b"\0".join((raw, profile_raw, schedule_raw,
                                         templates.version.encode()))).hexdigest()[:16]
    return LoadedConfig(settings=settings, path=path, profile=profile, version=digest,
                        files=(path, profile_path, schedule_path, templates.path),
                        limits=limits, schedule=schedule, templates=templates,
                        regional_limits=regional)
