"""`dispatcher agenda` against a real store (SQLite, then PostgreSQL): the engine's stored plans,
each as `explain` shows it, filtered, limited, and with numbers masked."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from channels.sandbox import load_outcome_script
from dispatcher.config.settings import load_config
from dispatcher.contact.agenda import FIELDS, read_agenda
from dispatcher.contact.decide import StoredPlan, plan_to_json
from dispatcher.contact.simulate import Simulation, read_events
from dispatcher.domain.clock import utc_rfc3339
from dispatcher.domain.contact import Medium, Role, Target
from dispatcher.domain.phones import mask_number
from dispatcher.ingest.classify import classify
from dispatcher.store import AgendaQuery, PlanRow, open_store
from schedules.planner import PlannedAttempt
from tests.support import encode, make_config, overdue_event, store_of

ROOT = Path(__file__).resolve().parents[2]
START = datetime(2026, 12, 1, 6, 0, tzinfo=UTC)
DAYS = 3
END = START + timedelta(days=DAYS)


def dispatcher(*argv: str) -> subprocess.CompletedProcess[str]:
    """`dispatcher ARGV` in a process of its own."""
    return subprocess.run([sys.executable, "-m", "dispatcher", *argv], capture_output=True,
                          text=True, timeout=120, check=False)


def simulate_into(config: Path) -> None:
    """The example events and outcomes, run by the real engine on a virtual clock against the
    config's own store."""
    async def go() -> None:
        loaded = load_config(config)
        script = load_outcome_script(ROOT / "examples" / "outcomes.json")
        async with open_store(store_of(config)) as store:
            simulation = Simulation(loaded, store, script, START)
            await simulation.run(read_events(ROOT / "examples" / "events.jsonl", START), DAYS)
    asyncio.run(go())


@pytest.fixture
def simulated(tmp_path: Path, store_url: str) -> Path:
    config = make_config(tmp_path / "cfg", "mqtt://127.0.0.1:1", store_url=store_url)
    simulate_into(config)
    return config


def _stored_plan(explained: str) -> tuple[str, str]:
    """The engine's stored plan as `explain` prints it: (attempt line, rule)."""
    kept = re.search(r"\(the engine's stored plan, made earlier, which `agenda` lists: (.*); "
                     r"rule: (\S+); it is decided again when due\)", explained)
    if kept:
        return kept.group(1), kept.group(2)
    # The same plan made again now: `explain` prints it once, as the next attempt.
    fresh = re.search(r"next attempt:\n  (.*)\n  rule: (\S+)\n", explained)
    assert fresh, explained
    return fresh.group(1), fresh.group(2)


def test_each_row_is_the_plan_explain_shows_for_its_account(simulated: Path) -> None:
    done = dispatcher("agenda", "--config", str(simulated), "--from", utc_rfc3339(END),
                      "--to", utc_rfc3339(END + timedelta(days=7)), "--format", "jsonl")
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    # EX-US-1001, EX-US-1002 and EX-US-1003 have a call planned; EX-US-1004 waits for its
    # promise; the test config's profile covers no Chinese region.
    assert sorted(r["account_id"] for r in rows) == ["EX-US-1001", "EX-US-1002", "EX-US-1003"]
    assert [r["at"] for r in rows] == sorted(r["at"] for r in rows)
    for row in rows:
        assert set(FIELDS) <= set(row)
        explained = dispatcher("explain", "--config", str(simulated), "--account",
                               row["account_id"], "--at", utc_rfc3339(END))
        assert explained.returncode == 0, explained.stderr
        line, rule = _stored_plan(explained.stdout)
        assert line.startswith(f"{row['at']}: {row['channel']} to {row['role']} "
                               f"{row['number']} ({row['number_type']}), stage {row['stage']}, "
                               f"window {row['window']}, template {row['template']}"), line
        assert rule == row["rule"]
        # Past its time, planning again chooses another time: explain shows this plan apart.
        later = utc_rfc3339(datetime.fromisoformat(row["at"]) + timedelta(minutes=1))
        explained = dispatcher("explain", "--config", str(simulated), "--account",
                               row["account_id"], "--at", later)
        assert "the engine's stored plan, made earlier" in explained.stdout
        assert _stored_plan(explained.stdout) == (line, rule)
        assert row["party"] == ("debtor" if row["role"] == "debtor" else "third_party")
        assert row["local_time"] == row["local_times"][row["zone"]]


def test_the_table_and_csv_mask_every_number(simulated: Path) -> None:
    span = ("--from", utc_rfc3339(END), "--to", utc_rfc3339(END + timedelta(days=7)))
    table = dispatcher("agenda", "--config", str(simulated), *span)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split()[:4] == ["UTC", "LOCAL", "ACCOUNT", "PARTY"]
    assert lines[-1].startswith("3 planned attempt(s) from ")
    sheet = dispatcher("agenda", "--config", str(simulated), *span, "--format", "csv")
    assert sheet.returncode == 0, sheet.stderr
    cells = list(csv.reader(io.StringIO(sheet.stdout)))
    assert tuple(cells[0]) == FIELDS
    assert len(cells) == 4
    numbers = set(re.findall(r"\+\d{8,15}", (ROOT / "examples" / "events.jsonl").read_text()))
    for output in (table.stdout, sheet.stdout):
        assert not [n for n in numbers if n in output or n[1:] in output]
    assert {c[FIELDS.index("number")] for c in cells[1:]} <= {mask_number(n) for n in numbers}


