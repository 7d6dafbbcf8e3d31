"""Refused webhook requests, tallied per route and minute into one bounded audit record each.

Whoever can reach the webhook server can send requests without a valid signature, as many and
as large as they like. Auditing each would let them grow a log kept for years at their pace, so
a refusal only raises a counter; the audit log gets one record per route per minute in which
something was refused, with the count by reason and a truncated sample of the first request.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from dispatcher.domain.clock import utc_rfc3339
from dispatcher.domain.events import clean_text

WINDOW = timedelta(minutes=1)
SAMPLE_PATH_CHARS = 200
SAMPLE_REMOTE_CHARS = 64


def window_start(now: datetime) -> datetime:
    """The start of the minute `now` falls in."""
    return now.replace(second=0, microsecond=0)


def bounded(text: str, limit: int) -> str:
    """At most `limit` characters of `text`, as valid UTF-8 (stray surrogates escaped)."""
    return clean_text(text[:limit])


@dataclass
class _Window:
    start: datetime
    first_at: datetime
    last_at: datetime
    sample: dict[str, str]
    reasons: Counter[str] = field(default_factory=Counter)


class RejectionTally:
    """Refusals per route and minute; `due` hands out the records of the minutes that ended."""

    def __init__(self) -> None:
        self._open: dict[tuple[str, datetime], _Window] = {}

    def note(self, route: str, reason: str, *, path: str, remote: str | None,
             now: datetime) -> bool:
        """Count one refusal; True when it is its route's first of the minute (worth a log line)."""
        key = (route, window_start(now))
        window = self._open.get(key)
        first = window is None
        if window is None:
            window = self._open[key] = _Window(
                key[1], now, now, {"reason": reason, "path": bounded(path, SAMPLE_PATH_CHARS),
                                   "remote": bounded(remote or "", SAMPLE_REMOTE_CHARS)})
        window.reasons[reason] += 1
        window.last_at = max(window.last_at, now)
        return first

    def due(self, now: datetime, *, everything: bool = False) -> list[dict[str, Any]]:
        """Audit records of the minutes that ended by `now` (all open ones with `everything`)."""
        ended = sorted((key for key, window in self._open.items()
                        if everything or window.start + WINDOW <= now),
                       key=lambda key: (key[1], key[0]))
        return [record(route, self._open.pop((route, start))) for route, start in ended]


def record(route: str, window: _Window) -> dict[str, Any]:
    """The audit record of one route's minute."""
    return {"kind": "webhook", "status": "rejected", "route": route,
            "count": sum(window.reasons.values()), "reasons": dict(sorted(window.reasons.items())),
            "window_start": utc_rfc3339(window.start), "first_at": utc_rfc3339(window.first_at),
            "last_at": utc_rfc3339(window.last_at), "sample": window.sample}
