"""The daemon's few periodic jobs, on APScheduler 3.11's AsyncIOScheduler.

Each job has a fixed id, so a job is replaced rather than added twice. Nothing is skipped
silently: `misfire_grace_time=None` runs a late job however late (APScheduler's default of one
second skips jobs whenever the loop is busy), `coalesce` folds runs missed while the daemon was
down into one, one instance at a time; a failure, a missed run or an overlap is logged as an
error and counted in `dispatcher_job_runs_total`.

Daemons that share a store (PostgreSQL) each schedule every job; the jobs that must run once for
all of them ask the store for the job's lease first (`once_a_day`, `HeldJob`), and a daemon that
does not get it returns `ELSEWHERE`, counted as `elsewhere`.
"""

from __future__ import annotations

import logging
import time as monotonic_time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, time, timedelta
from typing import Any, Final

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

from dispatcher.domain.clock import Clock
from dispatcher.service.metrics import Metrics
from dispatcher.store import JobLeaseStore

log = logging.getLogger("dispatcher.jobs")

RETENTION_JOB = "retention"
HEAD_JOB = "audit-head"
# Not scheduled here, but held the same way by one daemon of a fleet at a time.
RECONCILE_JOB = "reconcile"
OUTBOX_JOB = "audit-outbox"

# A daily job's lease: long enough for any run, far shorter than the day to the next one.
DAILY_HOLD = timedelta(hours=1)
# A scheduler fires at or after the run's time; this much earlier still counts as that run, in
# case the wall clock was stepped back just after it fired.
FIRE_SLACK = timedelta(seconds=1)


class _Elsewhere:
    """What a job returns when another daemon sharing the store runs it."""

    def __repr__(self) -> str:
        return "ELSEWHERE"


ELSEWHERE: Final = _Elsewhere()

_RESULTS = {EVENT_JOB_EXECUTED: "ok", EVENT_JOB_ERROR: "failed", EVENT_JOB_MISSED: "missed",
            EVENT_JOB_MAX_INSTANCES: "overlapping"}


def daily_at(moment: time) -> CronTrigger:
    """Every day at `moment`, UTC."""
    return CronTrigger(hour=moment.hour, minute=moment.minute, second=moment.second,
                       timezone=UTC)


def last_daily(now: datetime, at: time) -> datetime:
    """The latest instant at `at` (UTC) at or before `now`."""
    today = datetime.combine(now.astimezone(UTC).date(), at, UTC)
    return today if today <= now else today - timedelta(days=1)


def once_a_day(leases: JobLeaseStore, job_id: str, run: Callable[[], Awaitable[object]],
               at: time) -> Callable[[], Awaitable[object]]:
    """`run` as a daily job at `at` that, of the daemons sharing the store, only the first to
    claim each day's run carries out."""
    async def claimed() -> object:
        due = last_daily(datetime.now(UTC) + FIRE_SLACK, at)
        if not await leases.claim_job(job_id, due, DAILY_HOLD):
            log.info("periodic job %s of %s: run by another daemon", job_id, due.isoformat())
            return ELSEWHERE
        return await run()
    return claimed


class HeldJob:
    """Work one daemon of a fleet does all the time (publishing the outbox): whether this daemon
    holds it, asked of the store at most every third of the hold."""

    def __init__(self, leases: JobLeaseStore, job_id: str, hold: timedelta, clock: Clock, *,
                 monotonic: Callable[[], float] = monotonic_time.monotonic) -> None:
        self._leases = leases
        self.job_id = job_id
        self._hold = hold
        self._clock = clock
        self._monotonic = monotonic
        self._held = False
        self._asked_at: float | None = None

    async def held(self) -> bool:
        """Whether this daemon does the work now; renews the lease when a third of it passed.
        Counted on this daemon's monotonic clock from the claim, the lease it believes in ends
        long before the server ends it."""
        now = self._monotonic()
        if self._asked_at is None or now - self._asked_at >= self._hold.total_seconds() / 3:
            self._held = await self._leases.claim_job(self.job_id, self._clock.now(),
                                                      self._hold)
            self._asked_at = now
        return self._held


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
        if result == "ok" and getattr(event, "retval", None) is ELSEWHERE:
            result = "elsewhere"
        self._metrics.job_runs.labels(event.job_id, result).inc()
        if result in ("ok", "elsewhere"):
            return
        error = getattr(event, "exception", None)
        log.error("periodic job %s: %s%s", event.job_id, result,
                  f": {type(error).__name__}: {error}" if error else "",
                  exc_info=error if isinstance(error, BaseException) else None)
