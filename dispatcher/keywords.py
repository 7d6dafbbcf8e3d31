"""Inbound SMS keywords (contract section 6; FCC 24-24): opt-out, opt-in, help, or free text."""

from __future__ import annotations

import re
from enum import StrEnum


class Keyword(StrEnum):
    """What an inbound text asks for."""

    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"
    HELP = "help"
    FREE_TEXT = "free_text"


_OPT_OUT = {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT",
            "OPT OUT", "STOP ALL", "TD", "退订", "退訂"}
_OPT_IN = {"START", "UNSTOP", "YES"}
_HELP = {"HELP", "INFO"}
# "Revocation by any reasonable means": a short text that plainly asks to stop counts too.
_STOP_PHRASES = re.compile(r"^(please\s+)?(stop|don'?t|do not)\s+(texting|messaging|contacting|"
                           r"calling|text|message|contact|call)(\s+me)?[.!]*$", re.IGNORECASE)


def classify_reply(body: str) -> Keyword:
    """The keyword of an inbound text: any case, surrounding spaces and punctuation ignored."""
    text = " ".join(body.strip().strip(".!").split()).upper()
    if text in _OPT_OUT or _STOP_PHRASES.match(body.strip()):
        return Keyword.OPT_OUT
    if text in _OPT_IN:
        return Keyword.OPT_IN
    if text in _HELP:
        return Keyword.HELP
    return Keyword.FREE_TEXT
