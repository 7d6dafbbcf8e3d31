"""The contact engine through `simulate`: schedules, varied times, fallbacks, third parties."""

from __future__ import annotations

import asyncio
import gc
import itertools
import json
import shutil
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, time, timedelta
from io import StringIO
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from channels.sandbox import OutcomeScript, SandboxChannel, load_outcome_script
from dispatcher.cli.main import main
from dispatcher.config.settings import LoadedConfig, load_config
from dispatcher.contact import simulate as simulation_module
from dispatcher.contact.account_facts import policy_of
from dispatcher.contact.engine import NEXT_TRY, Engine
from dispatcher.contact.explain import explain
from dispatcher.contact.simulate import Simulation, read_events, run_simulation
from dispatcher.domain.clock import VirtualClock
from dispatcher.domain.contact import Medium
from dispatcher.domain.events import parse_stored_event
from dispatcher.errors import ConfigError
from dispatcher.ingest.classify import classify
from dispatcher.store import Accepted, StoreLocation, open_store
from dispatcher.store.sqlite.store import SqliteStore
from tests.support import verify_log

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "config"
START = datetime(2026, 12, 7, 6, 0, tzinfo=UTC)  # Monday, before 08:00 in every US zone
CHICAGO = ZoneInfo("America/Chicago")
MOBILE, HOME, SISTER = "+15125550100", "+15125550111", "+15125550177"


@pytest.fixture(scope="module")
def config() -> LoadedConfig:
    return load_config(SHIPPED / "dispatcher.toml", {})


def overdue(account: str = "A-1", days: int = 8, *, at: datetime = START,
            phones: list[dict[str, Any]] | None = None,
            contacts: list[dict[str, Any]] | None = None, n: int = 0) -> dict[str, Any]:
    return {"schema": 1, "event_id": f"e-{account}-{n}", "type": "account.overdue",
            "occurred_at": at.isoformat(), "account_id": account,
            "data": {"days_past_due": days, "amount_due": "100.00", "currency": "USD",
                     "debtor": {"name": "Pat Doe", "timezone": "America/Chicago",
                                "region": "US-TX",
                                "phones": phones or [{"number": MOBILE, "type": "mobile",
                                                      "sms_consent": True,
                                                      "call_consent": True}]},
                     "contacts": contacts or []}}


def event(kind: str, data: dict[str, Any], at: datetime, n: int,
          account: str = "A-1") -> dict[str, Any]:
    return {"schema": 1, "event_id": f"x-{n}", "type": kind, "occurred_at": at.isoformat(),
            "account_id": account, "data": data}


async def simulate(tmp_path: Path, config: LoadedConfig, events: list[dict[str, Any]],
                   outcomes: dict[str, Any] | None = None,
                   days: int = 14) -> list[dict[str, Any]]:
    events_path, outcomes_path = tmp_path / "events.jsonl", tmp_path / "outcomes.json"
    events_path.write_text("\n".join(json.dumps(e) for e in events))
    outcomes_path.write_text(json.dumps(outcomes or {}))
    return await run_simulation(config, events_path, START, days,
                                load_outcome_script(outcomes_path))


def attempts(records: list[dict[str, Any]], channel: str | None = None) -> list[dict[str, Any]]:
    return [r for r in records if r["kind"] == "attempt"
            and (channel is None or r["channel"] == channel)]


def local(record: dict[str, Any], zone: ZoneInfo = CHICAGO) -> datetime:
    return datetime.fromisoformat(record["at"]).astimezone(zone)


# Two-hour windows across the lawful day, including the stretches between the old named windows.
WINDOWS = [("08:00", "10:00"), ("10:30", "12:30"), ("13:15", "15:15"), ("16:30", "18:30"),
           ("18:00", "20:00"), ("19:00", "21:00")]


async def _reach(tmp_path: Path, config: LoadedConfig, days_past_due: int,
                 window: tuple[str, str]) -> tuple[int | None, datetime | None]:
    """Calls until a debtor answering only inside `window` is reached, and when that call was."""
    outcomes = {"numbers": {MOBILE: {"call": {"answers_between": list(window)}}}}
    records = await simulate(tmp_path, config, [overdue(days=days_past_due)], outcomes, days=21)
    answered = {r["attempt_id"] for r in records
                if r["kind"] == "outcome" and r["status"] == "completed"}
    for n, record in enumerate(attempts(records, "call"), start=1):
        if record["attempt_id"] in answered:
            return n, local(record)
    return None, None


