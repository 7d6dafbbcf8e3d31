"""The agenda: the attempts the engine has planned across accounts in a time range.

Rows are the stored plans (the same ones `explain` shows as the engine's), read through the store
and turned into rows by a pure function, for the command line and the web console alike. A row
carries the number masked: the agenda is an operator's view; the audit log keeps full numbers.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from dispatcher.compliance.gate import zones_for
from dispatcher.contact.account_facts import facts_for, local_times
from dispatcher.contact.decide import plan_from_json
from dispatcher.domain.clock import utc_rfc3339
from dispatcher.domain.phones import mask_number
from dispatcher.store import AccountContext, AgendaQuery, AgendaStore, PlannedRow
from schedules.planner import PlannedAttempt

DEFAULT_LIMIT = 1000
# The columns of the csv format and the keys of every jsonl object, in order.
FIELDS = ("at", "local_time", "zone", "account_id", "party", "role", "person", "channel",
          "number", "number_type", "stage", "window", "rule", "template", "engine_looks_at")


@dataclass(frozen=True)
class AgendaRow:
    """One planned attempt as the agenda shows it (the number masked)."""

    at: datetime
    local_times: dict[str, str]  # the attempt's time in each zone it must respect, first the main
    account_id: str
    party: str
    role: str
    person: str
    channel: str
    number: str  # masked
    number_type: str | None
    stage: str
    window: str
    rule: str
    template: str
    engine_looks_at: datetime | None  # sooner than `at` when an event came since the plan

    @property
    def zone(self) -> str | None:
        """The first zone the attempt must respect (the debtor's home zone for the debtor)."""
        return next(iter(self.local_times), None)

    @property
    def local_time(self) -> str:
        """The attempt's local time in `zone` (ISO, minutes and offset), or "" without one."""
        return self.local_times[self.zone] if self.zone else ""

    def as_dict(self) -> dict[str, Any]:
        """The row as JSON values, keyed by FIELDS, plus every zone's local time."""
        looks = self.engine_looks_at
        return {"at": utc_rfc3339(self.at), "local_time": self.local_time, "zone": self.zone,
                "account_id": self.account_id, "party": self.party, "role": self.role,
                "person": self.person, "channel": self.channel, "number": self.number,
                "number_type": self.number_type, "stage": self.stage, "window": self.window,
                "rule": self.rule, "template": self.template,
                "engine_looks_at": utc_rfc3339(looks) if looks else None,
                "local_times": dict(self.local_times)}


@dataclass(frozen=True)
class Agenda:
    """The rows of one query, and whether more matched than its limit."""

    query: AgendaQuery
    rows: tuple[AgendaRow, ...]
    truncated: bool


def agenda_row(planned: PlannedRow) -> AgendaRow | None:
    """The row of one stored plan; None when the plan is not an attempt."""
    plan = plan_from_json(planned.plan_json).plan
    if not isinstance(plan, PlannedAttempt):
        return None
    # The zones are the account's alone (its debtor's zones; a third party's number's too).
    facts = facts_for(AccountContext(state=planned.state, plan_json=planned.plan_json,
                                     history=(), opted_out=frozenset(),
                                     invalid_numbers=frozenset()))
    target = plan.target
    looks = planned.next_at if planned.next_at and planned.next_at < plan.at else None
    return AgendaRow(at=plan.at, local_times=local_times(zones_for(target, facts), plan.at),
                     account_id=planned.account_id, party=target.party.value,
                     role=target.role.value, person=target.person, channel=target.medium.value,
                     number=mask_number(target.number), number_type=target.number_type,
                     stage=plan.stage, window=plan.window, rule=plan.rule,
                     template=plan.template, engine_looks_at=looks)


def agenda_rows(planned: list[PlannedRow], query: AgendaQuery) -> Agenda:
    """The agenda of what the store answered to `query` asked for one row more than its limit."""
    rows = [row for row in map(agenda_row, planned) if row is not None]
    return Agenda(query, tuple(rows[:query.limit]), len(rows) > query.limit)


async def read_agenda(store: AgendaStore, query: AgendaQuery) -> Agenda:
    """The planned attempts matching `query`, soonest first; `truncated` when there are more."""
    if query.limit < 1:
        raise ValueError("the agenda's limit must be at least 1")
    if query.until <= query.since:
        raise ValueError("the agenda's range is empty: its end must come after its start")
    if query.party not in (None, "debtor", "third_party"):
        raise ValueError(f"unknown party {query.party!r}; expected debtor or third_party")
    wider = AgendaQuery(query.since, query.until, query.limit + 1, query.account_id,
                        query.medium, query.stage, query.party)
    return agenda_rows(await store.planned_attempts(wider), query)


def _short_local(row: AgendaRow) -> str:
    if not row.zone:
        return "-"
    more = f" (+{len(row.local_times) - 1})" if len(row.local_times) > 1 else ""
    return f"{row.local_time[:16].replace('T', ' ')} {row.zone}{more}"


def table(agenda: Agenda) -> Iterator[str]:
    """A header, one line per row, and a closing line that says when rows were left out."""
    yield (f"{'UTC':20} {'LOCAL':40} {'ACCOUNT':14} {'PARTY':11} {'CH':4} {'NUMBER':16} "
           f"{'STAGE':8} RULE")
    for r in agenda.rows:
        again = (f"  (looked at again {utc_rfc3339(r.engine_looks_at)[:16]})"
                 if r.engine_looks_at else "")
        yield (f"{utc_rfc3339(r.at)[:19].replace('T', ' '):20} {_short_local(r):40} "
               f"{r.account_id:14} {r.party:11} {r.channel:4} {r.number:16} {r.stage:8} "
               f"{r.rule}{again}")
    yield summary(agenda)


def summary(agenda: Agenda) -> str:
    """How many rows, and whether the limit cut the list short."""
    q = agenda.query
    span = f"from {utc_rfc3339(q.since)} to {utc_rfc3339(q.until)}"
    if agenda.truncated:
        return (f"{len(agenda.rows)} planned attempt(s) {span}, TRUNCATED: more are planned; "
                f"raise --limit or narrow the range or filters")
    return f"{len(agenda.rows)} planned attempt(s) {span}"


def csv_cells(row: AgendaRow) -> list[str]:
    """The row's cells in FIELDS order ("" for none)."""
    values = row.as_dict()
    return ["" if values[key] is None else str(values[key]) for key in FIELDS]
