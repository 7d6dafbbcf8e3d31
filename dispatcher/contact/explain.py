"""`dispatcher explain --account ID`: state, holds, counters, and the next attempt or why none."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Protocol

from dispatcher.compliance.gate import (
    Budget,
    Facts,
    Refusal,
    counters,
    is_unreachable,
    number_refusals,
)
from dispatcher.compliance.policy import Limits
from dispatcher.compliance.profiles import AppliedLimits, limits_for, no_profile
from dispatcher.config.settings import LoadedConfig
from dispatcher.contact.account_facts import facts_for, local_times, policy_of
from dispatcher.contact.decide import StoredPlan, budget_for, plan_from_json, refuse_account
from dispatcher.contact.engine import HISTORY_DAYS, number_lookback
from dispatcher.contact.learning import stored_model
from dispatcher.domain.clock import utc_rfc3339
from dispatcher.domain.contact import Medium, Role, Target
from dispatcher.domain.phones import mask_number
from dispatcher.store import AnswerStore, ContextStore
from schedules.planner import Plan, PlannedAttempt, days_past_due, plan_next

RECENT_ATTEMPTS = 10


def _state_lines(facts: Facts, config: LoadedConfig, applied: AppliedLimits | None,
                 now: datetime) -> list[str]:
    state = facts.state
    days = days_past_due(state, now, facts.home_zone)
    stage = config.schedule.stage_for(days) if days else None
    resolved = f" ({state.resolved_reason})" if state.resolved_reason else ""
    holds = ", ".join(h.reason.value + (f" until {h.until}" if h.until else "")
                      for h in state.holds)
    lines = [f"  status: {state.status.value}{resolved}",
             f"  days past due: {days if days is not None else '-'}; stage: "
             f"{stage.name if stage else '-'}; amount: {state.amount_due or '-'} "
             f"{state.currency or ''}",
             _profile_line(facts, applied),
             f"  zones considered: {', '.join(facts.zones) or 'none'} "
             f"(home: {facts.home_zone or '-'})"]
    lines += [f"    {zone}: {text}" for zone, text in local_times(facts.zones, now).items()]
    lines.append(f"  holds: {holds or 'none'}")
    if state.promise:
        grace = (applied or config).limits.promise_grace_days
        lines.append(f"  promise: pay by {state.promise.due_on} (grace {grace} days)")
    return lines


def _profile_line(facts: Facts, applied: AppliedLimits | None) -> str:
    region = facts.holiday_region or "unknown"
    if applied is None:
        return f"  profile: none for region {region}: never contacted (no_profile)"
    return f"  profile: {applied.profile} (region {region})"


def _number_lines(facts: Facts) -> list[str]:
    state = facts.state
    lines = ["  numbers:"]
    for phone in state.debtor.phones if state.debtor else []:
        flags = [f"sms consent {'yes' if phone.sms_consent else 'no'}",
                 f"call consent {'yes' if phone.call_consent else 'no'}"]
        flags += [f"opted out of {m.value}" for m in Medium
                  if (phone.number, m) in facts.opted_out]
        flags += _review_flags(facts, phone.number)
        flags += _shared_flags(facts, phone.number)
        if phone.number in facts.invalid_numbers:
            flags.append("INVALID (listed for the data team)")
        lines.append(f"    {mask_number(phone.number)} debtor {phone.type}: {', '.join(flags)}")
    for contact in state.contacts:
        refused = (" (asked not to be called)" if contact.contact_id in facts.refused_contacts
                   else "")
        flags = [f"opted out of {m.value}" for m in Medium
                 if (contact.number, m) in facts.opted_out]
        flags += _review_flags(facts, contact.number)
        flags += _shared_flags(facts, contact.number)
        lines.append(f"    {mask_number(contact.number)} {contact.role} "
                     f"{contact.contact_id}{refused}" + (f": {', '.join(flags)}" if flags else ""))
    return lines


def _review_flags(facts: Facts, number: str) -> list[str]:
    paused = [m.value for m in Medium if (number, m) in facts.under_review]
    if not paused:
        return []
    return [f"revocation_review on {', '.join(paused)}: a reply might revoke consent; paused "
            f"until a person decides (contact.opt_out confirms, a later contact.opt_in lifts)"]


def _shared_flags(facts: Facts, number: str) -> list[str]:
    """Other accounts on the number: their last attempt and their next planned one."""
    used = [a.at for a in facts.number_history if a.number == number]
    planned = sorted(c.planned_at for c in facts.number_claims if c.number == number)
    flags = []
    if used:
        flags.append(f"shared: another account's last attempt {utc_rfc3339(used[-1])}")
    if planned:
        flags.append(f"shared: {len(planned)} other account(s) planned on it, the next "
                     f"{utc_rfc3339(planned[0])}")
    return flags


def _counter_lines(facts: Facts, applied: AppliedLimits | None, now: datetime) -> list[str]:
    lines = ["  counters (last 7 days, per person):"]
    people = [("debtor", Role.DEBTOR)] + [(c.contact_id, Role(c.role))
                                          for c in facts.state.contacts]
    for person, role in people:
        values = counters(Target(role, person, "", None, Medium.CALL), facts.history,
                          facts.home_zone, now)
        lines.append(f"    {person}: " + ", ".join(f"{k} {v}" for k, v in values.items()))
    unreachable = ("-" if applied is None
                   else "yes" if is_unreachable(facts, applied.limits) else "no")
    lines.append(f"  debtor unreachable (profile test): {unreachable}")
    recent = facts.history[-RECENT_ATTEMPTS:]
    lines.append(f"  recent attempts ({len(recent)} of {len(facts.history)} in "
                 f"{HISTORY_DAYS} days):")
    lines += [f"    {utc_rfc3339(a.at)} {a.role.value} {a.medium.value} {mask_number(a.number)} "
              f"window {a.window or '-'}: {a.outcome.value if a.outcome else 'in flight'}"
              for a in recent]
    return lines


def _reason_line(r: Refusal) -> str:
    retry = f" (could change {utc_rfc3339(r.retry_at)})" if r.retry_at else ""
    return f"  - {r.reason}: {r.detail}{retry}"


def attempt_line(plan: PlannedAttempt) -> str:
    """A planned attempt in one line: when (UTC), medium, role, masked number, stage, window."""
    t = plan.target
    return (f"{utc_rfc3339(plan.at)}: {t.medium.value} to {t.role.value} "
            f"{mask_number(t.number)} ({t.number_type or 'contact'}), stage {plan.stage}, "
            f"window {plan.window}, template {plan.template}")


def _plan_lines(plan: Plan, facts: Facts, config: LoadedConfig, limits: Limits | None,
                now: datetime) -> list[str]:
    if isinstance(plan, PlannedAttempt):
        t = plan.target
        lines = [f"  {attempt_line(plan)}", f"  rule: {plan.rule}"]
        if plan.estimate is not None:
            lines.append(f"  why this time: estimated answer chance {plan.estimate:.1%}, the "
                         f"best of the first day with a lawful slot: {plan.basis}")
        lines += [f"    {zone}: {text}"
                  for zone, text in local_times(facts.zones, plan.at).items()]
        # Other accounts on the number can push an attempt days away: say so.
        shared = [] if limits is None else number_refusals(
            t, facts, limits, budget_for(config.schedule, plan.stage, limits), now)
        if shared and plan.at > now:
            lines.append("  not sooner, because of other accounts on the number:")
            lines += [_reason_line(r) for r in shared]
        return lines
    lines = ["  none. Every reason:"]
    lines += [_reason_line(r) for r in plan.reasons]
    if plan.retry_at:
        lines.append(f"  the engine looks again at {utc_rfc3339(plan.retry_at)}")
    if limits is None:
        return lines
    # A turn further ahead than the planner looks shows as whatever refused its last day.
    budget = Budget(limits.attempts_per_day, limits.min_gap_minutes)
    debtor = facts.state.debtor
    for phone in debtor.phones if debtor else []:
        target = Target(Role.DEBTOR, "debtor", phone.number, phone.type, Medium.CALL)
        shared = number_refusals(target, facts, limits, budget, now)
        if shared:
            lines.append(f"  other accounts on {mask_number(phone.number)}:")
            lines += [_reason_line(r) for r in shared]
    return lines


class ExplainStore(ContextStore, AnswerStore, Protocol):
    """What `explain` reads: the account's context and the answer model in force."""


