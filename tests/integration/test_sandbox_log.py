"""The sandbox channel logs the rendered text of every message it "sends", as the debtor would
read or hear it, with the number masked, through the application's own log formatters."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from channels.sandbox import SandboxChannel, load_outcome_script, logged_body
from dispatcher.config.settings import load_config
from dispatcher.contact.simulate import Simulation, read_events
from dispatcher.contact.templates import content_hash
from dispatcher.domain.contact import Delivery, Medium
from dispatcher.domain.phones import mask_number, mask_numbers_in
from dispatcher.service.logs import MESSAGE_LIMIT, configure_logging
from dispatcher.store import open_store
from tests.support import make_config

ROOT = Path(__file__).resolve().parents[2]
START = datetime(2026, 11, 29, 6, 0, tzinfo=UTC)


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """The root logger in the daemon's JSON format, written to a buffer; restored after."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    stream = io.StringIO()
    configure_logging("info", "json", stream)
    yield stream
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


async def _simulate(config_path: Path, days: int) -> tuple[list[dict[str, Any]], list[Delivery]]:
    config = load_config(config_path)
    script = load_outcome_script(ROOT / "examples" / "outcomes.json")
    async with open_store(config_path.parent / "sim.db", durable=False, inline=True) as store:
        simulation = Simulation(config, store, script, START)
        await simulation.run(read_events(ROOT / "examples" / "events.jsonl", START), days)
        return [r async for r in store.audit_records()], simulation.channel.sent


def test_every_attempt_of_a_simulation_is_logged_with_its_text(
        tmp_path: Path, log_lines: io.StringIO) -> None:
    records, sent = asyncio.run(_simulate(make_config(tmp_path / "cfg", "mqtt://127.0.0.1:1"),
                                          4))
    attempts = {r["attempt_id"]: r for r in records if r["kind"] == "attempt"}
    outcomes = {r["attempt_id"]: r["status"] for r in records if r["kind"] == "outcome"}
    logged = [json.loads(line) for line in log_lines.getvalue().splitlines()]
    entries = {e["attempt_id"]: e for e in logged if e["logger"] == "channels.sandbox"}
    assert len(attempts) >= 5
    assert sorted(entries) == sorted(attempts) == sorted(d.attempt_id for d in sent)
    mediums = set()
    for delivery in sent:
        attempt, entry = attempts[delivery.attempt_id], entries[delivery.attempt_id]
        # What was sent is what the audit record hashed, and the log shows it (numbers masked:
        # the callback number too, as every number in an application log).
        assert content_hash(delivery.body) == attempt["template_hash"]
        assert entry["message"] == (f"sandbox {attempt['channel']} to "
                                    f"{mask_number(attempt['to'])}: "
                                    f"{mask_numbers_in(logged_body(delivery.body))}")
        assert (entry["template"], entry["outcome"]) == (attempt["template"],
                                                         outcomes[attempt["attempt_id"]])
        mediums.add(delivery.medium)
        if delivery.medium is Medium.CALL:
            assert " / " in entry["message"]  # the greeting, then what follows the debtor's "1"
    assert mediums == {Medium.CALL, Medium.SMS}
    numbers = set(re.findall(r"\+\d{8,15}", (ROOT / "examples" / "events.jsonl").read_text()))
    assert not [n for n in numbers if n in log_lines.getvalue() or n[1:] in log_lines.getvalue()]


def test_a_huge_text_is_logged_cut_short(log_lines: io.StringIO) -> None:
    channel = SandboxChannel()
    body = "Hi " + "x" * 50_000 + " Reply STOP to opt out."
    asyncio.run(channel.send(Delivery("at-1", Medium.SMS, "+15125550100", body, "t",
                                      "America/Chicago", START)))
    (entry,) = [json.loads(line) for line in log_lines.getvalue().splitlines()]
    message = f"sandbox sms to +15*******00: {body}"
    assert entry["message"] == (f"{message[:MESSAGE_LIMIT]}..."
                                f"[{len(message) - MESSAGE_LIMIT} more characters]")


def test_a_name_cannot_forge_a_log_line_nor_drive_a_terminal(tmp_path: Path) -> None:
    stream = io.StringIO()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    configure_logging("info", "text", stream)
    try:
        body = ("Hello, calling for Jo\x1b[2J\n2026-12-01 00:00:00,000 CRITICAL dispatcher: forged"
                "\r\nPress 1.")
        asyncio.run(SandboxChannel().send(Delivery("at-1", Medium.CALL, "+15125550100", body,
                                                   "call_script", "America/Chicago", START)))
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)
    (line,) = stream.getvalue().splitlines()
    assert "\x1b" not in line
    assert "calling for Jo\\x1b[2J / 2026-12-01 00:00:00,000 CRITICAL dispatcher: forged / " \
           "Press 1." in line
