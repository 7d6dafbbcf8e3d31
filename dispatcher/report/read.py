"""Reading the audit records a compliance report needs, in one pass over the stored log.

The window's own records are exactly what `audit export --since --until` prints. Rules that look
back need more: records from a lookback before `since` (the 7-day caps and the cool-down), and
from the whole log the few records that stand until revoked (opt-outs, holds, resolutions, and
every third-party call, which is limited per account for ever). Outcomes written up to a day
after `until` are read too, so that an attempt near the end has its status.
"""

from __future__ import annotations

from collections.abc import AsyncIterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from dispatcher.compliance.policy import Limits
from dispatcher.domain.clock import utc_rfc3339

LATE_OUTCOMES = timedelta(days=1)
# Event types whose records the standing orders are folded from.
_STANDING_EVENTS = frozenset({"account.overdue", "account.resolved", "account.hold",
                              "account.release", "contact.opt_out", "contact.opt_in"})
_STANDING_KINDS = frozenset({"hold", "opt_out"})


def lookback(limits: Limits) -> timedelta:
    """How far before `since` records are read in full: a week for the 7-day counts, or the
    cool-down after a conversation, whichever is longer, plus a day for zone offsets."""
    return timedelta(days=max(7, limits.conversation_cooldown_days) + 1)


@dataclass(frozen=True)
class ReportLog:
    """The records a report is computed from."""

    since: datetime
    until: datetime
    window: list[dict[str, Any]]  # written in [since, until), seq order: the export's records
    records: list[dict[str, Any]]  # everything kept, seq order (a superset of `window`)


def _standing(record: dict[str, Any]) -> bool:
    kind = record.get("kind")
    if kind == "event":
        return record.get("event_type") in _STANDING_EVENTS
    if kind in ("attempt", "outcome"):
        return record.get("party") == "third_party"
    return kind in _STANDING_KINDS


def _kept(record: dict[str, Any], at: str, context: str, end: str) -> bool:
    """Whether a record outside the window is needed: in the lookback, a late outcome, or a
    standing order from before the lookback."""
    if at >= end:
        return record.get("kind") == "outcome"
    return at >= context or _standing(record)


async def read_log(rows: AsyncIterable[dict[str, Any]], since: datetime, until: datetime,
                   back: timedelta) -> ReportLog:
    """Sort the stored records (seq order, as `audit_records` yields them) into a ReportLog."""
    start, end = utc_rfc3339(since), utc_rfc3339(until)
    context = utc_rfc3339(since - back)
    window: list[dict[str, Any]] = []
    records: list[dict[str, Any]] = []
    async for record in rows:
        # Stored `at` values share one fixed-width UTC format: text order is time order.
        at = str(record["at"])
        if start <= at < end:
            window.append(record)
            records.append(record)
        elif _kept(record, at, context, end):
            records.append(record)
    return ReportLog(since, until, window, records)


def read_until(until: datetime) -> datetime:
    """The end of what the store is asked for: `until` plus late outcomes."""
    return until + LATE_OUTCOMES
