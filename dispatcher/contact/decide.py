"""One account, one instant: send the planned attempt, suppress it, or plan the next one.

Pure: `decide_for_region(regions, facts, stored, schedule, now)` is what the engine does for
every due account, in the daemon and in `simulate` alike: `decide` under the limits of the
profile that governs the debtor's region, or a `no_profile` refusal where none does. The
stored plan is what the last decision chose; when its time has come the gate is asked again,
because events may have changed everything. A plan made under another contact policy (the
config changed since) is never sent: it is planned afresh under the policy in force.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import orjson

from dispatcher.compliance.gate import (
    NOT_OVERDUE,
    Budget,
    Facts,
    Refusal,
    account_refusals,
    local_day,
    refusals,
)
from dispatcher.compliance.policy import Limits
from dispatcher.compliance.profiles import RegionProfiles, limits_for, no_profile
from dispatcher.domain.accounts import AccountStatus, Promise
from dispatcher.domain.clock import parse_rfc3339, utc_rfc3339
from dispatcher.domain.contact import (
    MEDIUM_BY_VALUE,
    ROLE_BY_VALUE,
    Medium,
    Role,
    Target,
    member_of,
)
from schedules.answer_model import AnswerModel
from schedules.model import PerSchedule, Schedule
from schedules.planner import NoAttempt, Plan, PlannedAttempt, plan_next

# A planned slot missed by more than this (the daemon was down) is planned afresh.
LATE = timedelta(minutes=30)
# After sending, the outcome triggers the next plan; if none comes, the engine looks again then.
OUTCOME_WAIT = timedelta(minutes=10)
AWAITING_OUTCOME = "awaiting_outcome"
_ONE_SECOND = timedelta(seconds=1)


class StoredPlan(NamedTuple):
    """What the previous decision left for this account."""

    # A named tuple, not a frozen dataclass (which costs three times as much to build):
    # every decision reads one and writes one or two.

    plan: Plan | None
    promise_broken: str | None = None  # event id of the promise already recorded as broken
    policy_digest: str | None = None  # the contact policy it was made under (ContactPolicy.digest)


@dataclass(frozen=True)
class Suppression:
    """A refusal to audit: the attempt it stopped (if one was planned) and every reason."""

    reasons: tuple[Refusal, ...]
    planned: PlannedAttempt | None


class Decision(NamedTuple):
    """What to do now, and what to remember for next time."""

    # A named tuple, not a frozen dataclass (which costs three times as much to build):
    # every due account and every outcome gets one.

    send: PlannedAttempt | None
    plan: Plan
    suppressed: tuple[Suppression, ...]
    broken_promise: Promise | None
    policy_digest: str | None

    def stored(self, previous: StoredPlan) -> StoredPlan:
        """The plan to keep for the next decision."""
        broken = self.broken_promise.event_id if self.broken_promise else previous.promise_broken
        return StoredPlan(self.plan, broken, self.policy_digest)

    def next_look(self, now: datetime) -> datetime | None:
        """When the engine should decide for this account again."""
        at = self.plan.at if isinstance(self.plan, PlannedAttempt) else self.plan.retry_at
        if at is None:
            return None
        soonest = now + _ONE_SECOND
        return soonest if soonest > at else at


def budget_for(schedule: Schedule, stage_name: str, limits: Limits) -> Budget:
    """The stage's daily count and gap; the profile's alone when the stage is gone."""
    budget = _stage_budgets(schedule).get(stage_name)
    if budget is None:
        return Budget(limits.attempts_per_day, limits.min_gap_minutes)
    return budget


_BUDGETS: PerSchedule[str, Budget] = PerSchedule()


def _stage_budgets(schedule: Schedule) -> dict[str, Budget]:
    """Each stage's `Budget` by name (the first of a name), kept per schedule: every plan sent
    is checked against its stage's."""
    budgets = _BUDGETS.of(schedule)
    if not budgets:  # a schedule has at least one stage
        for stage in schedule.stages:
            budgets.setdefault(stage.name, Budget(stage.attempts_per_day, stage.min_gap_minutes))
    return budgets


def _broken_promise(facts: Facts, stored: StoredPlan, limits: Limits,
                    now: datetime) -> Promise | None:
    promise = facts.state.promise
    if promise is None or facts.state.status is not AccountStatus.OPEN:
        return None
    resumes = promise.due_on + timedelta(days=limits.promise_grace_days)
    if local_day(now, facts.home_zone) < resumes or stored.promise_broken == promise.event_id:
        return None
    return promise


def _codes(plan: Plan | None) -> tuple[str, ...] | None:
    return tuple(r.reason for r in plan.reasons) if isinstance(plan, NoAttempt) else None


