"""The daemon's head job: sign the audit chain's head when it moved, keep it in the head file,
and hand it to the MQTT publisher to retain under `<out_prefix>/_audit/head`."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path
from typing import Any

from dispatcher.audit.chain import ChainHead
from dispatcher.audit.heads import signed_head, write_head
from dispatcher.audit.keys import CheckpointSigner
from dispatcher.store import HeadStore

# Heads kept in the file: at the default interval, three and a half days of them.
HEAD_HISTORY = 1000


class HeadAnchor:
    """Writes a head when records were written since the last one; remembers it to publish."""

    def __init__(self, store: HeadStore, path: Path, signer: CheckpointSigner | None,
                 keep: int = HEAD_HISTORY) -> None:
        self._store = store
        self.path = path
        self._signer = signer
        self._keep = keep
        self._last: ChainHead | None = None
        self.latest: dict[str, Any] | None = None
        self._unpublished: dict[str, Any] | None = None

    async def anchor(self, now: datetime) -> dict[str, Any] | None:
        """Sign and write the current head, unless it is the one written last; return it."""
        head = await self._store.audit_head()
        if head.seq == 0 or head == self._last:
            return None
        record = signed_head(head, now, self._signer)
        await asyncio.to_thread(write_head, self.path, record, self._keep)
        self._last = head
        self.latest = self._unpublished = record
        return record

    def unpublished(self) -> dict[str, Any] | None:
        """The newest head the broker does not have yet."""
        return self._unpublished

    def published(self, record: dict[str, Any]) -> None:
        """The broker acknowledged `record`."""
        if self._unpublished is record:
            self._unpublished = None

    def republish(self) -> None:
        """Offer the latest head again (a new connection: the broker may have lost it)."""
        self._unpublished = self.latest
