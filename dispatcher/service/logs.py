"""Application logging: text or one JSON object per line, with phone numbers masked."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any, TextIO

from dispatcher.domain.clock import SystemClock, utc_rfc3339
from dispatcher.domain.phones import mask_numbers_in

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD}


def _masked(value: object) -> object:
    if isinstance(value, str):
        return mask_numbers_in(value)
    if isinstance(value, dict):
        return {str(k): _masked(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_masked(v) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return mask_numbers_in(str(value))


class MaskingJsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and any `extra` fields."""

    def format(self, record: logging.LogRecord) -> str:
        """Render the record as masked JSON."""
        entry: dict[str, Any] = {
            "time": utc_rfc3339(SystemClock().now()),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(_extras(record))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        # Mask before encoding: JSON escapes ("\\n+1512...") would hide a number from the pattern.
        return json.dumps(_masked(entry), ensure_ascii=False)


class MaskingTextFormatter(logging.Formatter):
    """Human-readable lines with `key=value` extras, phone numbers masked."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        """Render the record as a masked text line."""
        line = super().format(record)
        extras = " ".join(f"{k}={v}" for k, v in _extras(record).items())
        return mask_numbers_in(f"{line} {extras}" if extras else line)


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
