"""How statements about a number settle into its standing on one channel: opted in, opted out,
or paused until a person reviews a reply that might be a revocation.

The debtor's own revocation (a text from their number) is authoritative: it applies whatever
the store holds. Any opt-in, upstream or the debtor's START, re-enables a channel only when it
happened after the revocation (or pause) and is not dated after it was received.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

# The debtor's own texts are stored as events received on this topic.
INBOUND_TOPIC = "inbound-sms"

# Why an opt-in was not applied (the `reason` of its audit record).
OPT_IN_IN_FUTURE = "opt_in_in_future"
OPT_IN_NOT_AFTER_REVOCATION = "opt_in_not_after_revocation"


class Standing(StrEnum):
    """Whether a number may be contacted on one channel."""

    OPTED_IN = "opted_in"
    OPTED_OUT = "opted_out"
    REVIEW = "revocation_review"  # a reply that might be a revocation awaits a person


@dataclass(frozen=True)
class ChannelStanding:
    """What the store keeps for one number and channel."""

    standing: Standing
    changed_at: str  # sortable UTC (`clock.sortable_utc`)
    event_id: str
    account_id: str | None


@dataclass(frozen=True)
class Statement:
    """An opt-out, opt-in or pause for one number and channel, as it arrives."""

    standing: Standing
    at: str  # when it happened, sortable UTC
    event_id: str
    account_id: str | None
    from_debtor: bool  # the debtor's own text, not an upstream event

    def as_row(self) -> ChannelStanding:
        """The standing this statement sets."""
        return ChannelStanding(self.standing, self.at, self.event_id, self.account_id)


def settle(current: ChannelStanding | None, statement: Statement,
           now: str) -> tuple[ChannelStanding | None, str | None]:
    """The standing after `statement` received at `now` (None: unchanged), and why an opt-in
    was not applied (None: it was, or the statement is not an opt-in)."""
    blocked = current is not None and current.standing is not Standing.OPTED_IN
    if statement.standing is Standing.OPTED_OUT:
        if statement.from_debtor:
            if (current is not None and current.standing is Standing.OPTED_OUT
                    and current.changed_at >= statement.at):
                return None, None
            return statement.as_row(), None
        # Upstream: the newest statement wins; at the same instant the opt-out does.
        if current is None or statement.at >= current.changed_at:
            return statement.as_row(), None
        return None, None
    if statement.standing is Standing.REVIEW:
        if current is None or not blocked:
            return statement.as_row(), None
        # Already blocked: it stays so, and lifting it must now postdate this reply too.
        if statement.at > current.changed_at:
            return replace(current, changed_at=statement.at, event_id=statement.event_id), None
        return None, None
    if statement.at > now:
        return None, OPT_IN_IN_FUTURE
    if current is None or statement.at > current.changed_at:
        return statement.as_row(), None
    return None, OPT_IN_NOT_AFTER_REVOCATION if blocked else None
