"""The README's quick start, run as printed: `simulate` on the shipped examples, and the daemon
receiving them the way the README publishes them."""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from jsonschema import Draft202012Validator

from channels.sandbox import load_outcome_script
from dispatcher.cli.main import main
from dispatcher.compliance.profiles import limits_for
from dispatcher.config.settings import LoadedConfig, load_config
from dispatcher.contact.templates import content_hash, debt_placeholders, debt_terms, render
from dispatcher.domain.clock import parse_rfc3339
from dispatcher.ingest.classify import classify
from dispatcher.report.attempt_log import attempts_of, outcome_statuses
from dispatcher.report.recheck import recheck_by_region
from dispatcher.store import Accepted, Rejected
from tests.integration.publish import publish_all
from tests.support import Broker, Daemon, query, stored_events, wait_until

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
EVENTS = ROOT / "examples" / "events.jsonl"
OUTCOMES = ROOT / "examples" / "outcomes.json"
SHIPPED_CONFIG = ROOT / "config" / "dispatcher.toml"
SCHEMA = ROOT / "docs" / "event.schema.json"
MALFORMED = "ex-malformed"  # the one example event examples/README.md says is refused
ELLIPSIS = "…"


# --- reading the README -------------------------------------------------------------------------


def readme_lines() -> list[str]:
    """README.md's lines, continuation lines (a trailing backslash) joined."""
    return README.read_text(encoding="utf-8").replace("\\\n", " ").splitlines()


def readme_command(prefix: str) -> tuple[int, str]:
    """The README's one shell line that starts with `prefix`, and its line index."""
    found = [(n, line.strip()) for n, line in enumerate(readme_lines())
             if line.strip().startswith(prefix)]
    assert len(found) == 1, f"README.md should hold exactly one command starting {prefix!r}"
    return found[0]


def readme_sample_after(index: int) -> list[str]:
    """The lines of the first ```text block after line `index` of the README."""
    lines = readme_lines()[index:]
    start = lines.index("```text") + 1
    return lines[start:lines.index("```", start)]


def as_argv(command: str) -> list[str]:
    """The README's `.venv/bin/dispatcher ...` words, run with this interpreter."""
    words = shlex.split(command)
    assert words[0] == ".venv/bin/dispatcher"
    return [sys.executable, "-m", "dispatcher", *words[1:]]


def shipped_environment() -> dict[str, str]:
    """The environment with nothing that would pick another config than the shipped one."""
    return {k: v for k, v in os.environ.items() if k != "DISPATCHER_CONFIG"}


# --- the examples -------------------------------------------------------------------------------


def example_events() -> list[dict[str, Any]]:
    """Every line of examples/events.jsonl, parsed."""
    return [json.loads(line) for line in EVENTS.read_text(encoding="utf-8").splitlines()]


def valid_examples(type_: str) -> list[dict[str, Any]]:
    """The example events of one type, without the malformed one."""
    return [e for e in example_events() if e["type"] == type_ and e["event_id"] != MALFORMED]


def debtor_of(account_id: str) -> dict[str, Any]:
    """The debtor the example account.overdue event gives `account_id`."""
    (event,) = [e for e in valid_examples("account.overdue") if e["account_id"] == account_id]
    debtor: dict[str, Any] = event["data"]["debtor"]
    return debtor


def test_every_example_event_is_judged_by_the_real_classifier() -> None:
    lines = EVENTS.read_bytes().splitlines()
    assert len(lines) == len(example_events()) > 1
    for line, event in zip(lines, example_events(), strict=True):
        result = classify(line, "collections/events/examples", 65536)
        if event["event_id"] == MALFORMED:
            assert isinstance(result, Rejected)
            assert result.reason == "invalid"
            assert result.detail.startswith("data.debtor.phones.0.number: not an E.164 number")
        else:
            assert isinstance(result, Accepted), (event["event_id"], result)
            assert result.event.event_id == event["event_id"]
    types = {e["type"] for e in example_events()}
    assert {"account.overdue", "contact.opt_out", "account.promise"} <= types


def test_the_published_event_schema_agrees_on_every_example() -> None:
    validator = Draft202012Validator(json.loads(SCHEMA.read_text(encoding="utf-8")))
    for event in example_events():
        assert validator.is_valid(event) is (event["event_id"] != MALFORMED), event["event_id"]


def test_the_outcomes_file_loads_and_names_only_example_numbers() -> None:
    script = load_outcome_script(OUTCOMES)
    numbers = {p["number"] for e in valid_examples("account.overdue")
               for p in e["data"]["debtor"]["phones"]}
    numbers |= {c["number"] for e in valid_examples("account.overdue")
                for c in e["data"].get("contacts") or []}
    assert set(script.numbers) <= numbers
    assert script.replies
    assert {r.from_number for r in script.replies} <= numbers


