"""The real writer process, made to fail as a writer can: it dies on a batch holding a marked
message, and refuses to start while a marker file exists (a test stands it in for the writer)."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

from dispatcher.ingest import writer_process as ingest_worker
from dispatcher.ingest.writers import inbound
from dispatcher.store import Inbound

CRASH_MARK = b"crash-the-writer"
BLOCK_FILE = "DISPATCHER_TEST_WRITER_BLOCK_FILE"  # while this file exists, the writer cannot start


def _dying_inbound(raw: Sequence[tuple[str, bytes]], *, max_bytes: int, now: datetime,
                   max_future: timedelta, poison: str | None) -> list[Inbound]:
    if poison is None and any(CRASH_MARK in payload for _, payload in raw):
        os._exit(70)  # as a segfault or the OOM killer would end it: no answer, no cleanup
    return inbound(raw, max_bytes=max_bytes, now=now, max_future=max_future,
                   poison=poison)


if __name__ == "__main__":
    block = os.environ.get(BLOCK_FILE)
    if block and Path(block).exists():
        sys.exit(3)
    vars(ingest_worker)["inbound"] = _dying_inbound
    ingest_worker.main()
