"""TwiML answers the webhook server gives Twilio."""

from __future__ import annotations

from dispatcher.webhooks.twilio import twiml_message


def test_twiml_escapes_the_message() -> None:
    assert twiml_message("A & B <c>") == ('<?xml version="1.0" encoding="UTF-8"?><Response>'
                                          "<Message>A &amp; B &lt;c&gt;</Message></Response>")
    assert twiml_message(None).endswith("<Response></Response>")
