"""Replies scripted for `simulate` reach the work queue as the daemon's do: `dispatcher
simulate` run as a person runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support import make_config

EVENT = {"schema": 1, "event_id": "e-1", "type": "account.overdue",
         "occurred_at": "2026-12-01T06:00:00Z", "account_id": "A-1",
         "data": {"days_past_due": 3, "amount_due": "125.50", "currency": "USD",
                  "debtor": {"name": "Dana Debtor", "timezone": "America/Chicago",
                             "region": "US-TX",
                             "phones": [{"number": "+15125550100", "type": "mobile",
                                         "sms_consent": True, "call_consent": True}]}}}


def test_a_scripted_dispute_holds_the_account_and_makes_an_item(tmp_path: Path) -> None:
    config = make_config(tmp_path / "cfg", "mqtt://127.0.0.1:1")
    events = tmp_path / "events.jsonl"
    events.write_text(json.dumps(EVENT) + "\n", encoding="utf-8")
    outcomes = tmp_path / "outcomes.json"
    outcomes.write_text(json.dumps({"replies": [
        {"at": "2026-12-02T16:00:00Z", "from": "+15125550100",
         "body": "No es mi deuda, la disputo"},
        {"at": "2026-12-02T16:05:00Z", "from": "+15125550100", "body": "hello??"}]}),
        encoding="utf-8")
    kept = tmp_path / "sim.db"
    done = subprocess.run(
        [sys.executable, "-m", "dispatcher", "simulate", "--config", str(config), "--events",
         str(events), "--outcomes", str(outcomes), "--start", "2026-12-01", "--days", "6",
         "--store", str(kept)],
        capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines()]
    created = [r for r in records if r["kind"] == "queue"]
    assert [(r["reason"], r["status"], r.get("paused")) for r in created] == [
        ("dispute", "created", ["hold:dispute"]),
        ("unclassified_reply", "created", [])]
    holds = [r for r in records if r["kind"] == "hold"]
    assert [(h["reason"], h["status"]) for h in holds] == [("hold:dispute", "placed")]
    held_at = holds[0]["at"]
    assert held_at == "2026-12-02T16:00:00.000Z"
    # Nothing is sent once the hold stands.
    assert not [r for r in records if r["kind"] == "attempt" and r["at"] > held_at]
    assert any(r["kind"] == "suppressed" and r["reason"] == "hold:dispute" for r in records)

    # The kept store holds the items for `queue list`, as the daemon's does.
    reader = make_config(tmp_path / "read", "mqtt://127.0.0.1:1", store_url=f"sqlite://{kept}")
    listed = subprocess.run(
        [sys.executable, "-m", "dispatcher", "queue", "list", "--format", "jsonl", "--config",
         str(reader)], capture_output=True, text=True, timeout=120, check=False)
    assert listed.returncode == 0, listed.stderr
    items = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [(i["reason"], i["account_id"]) for i in items] == [
        ("dispute", "A-1"), ("unclassified_reply", "A-1")]


def test_an_account_left_without_a_usable_number_reaches_the_queue(tmp_path: Path) -> None:
    config = make_config(tmp_path / "cfg", "mqtt://127.0.0.1:1")
    events = tmp_path / "events.jsonl"
    events.write_text(json.dumps(EVENT) + "\n", encoding="utf-8")
    outcomes = tmp_path / "outcomes.json"
    outcomes.write_text(json.dumps({"default": {"call": "invalid-number",
                                                "sms": "invalid-number"}}), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "dispatcher", "simulate", "--config", str(config), "--events",
         str(events), "--outcomes", str(outcomes), "--start", "2026-12-01", "--days", "3"],
        capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["status"] for r in records if r["kind"] == "outcome"] == ["invalid-number"]
    created = [r for r in records if r["kind"] == "queue"]
    assert [(r["reason"], r["account_id"], r["paused"]) for r in created] == [
        ("unreachable", "A-1", ["account"])]
