"""The periodic summary line: what the daemon did since the last one, from its metrics.

Read from the same counters `/metrics` serves, so the log and the metrics cannot disagree:
events in, attempts, outcomes by result, suppressions by reason, dead letters, how late the
oldest due account is, and the work queue's size when the daemon has one to ask.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from prometheus_client import Metric

from dispatcher.service.aio import pause
from dispatcher.service.metrics import Metrics

log = logging.getLogger("dispatcher.summary")

# How often a disabled summary looks whether a reload has enabled it.
IDLE_CHECK_SECONDS = 1.0


class QueueSize(Protocol):
    """How many items wait in a work queue now."""

    async def __call__(self) -> int:
        """The queue's current size."""
        ...


@dataclass(frozen=True)
class Totals:
    """The counters a summary reports, as they stand at one moment."""

    events: float = 0.0
    attempts: float = 0.0
    dead_letters: float = 0.0
    outcomes: dict[str, float] = field(default_factory=dict)
    suppressed: dict[str, float] = field(default_factory=dict)


def _samples(metric: Any, label: str | None = None) -> dict[str, float]:
    """A counter's `_total` samples, summed by one label (or all under "")."""
    found: dict[str, float] = {}
    collected: list[Metric] = list(metric.collect())
    for family in collected:
        for sample in family.samples:
            if sample.name.endswith("_total"):
                key = sample.labels.get(label, "") if label else ""
                found[key] = found.get(key, 0.0) + sample.value
    return found


def totals_of(metrics: Metrics) -> Totals:
    """The summary's counters as `metrics` holds them now."""
    return Totals(events=_samples(metrics.events_in).get("", 0.0),
                  attempts=_samples(metrics.attempts).get("", 0.0),
                  dead_letters=_samples(metrics.dead_letters).get("", 0.0),
                  outcomes=_samples(metrics.outcomes, "outcome"),
                  suppressed=_samples(metrics.suppressed, "reason"))


def _by_key(after: dict[str, float], before: dict[str, float]) -> dict[str, int]:
    return {k: int(v - before.get(k, 0.0)) for k, v in sorted(after.items())
            if v > before.get(k, 0.0)}


def summary_fields(before: Totals, after: Totals, *, seconds: float, due_lag: float,
                   queue: int | None) -> dict[str, Any]:
    """The summary line's fields: what happened between `before` and `after`."""
    fields: dict[str, Any] = {
        "seconds": round(seconds),
        "events": int(after.events - before.events),
        "attempts": int(after.attempts - before.attempts),
        "outcomes": _by_key(after.outcomes, before.outcomes),
        "suppressed": _by_key(after.suppressed, before.suppressed),
        "dead_letters": int(after.dead_letters - before.dead_letters),
        "due_lag": round(due_lag, 1),
    }
    if queue is not None:
        fields["queue"] = queue
    return fields


class Summary:
    """Says, every so many seconds, what happened since it last did."""

    def __init__(self, metrics: Metrics, queue_size: QueueSize | None = None,
                 monotonic: Callable[[], float] | None = None) -> None:
        self._metrics = metrics
        self.queue_size = queue_size  # set by whoever runs a work queue
        self._monotonic = monotonic or time.monotonic
        self._last = totals_of(metrics)
        self._since = self._monotonic()

    def say(self, queue: int | None = None) -> dict[str, Any]:
        """Log the summary of the time since the last one (with the queue's size, when known);
        its fields."""
        now, totals = self._monotonic(), totals_of(self._metrics)
        fields = summary_fields(self._last, totals, seconds=now - self._since,
                                due_lag=self._due_lag(), queue=queue)
        self._last, self._since = totals, now
        log.info("summary", extra=fields)
        return fields

    def _due_lag(self) -> float:
        return self._metrics.registry.get_sample_value("dispatcher_due_lag_seconds") or 0.0

    async def queue(self) -> int | None:
        """The work queue's size now; None without a queue or when it cannot be read."""
        if self.queue_size is None:
            return None
        try:
            return int(await self.queue_size())
        except Exception as exc:  # a summary without the queue, not a daemon without a summary
            log.warning("queue size unavailable: %s: %s", type(exc).__name__, exc)
            return None

    async def run(self, seconds: Callable[[], float], stop: asyncio.Event) -> None:
        """Say a summary every `seconds()` (0: none; read each round, so a reload applies),
        and a last one when `stop` is set."""
        while not stop.is_set():
            interval = seconds()
            if interval <= 0:
                await pause(IDLE_CHECK_SECONDS, stop)
                self._last, self._since = totals_of(self._metrics), self._monotonic()
                continue
            await pause(interval, stop)
            try:
                self.say(await self.queue())
            except Exception:  # a daemon without its summary, not a daemon stopped by it
                log.exception("summary failed")
