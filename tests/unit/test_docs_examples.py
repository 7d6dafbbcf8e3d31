"""The examples in docs/ are what the code reads: the shipped schedule, the outcomes file and
the events of docs/simulate.md. (docs/events.md is held by test_event_schema.py.)"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from channels.availability import AnswerProbability, Availability
from channels.sandbox import load_outcome_script
from dispatcher.domain.contact import Medium, Outcome
from dispatcher.domain.events import parse_event

ROOT = Path(__file__).resolve().parents[2]


def blocks(doc: str, fence: str) -> list[str]:
    """The bodies of the code blocks of `doc` opened with ```<fence>."""
    text = (ROOT / "docs" / doc).read_text(encoding="utf-8")
    return re.findall(rf"^```{fence}\n(.*?)^```$", text, re.MULTILINE | re.DOTALL)


def test_the_schedule_in_the_docs_is_the_shipped_one() -> None:
    [shown] = blocks("schedules.md", "toml")
    shipped = (ROOT / "config" / "schedules" / "standard.toml").read_text(encoding="utf-8")
    assert tomllib.loads(shown) == tomllib.loads(shipped)


def test_the_outcomes_files_in_the_docs_load(tmp_path: Path) -> None:
    shown, by_probability = blocks("simulate.md", "json")
    path = tmp_path / "outcomes.json"
    path.write_text(shown, encoding="utf-8")
    script = load_outcome_script(path)
    assert script.rule_for("+12125550101", Medium.CALL) == (
        Outcome.NO_ANSWER, Outcome.MACHINE, Outcome.BUSY)
    assert [r.body for r in script.replies] == ["who is this? stop"]
    path.write_text(by_probability, encoding="utf-8")
    script = load_outcome_script(path)
    population = script.rule_for("+12125550101", Medium.CALL)
    assert isinstance(population, AnswerProbability)
    assert (population.by_hour[18], population.by_hour[9]) == (0.6, 0.0)
    assert population.by_weekday[5:] == (0.5, 0.2)
    weekdays = script.rule_for("+15125550100", Medium.CALL)
    assert isinstance(weekdays, Availability)
    assert weekdays.days == frozenset(range(5))


def test_the_events_file_in_the_docs_holds_valid_events() -> None:
    text = (ROOT / "docs" / "simulate.md").read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if line.startswith('{"schema":1')]
    assert len(lines) == 3
    assert [parse_event(line.encode()).type for line in lines] == [
        "account.overdue", "account.overdue", "account.promise"]
