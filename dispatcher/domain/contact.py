"""Domain types of a contact attempt, shared by the engine, the planner, the gate and channels."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, NamedTuple, TypeVar


class Medium(StrEnum):
    """How a person is reached; the audit record's `channel`."""

    SMS = "sms"
    CALL = "call"


class Party(StrEnum):
    """Whom an attempt reaches: the audit record's `party`."""

    DEBTOR = "debtor"
    THIRD_PARTY = "third_party"


class Outcome(StrEnum):
    """Final status of an attempt: the providers' call and SMS outcomes, and our own."""

    COMPLETED = "completed"  # a person answered: a conversation
    MACHINE = "machine"  # voicemail / answering machine
    NO_ANSWER = "no-answer"
    BUSY = "busy"
    FAILED = "failed"
    CANCELED = "canceled"
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    # Extensions: the provider said the number does not exist or cannot take this channel.
    INVALID_NUMBER = "invalid-number"
    # Extension: a third party answered and asked not to be called again.
    REFUSED = "refused"
    # Extension: the provider's answer was lost and reconciliation could not decide.
    UNKNOWN = "unknown"
    # Extension: the provider never accepted it (rate limited, down): not a contact attempt.
    NOT_SENT = "not-sent"


CALL_OUTCOMES = frozenset({Outcome.COMPLETED, Outcome.MACHINE, Outcome.NO_ANSWER, Outcome.BUSY,
                           Outcome.FAILED, Outcome.CANCELED, Outcome.INVALID_NUMBER,
                           Outcome.REFUSED, Outcome.UNKNOWN, Outcome.NOT_SENT})
SMS_OUTCOMES = frozenset({Outcome.DELIVERED, Outcome.UNDELIVERED, Outcome.FAILED,
                          Outcome.INVALID_NUMBER, Outcome.UNKNOWN, Outcome.NOT_SENT})


class Delivery(NamedTuple):
    """What the engine asks a channel to send; recorded in the store before it is sent."""

    # A named tuple, not a frozen dataclass (which costs three times as much to build):
    # one for every attempt sent.

    attempt_id: str
    medium: Medium
    to: str
    body: str
    template: str
    local_zone: str  # the debtor's primary IANA zone (the sandbox's availability model uses it)
    at: datetime  # when the engine sends it (UTC, aware)


class DeliveryResult(NamedTuple):
    """The provider's answer: its id and, when already known, the final outcome."""

    # A named tuple, not a frozen dataclass (which costs three times as much to build):
    # one for every attempt sent.

    provider_sid: str
    outcome: Outcome | None = None  # None: a status callback will tell


# Calls that never connected do not count toward the 7-in-7 cap (Reg F 1006.14(b)(3)).
NOT_CONNECTED = frozenset({Outcome.BUSY, Outcome.FAILED, Outcome.CANCELED,
                           Outcome.INVALID_NUMBER})
UNANSWERED = frozenset({Outcome.NO_ANSWER, Outcome.MACHINE, Outcome.BUSY})
# Members bound once: looked up on their enum class they cost a metaclass call each time, and
# the gate and the planner ask the properties below millions of times per simulated month.
_CALL = Medium.CALL
_COMPLETED = Outcome.COMPLETED


class Role(StrEnum):
    """The person's role on the account."""

    DEBTOR = "debtor"
    EMERGENCY = "emergency"
    GUARANTOR = "guarantor"


class Target(NamedTuple):
    """Whom to reach, on which number, by which medium."""

    # A named tuple, not a frozen dataclass (which costs three times as much to build):
    # every plan makes one for each number it tries.

    role: Role
    person: str  # "debtor" or the contact's contact_id
    number: str
    number_type: str | None  # mobile / home / work for the debtor's numbers
    medium: Medium

    @property
    def party(self) -> Party:
        """The audit record's party: only the debtor is `debtor`."""
        return Party.DEBTOR if self.role is Role.DEBTOR else Party.THIRD_PARTY


class PastAttempt(NamedTuple):
    """An attempt already made (or in flight) on the account, as the gate counts it."""

    # A named tuple, not a frozen dataclass: the store builds one for every attempt of every
    # account it reads at each decision, and a frozen dataclass costs four times as much to build.

    attempt_id: str
    at: datetime
    person: str
    role: Role
    number: str
    medium: Medium
    window: str | None
    stage: str | None
    outcome: Outcome | None  # None while in flight

    @property
    def counts_as_call(self) -> bool:
        """A call toward the 7-in-7 cap: in flight or connected (answered, voicemail, rang out)."""
        return self.medium is _CALL and self.outcome not in NOT_CONNECTED

    @property
    def is_conversation(self) -> bool:
        """A call a person answered."""
        return self.medium is _CALL and self.outcome is _COMPLETED

    @property
    def unanswered(self) -> bool:
        """A call that rang out, reached voicemail or was busy: nobody talked."""
        return self.medium is _CALL and self.outcome in UNANSWERED


@dataclass(frozen=True)
class NumberClaim:
    """Another account's planned attempt on a number this account uses too, and when that
    account last used the number itself (None: not in the history window)."""

    account_id: str
    number: str
    planned_at: datetime
    last_used: datetime | None


# Stored values become members at every decision (each attempt read, each plan, each outcome): a
# dict lookup costs a fifth of the enum call.
ROLE_BY_VALUE: Mapping[str, Role] = {r.value: r for r in Role}
MEDIUM_BY_VALUE: Mapping[str, Medium] = {m.value: m for m in Medium}
OUTCOME_BY_VALUE: Mapping[str, Outcome] = {o.value: o for o in Outcome}

_Member = TypeVar("_Member", bound=StrEnum)


def member_of(members: Mapping[str, _Member], kind: type[_Member], value: Any) -> _Member:
    """`kind(value)` (`members` is one of the tables above), failing as it does on a value that
    names no member."""
    found = members.get(value) if isinstance(value, str) else None
    return found if found is not None else kind(value)