# --- simulate, as the README prints it ----------------------------------------------------------


@dataclass(frozen=True)
class Simulated:
    """The README's simulate command's table, and the audit records of the same run."""

    table: list[str]
    records: list[dict[str, Any]]
    config: LoadedConfig

    def kind(self, kind: str) -> list[dict[str, Any]]:
        """Records of one kind, in seq order."""
        return [r for r in self.records if r["kind"] == kind]

    def attempts(self, account_id: str | None = None) -> list[dict[str, Any]]:
        """Attempt records, of one account when given."""
        return [r for r in self.kind("attempt")
                if account_id is None or r["account_id"] == account_id]

    def status(self, attempt: dict[str, Any]) -> str | None:
        """The outcome of an attempt."""
        return outcome_statuses(self.records).get(attempt["attempt_id"])


def run_readme_command(argv: list[str]) -> str:
    """Run a command in the repository's folder, as a reader would, and return its output."""
    result = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, timeout=120,
                            env=shipped_environment(), check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def simulated() -> Simulated:
    """The README's simulate command, run as printed, and again with --format jsonl."""
    _, command = readme_command(".venv/bin/dispatcher simulate")
    argv = as_argv(command)
    assert argv[argv.index("--format") + 1] == "table"
    table = run_readme_command(argv).splitlines()
    as_jsonl = list(argv)
    as_jsonl[argv.index("--format") + 1] = "jsonl"
    records = [json.loads(line) for line in run_readme_command(as_jsonl).splitlines()]
    return Simulated(table, records, load_config(SHIPPED_CONFIG))


def test_the_readme_shows_what_simulate_prints(simulated: Simulated) -> None:
    index, _ = readme_command(".venv/bin/dispatcher simulate")
    sample = readme_sample_after(index)
    shown = [line for line in sample if line != ELLIPSIS]
    assert len(shown) > 5
    for line in shown:
        assert line in simulated.table, f"README.md shows a line simulate does not print: {line}"
    # In the order printed.
    assert [simulated.table.index(line) for line in shown] == sorted(
        simulated.table.index(line) for line in shown)


def in_window(local: datetime, start: time, end: time) -> bool:
    """Whether a local wall-clock time lies in [start, end)."""
    return start <= local.time().replace(second=0, microsecond=0) < end


def test_us_and_cn_debtors_are_contacted_only_at_lawful_local_times(simulated: Simulated) -> None:
    config, schedule = simulated.config, simulated.config.schedule
    for account_id, zone, profile in (("EX-US-1001", "America/Chicago", "us"),
                                      ("EX-CN-2001", "Asia/Shanghai", "cn")):
        assert debtor_of(account_id)["timezone"] == zone
        attempts = simulated.attempts(account_id)
        assert {a["channel"] for a in attempts} == {"sms", "call"}, account_id
        assert {a["profile"] for a in attempts} == {profile}, account_id
    for attempt in simulated.attempts():
        at = parse_rfc3339(attempt["at"])
        # Each debtor is held to the hours of the profile of their own region.
        assert attempt["region"] == debtor_of(attempt["account_id"])["region"]
        applied = limits_for(config.regions, attempt["region"])
        assert applied is not None, attempt
        assert applied.profile == attempt["profile"]
        limits = applied.limits
        for zone, text in attempt["local_times"].items():
            local = at.astimezone(ZoneInfo(zone))
            assert text == local.isoformat(timespec="minutes")
            assert in_window(local, limits.hours_start, limits.hours_end), attempt
        if attempt["role"] == "debtor":
            home = at.astimezone(ZoneInfo(debtor_of(attempt["account_id"])["timezone"]))
            window = schedule.windows[attempt["window"]]
            assert home.weekday() in window.days, attempt
            assert in_window(home, window.start, window.end), attempt
    # The report's independent re-check finds nothing wrong in the whole run either.
    logged = attempts_of(simulated.records, outcome_statuses(simulated.records))
    assert recheck_by_region(simulated.records, logged, config.regions, config.limits,
                             config.templates.templates) == []


def test_the_debtor_no_profile_covers_is_never_contacted(simulated: Simulated) -> None:
    uncovered = [e["account_id"] for e in valid_examples("account.overdue")
                 if limits_for(simulated.config.regions, e["data"]["debtor"]["region"]) is None]
    assert uncovered == ["EX-CN-2002"]
    assert debtor_of("EX-CN-2002")["region"] == "CN-31"
    assert simulated.attempts("EX-CN-2002") == []
    [suppressed] = [r for r in simulated.kind("suppressed") if r["account_id"] == "EX-CN-2002"]
    assert (suppressed["reason"], suppressed["detail"]) == ("no_profile",
                                                            "no profile covers region CN-31")