@pytest.mark.parametrize("stage", ["early", "middle", "late"])
@pytest.mark.parametrize("window", WINDOWS)
async def test_each_stage_reaches_a_two_hour_debtor_within_six_calls(
        tmp_path: Path, config: LoadedConfig, stage: str, window: tuple[str, str]) -> None:
    # Six calls two hours apart cover every two-hour stretch of 08:00-21:00: the bound.
    days = next(s.days_past_due[0] for s in config.schedule.stages if s.name == stage)
    calls, placed = await _reach(tmp_path, config, days, window)
    assert calls is not None, "never reached"
    assert calls <= 6
    assert placed is not None
    assert window[0] <= placed.strftime("%H:%M") < window[1]


async def test_an_unanswering_debtor_is_tried_all_over_the_day_within_a_week(
        tmp_path: Path, config: LoadedConfig) -> None:
    records = await simulate(tmp_path, config, [overdue(days=25)], days=8)
    week = [r for r in attempts(records) if local(r) < local(attempts(records)[0])
            + timedelta(days=7)]
    assert 6 <= len(week) <= 7  # one call a day, no Sunday window, 7 in 7 days at most
    late = next(s for s in config.schedule.stages if s.name == "late")
    assert {r["window"] for r in week} == set(late.windows)
    minutes = [local(r).hour * 60 + local(r).minute for r in week[:6]]
    for n, minute in enumerate(minutes):
        assert all(abs(minute - other) >= 90 for other in minutes[:n]), minutes


async def test_once_answered_the_next_call_goes_to_the_answering_window(
        tmp_path: Path, config: LoadedConfig) -> None:
    outcomes = {"numbers": {MOBILE: {"call": {"answers_between": ["18:00", "20:00"]}}}}
    records = await simulate(tmp_path, config, [overdue(days=25)], outcomes, days=21)
    statuses = {r["attempt_id"]: r["status"] for r in records if r["kind"] == "outcome"}
    calls = attempts(records, "call")
    answered = [n for n, r in enumerate(calls) if statuses[r["attempt_id"]] == "completed"]
    assert answered, "never reached"
    after = calls[answered[0] + 1:]
    assert after, "no call after the conversation within the run"
    assert after[0]["window"] == calls[answered[0]]["window"] == "evening"
    # The cool-down: day of the conversation is day 1, the next call on day 8 at the earliest.
    assert local(after[0]).date() >= local(calls[answered[0]]).date() + timedelta(days=7)


async def test_an_invalid_main_number_moves_attempts_to_the_next_one(
        tmp_path: Path, config: LoadedConfig) -> None:
    phones = [{"number": MOBILE, "type": "mobile", "sms_consent": True, "call_consent": True},
              {"number": HOME, "type": "home", "sms_consent": False, "call_consent": True}]
    outcomes = {"numbers": {MOBILE: {"call": "invalid-number", "sms": "invalid-number"}}}
    records = await simulate(tmp_path, config, [overdue(days=25, phones=phones)], outcomes,
                             days=5)
    numbers = [r["to"] for r in attempts(records)]
    assert numbers[0] == MOBILE
    assert set(numbers[1:]) == {HOME}, numbers


async def test_a_repeatedly_unanswered_main_number_gives_the_other_a_turn(
        tmp_path: Path, config: LoadedConfig) -> None:
    phones = [{"number": MOBILE, "type": "mobile", "sms_consent": True, "call_consent": True},
              {"number": HOME, "type": "home", "sms_consent": False, "call_consent": True}]
    records = await simulate(tmp_path, config, [overdue(days=25, phones=phones)], days=8)
    numbers = [r["to"] for r in attempts(records, "call")]
    assert numbers[:2] == [MOBILE, MOBILE]
    assert HOME in numbers[2:4]


async def test_emergency_contacts_only_when_unreachable_and_once(
        tmp_path: Path, config: LoadedConfig) -> None:
    contacts = [{"contact_id": "c-1", "name": "Sam Roe", "relation": "sister",
                 "number": SISTER, "role": "emergency"}]
    records = await simulate(tmp_path, config, [overdue(days=25, contacts=contacts)], days=21)
    third = [r for r in attempts(records) if r["party"] == "third_party"]
    assert len(third) == 1
    assert third[0]["channel"] == "call"
    assert third[0]["template"] == "location_call"
    before = [r for r in attempts(records, "call")
              if r["party"] == "debtor" and r["seq"] < third[0]["seq"]]
    limits = config.limits
    assert len(before) >= limits.unreachable_after_attempts
    assert len({r["window"] for r in before}) >= limits.unreachable_distinct_windows
    assert local(before[-1]) - local(before[0]) >= timedelta(
        days=limits.unreachable_after_days - 1)


async def test_no_third_party_call_when_the_debtor_answers(
        tmp_path: Path, config: LoadedConfig) -> None:
    contacts = [{"contact_id": "c-1", "name": "Sam Roe", "relation": "sister",
                 "number": SISTER, "role": "emergency"}]
    outcomes = {"numbers": {MOBILE: {"call": ["no-answer"] * 5 + ["completed", "no-answer"]}}}
    records = await simulate(tmp_path, config, [overdue(days=25, contacts=contacts)], outcomes,
                             days=21)
    assert [r for r in attempts(records) if r["party"] == "third_party"] == []