async def explain(store: ExplainStore, config: LoadedConfig, account_id: str,
                  now: datetime) -> tuple[str, bool]:
    """The explanation as text, and whether the account exists."""
    contexts = await store.contexts([account_id], now - timedelta(days=HISTORY_DAYS),
                                    number_since=now - number_lookback(policy_of(config)))
    context = contexts.get(account_id)
    if context is None:
        return f"no account {account_id!r} in {config.store_location}\n", False
    facts = facts_for(context)
    applied = limits_for(config.regions, facts.holiday_region)
    plan: Plan
    if applied is None:
        plan = refuse_account(facts, StoredPlan(None), no_profile(facts.holiday_region, now),
                              now=now, policy_digest=None).plan
    else:
        model = await stored_model(store, config.settings.planner)
        plan = plan_next(facts, config.schedule, applied.limits, now, model)
    lines = [f"account {account_id} as of {utc_rfc3339(now)}",
             *_state_lines(facts, config, applied, now), *_number_lines(facts),
             *_counter_lines(facts, applied, now), "next attempt:",
             *_plan_lines(plan, facts, config, applied.limits if applied else None, now)]
    stored = plan_from_json(context.plan_json)
    if isinstance(stored.plan, PlannedAttempt) and stored.plan != plan:
        lines.append(f"  (the engine's stored plan, made earlier, which `agenda` lists: "
                     f"{attempt_line(stored.plan)}; rule: {stored.plan.rule}; it is decided "
                     f"again when due)")
    return "\n".join(lines) + "\n", True
