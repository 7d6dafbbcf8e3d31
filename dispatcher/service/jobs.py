"""The daemon's few periodic jobs, on APScheduler 3.11's AsyncIOScheduler.

Each job has a fixed id, so a job is replaced rather than added twice. Nothing is skipped
silently: `misfire_grace_time=None` runs a late job however late (APScheduler's default of one
second skips jobs whenever the loop is busy), `coalesce` folds runs missed while the daemon was
down into one, one instance at a time; a failure, a missed run or an overlap is logged as an
error and counted in `dispatcher_job_runs_total`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, time
from typing import Any

from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    JobEvent,
)
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from dispatcher.service.metrics import Metrics

log = logging.getLogger("dispatcher.jobs")

RETENTION_JOB = "retention"
HEAD_JOB = "audit-head"

_RESULTS = {EVENT_JOB_EXECUTED: "ok", EVENT_JOB_ERROR: "failed", EVENT_JOB_MISSED: "missed",
            EVENT_JOB_MAX_INSTANCES: "overlapping"}


def daily_at(moment: time) -> CronTrigger:
    """Every day at `moment`, UTC."""
    return CronTrigger(hour=moment.hour, minute=moment.minute, second=moment.second,
                       timezone=UTC)


class PeriodicJobs:
    """Owns the scheduler: add jobs by fixed id, start with the daemon, stop with it."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._scheduler: Any = AsyncIOScheduler(timezone=UTC, job_defaults={
            "misfire_grace_time": None, "coalesce": True, "max_instances": 1})
        self._scheduler.add_listener(self._observe, mask=sum(_RESULTS))

    def daily(self, job_id: str, run: Callable[[], Awaitable[object]], at: time) -> None:
        """Run `run` every day at `at` (UTC); replaces a job of the same id."""
        if not self._scheduler.running:
            # Before start, APScheduler queues jobs without applying replace_existing yet.
            self.remove(job_id)
        self._scheduler.add_job(run, daily_at(at), id=job_id, name=job_id,
                                replace_existing=True)

    def every(self, job_id: str, run: Callable[[], Awaitable[object]], seconds: float) -> None:
        """Run `run` every `seconds`, the first time one interval from now; replaces a job of
        the same id."""
        if not self._scheduler.running:
            self.remove(job_id)
        self._scheduler.add_job(run, IntervalTrigger(seconds=seconds, timezone=UTC), id=job_id,
                                name=job_id, replace_existing=True)

    def remove(self, job_id: str) -> None:
        """Drop a job, if there is one by that id."""
        if self._scheduler.get_job(job_id) is not None:
            self._scheduler.remove_job(job_id)

    def next_run(self, job_id: str) -> Any:
        """When the job runs next (an aware datetime), or None."""
        job = self._scheduler.get_job(job_id)
        return None if job is None else job.next_run_time

    def ids(self) -> list[str]:
        """The ids of the jobs scheduled."""
        return [job.id for job in self._scheduler.get_jobs()]

    def start(self) -> None:
        """Start on the running event loop."""
        self._scheduler.start()

    def stop(self) -> None:
        """Stop; a job still running is cancelled (its transaction rolls back)."""
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)

    def _observe(self, event: JobEvent) -> None:
        result = _RESULTS.get(event.code, "other")
        self._metrics.job_runs.labels(event.job_id, result).inc()
        if result == "ok":
            return
        error = getattr(event, "exception", None)
        log.error("periodic job %s: %s%s", event.job_id, result,
                  f": {type(error).__name__}: {error}" if error else "",
                  exc_info=error if isinstance(error, BaseException) else None)
