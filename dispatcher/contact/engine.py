"""The contact engine: due accounts in, decisions recorded, attempts sent, outcomes fed back.

The same engine runs in the daemon (wall clock, its channel) and in `simulate` (virtual clock,
sandbox). An attempt is recorded, with its audit record, before the channel is called; its
outcome is recorded once, and the account is planned again at once.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple, Protocol, runtime_checkable
from zoneinfo import ZoneInfo

from channels.base import Channel, ChannelError, SendFailed
from dispatcher.compliance.gate import (
    HOLIDAY,
    NO_CONTACT_DAY,
    Facts,
    Refusal,
    counters,
    time_refusals,
    zones_for,
)
from dispatcher.compliance.profiles import limits_for, no_profile
from dispatcher.compliance.quiet_hours import AMBIGUOUS, QUIET_HOURS
from dispatcher.contact.account_facts import (
    ContactPolicy,
    attempt_id_for,
    facts_for,
    local_times,
    message_values,
    with_outcome,
)
from dispatcher.contact.decide import (
    Decision,
    StoredPlan,
    Suppression,
    budget_for,
    decide_for_region,
    plan_from_json,
    plan_to_json,
)
from dispatcher.contact.learning import Learning
from dispatcher.contact.operator_log import (
    ONE_AT_A_TIME,
    SEND_BUDGET,
    say_decision,
    say_deferred,
    say_outcomes,
)
from dispatcher.contact.reconcile import reconcile, settle_open_attempts
from dispatcher.contact.replan import replan_all
from dispatcher.contact.shared_numbers import NumberLedger, turn_order
from dispatcher.contact.templates import content_hash, message_body
from dispatcher.domain.clock import Clock, utc_rfc3339
from dispatcher.domain.contact import ROLE_BY_VALUE, Delivery, Medium, Outcome, Role, member_of
from dispatcher.domain.phones import mask_number, mask_numbers_in
from dispatcher.ingest.classify import describe
from dispatcher.queue.items import NewItem
from dispatcher.queue.unreachable import unreachable_item
from dispatcher.store import AccountContext, AttemptRow, ContactStore, OutcomeRow, PlanRow
from schedules.answer_model import AnswerModel, hour_of_week
from schedules.planner import PlannedAttempt

log = logging.getLogger("dispatcher.engine")

HISTORY_DAYS = 35
# Other accounts' attempts on an account's numbers are read this far back (or the longest gap
# between attempts the policy sets, if longer): far enough for today's count in any zone.
NUMBER_HISTORY = timedelta(days=2)
BATCH = 500
# One sweep sends no more than its channel's rate allows in this time: an attempt is sent within
# seconds of the decision that checked its hours, never minutes later behind a queue.
SEND_WINDOW_SECONDS = 20
NEXT_TRY = timedelta(minutes=1)
# An account the engine cannot decide for (a bug, or data stored under older rules) is looked at
# again this much later: each look is audited, so the log grows by at most 24 records a day.
UNDECIDABLE_RETRY = timedelta(hours=1)
INTERNAL_ERROR = "internal_error"
# Bound once: a member looked up on its enum class costs a metaclass call each time.
_NOT_CONTACTED = (Outcome.NOT_SENT, Outcome.UNKNOWN)


@runtime_checkable
class RateLimited(Protocol):
    """A channel that sends at most so many per second (per medium)."""

    def sends_per_second(self, medium: Medium) -> float:
        """The channel's configured rate for `medium`."""
        ...


class _Sent(NamedTuple):
    delivery: Delivery
    planned: PlannedAttempt
    facts: Facts
    stored: StoredPlan


@dataclass
class SweepStats:
    """What one sweep did."""

    decided: int = 0
    sent: int = 0
    suppressed: int = 0
    outcomes: int = 0


