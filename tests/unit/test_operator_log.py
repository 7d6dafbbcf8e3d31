"""The engine's lines for an operator: one per decision and per outcome, numbers masked."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from dispatcher.config.settings import LoadedConfig, load_config
from dispatcher.service.logs import MaskingJsonFormatter, MaskingTextFormatter
from tests.unit.test_contact_engine import (
    MOBILE,
    SHIPPED,
    START,
    event,
    overdue,
    simulate,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def config() -> LoadedConfig:
    return load_config(SHIPPED / "dispatcher.toml", {})


def fields_of(records: list[logging.LogRecord], message: str) -> list[dict[str, Any]]:
    """The JSON fields of the contact logger's lines saying `message`."""
    formatter = MaskingJsonFormatter()
    return [json.loads(formatter.format(r)) for r in records
            if r.name == "dispatcher.contact" and r.getMessage() == message]


async def test_every_attempt_suppression_and_outcome_has_its_line(
        tmp_path: Path, config: LoadedConfig, caplog: pytest.LogCaptureFixture) -> None:
    hold_at = START + timedelta(days=2)
    with caplog.at_level(logging.INFO, logger="dispatcher.contact"):
        records = await simulate(tmp_path, config, [
            overdue(days=25), event("account.hold", {"reason": "dispute"}, hold_at, 1)],
            {"default": {"call": ["no-answer", "busy"]}}, days=4)
    decisions = fields_of(caplog.records, "decision")
    outcomes = fields_of(caplog.records, "outcome")
    attempts = [r for r in records if r["kind"] == "attempt"]
    assert attempts
    sent = [d for d in decisions if d["result"] == "sent"]
    assert [d["attempt"] for d in sent] == [a["attempt_id"] for a in attempts]
    for line, attempt in zip(sent, attempts, strict=True):
        assert line["account"] == "A-1"
        assert (line["channel"], line["party"], line["rule"], line["stage"]) == (
            attempt["channel"], attempt["party"], attempt["rule"], attempt["stage"])
        assert line["number"] == "+15*******00"
    audited = [r for r in records if r["kind"] == "outcome"]
    assert [(o["attempt"], o["result"], o["channel"]) for o in outcomes] == [
        (r["attempt_id"], r["status"], r["channel"]) for r in audited]
    assert {o["number"] for o in outcomes} == {"+15*******00"}
    [held] = [d for d in decisions if d["result"] == "suppressed"]
    assert held["reason"] == "hold:dispute"
    assert held["number"] == "+15*******00"
    deferred = [d for d in decisions if d["result"] == "deferred"]
    assert deferred
    assert all("next" in d and ("rule" in d or "reason" in d) for d in deferred)
    text = "\n".join(MaskingTextFormatter().format(r) for r in caplog.records)
    assert MOBILE not in text
    assert "result=sent" in text
    assert "outcome account=A-1 attempt=at-" in text


async def test_an_account_id_cannot_forge_a_field(
        tmp_path: Path, config: LoadedConfig, caplog: pytest.LogCaptureFixture) -> None:
    # Control characters never get this far (an event naming such an account is a dead letter);
    # nor do spaces; quotes and `=` do, and stay inside the account's one field.
    hostile = 'A-1"result=suppressed"reason=hold'
    with caplog.at_level(logging.INFO, logger="dispatcher.contact"):
        await simulate(tmp_path, config, [overdue(hostile, days=25)], days=2)
    lines = [MaskingTextFormatter().format(r) for r in caplog.records
             if r.getMessage() in ("decision", "outcome")]
    assert any("result=sent" in line for line in lines)
    for line in lines:
        after = " " + line.split(": ", 1)[1].split(" ", 1)[1]
        fields = re.findall(r' (\w+)=("(?:[^"\\]|\\.)*"|[^ "]*)', after)
        names = [name for name, _ in fields]
        assert names.count("result") == 1
        assert names.count("reason") <= 1
        assert dict(fields)["account"] == '"A-1\\"result=suppressed\\"reason=hold"'


def test_simulate_stays_quiet(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text(json.dumps(overdue(days=25)) + "\n")
    result = subprocess.run(
        [sys.executable, "-m", "dispatcher", "simulate", "--config",
         str(SHIPPED / "dispatcher.toml"), "--events", str(events), "--start",
         START.isoformat(), "--days", "3", "--format", "jsonl"],
        capture_output=True, text=True, cwd=ROOT, timeout=120, check=True)
    assert result.stderr == ""
    kinds = {json.loads(line)["kind"] for line in result.stdout.splitlines()}
    assert "attempt" in kinds  # it decided and sent, and said so only in its output
    assert "decision" not in result.stdout
