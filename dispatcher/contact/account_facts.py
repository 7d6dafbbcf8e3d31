"""The engine's view of one account and what it needs around a decision: the contact policy from
the config, the gate's facts, an attempt's id, its local times and its template values."""

from __future__ import annotations

import functools
import hashlib
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, is_dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property
from zoneinfo import ZoneInfo

import orjson
import phonenumbers
from pydantic import BaseModel

from dispatcher.compliance.gate import Facts
from dispatcher.compliance.profiles import RegionProfiles
from dispatcher.config.settings import LoadedConfig, PlannerSettings
from dispatcher.contact.templates import TemplateSet
from dispatcher.domain.accounts import AccountState
from dispatcher.domain.clock import sortable_utc
from dispatcher.domain.contact import Outcome, PastAttempt
from dispatcher.domain.events import Debtor
from dispatcher.domain.zones import candidate_zones
from dispatcher.queue.statements import DEFAULT_MATCHER, StatementMatcher
from dispatcher.store import AccountContext, OutcomeRow
from schedules.model import Schedule
from schedules.planner import PlannedAttempt, days_past_due


@dataclass(frozen=True)
class ContactPolicy:
    """Everything from the config that shapes contact."""

    schedule: Schedule
    regions: RegionProfiles  # the profile and limits of each debtor's region: limits_for
    templates: TemplateSet
    business: str
    callback: str
    agent: str
    default_locale: str
    config_version: str
    planner: PlannerSettings = field(default_factory=PlannerSettings)
    # What statements in a reply (a dispute, a bereavement) are; it plans nothing.
    statements: StatementMatcher = field(default=DEFAULT_MATCHER, compare=False)

    @cached_property
    def digest(self) -> str:
        """A hash of every field but `config_version`: equal for two policies that plan alike,
        whatever else the config file changed; stored with each plan made under it."""
        body = {f.name: _plain(getattr(self, f.name)) for f in fields(self)
                if f.name not in ("config_version", "statements")}
        return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def _plain(value: object) -> object:
    """`value` as JSON values that are the same in every process (no sets, no object ids)."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, TemplateSet):
        return value.version  # a hash of the templates file's bytes
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def policy_of(config: LoadedConfig) -> ContactPolicy:
    """The contact policy the config describes."""
    contact = config.settings.contact
    return ContactPolicy(schedule=config.schedule, regions=config.regions,
                         templates=config.templates, business=contact.business,
                         callback=contact.callback, agent=contact.agent,
                         default_locale=contact.default_locale, config_version=config.version,
                         planner=config.settings.planner,
                         statements=statement_matcher(config))


def statement_matcher(config: LoadedConfig) -> StatementMatcher:
    """The shipped statement phrases with the config's `[queue.statements]` added."""
    extra = config.settings.queue.statements
    if not extra:
        return DEFAULT_MATCHER
    return StatementMatcher({locale: phrases.model_dump() for locale, phrases in extra.items()})


def facts_for(context: AccountContext) -> Facts:
    """The gate's view of an account: candidate zones, home zone, holiday region, history."""
    state = context.state
    debtor = state.debtor
    if debtor is None:
        names: tuple[str, ...] = ()
        home = region = None
    else:
        names, home, region = _whereabouts(debtor.timezone, debtor.region,
                                           tuple([p.number for p in debtor.phones]))
    history = context.history
    # Most histories hold no refusal: looked for without a Python step per attempt.
    refused = (frozenset([a.person for a in history if a.outcome is _REFUSED])
               if _REFUSED in map(_OUTCOME_OF, history) else _NOBODY)
    return Facts(state=state, zones=names, home_zone=home, holiday_region=region,
                 opted_out=context.opted_out, invalid_numbers=context.invalid_numbers,
                 under_review=context.under_review,
                 history=context.history, refused_contacts=refused,
                 number_history=context.number_history, number_claims=context.number_claims,
                 number_last_used=context.number_last_used)


