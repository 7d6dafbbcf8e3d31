"""The agenda's rows from stored plans: pure, masked, local times, truncation, bad queries."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dispatcher.cli import agenda as cli_agenda
from dispatcher.contact import agenda
from dispatcher.contact.decide import StoredPlan, plan_to_json
from dispatcher.domain.accounts import fold
from dispatcher.domain.contact import Medium, Role, Target
from dispatcher.domain.events import parse_event
from dispatcher.store import AgendaQuery, PlannedRow, open_store
from schedules.planner import NoAttempt, PlannedAttempt
from tests.support import encode, overdue_event

AT = datetime(2026, 12, 2, 15, 0, tzinfo=UTC)  # 09:00 in Chicago
STATE = fold("A-1", [parse_event(encode(overdue_event(1, "A-1")))])


def planned(plan: PlannedAttempt | NoAttempt, next_at: datetime | None = None) -> PlannedRow:
    return PlannedRow("A-1", STATE, plan_to_json(StoredPlan(plan)), next_at)


def attempt(role: Role = Role.DEBTOR, number: str = "+15125550100") -> PlannedAttempt:
    person = "debtor" if role is Role.DEBTOR else "C-7"
    return PlannedAttempt(AT, Target(role, person, number, None, Medium.CALL), "late", "morning",
                          "standard:late:morning", "call_script")


def test_a_row_carries_the_plan_with_the_number_masked_and_local_times() -> None:
    row = agenda.agenda_row(planned(attempt(), next_at=AT))
    assert row is not None
    values = row.as_dict()
    assert {k: values[k] for k in agenda.FIELDS} == {
        "at": "2026-12-02T15:00:00.000Z", "local_time": "2026-12-02T09:00-06:00",
        "zone": "America/Chicago", "account_id": "A-1", "party": "debtor", "role": "debtor",
        "person": "debtor", "channel": "call", "number": "+15*******00", "number_type": None,
        "stage": "late", "window": "morning", "rule": "standard:late:morning",
        "template": "call_script", "engine_looks_at": None}
    assert "+15125550100" not in repr(row)


def test_a_third_party_row_and_an_earlier_look() -> None:
    row = agenda.agenda_row(planned(attempt(Role.EMERGENCY, "+12125550177"),
                                    next_at=AT - timedelta(hours=2)))
    assert row is not None
    assert (row.party, row.role, row.person) == ("third_party", "emergency", "C-7")
    # Their own number's zone is respected too.
    assert "America/New_York" in row.local_times
    assert row.engine_looks_at == AT - timedelta(hours=2)
    assert "(looked at again 2026-12-02T13:00)" in next(
        line for line in agenda.table(agenda.Agenda(AgendaQuery(AT, AT, 1), (row,), False))
        if "A-1" in line)


def test_a_plan_without_an_attempt_has_no_row() -> None:
    assert agenda.agenda_row(planned(NoAttempt(()))) is None


def test_rows_beyond_the_limit_tell_truncation() -> None:
    # The store is asked for one row more than the limit (test_agenda.py, on both stores).
    query = AgendaQuery(AT, AT + timedelta(days=1), 2)
    cut = agenda.agenda_rows([planned(attempt())] * 3, query)
    assert (len(cut.rows), cut.truncated) == (2, True)
    assert "TRUNCATED" in agenda.summary(cut)
    whole = agenda.agenda_rows([planned(attempt())] * 2, query)
    assert (len(whole.rows), whole.truncated) == (2, False)
    assert "TRUNCATED" not in agenda.summary(whole)


@pytest.mark.parametrize("query", [
    AgendaQuery(AT, AT + timedelta(days=1), 0),
    AgendaQuery(AT, AT, 10),
    AgendaQuery(AT, AT + timedelta(days=1), 10, party="neighbour"),
])
def test_a_bad_query_is_refused(tmp_path: Path, query: AgendaQuery) -> None:
    async def read() -> None:
        async with open_store(tmp_path / "s.db") as store:
            await agenda.read_agenda(store, query)
    with pytest.raises(ValueError, match=r"agenda|party"):
        asyncio.run(read())


def test_the_command_lines_default_limit_is_the_agendas() -> None:
    assert cli_agenda.DEFAULT_LIMIT == agenda.DEFAULT_LIMIT
