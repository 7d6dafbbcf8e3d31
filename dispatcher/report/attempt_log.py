"""The compliance report's view of audit records: attempts joined with their outcomes.

Only the audit records themselves are read, never the engine's tables, so that the report is a
second opinion on what the engine did.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from dispatcher.domain.clock import parse_rfc3339

Record = Mapping[str, Any]

# Calls that never connected: not a call toward the 7-day cap (Reg F 1006.14(b)(3)); written out
# here rather than imported, so that a change in the engine's list shows up as a difference.
NOT_CONNECTED = frozenset({"busy", "failed", "canceled", "invalid-number"})
# The provider never took the attempt: it reached nobody and no limit counts it.
NOT_SENT = "not-sent"
CONVERSATION = "completed"


@dataclass(frozen=True)
class Attempt:
    """One `attempt` record with the status of its `outcome` record (None while unknown)."""

    seq: int
    at: datetime
    account_id: str
    role: str
    party: str
    to: str
    channel: str
    template: str | None
    number_type: str | None
    local_times: Mapping[str, str]
    status: str | None
    region: str | None = None  # whose limits applied, as the engine recorded it

    @property
    def person(self) -> str:
        """Whom the attempt reached: the debtor (every number) or a contact (by number)."""
        return "debtor" if self.role == "debtor" else f"contact:{self.to}"

    @property
    def sent(self) -> bool:
        """False when the provider never took it: no contact at all."""
        return self.status != NOT_SENT

    @property
    def counts_as_call(self) -> bool:
        """A call toward the 7-day cap: answered, voicemail, rang out, or status unknown."""
        return self.channel == "call" and self.sent and self.status not in NOT_CONNECTED

    @property
    def is_conversation(self) -> bool:
        """A call a person answered."""
        return self.channel == "call" and self.status == CONVERSATION

    @property
    def zones(self) -> tuple[str, ...]:
        """The zones the engine said it considered (UTC when it named none)."""
        return tuple(self.local_times) or ("UTC",)


def at_of(record: Record) -> datetime:
    """When the record was written (UTC)."""
    return _parse(str(record["at"]))


@functools.lru_cache(maxsize=1 << 14)
def _parse(text: str) -> datetime:
    return parse_rfc3339(text)


@functools.lru_cache(maxsize=1 << 10)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def local(moment: datetime, zone: str) -> datetime:
    """`moment` as a wall-clock time in `zone`."""
    return moment.astimezone(UTC if zone == "UTC" else _zone(zone))


def local_dates(moment: datetime, zones: Iterable[str]) -> tuple[date, ...]:
    """The calendar date of `moment` in each zone."""
    return tuple(local(moment, z).date() for z in zones)


def outcome_statuses(records: Iterable[Record]) -> dict[str, str]:
    """attempt_id -> status of its outcome record."""
    return {str(r["attempt_id"]): str(r["status"]) for r in records
            if r.get("kind") == "outcome" and r.get("attempt_id") and r.get("status")}


def attempts_of(records: Iterable[Record], statuses: Mapping[str, str]) -> list[Attempt]:
    """Every `attempt` record, in seq order, with its outcome's status."""
    found = []
    for r in records:
        if r.get("kind") != "attempt":
            continue
        attempt_id = str(r.get("attempt_id") or "")
        found.append(Attempt(
            seq=int(r["seq"]), at=at_of(r), account_id=str(r.get("account_id") or ""),
            role=str(r.get("role") or r.get("party") or "debtor"),
            party=str(r.get("party") or "debtor"), to=str(r.get("to") or ""),
            channel=str(r.get("channel") or ""), template=r.get("template"),
            number_type=r.get("number_type"), local_times=dict(r.get("local_times") or {}),
            status=statuses.get(attempt_id), region=r.get("region")))
    return sorted(found, key=lambda a: a.seq)
