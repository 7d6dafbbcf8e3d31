"""`dispatcher run` supervises the daemon process: it dies with the supervisor, and comes back by
itself when something else kills it."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from tests.integration.publish import publish_all
from tests.integration.test_poison_intake import healthz
from tests.support import (
    Broker,
    Daemon,
    encode,
    make_config,
    overdue_event,
    stored_events,
    wait_until,
)


def _gone(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in status  # dead, not yet reaped by whoever inherited it


def _children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def test_sigkill_of_dispatcher_run_leaves_no_process_behind(
        tmp_path: Path, broker: Broker, daemons: list[Daemon], store_url: str) -> None:
    daemon = Daemon(make_config(tmp_path / "cfg", broker.url, store_url=store_url))
    daemons.append(daemon)
    daemon.start()
    worker = daemon.daemon_pid()
    writers = _children(worker)
    assert writers, "the daemon runs its writer process"

    daemon.kill()
    processes = [worker, *writers]
    wait_until(lambda: all(_gone(pid) for pid in processes), 10, f"processes {processes} gone")


def test_a_daemon_killed_by_something_else_is_started_again(
        tmp_path: Path, broker: Broker, daemons: list[Daemon], store_url: str) -> None:
    config = make_config(tmp_path / "cfg", broker.url, store_url=store_url)
    daemon = Daemon(config)
    daemons.append(daemon)
    daemon.start()
    assert daemon.process is not None
    now = datetime.now(UTC).isoformat()
    asyncio.run(publish_all(broker.port, [encode(overdue_event(n, occurred_at=now))
                                          for n in range(20)]))
    wait_until(lambda: stored_events(config) == 20, 20, "the first events")
    first = daemon.daemon_pid()

    os.kill(first, signal.SIGKILL)  # as the kernel's out-of-memory killer would
    wait_until(lambda: "daemon running again after 1 restart(s)" in daemon.new_log(), 30,
               "the daemon started again")
    assert daemon.daemon_pid() != first
    assert daemon.new_log().count("died of SIGKILL") == 1
    asyncio.run(publish_all(broker.port, [encode(overdue_event(n, occurred_at=now))
                                          for n in range(20, 40)]))
    wait_until(lambda: stored_events(config) == 40, 20, "intake after the restart")
    wait_until(lambda: healthz(daemon)[0] == 200, 20, "/healthz ok")
    assert daemon.terminate() == 0


def test_the_daemon_reads_the_config_file_the_supervisor_found(
        tmp_path: Path, broker: Broker) -> None:
    # Found by the lookup, relative to the working directory: the daemon is told that file.
    config = make_config(tmp_path / "config", broker.url)
    env = {k: v for k, v in os.environ.items() if k != "DISPATCHER_CONFIG"}
    log = tmp_path / "run.log"
    with log.open("wb") as out:
        supervisor = subprocess.Popen([sys.executable, "-m", "dispatcher", "run"], cwd=tmp_path,
                                      env=env, stdout=out, stderr=out)
    try:
        wait_until(lambda: "connected to broker" in log.read_text(), 20, "daemon connected")
        [daemon] = _children(supervisor.pid)
        argv = Path(f"/proc/{daemon}/cmdline").read_text().split("\0")
        assert argv[1:-1] == ["-m", "dispatcher", "run", "--config=config/dispatcher.toml"]
        assert Path(f"/proc/{daemon}/cwd").resolve() == tmp_path.resolve()
        assert (config.parent / "data" / "dispatcher.db").exists()  # the store beside it
        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(timeout=20) == 0
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
            supervisor.wait(timeout=10)
