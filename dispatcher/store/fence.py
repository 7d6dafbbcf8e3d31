"""Fencing a batch of decisions: what a store writes only for accounts still claimed by it.

A daemon that outlived its claim lease (paused, partitioned, queued behind the audit chain's
head) may find its accounts claimed, or already decided, by another daemon when it commits. The
store checks, in the commit's transaction, which of the batch's accounts it still holds; the
decisions of the others are left out whole: no attempt row, no plan, no audit record.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from dispatcher.domain.queue import NewItem
from dispatcher.store.base import AttemptRow, LostClaimObserver, PlanRow

log = logging.getLogger("dispatcher.store")

# Accounts named in the warning; the count says how many there were in all.
NAMED = 10


class Decisions(NamedTuple):
    """One batch's attempts, plans, audit records and work-queue items."""

    attempts: Sequence[AttemptRow]
    plans: Sequence[PlanRow]
    audit: Sequence[Mapping[str, Any]]
    queue: Sequence[NewItem] = ()


def decided_accounts(batch: Decisions) -> set[str]:
    """Every account the batch writes something for."""
    accounts = {a.account_id for a in batch.attempts} | {p.account_id for p in batch.plans}
    accounts.update(r["account_id"] for r in batch.audit if isinstance(r.get("account_id"), str))
    return accounts


def without(batch: Decisions, lost: Collection[str]) -> Decisions:
    """The batch less everything it says about the accounts in `lost`."""
    if not lost:
        return batch
    return Decisions([a for a in batch.attempts if a.account_id not in lost],
                     [p for p in batch.plans if p.account_id not in lost],
                     [r for r in batch.audit if r.get("account_id") not in lost],
                     [q for q in batch.queue if q.account_id not in lost])


def say_lost(lost: Iterable[str], observers: Iterable[LostClaimObserver] = ()) -> None:
    """Warn that the decisions of `lost` accounts were dropped (a bounded list of them), and
    tell the observers (metrics count them)."""
    named = sorted(lost)
    if not named:
        return
    for observe in observers:
        observe(named)
    more = f" and {len(named) - NAMED} more" if len(named) > NAMED else ""
    log.warning("decisions for %d account(s) not committed: the claim lease ran out and another "
                "daemon claimed them: %s%s", len(named), ", ".join(named[:NAMED]), more)