class Engine:
    """Decides for due accounts and carries out the decisions."""

    def __init__(self, store: ContactStore, channel: Channel, policy: ContactPolicy, *,
                 on_unsubscribed: Callable[[str, datetime], Awaitable[None]] | None = None,
                 clock: Clock | None = None,
                 on_sent: Callable[[Medium, float], None] | None = None) -> None:
        self.store = store
        self.channel = channel
        self.policy = policy
        # With a clock (the daemon), the hours are checked again at the moment of sending.
        self.clock = clock
        self.on_sent = on_sent  # how long the provider took to take each delivery
        # The provider said the recipient unsubscribed (Twilio 21610): record the opt-out.
        self.on_unsubscribed = on_unsubscribed
        self.learning = Learning(store, policy.planner)
        self.model = AnswerModel.prior()
        # Claims a failed sweep could not give back (the store was away meanwhile).
        self._unreleased: list[str] = []

    async def sweep(self, now: datetime) -> SweepStats:
        """Decide for every account due at `now`, until none is left (none at all while another
        daemon sharing the store learns the answer model in force at `now`)."""
        stats = SweepStats()
        if self._unreleased:
            # Held under their lease they would wait minutes for anyone to decide them.
            await self.store.release_claims(self._unreleased)
            self._unreleased = []
        learned = await self.learning.current(now)
        if learned is None:
            return stats  # another daemon is learning the model this sweep should decide by
        self.model, changed = learned
        if changed:
            # Every stored plan was ranked by the model just replaced: decide them all again.
            await replan_all(self.store, now, why="the answer model changed")
        while ids := await self.store.claim_due(now, BATCH):
            try:
                contexts = await self.store.contexts(
                    ids, now - timedelta(days=HISTORY_DAYS),
                    number_since=now - number_lookback(self.policy))
                await self._decide_batch(contexts, now, stats)
            except BaseException:
                # Nothing of the batch was committed: let the next sweep take it at once.
                self._unreleased = ids
                await self.store.release_claims(ids)
                self._unreleased = []
                raise
            if len(ids) < BATCH:  # a short batch was all that was due
                break
        return stats

    async def _decide_batch(self, contexts: Mapping[str, AccountContext], now: datetime,
                            stats: SweepStats) -> None:
        attempts: list[AttemptRow] = []
        plans: list[PlanRow] = []
        audit: list[dict[str, Any]] = []
        sent: list[_Sent] = []
        queue: list[NewItem] = []
        budget = self._send_budget()
        ledger = NumberLedger(contexts)
        for account_id in turn_order(contexts):
            context = contexts[account_id]
            unreachable = unreachable_item(context)
            if unreachable is not None:
                queue.append(unreachable)
            try:
                base = facts_for(context)
                facts = ledger.facts(base)
                stored = plan_from_json(context.plan_json)
                attempt_id = attempt_id_for(account_id, now)
                decision = self._decide(facts, stored, attempt_id, now=now, audit=audit,
                                        stats=stats)
            except Exception as error:  # one account must not hold up every other one
                audit.append(self._set_aside(account_id, error, now, stats))
                plans.append(PlanRow(account_id, context.plan_json or plan_to_json(
                    StoredPlan(None)), now + UNDECIDABLE_RETRY))
                continue
            if decision.send is not None and budget[decision.send.target.medium] <= 0:
                # Over this sweep's sending budget: the same attempt, decided again a tick later.
                deferred = replace(decision.send, at=now + NEXT_TRY)
                later = StoredPlan(deferred, stored.promise_broken, decision.policy_digest)
                ledger.planned(facts, deferred)
                plans.append(PlanRow(account_id, plan_to_json(later), now + NEXT_TRY))
                say_deferred(account_id, deferred, now + NEXT_TRY, SEND_BUDGET)
                continue
            if decision.send is not None:
                budget[decision.send.target.medium] -= 1
                row, record, delivery = self._attempt(facts, decision.send, attempt_id, now)
                attempts.append(row)
                audit.append(record)
                ledger.attempted(facts, decision.send, attempt_id, now)
                sent.append(_Sent(delivery, decision.send, base, decision.stored(stored)))
            else:
                ledger.planned(facts, decision.plan)
            plans.append(self._plan_row(account_id, decision, stored, now))
        sealed = await self.store.record_decisions(
            attempts=attempts, plans=plans, audit=audit, now=now,
            config_version=self.policy.config_version, queue=queue)
        # The store leaves out the decisions of accounts whose claim another daemon took (this
        # one outlived its lease): send only the attempts it recorded.
        recorded = {r.get("attempt_id") for r in sealed if r.get("kind") == "attempt"}
        await self._send([s for s in sent if s.delivery.attempt_id in recorded], now, stats,
                         ledger)

    @staticmethod
    def _set_aside(account_id: str, error: Exception, now: datetime,
                   stats: SweepStats) -> dict[str, Any]:
        """The audit record of an account left undecided; nothing is sent to it meanwhile."""
        stats.suppressed += 1
        detail = mask_numbers_in(describe(error))
        log.error("account %s set aside until %s: %s", account_id,
                  utc_rfc3339(now + UNDECIDABLE_RETRY), detail)
        return {"kind": "suppressed", "account_id": account_id, "reason": INTERNAL_ERROR,
                "reasons": [INTERNAL_ERROR], "detail": detail}

    def _digest(self) -> str:
        """What plans are made under: the contact policy and the answer model in force."""
        return f"{self.policy.digest}:{self.model.version}"

    def _send_budget(self) -> dict[Medium, float]:
        if not isinstance(self.channel, RateLimited):
            return {m: float("inf") for m in Medium}
        return {m: max(1.0, self.channel.sends_per_second(m) * SEND_WINDOW_SECONDS)
                for m in Medium}

    def _decide(self, facts: Facts, stored: StoredPlan, attempt_id: str, *, now: datetime,
                audit: list[dict[str, Any]], stats: SweepStats) -> Decision:
        """Decide for one account; its suppressions and broken promise go into `audit`."""
        decision = decide_for_region(self.policy.regions, facts, stored, self.policy.schedule,
                                     now=now, attempt_id=attempt_id,
                                     policy_digest=self._digest(), model=self.model)
        stats.decided += 1
        if decision.suppressed:
            audit.extend(self._suppressed_record(facts, s, now) for s in decision.suppressed)
            stats.suppressed += len(decision.suppressed)
        if decision.broken_promise is not None:
            audit.append({"kind": "promise", "account_id": facts.state.account_id,
                          "status": "broken", "event_id": decision.broken_promise.event_id,
                          "due_on": decision.broken_promise.due_on.isoformat()})
        return decision

    async def _send(self, sent: list[_Sent], now: datetime, stats: SweepStats,
                    ledger: NumberLedger) -> None:
        """Call the channel for each recorded attempt; answers given at once are applied and
        their accounts planned again here, seeing what the batch decided on their numbers."""
        outcomes: list[OutcomeRow] = []
        plans: list[PlanRow] = []
        audit: list[dict[str, Any]] = []
        queue: list[NewItem] = []
        for delivery, planned, facts, stored in sent:
            late = self._refused_at_sending(planned, facts)
            if late is not None:
                audit.append(self._suppressed_record(facts, Suppression(late, planned),
                                                     self._now()))
                outcome: OutcomeRow | None = OutcomeRow(
                    delivery.attempt_id, Outcome.NOT_SENT, now, None,
                    f"refused at the moment of sending: {late[0].reason}")
            else:
                outcome = await self._deliver(delivery, now, stats)
            if outcome is None:
                continue  # the provider took it: its status callback brings the outcome
            outcomes.append(outcome)
            account_id = facts.state.account_id
            if outcome.outcome in _NOT_CONTACTED:
                # Not a contact attempt, or one a person must look at: plan afresh later.
                plans.append(PlanRow(account_id, plan_to_json(stored),
                                     now + max(NEXT_TRY, timedelta(seconds=outcome.wait))))
                continue
            try:
                after = ledger.facts(with_outcome(facts, planned, outcome))
                unreachable = unreachable_item(after)
                if unreachable is not None:  # its last usable number just proved invalid
                    queue.append(unreachable)
                # The account's attempt id at `now` is the one just sent (attempt_id_for).
                decision = self._decide(after, stored, delivery.attempt_id, now=now,
                                        audit=audit, stats=stats)
            except Exception as error:  # the outcome is recorded all the same
                audit.append(self._set_aside(account_id, error, now, stats))
                plans.append(PlanRow(account_id, plan_to_json(stored), now + UNDECIDABLE_RETRY))
                continue
            if decision.send is not None:
                # Never two attempts on one account in one instant: decide again a tick later.
                plans.append(PlanRow(account_id, plan_to_json(stored), now + NEXT_TRY))
                say_deferred(account_id, decision.send, now + NEXT_TRY, ONE_AT_A_TIME)
            else:
                ledger.planned(after, decision.plan)
                plans.append(self._plan_row(account_id, decision, stored, now))
        if outcomes:
            stats.outcomes += len(outcomes)
            say_outcomes(await self.store.record_outcomes(
                outcomes, now=now, config_version=self.policy.config_version,
                audit_for=outcome_record, plans=plans, audit_after=audit, queue=queue))

    def _now(self) -> datetime:
        return self.clock.now() if self.clock is not None else datetime.now(UTC)

    def _refused_at_sending(self, planned: PlannedAttempt,
                            facts: Facts) -> tuple[Refusal, ...] | None:
        """The time rules asked again just before the request leaves: a rate-limited queue
        must not carry an attempt past the end of the allowed hours."""
        if self.clock is None:
            return None
        applied = limits_for(self.policy.regions, facts.holiday_region)
        if applied is None:  # a reload took the region's profile away meanwhile
            return (no_profile(facts.holiday_region, self.clock.now()),)
        limits = applied.limits
        found = time_refusals(planned.target, facts, limits,
                              budget_for(self.policy.schedule, planned.stage, limits),
                              self.clock.now())
        timed = tuple(r for r in found if r.reason in (QUIET_HOURS, AMBIGUOUS, HOLIDAY,
                                                        NO_CONTACT_DAY))
        return timed or None

    async def _deliver(self, delivery: Delivery, now: datetime,
                       stats: SweepStats) -> OutcomeRow | None:
        """Hand one recorded attempt to the channel; the outcome when it is already known."""
        started = time.monotonic()
        try:
            result = await self.channel.send(delivery)
        except SendFailed as failed:
            return await self._failed(delivery, failed.error, now)
        if self.on_sent is not None:
            self.on_sent(delivery.medium, time.monotonic() - started)
        stats.sent += 1
        if log.isEnabledFor(logging.DEBUG):  # the decision and the outcome have lines of their own
            log.debug("provider took %s %s to %s", delivery.attempt_id, delivery.medium.value,
                      mask_number(delivery.to))
        if result.outcome is None:
            return None
        return OutcomeRow(delivery.attempt_id, result.outcome, now, result.provider_sid)

    async def _failed(self, delivery: Delivery, error: ChannelError,
                      now: datetime) -> OutcomeRow | None:
        detail = mask_numbers_in(error.detail)
        log.warning("attempt %s to %s: provider error %s: %s", delivery.attempt_id,
                    mask_number(delivery.to), error.code, detail)
        if error.retryable:
            return OutcomeRow(delivery.attempt_id, Outcome.NOT_SENT, now, None,
                              f"provider error {error.code}: not sent; not a contact attempt",
                              wait=error.retry_after or 0.0)
        if error.reconcile:
            return await reconcile(self.channel, delivery, now)
        if error.unsubscribed and self.on_unsubscribed is not None:
            await self.on_unsubscribed(delivery.to, now)
        return OutcomeRow(delivery.attempt_id, error.outcome or Outcome.FAILED, now, None,
                          f"provider error {error.code}")

    async def record_outcomes(self, outcomes: Sequence[OutcomeRow], now: datetime) -> int:
        """Record outcomes that arrive later (a repeat changes nothing); their accounts are
        planned again at the next sweep."""
        records = await self.store.record_outcomes(
            outcomes, now=now, config_version=self.policy.config_version,
            audit_for=outcome_record)
        say_outcomes(records)
        return len(records)

    async def settle_open_attempts(self, now: datetime, *,
                                   older_than: timedelta | None = None) -> int:
        """Attempts without an outcome, reconciled with the provider (never sent again)."""
        return await settle_open_attempts(self.store, self.channel, self.record_outcomes, now,
                                          older_than=older_than)

    @staticmethod
    def _plan_row(account_id: str, decision: Decision, stored: Any, now: datetime) -> PlanRow:
        say_decision(account_id, decision, now)
        return PlanRow(account_id, plan_to_json(decision.stored(stored)), decision.next_look(now))

    def _attempt(self, facts: Facts, planned: PlannedAttempt, attempt_id: str,
                 now: datetime) -> tuple[AttemptRow, dict[str, Any], Delivery]:
        target = planned.target
        state = facts.state
        applied = limits_for(self.policy.regions, facts.holiday_region)
        template = self.policy.templates.get(planned.template)
        locale = state.debtor.locale if state.debtor else None
        # A call's body is its every part, so the audited hash covers all it could say.
        used_locale, body = message_body(template, locale, self.policy.default_locale,
                                         message_values(self.policy, facts.state,
                                                        facts.home_zone, now))
        row = AttemptRow(attempt_id, state.account_id, target.person, target.role, target.number,
                         target.medium, planned.stage, planned.window, planned.rule,
                         planned.template, now, hour_of_week_at(now, facts.home_zone))
        record = {
            "kind": "attempt", "attempt_id": attempt_id, "account_id": state.account_id,
            "channel": target.medium.value, "party": target.party.value,
            "role": target.role.value, "to": target.number, "number_type": target.number_type,
            "stage": planned.stage, "window": planned.window, "rule": planned.rule,
            "template": planned.template, "template_locale": used_locale,
            "template_hash": content_hash(body),
            "local_times": local_times(zones_for(target, facts), now),
            "counters": counters(target, facts.history, facts.home_zone, now),
            # The region whose limits applied (a state's stricter ones), for re-checking later.
            "region": facts.holiday_region,
            # The profile that governs that region (decided just now, so there is one).
            "profile": applied.profile if applied else None,
        }
        delivery = Delivery(attempt_id, target.medium, target.number, body, planned.template,
                            facts.home_zone or "UTC", now)
        return row, record, delivery

    @staticmethod
    def _suppressed_record(facts: Facts, suppression: Suppression,
                           now: datetime) -> dict[str, Any]:
        record: dict[str, Any] = {
            "kind": "suppressed", "account_id": facts.state.account_id,
            "reason": suppression.reasons[0].reason,
            "reasons": [r.reason for r in suppression.reasons],
            "detail": "; ".join(r.detail for r in suppression.reasons),
            "local_times": local_times(facts.zones, now),
        }
        planned = suppression.planned
        if planned is not None:
            target = planned.target
            record |= {"channel": target.medium.value, "party": target.party.value,
                       "role": target.role.value, "to": target.number, "stage": planned.stage,
                       "window": planned.window, "rule": planned.rule,
                       "planned_at": utc_rfc3339(planned.at)}
        return record