async def test_a_contact_who_refuses_is_never_called_again(
        tmp_path: Path, config: LoadedConfig) -> None:
    path = tmp_path / "cfg" / "dispatcher.toml"
    shutil.copytree(SHIPPED, path.parent, ignore=shutil.ignore_patterns("*.db"))
    profile = path.parent / "profiles" / "cn.toml"
    # The debtor is in Texas: cn governs the US here, as it allows two calls per contact.
    path.write_text(path.read_text().replace('profile = "us"', 'profile = "cn"').replace(
        'US = "us"', 'US = "cn"') + "\n[compliance.limits]\nthird_party_calls_per_contact = 2\n")
    assert profile.exists()
    config_cn = load_config(path, {})
    contacts = [{"contact_id": "c-1", "name": "Sam Roe", "relation": "sister",
                 "number": SISTER, "role": "emergency"}]
    outcomes = {"numbers": {SISTER: {"call": "refused"}}}
    records = await simulate(tmp_path, config_cn, [overdue(days=25, contacts=contacts)],
                             outcomes, days=28)
    assert len([r for r in attempts(records) if r["party"] == "third_party"]) == 1


async def test_a_hold_cancels_the_planned_attempt_and_is_audited(
        tmp_path: Path, config: LoadedConfig) -> None:
    hold_at = START + timedelta(days=2)
    records = await simulate(tmp_path, config, [
        overdue(days=25), event("account.hold", {"reason": "dispute"}, hold_at, 1)], days=6)
    assert all(datetime.fromisoformat(r["at"]) < hold_at for r in attempts(records))
    [suppressed] = [r for r in records if r["kind"] == "suppressed"]
    assert suppressed["reason"] == "hold:dispute"
    assert suppressed["planned_at"] > suppressed["at"]
    assert suppressed["local_times"]


async def test_a_broken_promise_is_recorded_and_contact_resumes(
        tmp_path: Path, config: LoadedConfig) -> None:
    promise_at = START + timedelta(days=1)
    records = await simulate(tmp_path, config, [
        overdue(days=25),
        event("account.promise", {"due_on": "2026-12-10"}, promise_at, 1)], days=10)
    resumes = datetime(2026, 12, 12, tzinfo=CHICAGO)  # due_on + 2 days' grace
    during = [r for r in attempts(records) if promise_at <= local(r) < resumes]
    assert during == []
    [broken] = [r for r in records if r["kind"] == "promise"]
    assert broken["status"] == "broken"
    assert datetime.fromisoformat(broken["at"]) >= resumes
    assert [r for r in attempts(records) if local(r) >= resumes]


async def test_a_stop_reply_ends_texts_to_that_number(
        tmp_path: Path, config: LoadedConfig) -> None:
    stop_at = START + timedelta(days=1, hours=16)
    outcomes = {"replies": [{"at": stop_at.isoformat(), "from": MOBILE, "body": " stop "}]}
    records = await simulate(tmp_path, config, [overdue(days=2)], outcomes, days=6)
    texts = attempts(records, "sms")
    assert texts
    assert all(datetime.fromisoformat(r["at"]) < stop_at for r in texts)
    assert [r for r in records if r["kind"] == "opt_out"]
    assert [r for r in attempts(records, "call") if datetime.fromisoformat(r["at"]) > stop_at]


async def test_the_audit_chain_of_a_simulation_verifies(
        tmp_path: Path, config: LoadedConfig) -> None:
    records = await simulate(tmp_path, config, [overdue(days=25)], days=7)
    assert (await verify_log([(r["seq"], json.dumps(r)) for r in records])).ok
    kinds = Counter(r["kind"] for r in records)
    assert kinds["attempt"] == kinds["outcome"] > 0


def test_simulate_prints_byte_identical_output_for_the_same_inputs(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(json.dumps(overdue(f"A-{n}", days=1 + 9 * n, n=n))
                                for n in range(3)) + "\nnot json\n")
    outcomes = tmp_path / "outcomes.json"
    outcomes.write_text(json.dumps({"default": {"call": ["no-answer", "busy", "completed"]}}))
    runs = []
    for fmt in ("jsonl", "jsonl", "table", "table"):
        out = StringIO()
        code = main(["simulate", "--config", str(SHIPPED / "dispatcher.toml"), "--events",
                     str(events), "--outcomes", str(outcomes), "--start", START.isoformat(),
                     "--days", "10", "--format", fmt], out=out)
        assert code == 0
        runs.append(out.getvalue())
    assert runs[0] == runs[1]
    assert runs[2] == runs[3]
    lines = [json.loads(line) for line in runs[0].splitlines()]
    assert {r["kind"] for r in lines} >= {"event", "dead_letter", "attempt", "outcome"}
    table = runs[2].splitlines()
    assert table[0].split()[:3] == ["UTC", "LOCAL", "ACCOUNT"]
    assert MOBILE not in runs[2]  # numbers are masked in the table
    assert "America/Chicago" in runs[2]


