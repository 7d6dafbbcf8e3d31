"""What an event, account or contact id may be: also an MQTT topic level, and safe to log."""

from __future__ import annotations

import re
import unicodedata

MAX_ID_CHARS = 128
# An account id is a level of the outbound topic; the byte cap keeps topics short whatever the
# script (128 CJK characters would be 384 bytes).
MAX_ID_BYTES = 256

_NONCHARACTERS = "".join(
    f"\\U{plane:04x}fffe-\\U{plane:04x}ffff" for plane in range(17))
# Control characters (C0, DEL, C1), whitespace, topic separators and wildcards, noncharacters,
# and lone surrogates (which JSON escapes can smuggle into a str).
_FORBIDDEN = re.compile(
    r"[\x00-\x1f\x7f-\x9f\s/+#\ufdd0-\ufdef\ud800-\udfff" + _NONCHARACTERS + "]")


def identifier_problem(value: str) -> str | None:
    """Why `value` cannot be an identifier, or None when it can."""
    if not value:
        return "must not be empty"
    if len(value) > MAX_ID_CHARS:
        return f"{len(value)} characters; the limit is {MAX_ID_CHARS}"
    bad = _FORBIDDEN.search(value)
    if bad is not None:
        char = bad.group(0)
        return (f"character U+{ord(char):04X} ({_kind(char)}) at position {bad.start()} "
                "is not allowed in an identifier")
    if value.startswith("$"):
        return "must not start with '$' (MQTT reserves such topics)"
    if not value.isascii() and (size := len(value.encode("utf-8"))) > MAX_ID_BYTES:
        return f"{size} UTF-8 bytes; the limit is {MAX_ID_BYTES}"
    return None


def check_identifier(value: str) -> str:
    """Return `value` if it can be an identifier, else raise ValueError saying why."""
    problem = identifier_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def _kind(char: str) -> str:
    code = ord(char)
    if char in "/+#":
        return "an MQTT topic separator or wildcard"
    if 0xD800 <= code <= 0xDFFF:
        return "a lone surrogate"
    if unicodedata.category(char) == "Cc":
        return "a control character"
    if char.isspace():
        return "whitespace"
    return "a Unicode noncharacter"
