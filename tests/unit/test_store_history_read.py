"""The SQLite store's history read (one JSON array per account) gives exactly the attempts a
plain row-by-row reading of the attempts table gives, whatever text the columns hold."""

from __future__ import annotations

import json
import sqlite3
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dispatcher.domain.clock import parse_rfc3339
from dispatcher.domain.contact import Medium, Outcome, PastAttempt, Role
from dispatcher.ingest.classify import classify
from dispatcher.store import AttemptRow, open_store
from tests.unit.test_contact_engine import START, overdue

NOW = datetime(2026, 12, 9, 18, 0, tzinfo=UTC)
SINCE = NOW - timedelta(days=3)
ACCOUNTS = ("A", "B", "C")

# Any text SQLite keeps as text: no lone surrogates (not UTF-8).
_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)
_attempt = st.builds(
    AttemptRow, attempt_id=_text, account_id=st.sampled_from(ACCOUNTS), person=_text,
    role=st.sampled_from(list(Role)), number=_text, medium=st.sampled_from(list(Medium)),
    stage=st.none() | _text, window=st.none() | _text, rule=st.none(), template=st.none(),
    at=st.integers(0, 5 * 24).map(lambda h: NOW - timedelta(hours=h)),
    hour_of_week=st.none() | st.integers(0, 7 * 24 - 1))
# What the outcome column holds: NULL in flight; an empty text was read as in flight too.
_outcome = st.none() | st.sampled_from(["", *Outcome])


def _reference(path: Path, account_id: str) -> list[PastAttempt]:
    """The account's attempts read one row at a time, filtered and ordered in Python."""
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT attempt_id, at, person, role, number, medium, window_name, "
                          "stage, outcome FROM attempts WHERE account_id = ?",
                          (account_id,)).fetchall()
    found = [PastAttempt(r[0], parse_rfc3339(r[1]), r[2], Role(r[3]), r[4], Medium(r[5]), r[6],
                         r[7], Outcome(r[8]) if r[8] else None) for r in rows]
    return sorted((a for a in found if (a.at >= SINCE or a.role is not Role.DEBTOR)
                   and a.outcome is not Outcome.NOT_SENT), key=lambda a: (a.at, a.attempt_id))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(_attempt, _outcome), max_size=25,
                unique_by=lambda made: made[0].attempt_id))
async def test_history_is_the_rows_as_stored(made: list[tuple[AttemptRow, str | None]]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "store.db"
        async with open_store(path) as store:
            events = [overdue(a, days=2, n=n) for n, a in enumerate(ACCOUNTS)]
            await store.record_batch(
                [classify(json.dumps(e).encode(), "t", 65536) for e in events],
                now=START, config_version="t")
            await store.record_decisions(attempts=[a for a, _ in made], plans=[], audit=[], now=NOW,
                                         config_version="t")
        with sqlite3.connect(path) as db:
            db.executemany("UPDATE attempts SET outcome = ? WHERE attempt_id = ?",
                           [(outcome, a.attempt_id) for a, outcome in made])
        async with open_store(path) as store:
            contexts = await store.contexts(list(ACCOUNTS), SINCE)
        for account_id in ACCOUNTS:
            assert list(contexts[account_id].history) == _reference(path, account_id)