def test_simulate_with_answer_probabilities_is_byte_identical_run_after_run(
        tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(json.dumps(overdue(f"A-{n}", days=1 + 9 * (n % 3), n=n,
                                                    phones=[{"number": f"+1512555{n:04d}",
                                                             "type": "mobile",
                                                             "sms_consent": True,
                                                             "call_consent": True}]))
                                 for n in range(12)))
    by_hour = {"08": 0.2, "09": 0.3, "12": 0.5, "18": 0.7, "19": 0.7}

    def run(seed: int, fmt: str) -> str:
        outcomes = tmp_path / f"outcomes-{seed}.json"
        outcomes.write_text(json.dumps({"default": {"call": {"answer_probability": {
            "by_hour": by_hour, "by_weekday": {"sat": 0.5, "sun": 0}, "seed": seed}}}}))
        out = StringIO()
        code = main(["simulate", "--config", str(SHIPPED / "dispatcher.toml"), "--events",
                     str(events), "--outcomes", str(outcomes), "--start", START.isoformat(),
                     "--days", "10", "--format", fmt], out=out)
        assert code == 0
        return out.getvalue()

    first = run(7, "jsonl")
    assert run(7, "jsonl") == first
    assert run(7, "table") == run(7, "table")
    assert run(8, "jsonl") != first
    records = [json.loads(line) for line in first.splitlines()]
    placed = {r["attempt_id"]: r for r in records if r["kind"] == "attempt"}
    calls = [(placed[r["attempt_id"]], r["status"]) for r in records
             if r["kind"] == "outcome" and placed[r["attempt_id"]]["channel"] == "call"]
    statuses = Counter(status for _, status in calls)
    assert statuses["completed"] > 0
    assert statuses["no-answer"] > 0
    assert set(statuses) == {"completed", "no-answer"}
    for attempt, status in calls:  # answered only where the debtor's hour and day allow it
        local = datetime.fromisoformat(attempt["local_times"]["America/Chicago"])
        if status == "completed":
            assert f"{local.hour:02d}" in by_hour
            assert local.strftime("%a") != "Sun"


async def test_explain_names_the_next_attempt_or_every_reason(
        tmp_path: Path, config: LoadedConfig, store_at: StoreLocation) -> None:
    events_path = tmp_path / "events.jsonl"
    events_path.write_text("\n".join(json.dumps(e) for e in [
        overdue("A-1", days=25),
        overdue("A-2", days=25, n=1, phones=[{"number": HOME, "type": "mobile",
                                               "sms_consent": True, "call_consent": True}]),
        event("account.hold", {"reason": "attorney"}, START, 2, account="A-2"),
        event("contact.opt_out", {"number": HOME, "channel": "all"}, START, 3,
              account="A-2")]))
    (text, found), (held, _), (_, missing) = await explained_after_a_day(
        tmp_path, store_at, config, events_path, ("A-1", START + timedelta(hours=1)),
        ("A-2", START + timedelta(hours=1)), ("A-404", START))
    assert found
    assert "next attempt:" in text
    assert "rule: standard:late:" in text
    assert MOBILE not in text
    assert "hold:attorney" in held
    assert "opted out of sms" in held
    assert "none. Every reason:" in held
    assert not missing


async def explained_after_a_day(tmp_path: Path, where: StoreLocation, config: LoadedConfig,
                                events_path: Path,
                                *asks: tuple[str, datetime]) -> list[tuple[str, bool]]:
    """`explain` of each (account, instant), after the events were simulated for a day into
    the store at `where`."""
    async with open_store(where) as store:
        simulation = Simulation(config, store, load_outcome_script_empty(tmp_path), START)
        await simulation.run(read_events(events_path, START), 1)
        return [await explain(store, config, account, at) for account, at in asks]


SHANGHAI = ZoneInfo("Asia/Shanghai")
LI_WEI = "+8613900139000"


def shanghai_overdue() -> dict[str, Any]:
    """A CN-31 debtor 8 days past due, with a +86 mobile number."""
    return {"schema": 1, "event_id": "e-cn", "type": "account.overdue",
            "occurred_at": START.isoformat(), "account_id": "A-CN",
            "data": {"days_past_due": 8, "amount_due": "1800.00", "currency": "CNY",
                     "debtor": {"name": "Li Wei", "timezone": "Asia/Shanghai",
                                "region": "CN-31", "locale": "zh-CN",
                                "phones": [{"number": LI_WEI, "type": "mobile",
                                            "sms_consent": True, "call_consent": True}]}}}


