"""The SQLite store: WAL, numbered migrations, one writer transaction a batch."""

from dispatcher.store.sqlite.store import SqliteStore, check_writable

__all__ = ["SqliteStore", "check_writable"]