def hour_of_week_at(moment: datetime, zone: str | None) -> int | None:
    """The local hour of the week of `moment` in `zone` (Monday 00h = 0), when the zone is known."""
    if zone is None:
        return None
    return _hour_of_week(moment if moment.tzinfo is UTC else moment.astimezone(UTC), zone)


@functools.lru_cache(maxsize=1 << 12)
def _hour_of_week(instant: datetime, zone: str) -> int:
    # Keyed by a UTC instant (equal local times in one zone may be two instants): a batch's
    # attempts share their `now` and a few zones.
    local = instant.astimezone(ZoneInfo(zone))
    return hour_of_week(local.weekday(), local.hour)


def number_lookback(policy: ContactPolicy) -> timedelta:
    """How far back other accounts' attempts on a number are read: today's in any zone, and
    the longest gap between attempts on one number that a profile, a region or a stage sets."""
    profiles = policy.regions.profiles.values()
    gaps = [*(p.limits.min_gap_minutes for p in profiles),
            *(r.min_gap_minutes for p in profiles for r in p.regional.values()),
            *(s.min_gap_minutes for s in policy.schedule.stages)]
    return max(NUMBER_HISTORY, timedelta(minutes=max(gaps, default=0)))


def outcome_record(row: Mapping[str, Any], outcome: OutcomeRow) -> dict[str, Any]:
    """The audit record of an attempt's outcome."""
    role = member_of(ROLE_BY_VALUE, Role, row["role"])
    record = {"kind": "outcome", "attempt_id": row["attempt_id"],
              "account_id": row["account_id"], "channel": row["medium"],
              "party": "debtor" if role is Role.DEBTOR else "third_party", "role": role.value,
              "to": row["number"], "stage": row["stage"], "status": outcome.outcome.value,
              "provider_sid": outcome.provider_sid}
    if outcome.detail:
        record["detail"] = outcome.detail
    return record
