"""The SQLite store: WAL, numbered migrations, one writer transaction a batch."""

from dispatcher.store.sqlite.store import SqliteStore, open_store

__all__ = ["SqliteStore", "open_store"]
