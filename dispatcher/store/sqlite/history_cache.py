"""Accounts' attempts kept in memory by a store that holds its SQLite file alone.

`simulate`'s throw-away store is opened exclusively: nothing but its own connection writes the
file, so every change to the attempts table passes through that connection, where temporary
triggers report each row inserted, updated or deleted. Once a transaction commits, its changes
are applied to the accounts kept here, and an account's attempts are then read from memory
instead of from SQLite: the same attempts, in the same order, as the store's query returns.
"""

from __future__ import annotations

import itertools
import operator
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from dispatcher.domain.contact import Outcome, PastAttempt, Role
from dispatcher.store.sqlite.attempt_rows import HISTORY_COLUMNS, by_time_then_id, past_attempt

_DEBTOR = Role.DEBTOR
_NOT_SENT = Outcome.NOT_SENT
_CHANGED = "dispatcher_attempt_changed"
_INSERTED, _UPDATED, _DELETED = 1, 2, 3
# Kept accounts beyond this are all forgotten at once (each is read again when next due).
MAX_ACCOUNTS = 200_000


def _triggers() -> list[str]:
    new = ", ".join(f"NEW.{c}" for c in HISTORY_COLUMNS.split(", "))
    old = ", ".join(f"OLD.{c}" for c in HISTORY_COLUMNS.split(", "))
    return [
        f"CREATE TEMP TRIGGER attempts_kept_insert AFTER INSERT ON main.attempts BEGIN "
        f"SELECT {_CHANGED}({_INSERTED}, NEW.account_id, NULL, {new}); END",
        f"CREATE TEMP TRIGGER attempts_kept_update AFTER UPDATE ON main.attempts BEGIN "
        f"SELECT {_CHANGED}({_UPDATED}, NEW.account_id, OLD.account_id, {new}); END",
        f"CREATE TEMP TRIGGER attempts_kept_delete AFTER DELETE ON main.attempts BEGIN "
        f"SELECT {_CHANGED}({_DELETED}, OLD.account_id, NULL, {old}); END",
    ]


_ATTEMPT = operator.itemgetter(1)
_NUMBER = HISTORY_COLUMNS.split(", ").index("number")


def _odd(attempt: PastAttempt) -> bool:
    """Whether a read may leave the attempt out: a third party's (kept whatever its age) or one
    not sent."""
    return attempt.role is not _DEBTOR or attempt.outcome is _NOT_SENT


def _before(earlier: tuple[str, PastAttempt], later: tuple[str, PastAttempt]) -> bool:
    """Whether `earlier` comes strictly before `later`, by stored time and by instant."""
    return earlier[0] < later[0] and earlier[1].at < later[1].at


class _Kept:
    """One account's attempts from `since_key` on (and its third-party ones of every time),
    each with its stored time; not-sent ones are left out when read.

    Most reads take every attempt kept, in the order kept: `odd` counts those a read may leave
    out, and `rising` says whether each comes strictly after the one before it (by stored time
    and instant; False may also mean unknown), so that such a read is a copy."""

    __slots__ = ("attempts", "odd", "rising", "since_key")

    def __init__(self, since_key: str, attempts: list[tuple[str, PastAttempt]]) -> None:
        self.since_key = since_key
        self.attempts = attempts
        self.odd = sum(1 for _, a in attempts if _odd(a))
        self.rising = all(_before(a, b) for a, b in itertools.pairwise(attempts))

    def add(self, key: str, attempt: PastAttempt) -> None:
        """Keep one more attempt, after the others."""
        attempts = self.attempts
        if attempts and not _before(attempts[-1], (key, attempt)):
            self.rising = False
        attempts.append((key, attempt))
        if _odd(attempt):
            self.odd += 1

    def every(self, since_key: str) -> tuple[PastAttempt, ...] | None:
        """The attempts a read from `since_key` returns when it returns every one kept, in the
        order kept; None when it may not."""
        attempts = self.attempts
        if self.odd or not self.rising or (attempts and attempts[0][0] < since_key):
            return None
        return tuple(map(_ATTEMPT, attempts))