def decide(facts: Facts, stored: StoredPlan, schedule: Schedule, limits: Limits, *,
           now: datetime, attempt_id: str, policy_digest: str | None,
           model: AnswerModel | None = None) -> Decision:
    """The decision for one due account at `now` under the contact policy `policy_digest`
    names (`schedule` and `limits` are part of it); `attempt_id` names an attempt sent now;
    `model` ranks the slots of a new plan."""
    suppressed: list[Suppression] = []
    send: PlannedAttempt | None = None
    previous = stored.plan
    # Only a plan made under this policy is sent as planned: one made under another was chosen
    # by windows or limits no longer in force, so it is planned again like a plan not yet due.
    current = stored.policy_digest == policy_digest
    if isinstance(previous, PlannedAttempt) and previous.at <= now and current:
        refused = refusals(previous.target, facts, limits,
                           budget_for(schedule, previous.stage, limits), now)
        if refused:
            suppressed.append(Suppression(tuple(refused), previous))
        elif now - previous.at <= LATE:
            send = previous.moved(now)
    plan: Plan | None = None
    if send is None:
        plan = plan_next(facts, schedule, limits, now, model)
        if isinstance(plan, PlannedAttempt) and plan.at <= now:
            send = plan
    if send is not None:
        # The outcome plans the next attempt; without one, look again later, counting this one.
        wait = Refusal(AWAITING_OUTCOME, f"attempt {attempt_id} sent; the next is planned when "
                                         f"its outcome arrives")
        return Decision(send, NoAttempt((wait,), now + OUTCOME_WAIT), tuple(suppressed),
                        _broken_promise(facts, stored, limits, now), policy_digest)
    assert plan is not None
    if isinstance(plan, NoAttempt) and not suppressed:
        codes = _codes(plan)
        cancelled = previous if isinstance(previous, PlannedAttempt) else None
        if (cancelled or codes != _codes(previous)) and codes != (NOT_OVERDUE,):
            suppressed.append(Suppression(plan.reasons, cancelled))
    return Decision(send, plan, tuple(suppressed), _broken_promise(facts, stored, limits, now),
                    policy_digest)


def decide_for_region(regions: RegionProfiles, facts: Facts, stored: StoredPlan,
                      schedule: Schedule, *, now: datetime, attempt_id: str,
                      policy_digest: str | None, model: AnswerModel | None = None) -> Decision:
    """`decide` under the profile of the debtor's region; without one, nothing is sent."""
    applied = limits_for(regions, facts.holiday_region)
    if applied is None:
        return refuse_account(facts, stored, no_profile(facts.holiday_region, now), now=now,
                              policy_digest=policy_digest)
    return decide(facts, stored, schedule, applied.limits, now=now, attempt_id=attempt_id,
                  policy_digest=policy_digest, model=model)


def refuse_account(facts: Facts, stored: StoredPlan, refusal: Refusal, *,
                   now: datetime, policy_digest: str | None) -> Decision:
    """The decision for an open account that nothing may reach, whatever the time or number
    (`refusal`): no attempt, a planned one cancelled, audited once, as a hold is."""
    if facts.state.status is AccountStatus.OPEN:
        reasons: tuple[Refusal, ...] = (refusal,)
    else:
        # Resolved or not yet overdue: its status says why; no limit is read for it.
        reasons = tuple(account_refusals(facts, Limits(), now))
    plan = NoAttempt(reasons, min((r.retry_at for r in reasons if r.retry_at), default=None))
    previous = stored.plan
    cancelled = previous if isinstance(previous, PlannedAttempt) else None
    codes = _codes(plan)
    suppressed: tuple[Suppression, ...] = ()
    if (cancelled or codes != _codes(previous)) and codes != (NOT_OVERDUE,):
        suppressed = (Suppression(reasons, cancelled),)
    return Decision(None, plan, suppressed, None, policy_digest)


# -- the stored plan as JSON ---------------------------------------------------------------------

def _target_json(target: Target) -> dict[str, Any]:
    # A StrEnum member is written as its value.
    return {"role": target.role, "person": target.person, "number": target.number,
            "number_type": target.number_type, "medium": target.medium}


def _refusal_json(refusal: Refusal) -> dict[str, Any]:
    return {"reason": refusal.reason, "detail": refusal.detail,
            "retry_at": utc_rfc3339(refusal.retry_at) if refusal.retry_at else None}


def plan_to_json(stored: StoredPlan) -> str:
    """Serialise a stored plan for the accounts table (explain reads it too)."""
    plan = stored.plan
    body: dict[str, Any]
    if isinstance(plan, PlannedAttempt):
        body = {"promise_broken": stored.promise_broken, "policy_digest": stored.policy_digest,
                "kind": "attempt", "at": utc_rfc3339(plan.at),
                "target": _target_json(plan.target), "stage": plan.stage,
                "window": plan.window, "rule": plan.rule, "template": plan.template}
    elif isinstance(plan, NoAttempt):
        body = {"promise_broken": stored.promise_broken, "policy_digest": stored.policy_digest,
                "kind": "none", "reasons": [_refusal_json(r) for r in plan.reasons],
                "retry_at": utc_rfc3339(plan.retry_at) if plan.retry_at else None}
    else:
        body = {"promise_broken": stored.promise_broken, "policy_digest": stored.policy_digest}
    return orjson.dumps(body, option=orjson.OPT_SORT_KEYS).decode()


def plan_from_json(text: str | None) -> StoredPlan:
    """Read a stored plan back; an absent one is an empty plan."""
    if not text:
        return StoredPlan(None)
    body = orjson.loads(text)
    plan: Plan | None = None
    kind = body.get("kind")
    if kind == "attempt":
        t = body["target"]
        target = Target(member_of(ROLE_BY_VALUE, Role, t["role"]), t["person"], t["number"],
                        t["number_type"], member_of(MEDIUM_BY_VALUE, Medium, t["medium"]))
        plan = PlannedAttempt(parse_rfc3339(body["at"]), target, body["stage"], body["window"],
                              body["rule"], body["template"])
    elif kind == "none":
        reasons = tuple(Refusal(r["reason"], r["detail"],
                                parse_rfc3339(r["retry_at"]) if r["retry_at"] else None)
                        for r in body["reasons"])
        plan = NoAttempt(reasons, parse_rfc3339(body["retry_at"]) if body["retry_at"] else None)
    return StoredPlan(plan, body.get("promise_broken"), body.get("policy_digest"))