NIGHT = """name = "night"
description = "one window, 21:00-22:00: inside cn's hours (to 22:00), outside us's (to 21:00)"
[windows]
night = { start = "21:00", end = "22:00" }
[[stages]]
name = "any"
purpose = "reach the customer"
days_past_due = [1]
channels = ["call", "sms"]
attempts_per_day = 1
min_gap_minutes = 240
windows = ["night"]
"""


def us_deployment(tmp_path: Path, regions: str) -> LoadedConfig:
    """The shipped config (profile us) with `regions` as its [compliance.regions] table, and a
    schedule whose only window is 21:00-22:00."""
    folder = tmp_path / "cfg"
    shutil.copytree(SHIPPED, folder, ignore=shutil.ignore_patterns("*.db"))
    (folder / "schedules" / "night.toml").write_text(NIGHT)
    path = folder / "dispatcher.toml"
    text = path.read_text()
    start = text.index("[compliance.regions]\n")
    end = text.index("\n[", start + 1)
    path.write_text(text[:start] + f"[compliance.regions]\n{regions}\n" + text[end:]
                    + '\n[contact]\nschedule = "night"\n')
    config = load_config(path, {})
    assert config.settings.compliance.profile == "us"
    return config


async def test_a_shanghai_debtor_is_contacted_under_the_profile_mapped_to_china(
        tmp_path: Path) -> None:
    config = us_deployment(tmp_path, 'US = "us"\nCN = "cn"')
    records = await simulate(tmp_path, config, [shanghai_overdue()], days=4)
    sent = attempts(records)
    assert len(sent) >= 3
    assert {r["profile"] for r in sent} == {"cn"}
    assert {r["region"] for r in sent} == {"CN-31"}
    # Past the us profile's 21:00 and before cn's 22:00: only cn's hours allow these.
    assert all(time(21) <= local(r, SHANGHAI).time() < time(22) for r in sent)
    assert not [r for r in records if r["kind"] == "suppressed"]


async def test_the_same_debtor_under_us_rules_is_never_called_after_21(tmp_path: Path) -> None:
    config = us_deployment(tmp_path, 'US = "us"\nCN = "us"')
    records = await simulate(tmp_path, config, [shanghai_overdue()], days=4)
    # Covered (not no_profile), but us's hours leave no lawful slot in a 21:00-22:00 window.
    assert attempts(records) == []
    reasons = [r["reason"] for r in records if r["kind"] == "suppressed"]
    assert reasons
    assert "no_profile" not in reasons


async def test_a_shanghai_debtor_no_profile_covers_is_suppressed_and_explained(
        tmp_path: Path, store_at: StoreLocation) -> None:
    config = us_deployment(tmp_path, 'US = "us"')
    records = await simulate(tmp_path, config, [shanghai_overdue()], days=4)
    assert attempts(records) == []
    [suppressed] = [r for r in records if r["kind"] == "suppressed"]
    assert (suppressed["account_id"], suppressed["reason"], suppressed["reasons"]) == (
        "A-CN", "no_profile", ["no_profile"])
    assert "CN-31" in suppressed["detail"]
    assert suppressed["local_times"] == {"Asia/Shanghai": local(suppressed, SHANGHAI).isoformat(
        timespec="minutes")}
    [(text, found)] = await explained_after_a_day(tmp_path, store_at, config,
                                                  tmp_path / "events.jsonl",
                                                  ("A-CN", START + timedelta(hours=1)))
    assert found
    assert "  profile: none for region CN-31: never contacted (no_profile)" in text
    assert "  - no_profile: no profile covers region CN-31 (could change " in text


def load_outcome_script_empty(folder: Path) -> Any:
    path = folder / "empty-outcomes.json"
    path.write_text("{}")
    return load_outcome_script(path)


def test_a_third_party_template_that_reveals_the_debt_is_refused(tmp_path: Path) -> None:
    shutil.copytree(SHIPPED, tmp_path / "cfg", ignore=shutil.ignore_patterns("*.db"))
    templates = tmp_path / "cfg" / "templates.toml"
    text = templates.read_text()
    start = text.index("[templates.location_call.text]")
    templates.write_text(text[:start] + text[start:].replace(
        "Could you ask {name} to call me back", "{name} owes us {amount}. Could you ask them", 1))
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "cfg" / "dispatcher.toml", {})
    problems = caught.value.problems
    assert {(p.file, p.key) for p in problems} == {
        (str(templates), "templates.location_call.text.en")}
    reasons = " ".join(p.reason for p in problems)
    assert "amount" in reasons
    assert "owes" in reasons


