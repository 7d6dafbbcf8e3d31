"""Twilio statuses and error codes to outcomes: the one table callbacks and reconciliation share."""

from __future__ import annotations

import pytest
from twilio.rest.api.v2010.account.call import CallInstance
from twilio.rest.api.v2010.account.message import MessageInstance

from channels.twilio_status import error_code, outcome_detail, outcome_of
from dispatcher.domain.contact import CALL_OUTCOMES, SMS_OUTCOMES, Medium, Outcome

SMS, CALL = Medium.SMS, Medium.CALL
INVALID = Outcome.INVALID_NUMBER

# (medium, status, error code, answered_by, outcome). A callback sends the code as text, the
# REST resource as an int: both spellings appear.
TABLE: list[tuple[Medium, str | None, int | str | None, str | None, Outcome | None]] = [
    # SMS: under way
    (SMS, "accepted", None, None, None),
    (SMS, "scheduled", None, None, None),
    (SMS, "queued", None, None, None),
    (SMS, "sending", None, None, None),
    (SMS, "sent", None, None, None),
    (SMS, "receiving", None, None, None),
    (SMS, "received", None, None, None),
    (SMS, None, None, None, None),
    (SMS, "", None, None, None),
    (SMS, "no-such-status", None, None, None),
    # SMS: final
    (SMS, "delivered", None, None, Outcome.DELIVERED),
    (SMS, "DELIVERED", None, None, Outcome.DELIVERED),
    (SMS, "read", None, None, Outcome.DELIVERED),
    (SMS, "partially_delivered", None, None, Outcome.DELIVERED),
    (SMS, "undelivered", None, None, Outcome.UNDELIVERED),
    (SMS, "failed", None, None, Outcome.FAILED),
    (SMS, "canceled", None, None, Outcome.FAILED),
    # SMS: error codes that say the number is the problem
    (SMS, "failed", "21211", None, INVALID),
    (SMS, "failed", 21211, None, INVALID),
    (SMS, "undelivered", "21614", None, INVALID),
    (SMS, "undelivered", 21614, None, INVALID),
    (SMS, "undelivered", "30005", None, INVALID),
    (SMS, "failed", 30005, None, INVALID),
    (SMS, "canceled", 21211, None, INVALID),
    # SMS: error codes that do not
    (SMS, "undelivered", "30003", None, Outcome.UNDELIVERED),  # handset off: may work later
    (SMS, "undelivered", 30006, None, Outcome.UNDELIVERED),  # landline: calls still work
    (SMS, "failed", "30006", None, Outcome.FAILED),
    (SMS, "undelivered", "30007", None, Outcome.UNDELIVERED),  # filtered by the carrier
    (SMS, "failed", "21610", None, Outcome.FAILED),  # unsubscribed: an opt-out, not a bad number
    (SMS, "failed", "not-a-code", None, Outcome.FAILED),
    # SMS: a code never overrides a status under way, or one that reached the handset
    (SMS, "queued", "21211", None, None),
    (SMS, "sent", 30005, None, None),
    (SMS, "delivered", "21614", None, Outcome.DELIVERED),
    # calls: under way
    (CALL, "queued", None, None, None),
    (CALL, "initiated", None, None, None),
    (CALL, "ringing", None, None, None),
    (CALL, "in-progress", None, "human", None),
    (CALL, None, None, None, None),
    # calls: final
    (CALL, "completed", None, None, Outcome.COMPLETED),  # no detection asked
    (CALL, "completed", None, "human", Outcome.COMPLETED),
    (CALL, "completed", None, "unknown", Outcome.COMPLETED),  # undecided: a person, strictly
    (CALL, "completed", None, "machine_start", Outcome.MACHINE),
    (CALL, "completed", None, "machine_end_beep", Outcome.MACHINE),
    (CALL, "completed", None, "machine_end_silence", Outcome.MACHINE),
    (CALL, "completed", None, "machine_end_other", Outcome.MACHINE),
    (CALL, "completed", None, "fax", Outcome.MACHINE),
    (CALL, "Completed", None, "human", Outcome.COMPLETED),
    (CALL, "busy", None, None, Outcome.BUSY),
    (CALL, "no-answer", None, None, Outcome.NO_ANSWER),
    (CALL, "failed", None, None, Outcome.FAILED),
    (CALL, "canceled", None, None, Outcome.CANCELED),
    # calls: error codes (a callback may carry one; the Call resource never does)
    (CALL, "failed", "21211", None, INVALID),
    (CALL, "failed", 21614, None, INVALID),
    (CALL, "canceled", "21211", None, INVALID),
    (CALL, "failed", "30003", None, Outcome.FAILED),
    (CALL, "ringing", "21211", None, None),
    (CALL, "completed", "21211", "human", Outcome.COMPLETED),
]


@pytest.mark.parametrize(("medium", "status", "code", "answered_by", "expected"), TABLE)
def test_status_to_outcome(medium: Medium, status: str | None, code: int | str | None,
                           answered_by: str | None, expected: Outcome | None) -> None:
    assert outcome_of(medium, status, code, answered_by) is expected


def test_the_table_covers_every_status_twilio_defines() -> None:
    def defined(kind: type) -> set[str]:
        return {v for k, v in vars(kind).items() if k.isupper() and isinstance(v, str)}

    covered = {(m, s) for m, s, code, _, _ in TABLE if code is None and s}
    assert {(SMS, s) for s in defined(MessageInstance.Status)} <= covered
    # `initiated` is a status callback's only; the Call resource goes from queued to ringing.
    assert {(CALL, s) for s in defined(CallInstance.Status) | {"initiated"}} <= covered


def test_every_outcome_is_one_its_medium_has() -> None:
    for medium, _, _, _, outcome in TABLE:
        if outcome is not None:
            assert outcome in (SMS_OUTCOMES if medium is SMS else CALL_OUTCOMES)


@pytest.mark.parametrize(("value", "parsed", "detail"), [
    (None, None, ""), ("", None, ""), ("30006", 30006, "error 30006"),
    (" 21211 ", 21211, "error 21211"), (30005, 30005, "error 30005"), ("abc", None, ""),
])
def test_error_codes_from_callbacks_and_resources(value: int | str | None, parsed: int | None,
                                                  detail: str) -> None:
    assert error_code(value) == parsed
    assert outcome_detail(value) == detail
