"""Committing a batch so that one event whose fold or storage raises cannot hold back the rest."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence
from datetime import datetime

from dispatcher.domain.events import DeadLetterReason
from dispatcher.errors import StoreError
from dispatcher.ingest.classify import describe
from dispatcher.store import Accepted, BatchResult, Inbound, IngestStore, Rejected

log = logging.getLogger("dispatcher.isolate")

# Errors that say the store cannot commit at all (full disk, read-only file, I/O, locked): no
# event is to blame, so the batch waits for the store rather than becoming dead letters.
_STORE_FAILURES = (OSError, MemoryError, StoreError, sqlite3.OperationalError,
                   sqlite3.InterfaceError, sqlite3.InternalError)


def is_store_failure(error: BaseException) -> bool:
    """Whether `error` means the store cannot commit, whichever events the batch holds."""
    # A bare DatabaseError is SQLite's "file is not a database" or "disk image is malformed".
    return isinstance(error, _STORE_FAILURES) or type(error) is sqlite3.DatabaseError


def as_dead_letter(item: Accepted, error: BaseException) -> Rejected:
    """An accepted event that could not be folded or stored, as an `internal_error` dead letter."""
    event = item.event
    return Rejected(item.payload, item.topic, DeadLetterReason.INTERNAL_ERROR, describe(error),
                    {"event_id": event.event_id, "event_type": event.type.value,
                     "account_id": event.account_id})


def merge(first: BatchResult, second: BatchResult) -> BatchResult:
    """What two batches committed one after the other did together."""
    return BatchResult(
        stored=first.stored + second.stored,
        duplicates=first.duplicates + second.duplicates,
        dead_letters=first.dead_letters + second.dead_letters,
        dead_letter_reasons=first.dead_letter_reasons + second.dead_letter_reasons)


async def commit_isolating(store: IngestStore, items: Sequence[Inbound], *, now: datetime,
                           config_version: str) -> BatchResult:
    """Commit `items`; when that raises (not for the store), commit halves apart, down to the
    one event to blame, which becomes an `internal_error` dead letter. Store failures propagate.
    """
    try:
        return await store.record_batch(items, now=now, config_version=config_version)
    except Exception as exc:
        if is_store_failure(exc) or not items:
            raise
        error = exc
    if len(items) == 1:
        item = items[0]
        if not isinstance(item, Accepted):
            raise error  # storing a dead letter failed: nothing narrower to set aside
        letter = as_dead_letter(item, error)
        log.error("event %s set aside as a dead letter: %s", item.event.event_id, letter.detail)
        return await store.record_batch([letter], now=now, config_version=config_version)
    middle = len(items) // 2
    first = await commit_isolating(store, items[:middle], now=now,
                                   config_version=config_version)
    second = await commit_isolating(store, items[middle:], now=now,
                                    config_version=config_version)
    return merge(first, second)
