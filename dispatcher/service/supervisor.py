"""`dispatcher run`: a small parent process that runs the daemon as its child and outlives it.

The kernel kills a process that faults on a mapped file it can no longer write (SQLite's
shared-memory file on a full or read-only file system: SIGBUS), and no handler can catch that.
The supervisor holds the webhook socket, answers 503 on it while the daemon is down, and starts
the daemon again with backoff. It imports no more than the standard library and asyncio.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import signal
import socket
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dispatcher.config.tomlfiles import read_toml
from dispatcher.errors import ConfigError
from dispatcher.service.aio import pause
from dispatcher.service.standby import serve_unavailable
from dispatcher.service.supervised import (
    ATTEMPT,
    LISTEN_FD,
    READY,
    STATUS_FD,
    SUPERVISOR_PID,
    UNAVAILABLE,
)
from dispatcher.service.supervision import (
    EXIT_OK,
    MAX_DELAY,
    STOP_SIGNALS,
    Verdict,
    judge,
    restart_delay,
)

log = logging.getLogger("dispatcher.supervisor")

LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("json", "text")
BACKLOG = 128  # aiohttp's default


@dataclass(frozen=True)
class Plan:
    """What the supervisor needs from the config: where to listen, how to log."""

    host: str = "127.0.0.1"
    port: int = 8080
    log_level: str = "info"
    log_format: str = "text"


def read_plan(path: Path) -> Plan | None:
    """The plan from the config file, or None when it is not plainly valid (the daemon itself
    then reports the problem)."""
    try:
        data, _ = read_toml(path)
    except ConfigError:
        return None
    webhook, service = data.get("webhook", {}), data.get("service", {})
    if not isinstance(webhook, dict) or not isinstance(service, dict):
        return None
    default = Plan()
    plan = Plan(webhook.get("host", default.host), webhook.get("port", default.port),
                service.get("log_level", default.log_level),
                service.get("log_format", default.log_format))
    if (not isinstance(plan.host, str) or type(plan.port) is not int
            or not 0 <= plan.port <= 65535 or plan.log_level not in LOG_LEVELS
            or plan.log_format not in LOG_FORMATS):
        return None
    return plan


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on the first address of `host` (port 0: any free port)."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(BACKLOG)
    except OSError:
        sock.close()
        raise
    return sock


class Supervisor:
    """Runs the daemon as a child process until a stop is asked for or restarting cannot help."""

    def __init__(self, argv: Sequence[str], sock: socket.socket,
                 environ: Mapping[str, str], rng: random.Random | None = None) -> None:
        self._argv = list(argv)
        self._sock = sock
        self._environ = dict(environ)
        self._rng = rng or random.Random()
        self._stop = asyncio.Event()
        self._child: asyncio.subprocess.Process | None = None
        self._outage: Verdict | None = None
        self._restarts = 0  # since the current outage began
        self._failures = 0  # consecutive, for the backoff
        self._detail: str | None = None  # what the current daemon said about not starting
        self._ready_at: float | None = None
        host, port = sock.getsockname()[:2]
        self._webhook = f"{host}:{port}"

    async def run(self) -> int:
        """Start the daemon, and again after each failure; return the exit code."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.add_signal_handler(sig, self._forward, sig)
        attempt = 0
        while True:
            returncode = await self._run_daemon(attempt)
            attempt += 1
            verdict = judge(returncode, stopping=self._stop.is_set(), detail=self._detail)
            if verdict.exit_code is not None:
                return verdict.exit_code
            self._note(verdict)
            if not await self._wait_before_restart():
                return EXIT_OK

    def _forward(self, sig: signal.Signals) -> None:
        if sig in STOP_SIGNALS:
            self._stop.set()
        child = self._child
        if child is not None and child.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                child.send_signal(sig)
        # SIGHUP without a daemon: the next one reads the config files anyway.

    async def _run_daemon(self, attempt: int) -> int:
        read_fd, write_fd = os.pipe()
        env = {**self._environ, SUPERVISOR_PID: str(os.getpid()),
               LISTEN_FD: str(self._sock.fileno()), STATUS_FD: str(write_fd),
               ATTEMPT: str(attempt)}
        self._detail = None
        try:
            child = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "dispatcher", *self._argv, env=env,
                pass_fds=(self._sock.fileno(), write_fd))
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        self._child = child
        if self._outage is not None:
            self._restarts += 1
        if self._stop.is_set():  # asked while it was being started
            child.send_signal(signal.SIGTERM)
        status = asyncio.create_task(self._read_status(read_fd))
        try:
            return await child.wait()
        finally:
            self._child = None
            # The pipe ends with the daemon; a grandchild holding it must not hold us up.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(status, timeout=2)

    async def _read_status(self, fd: int) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(fd, "rb", buffering=0))
        try:
            while line := await reader.readline():
                self._on_status(line.decode("utf-8", "replace").strip())
        finally:
            transport.close()

    def _on_status(self, message: str) -> None:
        word, _, detail = message.partition(" ")
        if word == READY:
            self._ready_at = time.monotonic()
            if self._outage is not None:
                log.info("daemon running again after %d restart(s)", self._restarts)
                self._outage = None
        elif word == UNAVAILABLE:
            self._detail = detail

    def _note(self, verdict: Verdict) -> None:
        """Log the outage once (and again only when its reason changes)."""
        if self._ready_at is not None and time.monotonic() - self._ready_at >= MAX_DELAY:
            self._failures = 0  # it ran for a while: not a crash loop
        self._ready_at = None
        if self._outage is None:
            self._restarts = 0
        if self._outage is None or self._outage.reason != verdict.reason:
            log.error(verdict.log_line(), extra={"webhook": self._webhook})
        self._outage = verdict

    async def _wait_before_restart(self) -> bool:
        delay = restart_delay(self._failures, self._rng)
        self._failures += 1
        # A duplicate: closing the server closes it, and the daemon needs the socket itself.
        server = await serve_unavailable(self._sock.dup(), self._health)
        try:
            await pause(delay, self._stop)
        finally:
            server.close()
            await server.wait_closed()
        return not self._stop.is_set()

    def _health(self) -> dict[str, Any]:
        outage = self._outage
        return {"status": "degraded", "mqtt_connected": False,
                "store_writable": not (outage and outage.store_unwritable),
                "problems": {"daemon": outage.reason if outage else "not running"},
                "daemon_restarts": self._restarts}


def supervise(config_path: Path) -> int | None:
    """Run `dispatcher run` supervised on `config_path`; None when it cannot be (the caller then
    runs it unsupervised, which reports the problem as before)."""
    plan = read_plan(config_path)
    if plan is None:
        return None
    try:
        sock = listen(plan.host, plan.port)
    except OSError:
        return None
    from dispatcher.service.logs import configure_logging  # noqa: PLC0415 - after the cheap checks

    configure_logging(plan.log_level, plan.log_format)
    with sock:
        # Each daemon reads the file found here (relative paths: it shares our working
        # directory), not the result of a lookup of its own made later.
        argv = ["run", f"--config={config_path}"]
        return asyncio.run(Supervisor(argv, sock, os.environ).run())
