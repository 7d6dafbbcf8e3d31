"""What `dispatcher run` logs for an operator: decisions, outcomes and summaries, numbers masked.

A real daemon process and a real Mosquitto, in each log format. The schedule's only window opens
this minute where the debtor is, so the attempt is sent within two minutes of real time.
"""

from __future__ import annotations

import functools
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from dispatcher.domain.phones import mask_number
from tests.integration.inprocess import wait_for
from tests.integration.publish import publish_all
from tests.integration.test_twilio_crash import COUNTRIES, _number_in_daytime, _schedule_due_now
from tests.support import Broker, Daemon, make_config, query

FORMATS = ("text", "json")


def _config(folder: Path, broker: Broker, fmt: str, zone: str, now: datetime) -> Path:
    path = make_config(folder, broker.url, client_id=f"disp-{fmt}", log_format=fmt, extra=(
        '[contact]\nschedule = "now"\nsweep_seconds = 0.2\n'
        '[compliance.limits]\ncontact_on_holidays = true\n'
        # Whichever number is in daytime, its country has a profile.
        '[compliance.regions]\n' + "".join(f'{country} = "us"\n' for country in COUNTRIES)))
    path.write_text(path.read_text().replace(
        "shutdown_grace_seconds = 10", "shutdown_grace_seconds = 10\nlog_summary_seconds = 1"))
    _schedule_due_now(folder, zone, now)
    return path


def _event(number: str, zone: str, now: datetime) -> dict[str, Any]:
    return {"schema": 1, "event_id": "e-1", "type": "account.overdue",
            "occurred_at": now.isoformat(), "account_id": "A-1",
            "data": {"days_past_due": 3, "amount_due": "9.00", "currency": "USD",
                     "debtor": {"name": "Pat Doe", "timezone": zone,
                                "phones": [{"number": number, "type": "mobile",
                                            "sms_consent": True, "call_consent": True}]}}}


def _json_lines(log: str) -> list[dict[str, Any]]:
    """Every line of the log, each one JSON object (a line that is not fails the test)."""
    return [json.loads(line) for line in log.splitlines()]


def _text_fields(line: str) -> dict[str, str]:
    """The `key=value` fields after a text line's message."""
    after = " " + line.split(": ", 1)[1].split(" ", 1)[1]
    return {k: v.strip('"') for k, v in re.findall(r' (\w+)=("(?:[^"\\]|\\.)*"|[^ "]*)', after)}


def _entries(log: str, fmt: str, logger: str, message: str) -> list[dict[str, Any]]:
    """The fields of the lines of `logger` saying `message`, in either format."""
    if fmt == "json":
        return [e for e in _json_lines(log) if e["logger"] == logger and e["message"] == message]
    prefix = f" {logger}: {message} "
    return [_text_fields(line) for line in log.splitlines() if prefix in line]


def _outcome_logged(daemon: Daemon) -> bool:
    return '"message": "outcome"' in daemon.new_log() or ": outcome account=" in daemon.new_log()


def _summary_of_attempt(daemon: Daemon) -> bool:
    return '"attempts": 1' in daemon.new_log() or " attempts=1 " in daemon.new_log()


@pytest.mark.slow
@pytest.mark.timeout(300)  # real time: the first slot is one to two minutes away
async def test_the_log_says_each_decision_outcome_and_summary_with_numbers_masked(
        broker: Broker, tmp_path: Path, daemons: list[Daemon]) -> None:
    now = datetime.now(UTC)
    number, zone = _number_in_daytime(now)
    started = {}
    for fmt in FORMATS:  # side by side: each has its own session, store and log
        daemon = Daemon(_config(tmp_path / fmt, broker, fmt, zone, now))
        daemons.append(daemon)
        daemon.start()
        started[fmt] = daemon
    # A malformed event beside it: a dead letter, which waits in the work queue for a person.
    await publish_all(broker.port, [json.dumps(_event(number, zone, now)).encode(),
                                    b'{"event_id": '])
    for daemon in started.values():
        await wait_for(functools.partial(_outcome_logged, daemon), 200, "the outcome logged")
        # A summary that has seen the attempt: at most a second later.
        await wait_for(functools.partial(_summary_of_attempt, daemon), 20, "its summary")
    for fmt, daemon in started.items():
        assert daemon.terminate() == 0
        log = daemon.new_log()
        assert number not in log
        assert number[1:] not in log  # nor its digits without the plus
        [(attempt_id, outcome)] = query(daemon.config, "SELECT attempt_id, outcome FROM attempts")
        decisions = _entries(log, fmt, "dispatcher.contact", "decision")
        [sent] = [d for d in decisions if d["result"] == "sent"]
        assert sent["account"] == "A-1"
        assert sent["attempt"] == attempt_id
        assert (sent["channel"], sent["party"], sent["stage"]) == ("sms", "debtor", "any")
        assert sent["number"] == mask_number(number)
        assert sent["rule"]
        # Before it, the plan made when the event came in: deferred to the window's slot.
        assert decisions[0]["result"] == "deferred"
        assert decisions[0]["next"]
        [said] = _entries(log, fmt, "dispatcher.contact", "outcome")
        assert (said["account"], said["attempt"], said["result"]) == ("A-1", attempt_id, outcome)
        assert (said["channel"], said["number"]) == ("sms", mask_number(number))
        summaries = _entries(log, fmt, "dispatcher.summary", "summary")
        assert len(summaries) >= 2
        assert sum(int(s["attempts"]) for s in summaries) == 1
        assert sum(int(s["events"]) for s in summaries) == 2
        assert sum(int(s["dead_letters"]) for s in summaries) == 1
        # The work queue's size as the store counts it: the dead letter's item, unresolved.
        assert all(int(s["queue"]) in (0, 1) for s in summaries)
        assert int(summaries[-1]["queue"]) == 1
        outcomes = [s["outcomes"] for s in summaries if s["outcomes"] not in ({}, "-")]
        assert outcomes == ([{outcome: 1}] if fmt == "json" else [f"{outcome}:1"])
        if fmt == "json":
            lines = _json_lines(log)  # every line the processes wrote, not only the new ones
            assert {"dispatcher.app", "dispatcher.contact",
                    "dispatcher.summary"} <= {e["logger"] for e in lines}
            assert all({"time", "level", "logger", "message"} <= set(e) for e in lines)