async def test_invalid_numbers_are_listed_for_the_data_team_and_explained(
        tmp_path: Path, store_url: str) -> None:
    folder = tmp_path / "cfg"
    shutil.copytree(SHIPPED, folder, ignore=shutil.ignore_patterns("*.db"))
    (folder / "dispatcher.toml").write_text((folder / "dispatcher.toml").read_text().replace(
        'url = "sqlite://../var/dispatcher.db"', f'url = "{store_url}"'))
    config = load_config(folder / "dispatcher.toml", {})
    phones = [{"number": MOBILE, "type": "mobile", "sms_consent": True, "call_consent": True},
              {"number": HOME, "type": "home", "sms_consent": False, "call_consent": True}]
    events_path = tmp_path / "events.jsonl"
    events_path.write_text(json.dumps(overdue(days=25, phones=phones)))
    (tmp_path / "o.json").write_text(json.dumps({"numbers": {MOBILE: {"call": "invalid-number"}}}))
    async with open_store(config.store_location) as store:
        simulation = Simulation(config, store, load_outcome_script(tmp_path / "o.json"), START)
        await simulation.run(read_events(events_path, START), 2)
    out = StringIO()
    # The CLI runs its own event loop: call it from a thread, as a shell would from outside.
    config_arg = ["--config", str(folder / "dispatcher.toml")]
    assert await asyncio.to_thread(main, ["invalid-numbers", *config_arg], out) == 0
    lines = out.getvalue().splitlines()
    assert lines[1].startswith(MOBILE)
    assert "A-1" in lines[1]
    assert lines[-1] == "1 invalid number(s)"
    out = StringIO()
    code = await asyncio.to_thread(main, ["explain", *config_arg, "--account", "A-1", "--at",
                                          (START + timedelta(days=2)).isoformat()], out)
    assert code == 0
    assert "INVALID (listed for the data team)" in out.getvalue()
    assert "+15*******11" in out.getvalue().split("next attempt:")[1]  # the other number
    assert await asyncio.to_thread(main, ["explain", *config_arg, "--account", "A-404"],
                                   StringIO()) == 1


async def test_a_number_that_does_not_connect_gives_way_to_the_next(
        tmp_path: Path, config: LoadedConfig) -> None:
    phones = [{"number": MOBILE, "type": "mobile", "sms_consent": True, "call_consent": True},
              {"number": HOME, "type": "home", "sms_consent": False, "call_consent": True}]
    outcomes = {"numbers": {MOBILE: {"call": "failed"}}}
    records = await simulate(tmp_path, config, [overdue(days=25, phones=phones)], outcomes,
                             days=6)
    numbers = [r["to"] for r in attempts(records, "call")]
    assert numbers[:2] == [MOBILE, MOBILE]
    assert numbers[2] == HOME


class _SlowSandbox(SandboxChannel):
    """The sandbox, declaring a provider rate of one text every 10 seconds."""

    def sends_per_second(self, medium: Medium) -> float:
        return 0.1


def _one_window_config(tmp_path: Path, start: str, end: str, channel: str) -> Path:
    """The shipped config with a schedule of one stage and one window, `start`-`end`."""
    folder = tmp_path / "cfg"
    shutil.copytree(SHIPPED, folder, ignore=shutil.ignore_patterns("*.db"))
    (folder / "schedules" / "one.toml").write_text(
        f'name = "one"\n[windows]\nonly = {{ start = "{start}", end = "{end}" }}\n'
        f'[[stages]]\nname = "any"\ndays_past_due = [1]\nchannels = ["{channel}"]\n'
        'attempts_per_day = 1\nmin_gap_minutes = 240\nwindows = ["only"]\n')
    path = folder / "dispatcher.toml"
    path.write_text(path.read_text() + '\n[contact]\nschedule = "one"\n')
    return path


async def test_a_sweep_sends_no_more_than_its_channel_rate_allows_soon(
        tmp_path: Path, config: LoadedConfig, store_at: StoreLocation) -> None:
    events = [overdue(f"A-{n}", days=2, n=n, phones=[{
        "number": f"+1512555{n:04d}", "type": "mobile", "sms_consent": True,
        "call_consent": True}]) for n in range(100, 105)]
    # One quarter hour of the day allowed: every account falls due at the same instant.
    path = _one_window_config(tmp_path, "10:00", "10:15", "sms")
    async with open_store(store_at) as store:
        await store.record_batch([classify(json.dumps(e).encode(), "t", 65536) for e in events],
                                 now=START, config_version="t")
        channel = _SlowSandbox(load_outcome_script_empty(tmp_path))
        engine = Engine(store, channel, policy_of(load_config(path, {})))
        await engine.sweep(START)
        due = await store.next_due_at()
        assert due is not None
        first = await engine.sweep(due)
        # 0.1/s over the 20 s window: 2 texts now, the others a tick later, each decided anew.
        assert first.sent == 2
        later = await engine.sweep(due + NEXT_TRY)
        assert later.sent == 2
        assert (await engine.sweep(due + 2 * NEXT_TRY)).sent == 1
    assert len(channel.sent) == 5


