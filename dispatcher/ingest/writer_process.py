"""The writer process: raw batches in on stdin, validated and committed, results out on stdout.

Started by `ProcessWriter`; it exits when its stdin closes (the daemon stopped or died), after
finishing the batch in hand. An event whose fold or storage raises becomes a dead letter
(`dispatcher.ingest.isolate`); a store that cannot commit is reported, and the process stays up.
It ignores SIGINT and SIGTERM: a terminal's Ctrl-C or systemd's stop reaches the daemon, which
drains and then closes the pipe.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from datetime import datetime, timedelta

from dispatcher.ingest.isolate import commit_isolating, is_store_failure
from dispatcher.ingest.writers import inbound, read_frame, widen_pipe, write_frame
from dispatcher.service.logs import configure_logging
from dispatcher.service.runtime import tune_gc
from dispatcher.store import Inbound, StoreLocation, location_from_text, open_store

log = logging.getLogger("dispatcher.writer")

_Job = tuple[datetime, str, list[Inbound]]


async def serve(store: StoreLocation, max_bytes: int, max_future: timedelta) -> None:
    """Answer batches until stdin closes."""
    widen_pipe(sys.stdin.fileno())
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=2**26)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    transport, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin,
                                                        sys.stdout)
    writer = asyncio.StreamWriter(transport, protocol, None, loop)
    jobs: asyncio.Queue[_Job | None] = asyncio.Queue(maxsize=2)

    async def receive() -> None:
        # Validating the next batch here overlaps the last one's commit, which waits for the disk
        # on a worker thread; every other statement runs on this thread
        # (dispatcher.store.sqlite.inline).
        while (frame := await read_frame(reader)) is not None:
            _, now, config_version, raw, poison = frame
            items = inbound(raw, max_bytes=max_bytes, now=now, max_future=max_future,
                            poison=poison)
            await jobs.put((now, config_version, items))
        await jobs.put(None)

    # The daemon's own connection checkpoints the WAL on the other core (Dispatcher.run).
    async with open_store(store, wal_checkpoints=False, inline=True) as opened:
        await write_frame(writer, "ready")
        async with asyncio.TaskGroup() as group:
            group.create_task(receive())
            while (job := await jobs.get()) is not None:
                now, config_version, items = job
                try:
                    result = await commit_isolating(opened, items, now=now,
                                                    config_version=config_version)
                except Exception as exc:
                    detail = f"{type(exc).__name__}: {exc}"
                    if is_store_failure(exc):
                        # Rolled back; the daemon retries the batch once the store commits again.
                        await write_frame(writer, ("store", detail))
                        continue
                    log.exception("batch failed")  # the daemon restarts us
                    await write_frame(writer, ("error", detail))
                    raise
                await write_frame(writer, ("ok", result))


def main() -> None:
    """Entry point: `python -m dispatcher.ingest.writer_process STORE MAX_BYTES MAX_FUTURE ...`."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    store, max_bytes, max_future, level, fmt = sys.argv[1:6]
    configure_logging(level, fmt)
    tune_gc()
    asyncio.run(serve(location_from_text(store), int(max_bytes),
                      timedelta(seconds=float(max_future))))


if __name__ == "__main__":
    main()
