"""The daemon's periodic jobs on APScheduler: fixed ids, late runs not skipped, failures loud;
and the retention job run by the real daemon at its configured time."""

from __future__ import annotations

import asyncio
import logging
import time as wall
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dispatcher.audit.keys import KEY_VARIABLE, CheckpointSigner, new_private_key
from dispatcher.audit.verify import verify_audit_log
from dispatcher.config.settings import load_config
from dispatcher.service.app import Dispatcher
from dispatcher.service.jobs import RETENTION_JOB, PeriodicJobs
from dispatcher.service.metrics import Metrics
from dispatcher.store import open_store
from tests.integration.inprocess import metrics_once, wait_for
from tests.integration.test_retention import audit_rows, history
from tests.support import Broker, make_config


def soon(seconds: float) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


def runs(metrics: Metrics, job: str, result: str) -> float:
    return float(metrics.job_runs.labels(job, result)._value.get())  # noqa: SLF001


async def test_a_run_delayed_by_a_busy_loop_still_happens() -> None:
    metrics, ran = Metrics(), asyncio.Event()

    async def job() -> None:
        ran.set()

    jobs = PeriodicJobs(metrics)
    jobs.daily("late", job, soon(1.0).time())
    jobs.start()
    try:
        # The loop is blocked past the run time by more than APScheduler's default grace (1 s),
        # which would skip the run and only log a warning.
        wall.sleep(3.0)  # noqa: ASYNC251 - blocking the loop is the point
        async with asyncio.timeout(5):
            await ran.wait()
        # Counted by the scheduler's listener once the job has returned.
        await wait_for(lambda: runs(metrics, "late", "ok") == 1, 5, "the run counted")
        assert runs(metrics, "late", "missed") == 0
    finally:
        jobs.stop()


async def test_a_failing_job_is_logged_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    metrics = Metrics()

    async def job() -> None:
        raise RuntimeError("disk full")

    jobs = PeriodicJobs(metrics)
    jobs.daily("broken", job, soon(1.0).time())
    jobs.start()
    try:
        await wait_for(lambda: runs(metrics, "broken", "failed") > 0, 5, "the failure counted")
    finally:
        jobs.stop()
    assert any(r.levelno == logging.ERROR and "periodic job broken: failed" in r.getMessage()
               and "disk full" in r.getMessage() for r in caplog.records)


def test_jobs_keep_fixed_ids_and_are_replaced_not_doubled() -> None:
    jobs = PeriodicJobs(Metrics())

    async def job() -> None:
        return None

    jobs.daily(RETENTION_JOB, job, datetime(2026, 1, 1, 3, 30).time())
    jobs.daily(RETENTION_JOB, job, datetime(2026, 1, 1, 4, 0).time())
    assert jobs.ids() == [RETENTION_JOB]
    jobs.remove(RETENTION_JOB)
    assert jobs.ids() == []


async def test_the_daemon_prunes_at_run_at_and_the_log_still_verifies(
        tmp_path: Path, broker: Broker, store_url: str) -> None:
    key = new_private_key()
    public = CheckpointSigner.from_text(key).public_key
    at = soon(3.0).strftime("%H:%M:%S")
    # One sweep at start, the next a minute later: on the real clock an account's planned slot
    # can fall within the test (a window open now is usable at the next minute), and an attempt
    # sent is activity that keeps its account from retention.
    path = make_config(tmp_path, broker.url, store_url=store_url, extra=(
        f'[retention]\nrun_at = "{at}"\ncheckpoint_public_keys = ["{public}"]\n'
        '[contact]\nsweep_seconds = 60\n'))
    environ = {KEY_VARIABLE: key}
    config = load_config(path, environ)
    async with open_store(config.store_location) as store:
        await history(store)
    async with Dispatcher(config, environ=environ) as daemon:
        task = asyncio.create_task(daemon.run())
        try:
            await wait_for(lambda: any(r["kind"] == "checkpoint" for r in audit_rows(config)),
                           15, "a checkpoint written by the retention job")
            text = await metrics_once(daemon.webhook_port,
                                      'dispatcher_job_runs_total{job="retention",result="ok"} 1.0')
            # A and the 2019 dead letter (with its queue item), and C (2021-09): the daemon runs
            # on the real clock.
            assert "dispatcher_retention_pruned_total 5.0" in text
            assert "dispatcher_retention_due 0.0" in text
            verdict = await verify_audit_log(daemon.store, (public,))
            assert verdict.ok, verdict.problem
            assert verdict.checkpoint is not None
        finally:
            daemon.request_stop()
            await task
