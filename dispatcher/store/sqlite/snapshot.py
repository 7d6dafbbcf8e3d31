"""A SQLite store read at one instant, for copying it elsewhere: one read transaction, no writes.

Whether another process has the file open is read from Linux's table of file locks: every
SQLite connection in WAL mode holds a shared lock on the `-shm` file for as long as it is open.
Elsewhere that cannot be known, and the daemon must be stopped on the operator's word.
"""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from dispatcher.audit.chain import EMPTY_CHAIN, ChainHead
from dispatcher.errors import StoreError
from dispatcher.store.sqlite.migrations import SCHEMA_VERSION

_LOCKS = Path("/proc/locks")
# `1: POSIX  ADVISORY  READ 31065 fe:00:2147269 128 128` (a waiter's line has `-> ` after `1: `).
_LOCK_LINE = re.compile(r"^\d+: (?:-> )?\S+\s+\S+\s+\S+\s+(-?\d+) ([0-9a-f]+):([0-9a-f]+):(\d+) ",
                        re.MULTILINE)


class SqliteSnapshot:
    """The rows of a SQLite store as of the start of one read transaction."""

    def __init__(self, db: sqlite3.Connection, path: Path) -> None:
        self._db = db
        self.path = path

    def tables(self) -> list[tuple[str, tuple[str, ...]]]:
        """Each table's name and columns, in the order the migrations created them."""
        names = [str(row[0]) for row in self._db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' "
            "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY rowid")]
        return [(name, tuple(str(row[1]) for row in self._db.execute(
            f"PRAGMA table_info({_quoted(name)})"))) for name in names]

    def count(self, table: str) -> int:
        """How many rows the table holds."""
        return int(self._db.execute(f"SELECT COUNT(*) FROM {_quoted(table)}").fetchone()[0])

    def batches(self, table: str, columns: Sequence[str],
                size: int) -> Iterator[list[tuple[Any, ...]]]:
        """The table's rows in storage order, `size` at a time."""
        listed = ", ".join(_quoted(c) for c in columns)
        with closing(self._db.execute(f"SELECT {listed} FROM {_quoted(table)}")) as cursor:
            while batch := cursor.fetchmany(size):
                yield batch

    def head(self) -> ChainHead:
        """The last record of the audit chain, as the store reads it."""
        row = self._db.execute("SELECT seq, json_extract(record, '$.hash') FROM audit "
                               "ORDER BY seq DESC LIMIT 1").fetchone()
        return EMPTY_CHAIN if row is None else ChainHead(int(row[0]), str(row[1]))

    def check_alone(self) -> None:
        """Refuse when another process has the store open: the daemon may be writing to it."""
        refuse_if_open(self.path)


@contextmanager
def read_snapshot(path: Path) -> Iterator[SqliteSnapshot]:
    """The store at `path` inside one read transaction; refuse a file that another process has
    open, or whose schema is not this dispatcher's."""
    if not path.is_file():
        raise StoreError(f"no SQLite store at {path}")
    refuse_if_open(path)
    # Read-write, though nothing is written: a read-only connection would leave the -wal and
    # -shm files behind, owned by whoever copied, for the daemon to trip over.
    db = sqlite3.connect(f"file:{quote(str(path.resolve()))}?mode=rw", uri=True,
                         isolation_level=None)
    try:
        db.execute("PRAGMA query_only = ON")
        db.execute("PRAGMA busy_timeout = 10000")
        db.execute("BEGIN")
        _check_version(db, path)
        yield SqliteSnapshot(db, path)
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{path}: {exc}") from None
    finally:
        db.close()


def _check_version(db: sqlite3.Connection, path: Path) -> None:
    version = int(db.execute("PRAGMA user_version").fetchone()[0])
    if version == 0:
        raise StoreError(f"{path} is not a dispatcher store (no schema)")
    if version < SCHEMA_VERSION:
        raise StoreError(f"{path}: schema version {version} is older than this dispatcher's "
                         f"({SCHEMA_VERSION}): run `dispatcher store migrate` on it first (with "
                         "a config whose [store] url names it)")
    if version > SCHEMA_VERSION:
        raise StoreError(f"{path}: schema version {version} is newer than this dispatcher "
                         f"supports ({SCHEMA_VERSION}); upgrade the dispatcher")


def refuse_if_open(path: Path) -> None:
    """StoreError naming the processes, other than this one, that have the store open."""
    pids = _lock_holders([path, path.with_name(f"{path.name}-shm")])
    if pids:
        listed = ", ".join(str(pid) for pid in sorted(pids))
        raise StoreError(f"{path} is open in process {listed} (the daemon?): stop it, and any "
                         "other dispatcher command on this store, then copy again: rows "
                         "written after the copy would be lost")


def _lock_holders(paths: Sequence[Path]) -> set[int]:
    """Processes other than this one with a lock on any of `paths`; none where unknown."""
    files = set()
    for path in paths:
        try:
            stat = path.stat()
        except OSError:
            continue
        files.add((os.major(stat.st_dev), os.minor(stat.st_dev), stat.st_ino))
    try:
        text = _LOCKS.read_text(encoding="ascii", errors="replace") if files else ""
    except OSError:
        return set()
    return {int(pid) for pid, major, minor, inode in _LOCK_LINE.findall(text)
            if (int(major, 16), int(minor, 16), int(inode)) in files and int(pid) != os.getpid()}


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