# Bound once: looked up on its enum class it costs a metaclass call for every attempt read.
_REFUSED = Outcome.REFUSED
_OUTCOME_OF = operator.attrgetter("outcome")
_NOBODY: frozenset[str] = frozenset()


@functools.lru_cache(maxsize=1 << 16)
def _whereabouts(timezone: str | None, region: str | None,
                 numbers: tuple[str, ...]) -> tuple[tuple[str, ...], str | None, str | None]:
    """A debtor's candidate zones, home zone and holiday region: a pure function of what the
    debtor's events say, asked again at every decision."""
    names = tuple(z.zone for z in candidate_zones(timezone, region, numbers))
    home = timezone if timezone else names[0] if names else None
    return names, home, _region_of(region, numbers)


def _region_of(region: str | None, numbers: Sequence[str]) -> str | None:
    if region:
        return region
    if not numbers:
        return None
    return phonenumbers.region_code_for_number(phonenumbers.parse(numbers[0], None))


def debtor_region(debtor: Debtor | None) -> str | None:
    """The debtor's region: the one the events give, else the country of their first number.

    It picks the holidays and the jurisdiction profile that governs the debtor.
    """
    if debtor is None:
        return None
    return _region_of(debtor.region, [p.number for p in debtor.phones[:1]])


def message_values(policy: ContactPolicy, state: AccountState, zone: str | None,
                   now: datetime) -> dict[str, str]:
    """The values a template's placeholders are filled with."""
    name = state.debtor.name if state.debtor else ""
    days = days_past_due(state, now, zone)
    due = (now - timedelta(days=days)).date().isoformat() if days else ""
    words = name.split()
    return {"first_name": words[0] if words else name, "name": name,
            "business": policy.business, "callback": policy.callback, "agent": policy.agent,
            "amount": state.amount_due or "", "currency": state.currency or "",
            "days_past_due": str(days or ""), "due_date": due}


def with_outcome(facts: Facts, planned: PlannedAttempt, outcome: OutcomeRow) -> Facts:
    """`facts` with the attempt just sent and its outcome, as the store now holds them."""
    target = planned.target
    past = PastAttempt(outcome.attempt_id, outcome.at, target.person, target.role,
                       target.number, target.medium, planned.window, planned.stage,
                       outcome.outcome)
    invalid = facts.invalid_numbers
    if outcome.outcome is Outcome.INVALID_NUMBER:
        invalid = invalid | {target.number}
    refused = facts.refused_contacts
    if outcome.outcome is Outcome.REFUSED:
        refused = refused | {target.person}
    return _replaced(facts, history=(*facts.history, past), invalid_numbers=invalid,
                     refused_contacts=refused)


def _replaced(facts: Facts, **changes: object) -> Facts:
    """`dataclasses.replace(facts, **changes)` at a quarter of its cost: a copy of the fields
    with `changes` applied, without replace's walk over the fields and the frozen `__init__`'s
    one guarded assignment per field (Facts computes nothing in `__init__`)."""
    copy = object.__new__(Facts)
    vars(copy).update(vars(facts), **changes)
    return copy


def attempt_id_for(account_id: str, now: datetime) -> str:
    """A deterministic attempt id: one account makes at most one attempt per instant."""
    digest = hashlib.sha256(f"{account_id}|{sortable_utc(now)}".encode()).hexdigest()
    return f"at-{digest[:24]}"


def local_times(zones: Sequence[str], at: datetime) -> dict[str, str]:
    """The local time of `at` in each zone considered, for the audit record."""
    instant = at if at.tzinfo is UTC else at.astimezone(UTC)
    return {z: _local_time(instant, z) for z in zones}


@functools.lru_cache(maxsize=1 << 12)
def _local_time(instant: datetime, zone: str) -> str:
    # Keyed by a UTC instant (equal local times in one zone may be two instants): a batch
    # records the same `now` in the same few zones for every account.
    return instant.astimezone(ZoneInfo(zone)).isoformat(timespec="minutes")
