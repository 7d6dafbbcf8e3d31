"""The engine's lines for an operator: one per decision, one per outcome, at info level.

Each says the account, the masked number, the channel and what came of it, as fields of the
record (`key=value` in text, keys in JSON). Nothing is built while info is off: `simulate`,
which configures no logging, pays one level check per decision.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from dispatcher.contact.account_facts import attempt_id_for
from dispatcher.contact.decide import Decision
from dispatcher.domain.clock import utc_rfc3339
from dispatcher.domain.phones import mask_number
from schedules.planner import NoAttempt, PlannedAttempt

log = logging.getLogger("dispatcher.contact")

SENT = "sent"
SUPPRESSED = "suppressed"
DEFERRED = "deferred"
# Why a decision to send now waits a little: the sweep's sending budget is spent, or the account
# had an attempt in this very instant.
SEND_BUDGET = "send_budget"
ONE_AT_A_TIME = "one_attempt_per_instant"


def _target(planned: PlannedAttempt | None) -> dict[str, Any]:
    if planned is None:
        return {}
    target = planned.target
    return {"party": target.party.value, "channel": target.medium.value,
            "number": mask_number(target.number), "stage": planned.stage, "rule": planned.rule}


def _fields(account_id: str, planned: PlannedAttempt | None, result: str,
            **more: object) -> dict[str, Any]:
    fields = {"account": account_id, **_target(planned), "result": result}
    fields.update((k, v) for k, v in more.items() if v is not None)
    return fields


def _when(moment: datetime | None) -> str | None:
    return utc_rfc3339(moment) if moment is not None else None


def decision_fields(account_id: str, decision: Decision, now: datetime) -> dict[str, Any]:
    """The fields of a decision's line: sent now, suppressed (with the reason codes), or
    deferred until `next` (to a planned attempt, or for the reasons no attempt can be planned)."""
    if decision.send is not None:
        return _fields(account_id, decision.send, SENT,
                       attempt=attempt_id_for(account_id, now))
    plan = decision.plan
    next_at = _when(decision.next_look(now))
    if decision.suppressed:
        first = decision.suppressed[0]
        reasons = [r.reason for s in decision.suppressed for r in s.reasons]
        return _fields(account_id, first.planned, SUPPRESSED,
                       reason=",".join(dict.fromkeys(reasons)), next=next_at)
    if isinstance(plan, NoAttempt):
        return _fields(account_id, None, DEFERRED,
                       reason=",".join(dict.fromkeys(r.reason for r in plan.reasons)),
                       next=next_at)
    return _fields(account_id, plan, DEFERRED, next=next_at)


def say_decision(account_id: str, decision: Decision, now: datetime) -> None:
    """Log one decision for the account (nothing is built while info is off)."""
    if log.isEnabledFor(logging.INFO):
        log.info("decision", extra=decision_fields(account_id, decision, now))


def say_deferred(account_id: str, planned: PlannedAttempt, until: datetime, reason: str) -> None:
    """Log an attempt due now that waits until `until`, and why."""
    if log.isEnabledFor(logging.INFO):
        log.info("decision", extra=_fields(account_id, planned, DEFERRED, reason=reason,
                                           next=_when(until)))


def outcome_fields(record: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of an outcome's line, from its audit record."""
    fields = {"account": record.get("account_id"), "attempt": record.get("attempt_id"),
              "party": record.get("party"), "channel": record.get("channel"),
              "number": mask_number(str(record.get("to") or "")), "stage": record.get("stage"),
              "result": record.get("status")}
    if record.get("detail"):
        fields["detail"] = record["detail"]
    return {k: v for k, v in fields.items() if v is not None}


def say_outcomes(records: Iterable[Mapping[str, Any]]) -> None:
    """Log one line per outcome among committed audit records."""
    if log.isEnabledFor(logging.INFO):
        for record in records:
            if record.get("kind") == "outcome":
                log.info("outcome", extra=outcome_fields(record))