def test_check_config_warns_of_that_debtor_as_the_examples_readme_shows() -> None:
    readme = (ROOT / "examples" / "README.md").read_text(encoding="utf-8").splitlines()
    command = next(line for line in readme if line.startswith(".venv/bin/dispatcher check-config"))
    start = readme.index("```text", readme.index(command)) + 1
    shown = readme[start:readme.index("```", start)]
    printed = run_readme_command(as_argv(command)).splitlines()
    version = re.compile(r"\(config version [0-9a-f]{16}\)$")
    assert [version.sub("(config version …)", line) for line in printed] == shown
    assert "warning: account EX-CN-2002: the debtor's region CN-31 maps to no profile: never " \
        "contacted (no_profile)" in printed


def test_the_opted_out_number_is_never_contacted(simulated: Simulated) -> None:
    (opt_out,) = valid_examples("contact.opt_out")
    number, account_id = opt_out["data"]["number"], opt_out["account_id"]
    assert opt_out["data"]["channel"] == "all"
    assert [r["status"] for r in simulated.kind("opt_out") if r["to"] == number] == ["opted_out"]
    assert not [a for a in simulated.attempts() if a["to"] == number]
    others = {p["number"] for p in debtor_of(account_id)["phones"]} - {number}
    reached = {a["to"] for a in simulated.attempts(account_id)}
    assert reached
    assert reached <= others


def test_a_reply_of_td_stops_texts_and_calls_go_on(simulated: Simulated) -> None:
    (reply,) = load_outcome_script(OUTCOMES).replies
    assert reply.body == "退订"
    opt_outs = [r for r in simulated.kind("opt_out") if r["to"] == reply.from_number]
    assert [(r["channel"], r["status"]) for r in opt_outs] == [("sms", "opted_out")]
    to_them = [a for a in simulated.attempts() if a["to"] == reply.from_number]
    before = [a for a in to_them if parse_rfc3339(a["at"]) < reply.at]
    after = [a for a in to_them if parse_rfc3339(a["at"]) >= reply.at]
    assert [a["channel"] for a in before] == ["sms"]
    assert after
    assert {a["channel"] for a in after} == {"call"}


def test_a_conversation_is_followed_by_the_cool_down(simulated: Simulated) -> None:
    cooldown = simulated.config.limits.conversation_cooldown_days
    zone = ZoneInfo(debtor_of("EX-US-1001")["timezone"])
    calls = [a for a in simulated.attempts("EX-US-1001") if a["channel"] == "call"]
    talks = [a for a in calls if simulated.status(a) == "completed"]
    assert len(talks) >= 2
    for talk in talks:
        day = parse_rfc3339(talk["at"]).astimezone(zone).date()
        later = [a for a in calls if a["at"] > talk["at"]]
        if later:
            next_day = parse_rfc3339(later[0]["at"]).astimezone(zone).date()
            assert next_day >= day + timedelta(days=cooldown), later[0]


def test_the_emergency_contact_never_hears_of_the_debt(simulated: Simulated) -> None:
    (overdue,) = [e for e in valid_examples("account.overdue") if e["data"].get("contacts")]
    account_id, data = overdue["account_id"], overdue["data"]
    (contact,) = data["contacts"]
    assert contact["role"] == "emergency"
    calls = [a for a in simulated.attempts(account_id) if a["to"] == contact["number"]]
    assert 1 <= len(calls) <= simulated.config.limits.third_party_calls_per_contact
    debtor_calls = [a for a in simulated.attempts(account_id) if a["role"] == "debtor"
                    and parse_rfc3339(a["at"]) < parse_rfc3339(calls[0]["at"])]
    assert len(debtor_calls) >= simulated.config.limits.unreachable_after_attempts
    assert all(simulated.status(a) != "completed" for a in debtor_calls)
    settings = simulated.config.settings.contact
    name = data["debtor"]["name"]
    values = {"first_name": name.split()[0], "name": name, "business": settings.business,
              "callback": settings.callback, "agent": settings.agent,
              "amount": data["amount_due"], "currency": data["currency"],
              "days_past_due": str(data["days_past_due"]), "due_date": "2026-11-01"}
    for call in calls:
        assert (call["channel"], call["party"], call["role"]) == ("call", "third_party",
                                                                   "emergency")
        assert "unreachable" in call["rule"]
        template = simulated.config.templates.get(call["template"])
        _, text = template.whole_text(data["debtor"].get("locale"),
                                      simulated.config.settings.contact.default_locale)
        said = render(text, values)
        assert content_hash(said) == call["template_hash"], "the call said something else"
        assert debt_terms(said) == []
        assert debt_placeholders(text) == []
        assert data["amount_due"] not in said
        assert data["currency"] not in said


