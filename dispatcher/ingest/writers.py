"""Where ingest batches are validated and committed: in this process, or in a writer process.

The writer process puts validation, the account fold, the audit hash chain and SQLite on the
second core, so that the daemon's own process only receives and acknowledges MQTT messages.
Batches are answered in the order they were submitted. `ResilientWriter` sees to it that no
batch ever fails for good: it waits out a store that cannot commit, restarts a writer process
that died, and sets aside as a dead letter the one message a writer process keeps dying on.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import pickle
import random
import struct
import sys
import time
from collections import deque
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from dispatcher.domain.events import DeadLetterReason
from dispatcher.errors import DispatcherError
from dispatcher.ingest.classify import classify_batch, rejected
from dispatcher.ingest.isolate import commit_isolating, is_store_failure, merge
from dispatcher.service.problems import Problems
from dispatcher.store import BatchResult, Inbound, IngestStore, StoreLocation

log = logging.getLogger("dispatcher.writers")

RawMessage = tuple[str, bytes]  # (topic, payload)
_LENGTH = struct.Struct(">I")
WRITER_MODULE = "dispatcher.ingest.writer_process"


class WriterError(DispatcherError):
    """The writer failed; uncommitted batches are redelivered by the broker."""


class StoreUnavailable(WriterError):
    """The store refused a commit (full disk, read-only file, I/O error): no event is to blame."""


class BatchWriter(Protocol):
    """Validates and commits raw batches; each future resolves once its batch is committed."""

    def submit(self, raw: list[RawMessage], *, now: datetime, config_version: str,
               poison: str | None = None) -> asyncio.Future[BatchResult]:
        """Queue one batch for commit; with `poison`, as `internal_error` dead letters."""
        ...

    async def restart(self) -> None:
        """Make the writer usable again after it failed."""
        ...

    async def close(self) -> None:
        """Finish submitted batches and release resources."""
        ...


def inbound(raw: Sequence[RawMessage], *, max_bytes: int, now: datetime, max_future: timedelta,
            poison: str | None) -> list[Inbound]:
    """The batch as classified items; with `poison`, every message a dead letter saying so."""
    if poison is None:
        return classify_batch(raw, max_bytes=max_bytes, now=now, max_future=max_future)
    return [rejected(payload, topic, DeadLetterReason.INTERNAL_ERROR, poison)
            for topic, payload in raw]


class InlineWriter:
    """Commits in this process: used by `simulate` and wherever one core is enough."""

    def __init__(self, store: IngestStore, max_payload_bytes: int, max_future: timedelta) -> None:
        self._store = store
        self._max_bytes = max_payload_bytes
        self._max_future = max_future
        self._tasks: set[asyncio.Task[BatchResult]] = set()

    def submit(self, raw: list[RawMessage], *, now: datetime, config_version: str,
               poison: str | None = None) -> asyncio.Future[BatchResult]:
        """Validate now; commit in a task of its own, so that a cancelled caller cannot cut it."""
        items = inbound(raw, max_bytes=self._max_bytes, now=now, max_future=self._max_future,
                        poison=poison)
        task = asyncio.create_task(self._commit(items, now, config_version))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _commit(self, items: list[Inbound], now: datetime,
                      config_version: str) -> BatchResult:
        try:
            return await commit_isolating(self._store, items, now=now,
                                          config_version=config_version)
        except Exception as exc:
            kind = StoreUnavailable if is_store_failure(exc) else WriterError
            raise kind(f"{type(exc).__name__}: {exc}") from exc

    async def restart(self) -> None:
        """Nothing to restart: the next batch uses the same connection."""

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
    """Commits in a child process (`python -m dispatcher.ingest.writer_process`) over pipes."""

    def __init__(self, store: StoreLocation, max_payload_bytes: int, max_future: timedelta,
                 log_level: str = "info", log_format: str = "text", *,
                 module: str = WRITER_MODULE) -> None:
        self._module = module
        self._args = [str(store), str(max_payload_bytes),
                      str(max_future.total_seconds()), log_level, log_format]
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
            sys.executable, "-m", self._module, *self._args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE)
        assert self._process.stdout is not None
        ready = await read_frame(self._process.stdout)
        if ready != "ready":
            process, self._process = self._process, None
            await process.wait()
            raise WriterError(f"writer process did not start (exit {process.returncode}): "
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
            elif kind == "store":
                future.set_exception(StoreUnavailable(value))
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

    def submit(self, raw: list[RawMessage], *, now: datetime, config_version: str,
               poison: str | None = None) -> asyncio.Future[BatchResult]:
        """Send one batch; the future resolves when the writer process has committed it."""
        future: asyncio.Future[BatchResult] = asyncio.get_running_loop().create_future()
        process = self._process
        if self._failed is not None or process is None or process.stdin is None:
            future.set_exception(self._failed or WriterError("writer process is not running"))
            return future
        self._pending.append(future)
        # Sends queue on the lock in submission order, so results come back in that order. Each
        # is bound to this process: after a restart, nothing meant for the old one reaches the new.
        task = asyncio.create_task(self._send(process.stdin,
                                              ("batch", now, config_version, raw, poison)))
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


class ResilientWriter:
    """Wraps a writer so that no batch fails for good, and the reason intake waits is known.

    A store that cannot commit (full disk, read-only file) is waited out with backoff: the batch
    stays unacknowledged, so the broker keeps it. A writer that fails otherwise (its process
    died) is restarted, and from then on batches go one at a time until one commits, so that
    the next failure is known to be that batch's. A batch failing twice is split in halves, down
    to the one message to blame, which is stored as an `internal_error` dead letter.
    """

    def __init__(self, inner: BatchWriter, problems: Problems, *, first_delay: float = 0.2,
                 max_delay: float = 5.0, rng: random.Random | None = None) -> None:
        self._inner = inner
        self._problems = problems
        self._first_delay = first_delay
        self._max_delay = max_delay
        self._rng = rng or random.Random()
        self._broken = False
        self._turn = asyncio.Lock()
        self._careful = 0  # batches being settled one at a time
        self._fast = 0  # batches with the inner writer on the usual, pipelined path
        self._idle = asyncio.Event()
        self._idle.set()
        self._pending: dict[asyncio.Task[BatchResult], float] = {}

    def submit(self, raw: list[RawMessage], *, now: datetime, config_version: str,
               poison: str | None = None) -> asyncio.Future[BatchResult]:
        """Queue one batch; the future resolves once it is committed, however long that takes."""
        task = asyncio.create_task(self._commit(raw, now, config_version, poison))
        self._pending[task] = time.monotonic()
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[BatchResult]) -> None:
        self._pending.pop(task, None)

    def oldest_pending_seconds(self) -> float:
        """How long the oldest batch not yet committed has waited (0 when none waits)."""
        if not self._pending:
            return 0.0
        return time.monotonic() - min(self._pending.values())

    async def _commit(self, raw: list[RawMessage], now: datetime, config_version: str,
                      poison: str | None) -> BatchResult:
        if not self._careful:
            self._fast += 1
            self._idle.clear()
            try:
                result = await self._inner.submit(raw, now=now, config_version=config_version,
                                                  poison=poison)
            except StoreUnavailable as error:
                self._problems.report("store", f"cannot commit: {error}")
            except WriterError as error:
                self._broke(error)
            else:
                self._working()
                return result
            finally:
                self._fast -= 1
                if not self._fast:
                    self._idle.set()
        self._careful += 1
        try:
            async with self._turn:
                return await self._settle(raw, now, config_version, poison)
        finally:
            self._careful -= 1

    async def _settle(self, raw: list[RawMessage], now: datetime, config_version: str,
                      poison: str | None) -> BatchResult:
        failures = stalls = 0
        while True:
            await self._ensure_running()
            await self._idle.wait()  # no other batch in the writer: a failure is this one's
            try:
                result = await self._inner.submit(raw, now=now, config_version=config_version,
                                                  poison=poison)
            except StoreUnavailable as error:
                self._problems.report("store", f"cannot commit: {error}")
                await asyncio.sleep(self._delay(stalls))
                stalls += 1
                continue
            except WriterError as error:
                self._broke(error)
                failures += 1
                if failures < 2:
                    continue
                if len(raw) > 1:
                    middle = len(raw) // 2
                    first = await self._settle(raw[:middle], now, config_version, poison)
                    second = await self._settle(raw[middle:], now, config_version, poison)
                    return merge(first, second)
                if poison is None:
                    poison = f"the ingest writer failed twice on this message: {error}"
                    log.error(  # noqa: TRY400 - one line; the writer logged its own traceback
                        "one message set aside as a dead letter: %s", poison,
                        extra={"topic": raw[0][0]})
                    failures = 0
                    continue
                await asyncio.sleep(self._delay(failures - 2))
                continue
            self._working()
            return result

    async def _ensure_running(self) -> None:
        attempt = 0
        while self._broken:
            try:
                await self._inner.restart()
            except Exception as exc:  # reported, and tried again with backoff
                self._problems.report("writer", f"cannot start: {type(exc).__name__}: {exc}")
                await asyncio.sleep(self._delay(attempt))
                attempt += 1
            else:
                self._broken = False

    def _broke(self, error: WriterError) -> None:
        self._broken = True
        self._problems.report("writer", f"restarting after: {error}")

    def _working(self) -> None:
        self._problems.clear("store")
        self._problems.clear("writer")

    def _delay(self, attempt: int) -> float:
        delay = min(self._max_delay, self._first_delay * 2 ** min(attempt, 30))
        return float(delay * (0.5 + self._rng.random() / 2))

    async def restart(self) -> None:
        """Restart the inner writer."""
        await self._inner.restart()
        self._broken = False

    async def close(self) -> None:
        """Give up on batches still waiting (they were never acknowledged), then close."""
        for task in list(self._pending):
            task.cancel()
        if self._pending:
            await asyncio.wait(set(self._pending))
        await self._inner.close()
