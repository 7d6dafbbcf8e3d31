"""What Twilio's message and call statuses and error codes mean for an attempt.

The one table for every path that learns a status: the status callbacks (form fields, strings)
and reconciliation (the REST resources, where an error code is an int). A status that is not
final means None: the message or call is still under way.
"""

from __future__ import annotations

from collections.abc import Mapping

from dispatcher.domain.contact import Medium, Outcome

# Error codes that say the number itself is the problem: 21211 not a valid number, 21614 not a
# mobile number, 30005 unknown handset (the number does not exist or is no longer in service).
# 30003 (handset off or out of coverage) and 30006 (landline, or a carrier a short code cannot
# reach) are not here: the number may work later, or for calls, and marking it would stop both.
INVALID_NUMBER_CODES = frozenset({21211, 21614, 30005})
UNSUBSCRIBED_CODE = 21610  # the recipient replied STOP at the carrier: an opt-out

# Every status of Twilio's Message resource and SMS status callback.
SMS_STATUSES: Mapping[str, Outcome | None] = {
    "accepted": None, "scheduled": None, "queued": None, "sending": None, "sent": None,
    "receiving": None, "received": None,  # an inbound message's: never an attempt's
    "delivered": Outcome.DELIVERED,
    "read": Outcome.DELIVERED,  # a read receipt: delivered, and more
    "partially_delivered": Outcome.DELIVERED,  # some of it reached the handset
    "undelivered": Outcome.UNDELIVERED,
    "failed": Outcome.FAILED,
    # Only a scheduled message can be canceled, before it leaves: not delivered, and an SMS has
    # no `canceled` outcome (SMS_OUTCOMES), so `failed`, as a message Twilio could not send.
    "canceled": Outcome.FAILED,
}
# Every status of Twilio's Call resource and call status callback (`initiated` is a callback's).
CALL_STATUSES: Mapping[str, Outcome | None] = {
    "queued": None, "initiated": None, "ringing": None, "in-progress": None,
    "completed": Outcome.COMPLETED,  # or MACHINE: see `call_answered_by`
    "busy": Outcome.BUSY, "no-answer": Outcome.NO_ANSWER, "failed": Outcome.FAILED,
    "canceled": Outcome.CANCELED,
}
_REACHED = frozenset({Outcome.DELIVERED, Outcome.COMPLETED, Outcome.MACHINE})


def error_code(value: int | str | None) -> int | None:
    """A Twilio error code as an int (callbacks send it as text); None when absent or not one."""
    if value is None or isinstance(value, int):
        return value
    text = value.strip()
    return int(text) if text.isdigit() else None


def is_machine(answered_by: str | None) -> bool:
    """Whether answering-machine detection found a machine (a fax counts as one); an undecided
    detection (`unknown`) counts as a person, the stricter reading."""
    return (answered_by or "").startswith("machine") or answered_by == "fax"


def call_answered_by(answered_by: str | None) -> Outcome:
    """The outcome of a completed call: a machine's, or a conversation."""
    return Outcome.MACHINE if is_machine(answered_by) else Outcome.COMPLETED


def outcome_of(medium: Medium, status: str | None, code: int | str | None = None,
               answered_by: str | None = None) -> Outcome | None:
    """The final outcome a status (with its error code and, for a call, who answered) means;
    None while the message or call is under way, or for a status Twilio does not define."""
    if not status:
        return None
    table = SMS_STATUSES if medium is Medium.SMS else CALL_STATUSES
    outcome = table.get(status.strip().lower())
    if outcome is Outcome.COMPLETED:
        outcome = call_answered_by(answered_by)
    if outcome is None or outcome in _REACHED:
        return outcome
    if error_code(code) in INVALID_NUMBER_CODES:
        return Outcome.INVALID_NUMBER
    return outcome


def outcome_detail(code: int | str | None) -> str:
    """The outcome record's detail for an error code: empty without one."""
    parsed = error_code(code)
    return f"error {parsed}" if parsed is not None else ""
