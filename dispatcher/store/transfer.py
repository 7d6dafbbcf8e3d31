"""Copying a store into another: what the source offers, and what the copy reports.

The source is read at one instant (a `Snapshot`); the target takes every table's rows unchanged,
the audit log with its sequence numbers and hashes, and commits only once its row counts and its
chain's head equal the source's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from dispatcher.audit.chain import ChainHead

# Rows read from the source and written to the target at once.
BATCH_ROWS = 5000

# Told each table's name and row count once the table is copied.
Progress = Callable[[str, int], None]


class Snapshot(Protocol):
    """A store read inside one read transaction: every table's rows as of one instant."""

    def tables(self) -> list[tuple[str, tuple[str, ...]]]:
        """Each table's name and columns, in the store's order."""
        ...

    def count(self, table: str) -> int:
        """How many rows the table holds."""
        ...

    def batches(self, table: str, columns: Sequence[str],
                size: int) -> Iterator[list[tuple[Any, ...]]]:
        """The table's rows, `size` at a time, never all at once."""
        ...

    def head(self) -> ChainHead:
        """The last record of the audit chain."""
        ...

    def check_alone(self) -> None:
        """Refuse (StoreError) when another process has the store open: it may be writing."""
        ...


@dataclass(frozen=True)
class CopyResult:
    """What a copy committed: rows per table, the chain's head, the target's schema versions."""

    rows: dict[str, int]
    head: ChainHead
    version_before: int
    version_after: int
