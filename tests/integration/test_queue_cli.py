"""`dispatcher queue`, `dead-letters dismiss` and `invalid-numbers clear` as a person runs them:
the real command in a subprocess, against SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dispatcher.contact.replies import handle_reply
from dispatcher.ingest.classify import classify
from dispatcher.store import open_store
from tests.support import encode, make_config, overdue_event, store_of

T0 = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)
NUMBER = "+15125550100"


def dispatcher(config: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dispatcher", *argv, "--config", str(config)],
                          capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture
def config(tmp_path: Path, store_url: str) -> Path:
    """A store with an account, a reply disputing it, a free-text reply and a dead letter."""
    path = make_config(tmp_path / "cfg", "mqtt://127.0.0.1:1", store_url=store_url)

    async def seed() -> None:
        async with open_store(store_of(path)) as store:
            await store.record_batch(
                [classify(encode(overdue_event(1, "A-1")), "t", 65536),
                 classify(b"{not json", "t", 65536)], now=T0, config_version="test")
            for sid, body in (("SM1", "I dispute this, it is not my debt"),
                              ("SM2", f"who is this? my other phone is {NUMBER}")):
                await handle_reply(store, NUMBER, body, T0, config_version="test",
                                   max_payload_bytes=65536, message_id=sid)
    asyncio.run(seed())
    return path


def _items(config: Path, *argv: str) -> list[dict[str, object]]:
    done = dispatcher(config, "queue", "list", "--format", "jsonl", *argv)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_list_show_and_resolve(config: Path) -> None:
    items = _items(config)
    assert [(i["reason"], i["account_id"], i["state"]) for i in items] == [
        ("dead_letter", None, "open"), ("dispute", "A-1", "open"),
        ("unclassified_reply", "A-1", "open")]
    assert all({"id", "account_id", "reason", "created_at", "state"} <= set(i) for i in items)
    assert [i["reason"] for i in _items(config, "--reason", "dispute")] == ["dispute"]
    assert len(_items(config, "--account", "A-1")) == 2
    table = dispatcher(config, "queue", "list")
    assert table.returncode == 0, table.stderr
    assert NUMBER not in table.stdout
    assert "+15*******00" in table.stdout
    assert table.stdout.endswith("3 item(s)\n")
    dispute = next(i for i in items if i["reason"] == "dispute")
    shown = dispatcher(config, "queue", "show", str(dispute["id"]))
    assert shown.returncode == 0, shown.stderr
    assert "hold:dispute" in shown.stdout
    assert NUMBER not in shown.stdout
    done = dispatcher(config, "queue", "resolve", str(dispute["id"]), "--action", "resume",
                      "--note", "the debtor sent proof", "--by", "ana")
    assert done.returncode == 0, done.stderr
    assert [i["reason"] for i in _items(config)] == ["dead_letter", "unclassified_reply"]
    [resolved] = _items(config, "--state", "resolved")
    assert (resolved["resolved_by"], resolved["action"]) == ("ana", "resume")
    assert len(_items(config, "--state", "all")) == 3
    again = dispatcher(config, "queue", "resolve", str(dispute["id"]), "--action", "resume",
                       "--note", "twice", "--by", "ana")
    assert again.returncode == 2
    assert "already resolved" in again.stderr


def test_errors_are_clear_and_change_nothing(config: Path) -> None:
    before = _items(config)
    cases = [
        (("queue", "resolve", "999", "--action", "dismiss", "--note", "x", "--by", "a"),
         "no queue item with id 999"),
        (("queue", "resolve", str(before[1]["id"]), "--action", "explode", "--note", "x",
          "--by", "a"), "unknown action 'explode'"),
        (("queue", "resolve", str(before[1]["id"]), "--action", "hold", "--note", "x",
          "--by", "a"), "--hold REASON"),
        (("queue", "show", "999"), "no queue item with id 999"),
        (("dead-letters", "dismiss", "999", "--reason", "x", "--by", "a"),
         "no dead letter with id 999"),
        (("invalid-numbers", "clear", NUMBER, "--note", "x", "--by", "a"),
         "not marked invalid"),
    ]
    for argv, message in cases:
        done = dispatcher(config, *argv)
        assert done.returncode != 0, argv
        assert message in done.stderr, (argv, done.stderr)
    assert _items(config) == before


def test_dead_letter_dismissed_and_invalid_mark_cleared(config: Path) -> None:
    dismissed = dispatcher(config, "dead-letters", "dismiss", "1", "--reason", "test noise",
                           "--by", "di")
    assert dismissed.returncode == 0, dismissed.stderr
    listed = dispatcher(config, "dead-letters", "list")
    assert listed.stdout.endswith("0 dead letter(s)\n")
    assert "dismissed by di" in dispatcher(config, "dead-letters", "list", "--all").stdout
    assert "dead_letter" not in [i["reason"] for i in _items(config)]
    text = next(i for i in _items(config) if i["reason"] == "unclassified_reply")
    marked = dispatcher(config, "queue", "resolve", str(text["id"]), "--action",
                        "mark_invalid", "--note", "disconnected", "--by", "cy")
    assert marked.returncode == 0, marked.stderr
    assert NUMBER in dispatcher(config, "invalid-numbers", "--format", "jsonl").stdout
    cleared = dispatcher(config, "invalid-numbers", "clear", NUMBER, "--note", "it works",
                         "--by", "cy")
    assert cleared.returncode == 0, cleared.stderr
    assert dispatcher(config, "invalid-numbers").stdout.endswith("0 invalid number(s)\n")
    verified = dispatcher(config, "audit", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    exported = dispatcher(config, "audit", "export")
    kinds = [json.loads(line)["kind"] for line in exported.stdout.splitlines()]
    assert kinds.count("operator") == 2


def test_list_stops_at_its_limit_and_says_more_match(config: Path) -> None:
    table = dispatcher(config, "queue", "list", "--limit", "2")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert len(lines) == 1 + 2 + 1  # the header, two items, the notice
    assert lines[-1].startswith("TRUNCATED: the oldest 2 item(s)")
    jsonl = dispatcher(config, "queue", "list", "--format", "jsonl", "--limit", "2")
    assert jsonl.returncode == 0, jsonl.stderr
    assert [json.loads(line)["reason"] for line in jsonl.stdout.splitlines()] == [
        "dead_letter", "dispute"]
    assert "TRUNCATED" in jsonl.stderr
    assert dispatcher(config, "queue", "list", "--limit", "3").stdout.endswith("3 item(s)\n")
    assert len(_items(config, "--limit", "0")) == 3
    for bad in ("-1", "x", "٣"):
        refused = dispatcher(config, "queue", "list", "--limit", bad)
        assert refused.returncode == 2
        assert "a whole number from 0 (all)" in refused.stderr