def test_a_promise_holds_contact_until_it_is_broken(simulated: Simulated) -> None:
    (promise,) = valid_examples("account.promise")
    account_id = promise["account_id"]
    paused = [r for r in simulated.kind("suppressed") if r["account_id"] == account_id]
    assert paused
    assert paused[0]["reason"] == "promise_pending"
    (broken,) = [r for r in simulated.kind("promise") if r["account_id"] == account_id]
    assert (broken["status"], broken["due_on"]) == ("broken", promise["data"]["due_on"])
    attempts = simulated.attempts(account_id)
    assert attempts
    assert all(a["at"] > broken["at"] for a in attempts)


def test_the_malformed_event_is_a_dead_letter_with_its_reason(simulated: Simulated) -> None:
    (dead,) = simulated.kind("dead_letter")
    assert (dead["event_id"], dead["reason"]) == (MALFORMED, "invalid")
    assert dead["detail"].startswith("data.debtor.phones.0.number")
    # Nothing else of that account but the work-queue item asking a person to look at it.
    others = [r for r in simulated.records
              if r["account_id"] == dead["account_id"] and r["kind"] != "dead_letter"]
    assert [(r["kind"], r["reason"], r["ref"]) for r in others] == [
        ("queue", "dead_letter", str(dead["dead_letter_id"]))]


# --- the daemon, fed the way the README publishes --------------------------------------------


def shipped_config_for(folder: Path, broker: Broker) -> Path:
    """The shipped config folder, with only the broker, webhook port and store moved."""
    shutil.copytree(ROOT / "config", folder)
    path = folder / "dispatcher.toml"
    text = path.read_text()
    for old, new in (('url = "mqtt://127.0.0.1:1883"', f'url = "{broker.url}"'),
                     ("port = 8080", "port = 0"),
                     ('url = "sqlite://../var/dispatcher.db"', 'url = "sqlite://data/dispatcher.db"')):
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    path.write_text(text)
    return path


def cli(*argv: str) -> tuple[int, str]:
    """Run a dispatcher command in this process."""
    out = io.StringIO()
    return main(list(argv), out=out), out.getvalue()


@pytest.fixture
def daemon(tmp_path: Path, broker: Broker) -> Iterator[tuple[Path, Daemon]]:
    """`dispatcher run` on the shipped config, against the test's own broker."""
    config = shipped_config_for(tmp_path / "config", broker)
    running = Daemon(config)
    running.start()
    yield config, running
    running.ensure_stopped()


def test_the_daemon_takes_the_examples_as_the_readme_publishes_them(
        daemon: tuple[Path, Daemon], broker: Broker) -> None:
    config, running = daemon
    _, command = readme_command("mosquitto_pub ")
    words = shlex.split(command)
    assert words[words.index("-q") + 1] == "1"
    assert "-l" in words
    topic, source = words[words.index("-t") + 1], ROOT / words[words.index("<") + 1]
    assert topic.startswith("collections/events/")  # under the shipped [mqtt] topics filter
    lines = source.read_bytes().splitlines()
    asyncio.run(publish_all(broker.port, lines, topic=topic))
    valid = sum(1 for e in example_events() if e["event_id"] != MALFORMED)
    wait_until(lambda: stored_events(config) == valid and dead_letters(config) == 1, 30,
               "the examples stored")
    wait_until(lambda: "dead letters stored count=1 reasons=invalid" in running.new_log(), 10,
               "the dead letter logged")

    code, listing = cli("dead-letters", "list", "--config", str(config))
    assert code == 0
    index, _ = readme_command(".venv/bin/dispatcher dead-letters list")
    header, row, total = readme_sample_after(index)
    assert listing.splitlines()[0] == header
    assert listing.splitlines()[-1] == total
    (shown,) = listing.splitlines()[1:-1]
    timestamp = re.compile(r"\d{4}-\d\d-\d\dT[\d:.]+Z")
    assert timestamp.sub("T", shown) == timestamp.sub("T", row)

    for account_id in sorted({e["account_id"] for e in valid_examples("account.overdue")}):
        code, text = cli("explain", "--account", account_id, "--config", str(config))
        assert code == 0, text
        assert "next attempt:" in text, text
    dead_account = next(e["account_id"] for e in example_events() if e["event_id"] == MALFORMED)
    code, text = cli("explain", "--account", dead_account, "--config", str(config))
    assert code == 1
    assert text.startswith(f"no account '{dead_account}'")
    code, text = cli("audit", "verify", "--config", str(config))
    assert code == 0
    assert text.startswith("OK: ")
    assert running.terminate() == 0


def dead_letters(config: Path) -> int:
    """How many dead letters the daemon's store holds."""
    rows = query(config, "SELECT COUNT(*) FROM dead_letters")
    return int(rows[0][0]) if rows else 0
