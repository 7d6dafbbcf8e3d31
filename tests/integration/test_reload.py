"""Hot reload: a valid change applies at once and is audited; a bad one is refused, audited, and
the daemon keeps its last good config."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

from dispatcher.service.app import Dispatcher
from dispatcher.service.jobs import HEAD_JOB, RETENTION_JOB
from tests.integration.inprocess import running, wait_for, wait_for_async
from tests.integration.publish import publish_all
from tests.support import Broker, Daemon, audited, make_config, overdue_event, wait_until

LIMITS = "\n[compliance.limits]\ncalls_per_7_days = 7\n"


async def _configs(daemon: Dispatcher) -> list[dict[str, Any]]:
    return [r async for r in daemon.store.audit_records() if r["kind"] == "config"]


async def _event_version(daemon: Dispatcher, broker: Broker, n: int) -> str:
    await publish_all(broker.port, [json.dumps(overdue_event(n)).encode()])
    stored = daemon.metrics.events_in.labels("stored")
    await wait_for(lambda: stored._value.get() >= n, 10, "stored")  # noqa: SLF001
    events = [r async for r in daemon.store.audit_records() if r["kind"] == "event"]
    return str(events[-1]["config_version"])


async def test_a_valid_change_applies_and_every_later_record_carries_its_version(
        broker: Broker, tmp_path: Path, store_url: str) -> None:
    path = make_config(tmp_path, broker.url, extra=LIMITS, store_url=store_url)
    async with running(path) as daemon:
        first = daemon.config.version
        path.write_text(path.read_text().replace("calls_per_7_days = 7", "calls_per_7_days = 5"))
        await wait_for(lambda: daemon.config.version != first, 10, "reloaded")
        [start, reloaded] = await _configs(daemon)
        assert (start["status"], start["config_version"]) == ("loaded", first)
        assert (reloaded["status"], reloaded["config_version"]) == ("loaded",
                                                                    daemon.config.version)
        assert daemon.config.limits.calls_per_7_days == 5
        assert await _event_version(daemon, broker, 1) == daemon.config.version


async def test_a_bad_change_is_refused_audited_and_the_last_good_config_kept(
        broker: Broker, tmp_path: Path, store_url: str) -> None:
    path = make_config(tmp_path, broker.url, extra=LIMITS, store_url=store_url)
    async with running(path) as daemon:
        good = daemon.config.version
        path.write_text(path.read_text().replace("calls_per_7_days = 7", "calls_per_7_days = 9"))

        async def refused() -> list[dict[str, Any]]:
            return [r for r in await _configs(daemon) if r["status"] == "refused"]

        [record] = await wait_for_async(refused, 10, "the refused change audited")
        assert record["problems"] == [
            f"{path}: compliance.limits.calls_per_7_days: 9 is looser than the profile allows "
            f"(7; it may only be lowered)"]
        assert record["config_version"] == good
        assert daemon.config.version == good
        assert await _event_version(daemon, broker, 1) == good


async def test_a_change_that_needs_a_restart_is_refused_by_key(
        broker: Broker, tmp_path: Path, store_url: str) -> None:
    path = make_config(tmp_path, broker.url, store_url=store_url)
    async with running(path) as daemon:
        good = daemon.config.version
        path.write_text(path.read_text().replace('topics = ["collections/events/#"]',
                                                 'topics = ["other/#"]'))
        assert not await daemon.reload()
        refused = [r for r in await _configs(daemon) if r["status"] == "refused"]
        assert refused
        assert refused[-1]["problems"] == [
            f"{path}: mqtt.topics: cannot change while the daemon runs; restart it"]
        assert daemon.config.version == good


def test_sighup_reloads_even_when_no_file_stamp_changed(broker: Broker, tmp_path: Path,
                                                        daemons: list[Daemon],
                                                        store_url: str) -> None:
    path = make_config(tmp_path, broker.url, extra=LIMITS, log_format="text",
                       store_url=store_url)
    daemon = Daemon(path)
    daemons.append(daemon)
    daemon.start()
    stat = path.stat()
    # Same size, same modification time: only the signal can tell the daemon to look.
    path.write_text(path.read_text().replace("calls_per_7_days = 7", "calls_per_7_days = 5"))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert daemon.process is not None
    daemon.process.send_signal(signal.SIGHUP)
    wait_until(lambda: "config reloaded" in daemon.new_log(), 10, "reloaded on SIGHUP")
    assert daemon.terminate() == 0
    versions = audited(path, "config", "config_version")
    assert len(set(versions)) == 2


async def test_a_new_retention_time_reschedules_the_job_and_disabling_removes_it(
        broker: Broker, tmp_path: Path, store_url: str) -> None:
    path = make_config(tmp_path, broker.url, extra='[retention]\nrun_at = "03:30"\n',
                       store_url=store_url)
    async with running(path) as daemon:
        assert sorted(daemon.jobs.ids()) == [HEAD_JOB, RETENTION_JOB]
        assert daemon.jobs.next_run(RETENTION_JOB).strftime("%H:%M") == "03:30"
        first = daemon.config.version
        path.write_text(path.read_text().replace('"03:30"', '"22:15"'))
        await wait_for(lambda: daemon.config.version != first, 10, "reloaded")
        assert daemon.jobs.next_run(RETENTION_JOB).strftime("%H:%M") == "22:15"
        second = daemon.config.version
        path.write_text(path.read_text().replace('run_at = "22:15"', "enabled = false"))
        await wait_for(lambda: daemon.config.version != second, 10, "reloaded again")
        assert daemon.jobs.ids() == [HEAD_JOB]