def _planned(account: str, at: datetime, role: Role, medium: Medium, stage: str) -> PlanRow:
    person = "debtor" if role is Role.DEBTOR else "c-1"
    plan = PlannedAttempt(at, Target(role, person, "+13125550100", None, medium), stage,
                          "evening", f"standard:{stage}:evening", "t")
    return PlanRow(account, plan_to_json(StoredPlan(plan)), at)


def _seed_plans(config: Path, plans: list[PlanRow]) -> None:
    async def go() -> None:
        async with open_store(store_of(config)) as store:
            accounts = sorted({p.account_id for p in plans})
            items = [classify(encode(overdue_event(n, a)), "collections/events/x", 65536)
                     for n, a in enumerate(accounts)]
            await store.record_batch(items, now=START, config_version="t")
            await store.record_decisions(attempts=[], plans=plans, audit=[], now=START,
                                         config_version="t")
    asyncio.run(go())


def test_filters_range_order_and_limit(tmp_path: Path, store_url: str) -> None:
    config = make_config(tmp_path / "cfg", "mqtt://127.0.0.1:1", store_url=store_url)
    t = START + timedelta(days=1)
    _seed_plans(config, [
        _planned("A-3", t, Role.DEBTOR, Medium.CALL, "early"),
        _planned("A-1", t, Role.DEBTOR, Medium.SMS, "early"),
        _planned("A-2", t - timedelta(hours=1), Role.EMERGENCY, Medium.CALL, "late"),
        _planned("A-4", t + timedelta(days=1), Role.DEBTOR, Medium.CALL, "middle"),
        _planned("A-5", t - timedelta(days=1), Role.DEBTOR, Medium.CALL, "middle")])

    def ids(*argv: str) -> list[str]:
        done = dispatcher("agenda", "--config", str(config), "--from", utc_rfc3339(START),
                          "--format", "jsonl", *argv)
        assert done.returncode == 0, done.stderr
        return [json.loads(line)["account_id"] for line in done.stdout.splitlines()]

    # From START, 24 hours by default: [START, START + 1 day) leaves out A-4 at its end.
    assert ids() == ["A-5", "A-2"]
    assert ids("--to", utc_rfc3339(t + timedelta(days=2))) == ["A-5", "A-2", "A-1", "A-3", "A-4"]
    wide = ("--to", utc_rfc3339(t + timedelta(days=2)))
    assert ids(*wide, "--channel", "sms") == ["A-1"]
    assert ids(*wide, "--party", "third_party") == ["A-2"]
    assert ids(*wide, "--party", "debtor", "--stage", "middle") == ["A-5", "A-4"]
    assert ids(*wide, "--account", "A-3") == ["A-3"]
    done = dispatcher("agenda", "--config", str(config), "--from", utc_rfc3339(START), *wide,
                      "--format", "jsonl", "--limit", "2")
    assert [json.loads(line)["account_id"] for line in done.stdout.splitlines()] == ["A-5", "A-2"]
    assert "TRUNCATED" in done.stderr
    table = dispatcher("agenda", "--config", str(config), "--from", utc_rfc3339(START), *wide,
                       "--limit", "5")
    assert "TRUNCATED" not in table.stdout + table.stderr
    assert table.stdout.splitlines()[-1].startswith("5 planned attempt(s)")


def test_a_resolved_account_has_no_row(tmp_path: Path, store_url: str) -> None:
    config = make_config(tmp_path / "cfg", "mqtt://127.0.0.1:1", store_url=store_url)
    _seed_plans(config, [_planned("A-1", START + timedelta(hours=1), Role.DEBTOR, Medium.CALL,
                                  "early")])

    async def rows() -> list[str]:
        async with open_store(store_of(config), create=False) as store:
            agenda = await read_agenda(store, AgendaQuery(START, END, 10))
            return [r.account_id for r in agenda.rows]

    assert asyncio.run(rows()) == ["A-1"]
    resolved = {"schema": 1, "event_id": "paid-1", "type": "account.resolved",
                "occurred_at": "2026-12-01T15:00:00Z", "account_id": "A-1",
                "data": {"reason": "paid"}}

    async def resolve() -> None:
        async with open_store(store_of(config)) as store:
            await store.record_batch([classify(encode(resolved), "collections/events/x", 65536)],
                                     now=START, config_version="t")
    asyncio.run(resolve())
    assert asyncio.run(rows()) == []


@pytest.mark.parametrize(("argv", "message"), [
    (("--from", "2026-12-02", "--to", "2026-12-01"), "--to must come after --from"),
    (("--limit", "0"), "--limit must be at least 1"),
    (("--stage", "nope"), "no stage 'nope' in the schedule"),
])
def test_bad_options_are_named(tmp_path: Path, argv: tuple[str, ...], message: str) -> None:
    config = make_config(tmp_path / "cfg", "mqtt://127.0.0.1:1")
    _seed_plans(config, [_planned("A-1", START, Role.DEBTOR, Medium.CALL, "early")])
    done = dispatcher("agenda", "--config", str(config), *argv)
    assert done.returncode == 2
    assert message in done.stderr
    assert done.stdout == ""
