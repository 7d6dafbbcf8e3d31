"""Application logging: text or one JSON object per line, with phone numbers masked.

Every value that may come from outside (an account id, a reply, a provider's error text) is
made safe here, whatever line carries it: phone numbers masked, length bounded, and in text
control characters, ANSI escapes, line and paragraph separators and bidirectional overrides
shown as visible escapes, so that no value can end a line early, forge another line or
repaint the operator's terminal.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from dispatcher.domain.clock import utc_rfc3339
from dispatcher.domain.phones import mask_numbers_in

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}

# Longest field value and message kept; the rest is dropped, with a note of how much.
FIELD_LIMIT = 256
MESSAGE_LIMIT = 2048
TRACEBACK_LIMIT = 16384
# A number is at most 16 characters: cut this much further first, so one cut in half is masked.
_NUMBER_SPAN = 16
# C0 and C1 controls (ESC starts an ANSI sequence, U+009B is one on its own), DEL, the line and
# paragraph separators, and the invisible format characters that reorder or hide text.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e"
                     "\u2060-\u206f\ufeff\ufff9-\ufffb]")
# What a JSON encoder leaves as it is: C0 controls are escaped by the encoder itself.
_UNSAFE_IN_JSON = re.compile("[\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e"
                             "\u2060-\u206f\ufeff\ufff9-\ufffb]")
# A text value is left unquoted only when it is not empty and holds nothing that would split
# it, end its field or need an escape.
_PLAIN = re.compile(r'[^\s"=\\' + _UNSAFE.pattern[1:-1] + "]+")


def _visible(char: re.Match[str]) -> str:
    code = ord(char.group(0))
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _json_escape(char: re.Match[str]) -> str:
    return f"\\u{ord(char.group(0)):04x}"


def bounded(text: str, limit: int = FIELD_LIMIT) -> str:
    """`text` with its phone numbers masked and cut to `limit` characters (saying how many went)."""
    if len(text) <= limit:
        return mask_numbers_in(text) if "+" in text else text  # every number starts with +
    masked = mask_numbers_in(text[:limit + _NUMBER_SPAN])
    return f"{masked[:limit]}...[{len(text) - limit} more characters]"


def escaped(text: str) -> str:
    """`text` on one line: every control or invisible format character as a visible escape."""
    return _UNSAFE.sub(_visible, text) if _UNSAFE.search(text) else text


def safe_text(text: str, limit: int = FIELD_LIMIT) -> str:
    """A value from outside as a log shows it: masked, bounded and escaped."""
    return escaped(bounded(text, limit))


def text_value(value: object) -> str:
    """One `key=value` field's value: safe, and quoted when it holds a space, `"`, `=` or `\\`
    (inside quotes `\\` and `"` are escaped, so no value can close its quotes early); a
    mapping as `key:value,...`, a list as `a,b`, either empty as `-`."""
    if type(value) is str:
        text = bounded(value)
    elif value is None or isinstance(value, bool | int | float):
        return str(value)
    elif isinstance(value, dict | list | tuple | set | frozenset) and not value:
        return "-"
    elif isinstance(value, dict):
        text = ",".join(f"{bounded(str(k))}:{_plain(v)}" for k, v in value.items())
    elif isinstance(value, list | tuple | set | frozenset):
        text = ",".join(_plain(v) for v in value)
    else:
        text = bounded(str(value))
    if _PLAIN.fullmatch(text):
        return text
    return '"' + escaped(text.replace("\\", "\\\\").replace('"', '\\"')) + '"'


def _plain(value: object) -> str:
    if value is None or isinstance(value, bool | int | float):
        return str(value)
    return bounded(str(value))


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD}


def _json_safe(value: object) -> object:
    if isinstance(value, str):
        return bounded(value)
    if isinstance(value, dict):
        return {bounded(str(k)): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_json_safe(v) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return bounded(str(value))


def _record_time(record: logging.LogRecord) -> datetime:
    return datetime.fromtimestamp(record.created, UTC)


class MaskingJsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and any `extra` fields."""

    def format(self, record: logging.LogRecord) -> str:
        """Render the record as masked JSON."""
        entry: dict[str, Any] = {
            "time": utc_rfc3339(_record_time(record)),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": bounded(record.getMessage(), MESSAGE_LIMIT),
        }
        for key, value in _extras(record).items():
            entry.setdefault(key, _json_safe(value))
        if record.exc_info:
            # Masked whole, before encoding: JSON escapes ("\\n+1512...") would hide a number.
            entry["exception"] = bounded(self.formatException(record.exc_info), TRACEBACK_LIMIT)
        line = json.dumps(entry, ensure_ascii=False, default=str)
        # Valid JSON escapes of characters the encoder leaves raw: the line stays one line.
        return _UNSAFE_IN_JSON.sub(_json_escape, line) if _UNSAFE_IN_JSON.search(line) else line


class MaskingTextFormatter(logging.Formatter):
    """Human-readable lines with `key=value` extras, phone numbers masked, values escaped."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        """Render the record as one safe text line (a traceback follows, indented)."""
        line = (f"{self.formatTime(record)} {record.levelname:<7} {record.name}: "
                f"{safe_text(record.getMessage(), MESSAGE_LIMIT)}")
        extras = _extras(record)
        if extras:
            line += " " + " ".join(f"{k}={text_value(v)}" for k, v in extras.items())
        if record.exc_info:
            # Indented: a line of the log that starts at its left edge is always a record.
            trace = bounded(self.formatException(record.exc_info), TRACEBACK_LIMIT)
            line += "".join(f"\n    {escaped(part)}" for part in trace.splitlines())
        return line


def configure_logging(level: str, fmt: str, stream: TextIO | None = None) -> None:
    """Send the root logger to stderr in the chosen format; replaces earlier handlers."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(MaskingJsonFormatter() if fmt == "json" else MaskingTextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # paho logs every packet at debug level; keep it out unless asked for.
    logging.getLogger("aiomqtt").setLevel(max(root.level, logging.INFO))