async def test_hours_are_asked_again_at_the_moment_of_sending(
        tmp_path: Path, config: LoadedConfig, store_at: StoreLocation) -> None:
    late_config = load_config(_one_window_config(tmp_path, "20:58", "21:00", "call"), {})
    async with open_store(store_at) as store:
        await store.record_batch([classify(json.dumps(overdue(days=3)).encode(), "t", 65536)],
                                 now=START, config_version="t")
        channel = SandboxChannel(load_outcome_script_empty(tmp_path))
        # The request leaves 150 s after the decision (a provider's queue): past 21:00 there.
        sending = VirtualClock(START)
        engine = Engine(store, channel, policy_of(late_config), clock=sending)
        await engine.sweep(START)
        due = await store.next_due_at()
        assert due is not None
        assert due.astimezone(CHICAGO).strftime("%H:%M") == "20:58"
        sending.set(due + timedelta(seconds=150))
        stats = await engine.sweep(due)
        records = [r async for r in store.audit_records()]
    assert stats.sent == 0
    assert channel.sent == []
    [outcome] = [r for r in records if r["kind"] == "outcome"]
    assert outcome["status"] == "not-sent"
    [suppressed] = [r for r in records if r["kind"] == "suppressed"]
    assert suppressed["reason"] == "quiet_hours"


def _spelled(number: str, zero: str) -> str:
    """`number` with its digits written in another script (`zero` is that script's 0)."""
    return "+" + "".join(chr(ord(zero) + int(d)) for d in number[1:])


ARABIC_INDIC_MOBILE = _spelled(MOBILE, "\u0660")
FULL_WIDTH_MOBILE = "\uff0b" + _spelled(MOBILE, "\uff10")[1:]


@pytest.mark.parametrize(("opted_out", "listed"), [
    (MOBILE, ARABIC_INDIC_MOBILE),
    (MOBILE, MOBILE[:2] + ARABIC_INDIC_MOBILE[2:]),  # ASCII country code, other digits not
    (ARABIC_INDIC_MOBILE, MOBILE),
    (MOBILE, FULL_WIDTH_MOBILE),
    (MOBILE, MOBILE[:5] + "\u200b" + MOBILE[5:]),
])
async def test_an_opt_out_covers_every_spelling_of_its_number(
        tmp_path: Path, config: LoadedConfig, opted_out: str, listed: str) -> None:
    phones = [{"number": listed, "type": "mobile", "sms_consent": True, "call_consent": True}]
    for run in ("without", "with"):
        (tmp_path / run).mkdir()
    without = await simulate(tmp_path / "without", config, [overdue(days=2, phones=phones)],
                             days=4)
    assert attempts(without, "sms"), "the debtor is texted when no opt-out stands"
    records = await simulate(tmp_path / "with", config, [
        event("contact.opt_out", {"number": opted_out, "channel": "sms"},
              START - timedelta(days=1), 1),
        overdue(days=2, phones=phones)], days=4)
    assert not [r for r in records if r["kind"] == "dead_letter"]
    assert attempts(records), "calls still go out"
    assert not attempts(records, "sms")
    assert {r["to"] for r in attempts(without) + attempts(records)} == {MOBILE}


async def test_a_stop_from_another_spelling_of_the_number_ends_texts(
        tmp_path: Path, config: LoadedConfig) -> None:
    stop_at = START + timedelta(days=1, hours=16)
    outcomes = {"replies": [{"at": stop_at.isoformat(), "from": ARABIC_INDIC_MOBILE,
                             "body": "STOP"}]}
    records = await simulate(tmp_path, config, [overdue(days=2)], outcomes, days=6)
    texts = attempts(records, "sms")
    assert texts
    assert all(datetime.fromisoformat(r["at"]) < stop_at for r in texts)


