"""Twilio status callbacks to outcomes: only final statuses count."""

from __future__ import annotations

import pytest

from dispatcher.domain.contact import Outcome
from dispatcher.webhooks.twilio import call_outcome, sms_outcome, twiml_message


@pytest.mark.parametrize(("status", "error", "expected"), [
    ("queued", None, None), ("sending", None, None), ("sent", None, None),
    ("delivered", None, Outcome.DELIVERED), ("undelivered", "30003", Outcome.UNDELIVERED),
    ("failed", "30006", Outcome.FAILED), ("failed", "21211", Outcome.INVALID_NUMBER),
    ("undelivered", "21614", Outcome.INVALID_NUMBER), ("DELIVERED", None, Outcome.DELIVERED),
])
def test_sms_status(status: str, error: str | None, expected: Outcome | None) -> None:
    assert sms_outcome(status, error) is expected


@pytest.mark.parametrize(("status", "answered_by", "expected"), [
    ("initiated", None, None), ("ringing", None, None), ("in-progress", "human", None),
    ("completed", "human", Outcome.COMPLETED), ("completed", None, Outcome.COMPLETED),
    ("completed", "machine_start", Outcome.MACHINE),
    ("completed", "machine_end_beep", Outcome.MACHINE), ("completed", "fax", Outcome.MACHINE),
    ("no-answer", None, Outcome.NO_ANSWER), ("busy", None, Outcome.BUSY),
    ("failed", None, Outcome.FAILED), ("canceled", None, Outcome.CANCELED),
])
def test_call_status(status: str, answered_by: str | None, expected: Outcome | None) -> None:
    assert call_outcome(status, answered_by) is expected


def test_twiml_escapes_the_message() -> None:
    assert twiml_message("A & B <c>") == ('<?xml version="1.0" encoding="UTF-8"?><Response>'
                                          "<Message>A &amp; B &lt;c&gt;</Message></Response>")
    assert twiml_message(None).endswith("<Response></Response>")
