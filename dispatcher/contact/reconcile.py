"""Attempts whose provider answer was lost: ask the provider, never send again blindly."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable

from channels.base import Channel
from dispatcher.domain.contact import Delivery, Medium, Outcome
from dispatcher.domain.phones import mask_number
from dispatcher.store import OpenAttemptStore, OutcomeRow

log = logging.getLogger("dispatcher.reconcile")


class Sent(Protocol):
    """What a channel found at the provider for an attempt."""

    sid: str
    outcome: Outcome | None

    @property
    def detail(self) -> str:
        """What the provider said beyond the status (an error code), for the outcome record."""
        ...


@runtime_checkable
class FindsSent(Protocol):
    """A channel that can look an attempt up at the provider after its answer was lost."""

    async def find_sent(self, attempt_id: str, to: str, since: datetime,
                        medium: Medium) -> Sent | None:
        """The provider's record of the attempt, if it has one."""
        ...


async def reconcile(channel: Channel, delivery: Delivery, now: datetime) -> OutcomeRow | None:
    """The provider's answer was lost: ask it, never send again blindly."""
    finder = channel if isinstance(channel, FindsSent) else None
    try:
        found = (await finder.find_sent(delivery.attempt_id, delivery.to, delivery.at,
                                        delivery.medium) if finder else None)
    except Exception:  # cannot decide: a person must
        log.exception("reconciling attempt %s failed", delivery.attempt_id)
        return OutcomeRow(delivery.attempt_id, Outcome.UNKNOWN, now, None,
                          "the provider's answer was lost and it could not be asked: "
                          "not resent; check by hand")
    if found is None:
        if finder is None:
            return OutcomeRow(delivery.attempt_id, Outcome.UNKNOWN, now, None,
                              "the provider's answer was lost: not resent; check by hand")
        return OutcomeRow(delivery.attempt_id, Outcome.NOT_SENT, now, None,
                          "the provider has no such message or call: it was never sent")
    if found.outcome is not None:
        return OutcomeRow(delivery.attempt_id, found.outcome, now, found.sid, found.detail)
    return None  # it exists and is under way: its status callback will tell


async def settle_open_attempts(store: OpenAttemptStore, channel: Channel,
                               record: Callable[[Sequence[OutcomeRow], datetime], Awaitable[int]],
                               now: datetime, *, older_than: timedelta | None = None) -> int:
    """Attempts without an outcome (a crash before the provider answered; a status callback that
    never came): looked up at the provider when the channel can (found: its outcome, or left to
    its callback while under way; not found: never sent), else marked unknown for a person.
    Never sent again blindly. `older_than` limits it to attempts at least that old; `record`
    records the outcomes found (the engine's `record_outcomes`)."""
    outcomes = []
    for row in await store.open_attempts():
        if older_than is not None and now - row.at < older_than:
            continue
        delivery = Delivery(row.attempt_id, row.medium, row.number, "", row.template or "",
                            "UTC", row.at)
        outcome = await reconcile(channel, delivery, now)
        log.warning("attempt %s to %s had no outcome: %s", row.attempt_id,
                    mask_number(row.number),
                    outcome.outcome.value if outcome else "under way at the provider")
        if outcome is not None:
            outcomes.append(outcome)
    return await record(outcomes, now) if outcomes else 0
