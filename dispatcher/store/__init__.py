"""Persistence: the repository Protocol and its SQLite implementation."""

from dispatcher.store.base import (
    Accepted,
    BatchResult,
    DeadLetter,
    Inbound,
    OptOut,
    Rejected,
    Store,
)
from dispatcher.store.sqlite.store import SqliteStore, open_store

__all__ = [
    "Accepted",
    "BatchResult",
    "DeadLetter",
    "Inbound",
    "OptOut",
    "Rejected",
    "SqliteStore",
    "Store",
    "open_store",
]