class HistoryCache:
    """Accounts' attempts as the store's history query would read them, kept up to date by
    triggers on the attempts table of a connection that alone can write it."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection
        self._kept: dict[str, _Kept] = {}
        # Rows changed by the transaction under way: applied when it commits.
        self._pending: list[tuple[Any, ...]] = []
        # Counts the changes applied: a read that straddles one keeps nothing it read.
        self.generation = 0
        # For each number, every account an attempt on it was stored under, at least: no more
        # is known of who used a number than that some other account may have.
        self._callers: dict[str, set[str]] = {}
        for number, account_id in connection.execute(
                "SELECT DISTINCT number, account_id FROM attempts"):
            self._callers.setdefault(number, set()).add(account_id)
        connection.create_function(_CHANGED, 3 + len(HISTORY_COLUMNS.split(", ")),
                                   self._changed)
        # A row that an INSERT OR REPLACE deletes fires the delete trigger only so.
        connection.execute("PRAGMA recursive_triggers = ON")
        for statement in _triggers():
            connection.execute(statement)

    def _changed(self, *row: Any) -> None:
        # Called by SQLite inside the statement: it must only take note (an error would fail
        # the write).
        self._pending.append(row)

    def committed(self) -> None:
        """Apply what the transaction that just committed changed."""
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        self.generation += 1
        for change, account_id, old_account, *columns in pending:
            if change != _DELETED:
                self._callers.setdefault(columns[_NUMBER], set()).add(account_id)
            kept = self._kept.get(account_id)
            if change == _UPDATED and old_account != account_id:
                self._kept.pop(old_account, None)
                self._kept.pop(account_id, None)
            elif kept is None:
                continue
            elif change == _INSERTED:
                kept.add(columns[1], past_attempt(columns))
            elif not _replace(kept, columns, deleted=change == _DELETED):
                # Not among those kept: older than the account's kept stretch, or not sent when
                # the account was read. Read the account afresh rather than reason about it.
                del self._kept[account_id]

    def only_called_by(self, number: str, accounts: set[str]) -> bool:
        """Whether no attempt on `number` was ever stored under an account outside `accounts`
        (False when the changes under way are not yet known)."""
        if self._pending:
            return False
        return self._callers.get(number, set()) <= accounts

    def rolled_back(self) -> None:
        """Forget what the transaction being rolled back changed, and every account kept: a
        rollback is rare (an error), and one that failed in turn would leave the file unknown."""
        self._pending = []
        self._kept.clear()
        self.generation += 1

    def read(self, account_ids: Iterable[str], since_key: str
             ) -> tuple[dict[str, tuple[PastAttempt, ...]], list[str]]:
        """The attempts of the kept accounts as the history query would return them from the
        instant whose key is `since_key`, and the accounts not kept (to be read from SQLite)."""
        if self._pending and not self._connection.in_transaction:
            self.committed()  # written outside a transaction: committed as it was written
        found: dict[str, tuple[PastAttempt, ...]] = {}
        missing = []
        for account_id in account_ids:
            kept = self._kept.get(account_id)
            if kept is None or since_key < kept.since_key:
                missing.append(account_id)
                continue
            every = kept.every(since_key)
            if every is not None:
                if every:
                    found[account_id] = every
                kept.since_key = since_key
                continue
            # The history query's conditions: recent, or a third party's of any time; sent.
            attempts = [a for key, a in kept.attempts if (key >= since_key or a.role is not _DEBTOR)
                        and a.outcome is not _NOT_SENT]
            if attempts:
                found[account_id] = by_time_then_id(attempts)
            if kept.attempts and kept.attempts[0][0] < since_key:
                # No later read goes back further: what it no longer holds is dropped (the
                # oldest first, most often, as attempts are added in time order).
                kept.attempts = [(key, a) for key, a in kept.attempts
                                 if key >= since_key or a.role is not _DEBTOR]
                if kept.odd:
                    kept.odd = sum(1 for _, a in kept.attempts if _odd(a))
            kept.since_key = since_key
        return found, missing

    def fill(self, rows: Mapping[str, list[tuple[str, PastAttempt]]],
             account_ids: Iterable[str], since_key: str) -> None:
        """Keep the accounts just read from SQLite from `since_key` on (`rows`: each account's
        attempts with their stored time; an account absent has none)."""
        if len(self._kept) > MAX_ACCOUNTS:
            self._kept.clear()
        for account_id in account_ids:
            self._kept[account_id] = _Kept(since_key, list(rows.get(account_id, ())))


def _replace(kept: _Kept, columns: Sequence[Any], *, deleted: bool) -> bool:
    """Put an updated attempt in place of the kept one with its id (or take a deleted one
    out); False when no kept attempt has its id."""
    attempt_id = columns[0]
    attempts = kept.attempts
    # From the newest: an outcome is nearly always the account's last attempt's.
    for index in range(len(attempts) - 1, -1, -1):
        old = attempts[index]
        if old[1].attempt_id == attempt_id:
            kept.odd -= _odd(old[1])
            if deleted:
                del attempts[index]  # what rose still rises
                return True
            new = (columns[1], past_attempt(columns))
            attempts[index] = new
            kept.odd += _odd(new[1])
            if new[0] != old[0] or new[1].at != old[1].at:
                kept.rising = all(_before(a, b) for a, b in itertools.pairwise(attempts))
            return True
    return False
