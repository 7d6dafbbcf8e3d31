"""Re-submitting dead letters: each is classified again and, when now valid, stored as an event."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from dispatcher.ingest.classify import check_time, classify
from dispatcher.store import Accepted, BatchResult, DeadLetterStore, IngestStore, Rejected


class ReplayStore(DeadLetterStore, IngestStore, Protocol):
    """What replaying reads and writes."""


@dataclass(frozen=True)
class Replayed:
    """What became of one dead letter: `accepted` (as `event_id`), `already` replayed (as
    `event_id`), or still `rejected` (`reason`, `detail`)."""

    id: int
    status: str
    account_id: str | None
    event_id: str | None = None
    reason: str = ""
    detail: str = ""


@dataclass(frozen=True)
class ReplayResult:
    """Every dead letter's fate, the ids that do not exist, and the batch that stored them."""

    replayed: tuple[Replayed, ...]
    missing: tuple[int, ...]
    batch: BatchResult | None


async def replay_dead_letters(store: ReplayStore, ids: Sequence[int], *, now: datetime,
                              max_payload_bytes: int, max_future: timedelta,
                              config_version: str) -> ReplayResult:
    """Replay the dead letters `ids` (every pending one when empty); nothing when an id is
    missing."""
    letters = await store.dead_letters(ids or None)
    missing = tuple(sorted(set(ids) - {d.id for d in letters}))
    if missing:
        return ReplayResult((), missing, None)
    fates: list[Replayed] = []
    accepted: list[Accepted] = []
    for d in letters:
        if d.replayed_at:
            fates.append(Replayed(d.id, "already", d.account_id, d.replay_event_id))
            continue
        item = check_time(classify(d.payload, d.topic, max_payload_bytes, replay_of=d.id), now,
                          max_future)
        if isinstance(item, Rejected):
            fates.append(Replayed(d.id, "rejected", d.account_id, reason=item.reason,
                                  detail=item.detail))
        else:
            accepted.append(item)
            fates.append(Replayed(d.id, "accepted", item.event.account_id,
                                  item.event.event_id))
    batch = None
    if accepted:
        batch = await store.record_batch(accepted, now=now, config_version=config_version)
    return ReplayResult(tuple(fates), missing, batch)
