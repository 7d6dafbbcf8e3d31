"""Where ingest batches are validated and committed: in this process, or in a writer process.

The writer process puts validation, the account fold, the audit hash chain and SQLite on the
second core, so that the daemon's own process only receives and acknowledges MQTT messages.
Batches are answered in the order they were submitted.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import pickle
import struct
import sys
from collections import deque
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from dispatcher.classify import classify
from dispatcher.errors import DispatcherError
from dispatcher.store import BatchResult, Store

log = logging.getLogger(__name__)

RawMessage = tuple[str, bytes]  # (topic, payload)
_LENGTH = struct.Struct(">I")


class WriterError(DispatcherError):
    """The writer process failed; uncommitted batches are redelivered by the broker."""


class BatchWriter(Protocol):
    """Validates and commits raw batches; each future resolves once its batch is committed."""

    def submit(self, raw: list[RawMessage], *, now: datetime,
               config_version: str) -> asyncio.Future[BatchResult]:
        """Queue one batch for commit."""
        ...

    async def close(self) -> None:
        """Finish submitted batches and release resources."""
        ...


class InlineWriter:
    """Commits in this process: used by `simulate` and wherever one core is enough."""

    def __init__(self, store: Store, max_payload_bytes: int) -> None:
        self._store = store
        self._max_bytes = max_payload_bytes
        self._tasks: set[asyncio.Task[BatchResult]] = set()

    def submit(self, raw: list[RawMessage], *, now: datetime,
               config_version: str) -> asyncio.Future[BatchResult]:
        """Validate now; commit in a task of its own, so that a cancelled caller cannot cut it."""
        items = [classify(payload, topic, self._max_bytes) for topic, payload in raw]
        task = asyncio.create_task(
            self._store.record_batch(items, now=now, config_version=config_version))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def close(self) -> None:
        """Wait for batches still being committed."""
        if self._tasks:
            await asyncio.wait(set(self._tasks))


_PIPE_MAX_SIZE = Path("/proc/sys/fs/pipe-max-size")
_PIPE_SIZE_CAP = 16 * 2**20


def widen_pipe(fd: int) -> int | None:
    """Let the pipe on `fd` hold a whole batch: its new size, or None where it cannot grow.

    A Linux pipe holds 64 KiB, a batch of 1,000 events about 0.7 MB: the daemon's write of a batch
    then waits on the writer process reading it piece by piece between its commits, and the writer
    waits for its next batch. Unprivileged processes may go up to `fs.pipe-max-size` (by default
    1 MiB).
    """
    set_size = getattr(fcntl, "F_SETPIPE_SZ", None)
    if set_size is None:
        return None
    try:
        wanted = min(int(_PIPE_MAX_SIZE.read_text()), _PIPE_SIZE_CAP)
        return int(fcntl.fcntl(fd, set_size, wanted))
    except (OSError, ValueError) as exc:
        log.debug("pipe size left as it is: %s", exc)
        return None


async def write_frame(stream: asyncio.StreamWriter, obj: object) -> None:
    """Send one length-prefixed pickle."""
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_LENGTH.pack(len(data)) + data)
    await stream.drain()


async def read_frame(stream: asyncio.StreamReader) -> Any:  # pickled by our own peer
    """Receive one length-prefixed pickle; None at end of stream."""
    try:
        header = await stream.readexactly(_LENGTH.size)
        return pickle.loads(await stream.readexactly(_LENGTH.unpack(header)[0]))
    except asyncio.IncompleteReadError:
        return None


class ProcessWriter:
    """Commits in a child process (`python -m dispatcher.ingest_worker`) over stdin/stdout."""

    def __init__(self, store_path: Path, max_payload_bytes: int, log_level: str = "info",
                 log_format: str = "text") -> None:
        self._args = [str(store_path), str(max_payload_bytes), log_level, log_format]
        self._process: asyncio.subprocess.Process | None = None
        self._pending: deque[asyncio.Future[BatchResult]] = deque()
        self._reader: asyncio.Task[None] | None = None
        self._send_lock = asyncio.Lock()
        self._sending: set[asyncio.Task[None]] = set()
        self._failed: WriterError | None = None

    async def start(self) -> None:
        """Start the writer process and wait until it has opened the store."""
        self._failed = None
        self._process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "dispatcher.ingest_worker", *self._args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE)
        assert self._process.stdout is not None
        ready = await read_frame(self._process.stdout)
        if ready != "ready":
            await self._process.wait()
            raise WriterError(f"writer process did not start (exit {self._process.returncode}): "
                              f"{ready!r}")
        self._reader = asyncio.create_task(self._read_results(self._process), name="writer-rx")

    async def _read_results(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        while (frame := await read_frame(process.stdout)) is not None:
            future = self._pending.popleft()
            kind, value = frame
            if future.done():
                continue
            if kind == "ok":
                future.set_result(value)
            else:
                future.set_exception(WriterError(f"writer process: {value}"))
        await process.wait()
        self._fail(WriterError(f"writer process exited with {process.returncode}"))

    def _fail(self, error: WriterError) -> None:
        self._failed = error
        while self._pending:
            future = self._pending.popleft()
            if not future.done():
                future.set_exception(error)
                future.exception()  # the first waiter reports it; the rest need not

    def submit(self, raw: list[RawMessage], *, now: datetime,
               config_version: str) -> asyncio.Future[BatchResult]:
        """Send one batch; the future resolves when the writer process has committed it."""
        future: asyncio.Future[BatchResult] = asyncio.get_running_loop().create_future()
        process = self._process
        if self._failed is not None or process is None or process.stdin is None:
            future.set_exception(self._failed or WriterError("writer process is not running"))
            return future
        self._pending.append(future)
        # Sends queue on the lock in submission order, so results come back in that order. Each
        # is bound to this process: after a restart, nothing meant for the old one reaches the new.
        task = asyncio.create_task(self._send(process.stdin, ("batch", now, config_version, raw)))
        self._sending.add(task)
        task.add_done_callback(lambda done: self._sent(done, process))
        return future

    async def _send(self, stdin: asyncio.StreamWriter, frame: object) -> None:
        async with self._send_lock:
            if stdin.is_closing():
                raise ConnectionResetError("the pipe to the writer process is closed")
            await write_frame(stdin, frame)

    def _sent(self, task: asyncio.Task[None], process: asyncio.subprocess.Process) -> None:
        self._sending.discard(task)
        if task.cancelled() or task.exception() is None or process is not self._process:
            return
        self._fail(WriterError(f"cannot reach the writer process: {task.exception()}"))

    async def restart(self) -> None:
        """Replace a failed writer process."""
        await self.close()
        await self.start()

    async def close(self) -> None:
        """Let the writer process finish what it was sent, then wait for it to exit."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.stdin is not None and not process.stdin.is_closing():
            process.stdin.close()
            with contextlib.suppress(ConnectionError):
                await process.stdin.wait_closed()
        if self._reader is not None:
            await self._reader
        await process.wait()
        if process.returncode not in (0, None):
            log.warning("writer process exited with %s", process.returncode)