async def test_an_account_the_engine_cannot_decide_is_set_aside_and_the_rest_go_on(
        tmp_path: Path, config: LoadedConfig, store_at: StoreLocation) -> None:
    # A promise dated 9999-12-31, as stored by a version that accepted it: the grace period
    # after it lies past the calendar's end, and deciding for that account raises.
    events = [overdue(f"A-{n}", days=2, n=n, phones=[{
        "number": f"+1512555{n:04d}", "type": "mobile", "sms_consent": True,
        "call_consent": True}]) for n in range(100, 104)]
    promise = event("account.promise", {"due_on": "9999-12-31"}, START, 1, account="A-101")
    async with open_store(store_at) as store:
        items = [classify(json.dumps(e).encode(), "t", 65536) for e in events]
        items.append(Accepted(parse_stored_event(json.dumps(promise).encode()),
                              json.dumps(promise).encode(), "t"))
        await store.record_batch(items, now=START, config_version="t")
        channel = SandboxChannel(load_outcome_script_empty(tmp_path))
        engine = Engine(store, channel, policy_of(config))
        now = START
        for _ in range(80):  # through the first day: the others' first texts, A-101 hourly
            await engine.sweep(now)
            due = await store.next_due_at()
            assert due is not None
            assert due > now, "an account set aside is not swept in a loop"
            now = due
            if now > START + timedelta(days=1):
                break
        records = [r async for r in store.audit_records()]
    texted = {r["account_id"] for r in attempts(records)}
    assert texted == {"A-100", "A-102", "A-103"}
    set_aside = [r for r in records if r["kind"] == "suppressed" and r["account_id"] == "A-101"]
    assert set_aside, "the account set aside is audited"
    assert {r["reason"] for r in set_aside} == {"internal_error"}
    assert "OverflowError" in set_aside[0]["detail"]
    # Looked at again an hour later each time, not at every sweep.
    times = [datetime.fromisoformat(r["at"]) for r in set_aside]
    assert all(b - a >= timedelta(hours=1) for a, b in itertools.pairwise(times))


async def test_a_simulation_runs_with_fewer_collections_and_gives_the_collector_back(
        tmp_path: Path, config: LoadedConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[int, int, int]] = []
    run = simulation_module.Simulation.run

    async def run_and_look(self: Simulation, events: list[Any], days: int) -> None:
        seen.append(gc.get_threshold())
        await run(self, events, days)

    monkeypatch.setattr(simulation_module.Simulation, "run", run_and_look)
    before = gc.get_threshold()
    records = await simulate(tmp_path, config, [overdue()], days=3)
    assert seen == [simulation_module.SIMULATION_GC_THRESHOLDS] != [before]
    assert gc.get_threshold() == before
    # When the collector runs changes nothing a simulation makes.
    monkeypatch.setattr(simulation_module, "SIMULATION_GC_THRESHOLDS", before)
    assert await simulate(tmp_path, config, [overdue()], days=3) == records
    assert attempts(records)


async def test_a_simulation_reads_its_audit_back_with_the_collector_off(
        tmp_path: Path, config: LoadedConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[bool] = []
    read = SqliteStore.audit_records

    def read_and_look(self: SqliteStore, **filters: Any) -> AsyncIterator[dict[str, Any]]:
        seen.append(gc.isenabled())
        return read(self, **filters)

    monkeypatch.setattr(SqliteStore, "audit_records", read_and_look)
    assert gc.isenabled()
    records = await simulate(tmp_path, config, [overdue()], days=3)
    assert seen == [False]
    assert gc.isenabled()
    assert attempts(records)


async def test_simulate_prints_each_record_as_read_never_holding_them_all(
        tmp_path: Path, config: LoadedConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    read: list[str] = []
    records = SqliteStore.audit_records

    async def counted(self: SqliteStore, **filters: Any) -> AsyncIterator[dict[str, Any]]:
        async for record in records(self, **filters):
            read.append(record["kind"])
            yield record

    monkeypatch.setattr(SqliteStore, "audit_records", counted)
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(json.dumps(overdue(f"A-{n}")) for n in range(3)))
    async with simulation_module.simulated(config, events, START, 3,
                                           OutcomeScript.empty()) as run:
        lines = simulation_module.output_lines(run, "jsonl")
        first = await anext(lines)
        assert json.loads(first)["kind"] == "event"
        assert len(read) == 1  # the first line was printed before the second record was read
        rest = [line async for line in lines]
    assert len(read) == 1 + len(rest) > 5
    assert [json.loads(line)["kind"] for line in [first, *rest]] == read


@pytest.mark.parametrize("enabled", [True, False])
def test_no_collections_gives_the_collector_back_as_it_was(enabled: bool) -> None:
    inside = []

    def fail() -> None:
        with simulation_module.no_collections():
            inside.append(gc.isenabled())
            raise RuntimeError

    if not enabled:
        gc.disable()
    try:
        with pytest.raises(RuntimeError):
            fail()
        assert inside == [False]
        assert gc.isenabled() is enabled
    finally:
        gc.enable()


def test_the_collector_is_given_back_when_a_simulation_fails() -> None:
    before, inside = gc.get_threshold(), []

    def fail() -> None:
        with simulation_module.fewer_collections():
            inside.append(gc.get_threshold())
            raise RuntimeError

    with pytest.raises(RuntimeError):
        fail()
    assert inside == [simulation_module.SIMULATION_GC_THRESHOLDS]
    assert gc.get_threshold() == before
