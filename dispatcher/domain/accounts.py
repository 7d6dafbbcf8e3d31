"""Account state as a pure fold over its events, so that out-of-order delivery cannot change it."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from dispatcher.domain.events import (
    Contact,
    Debtor,
    Event,
    HoldData,
    HoldReason,
    OverdueData,
    PromiseData,
    ReleaseData,
    ResolvedData,
    ResolvedReason,
    UpdatedData,
)


class AccountStatus(StrEnum):
    """Lifecycle of an account as the events describe it."""

    UNKNOWN = "unknown"  # events arrived, but no account.overdue yet
    OPEN = "open"
    RESOLVED = "resolved"


class Hold(BaseModel):
    """A hard hold in force: no contact on any channel until released or `until`."""

    model_config = ConfigDict(frozen=True)

    reason: HoldReason
    until: date | None
    placed_at: datetime
    event_id: str


class Promise(BaseModel):
    """A promise to pay; contact pauses until `due_on` plus the profile's grace."""

    model_config = ConfigDict(frozen=True)

    due_on: date
    amount: str | None
    made_at: datetime
    event_id: str


class AccountState(BaseModel):
    """Everything the events say about one account, as of `last_occurred_at`."""

    model_config = ConfigDict(frozen=True)

    account_id: str
    status: AccountStatus = AccountStatus.UNKNOWN
    days_past_due: int | None = None
    days_past_due_as_of: datetime | None = None
    amount_due: str | None = None
    currency: str | None = None
    debtor: Debtor | None = None
    contacts: tuple[Contact, ...] = ()
    resolved_reason: ResolvedReason | None = None
    resolved_at: datetime | None = None
    holds: tuple[Hold, ...] = ()
    promise: Promise | None = None
    last_occurred_at: datetime | None = None
    last_event_id: str | None = None
    event_count: int = Field(default=0, ge=0)


def event_order(event: Event) -> tuple[datetime, str]:
    """The order in which events take effect: `occurred_at`, then `event_id` to break ties."""
    return (event.occurred_at, event.event_id)


def is_in_order(state: AccountState, events: Iterable[Event]) -> bool:
    """True when none of `events` is older than what `state` already reflects."""
    if state.last_occurred_at is None or state.last_event_id is None:
        return True
    last = (state.last_occurred_at, state.last_event_id)
    return all(event_order(e) > last for e in events)


_OVERDUE_FIELDS = frozenset(OverdueData.model_fields)


def _with_data(state: AccountState, data: OverdueData | UpdatedData, when: datetime,
               fields: frozenset[str] | set[str]) -> dict[str, object]:
    changes: dict[str, object] = {}
    if "days_past_due" in fields and data.days_past_due is not None:
        changes["days_past_due"] = data.days_past_due
        changes["days_past_due_as_of"] = when
    if "amount_due" in fields and data.amount_due is not None:
        changes["amount_due"] = data.amount_due
    if "currency" in fields and data.currency is not None:
        changes["currency"] = data.currency
    if "debtor" in fields and data.debtor is not None:
        changes["debtor"] = data.debtor
    if "contacts" in fields and data.contacts is not None:
        changes["contacts"] = tuple(data.contacts)
    return changes


def apply_event(state: AccountState, event: Event) -> AccountState:
    """Return the state after `event`; events must be applied in `event_order`."""
    data = event.data
    when = event.occurred_at
    changes: dict[str, object] = {
        "last_occurred_at": when,
        "last_event_id": event.event_id,
        "event_count": state.event_count + 1,
    }
    if isinstance(data, OverdueData):
        changes |= _with_data(state, data, when, _OVERDUE_FIELDS)
        # A newer delinquency reopens a resolved account: it is a new debt cycle.
        changes |= {"status": AccountStatus.OPEN, "resolved_reason": None, "resolved_at": None}
        if state.status is AccountStatus.RESOLVED:
            changes["promise"] = None
    elif isinstance(data, UpdatedData):
        changes |= _with_data(state, data, when, data.model_fields_set)
    elif isinstance(data, ResolvedData):
        changes |= {"status": AccountStatus.RESOLVED, "resolved_reason": data.reason,
                    "resolved_at": when}
    elif isinstance(data, PromiseData):
        changes["promise"] = Promise(due_on=data.due_on, amount=data.amount, made_at=when,
                                     event_id=event.event_id)
    elif isinstance(data, HoldData):
        others = tuple(h for h in state.holds if h.reason != data.reason)
        hold = Hold(reason=data.reason, until=data.until, placed_at=when, event_id=event.event_id)
        changes["holds"] = tuple(sorted((*others, hold), key=lambda h: h.reason.value))
    elif isinstance(data, ReleaseData):
        changes["holds"] = tuple(h for h in state.holds if h.reason != data.reason)
    # contact.opt_out / opt_in act on the number everywhere; the store keeps them apart.
    return state.model_copy(update=changes)


def fold(account_id: str, events: Iterable[Event],
         start: AccountState | None = None) -> AccountState:
    """Apply `events` (sorted here by `event_order`) onto `start` or an empty account."""
    state = start or AccountState(account_id=account_id)
    for event in sorted(events, key=event_order):
        state = apply_event(state, event)
    return state
