"""The pipe to the writer process holds a whole batch, so that sending one never waits on it."""

from __future__ import annotations

import fcntl
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from dispatcher.ingest.writers import ProcessWriter, widen_pipe
from tests.support import FIXTURE_MAX_FUTURE_SECONDS, encode, overdue_event

LIMIT = min(int(Path("/proc/sys/fs/pipe-max-size").read_text()), 16 * 2**20)


def test_widen_pipe_grows_a_pipe_to_the_system_limit() -> None:
    read_end, write_end = os.pipe()
    try:
        assert fcntl.fcntl(write_end, fcntl.F_GETPIPE_SZ) < LIMIT
        assert widen_pipe(read_end) == LIMIT
        assert fcntl.fcntl(write_end, fcntl.F_GETPIPE_SZ) == LIMIT
    finally:
        os.close(read_end)
        os.close(write_end)


async def test_the_writer_process_reads_from_a_widened_pipe(tmp_path: Path) -> None:
    writer = ProcessWriter(tmp_path / "store.db", 65536,
                           timedelta(seconds=FIXTURE_MAX_FUTURE_SECONDS))
    await writer.start()
    try:
        process = writer._process  # noqa: SLF001 - the test looks at the pipe itself
        assert process is not None
        assert process.stdin is not None
        pipe = process.stdin.transport.get_extra_info("pipe")
        assert fcntl.fcntl(pipe.fileno(), fcntl.F_GETPIPE_SZ) == LIMIT
        raw = [("collections/events/t", encode(overdue_event(n))) for n in range(1000)]
        result = await writer.submit(raw, now=datetime(2026, 12, 1, tzinfo=UTC),
                                     config_version="v")
        assert result.stored == 1000
    finally:
        await writer.close()
