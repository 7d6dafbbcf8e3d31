"""Queue items as a console or the CLI reads them: the model (dispatcher.domain.queue) and
`list_items`."""

from __future__ import annotations

from dispatcher.domain.queue import (
    ALLOWED,
    MAX_EXCERPT,
    REVIEW_PAUSED,
    STATEMENT_HOLDS,
    Action,
    NewItem,
    QueueItem,
    Reason,
    State,
    clean,
    hold_event_id,
    items_from_audit,
    key_digest,
)
from dispatcher.store.base import QueueReader

__all__ = ["ALLOWED", "MAX_EXCERPT", "REVIEW_PAUSED", "STATEMENT_HOLDS", "Action", "NewItem",
           "QueueItem", "Reason", "State", "clean", "hold_event_id", "items_from_audit",
           "key_digest", "list_items"]


async def list_items(store: QueueReader, *, state: State | None = State.OPEN,
                     reason: Reason | None = None, account_id: str | None = None,
                     limit: int | None = None) -> list[QueueItem]:
    """Items oldest first: open ones by default, `state=None` for all; at most `limit`."""
    return await store.queue_items(state=state, reason=reason, account_id=account_id,
                                   limit=limit)
