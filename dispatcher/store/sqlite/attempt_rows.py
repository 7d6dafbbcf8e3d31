"""Stored attempts as the engine reads them: the columns, and the conversions of a row."""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from dispatcher.domain.clock import parse_rfc3339
from dispatcher.domain.contact import (
    MEDIUM_BY_VALUE,
    OUTCOME_BY_VALUE,
    ROLE_BY_VALUE,
    Outcome,
    PastAttempt,
)

# An attempt's columns in PastAttempt's order, as the history query and the triggers give them.
HISTORY_COLUMNS = "attempt_id, at, person, role, number, medium, window_name, stage, outcome"
# An attempt's outcome as the engine reads it: one awaiting its outcome stores NULL (or, as the
# reads always took it, an empty text).
OUTCOMES: dict[str | None, Outcome | None] = {None: None, "": None}
OUTCOMES.update(OUTCOME_BY_VALUE.items())
# From a tuple of its fields: a call cheaper than the class's.
make_past_attempt = PastAttempt._make


@functools.lru_cache(maxsize=1 << 17)
def instant(text: str) -> datetime:
    """A stored time (`parse_rfc3339`), from a cache: attempts share a few instants."""
    return parse_rfc3339(text)


def past_attempt(row: Sequence[Any]) -> PastAttempt:
    """A stored attempt from its HISTORY_COLUMNS."""
    attempt_id, at, person, role, number, medium, window, stage, outcome = row
    return make_past_attempt((attempt_id, instant(at), person, ROLE_BY_VALUE[role], number,
                              MEDIUM_BY_VALUE[medium], window, stage, OUTCOMES[outcome]))


def by_time_then_id(attempts: list[PastAttempt]) -> tuple[PastAttempt, ...]:
    """One account's attempts by time then id.

    Read through the index on (account, time) they come in time order; the id decides only
    between attempts at one instant, which an account's own attempts never share (an attempt's
    id is made of its account and instant), so they are sorted here only if two are not in
    strictly rising time, instead of by SQLite for every row (an aggregate's input order is
    the query plan's, not a promise).
    """
    if any(a.at >= b.at for a, b in itertools.pairwise(attempts)):
        attempts.sort(key=lambda a: (a.at, a.attempt_id))
    return tuple(attempts)
