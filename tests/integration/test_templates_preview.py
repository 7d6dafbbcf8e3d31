"""`dispatcher templates preview`: a template rendered through the code that sends it, with an
account's values (SQLite, then PostgreSQL) or sample ones; a third party's as a third party
hears it; unknown templates, locales and accounts named."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from channels.sandbox import load_outcome_script
from dispatcher.config.settings import load_config
from dispatcher.contact.account_facts import policy_of
from dispatcher.contact.preview import SAMPLE_AMOUNT, SAMPLE_CURRENCY, SAMPLE_NAME
from dispatcher.contact.simulate import Simulation, read_events
from dispatcher.contact.templates import content_hash
from dispatcher.ingest.classify import classify
from dispatcher.store import open_store
from dispatcher.webhooks.twilio import reply_texts
from tests.support import encode, make_config, overdue_event, store_of

ROOT = Path(__file__).resolve().parents[2]
START = datetime(2026, 11, 29, 6, 0, tzinfo=UTC)


def dispatcher(*argv: str) -> subprocess.CompletedProcess[str]:
    """`dispatcher ARGV` in a process of its own."""
    return subprocess.run([sys.executable, "-m", "dispatcher", *argv], capture_output=True,
                          text=True, timeout=120, check=False)


def parts(output: str) -> dict[str, str]:
    """The preview's parts by name: `[name] when` then the text."""
    found = re.findall(r"^\[(\w+)\] [^\n]*\n(.*)$", output, re.MULTILINE)
    return dict(found)


@pytest.fixture
def simulated(tmp_path: Path, store_url: str) -> tuple[Path, list[dict[str, Any]]]:
    """The examples run by the engine against the config's own store, and its audit records."""
    config = make_config(tmp_path / "cfg", "mqtt://127.0.0.1:1", store_url=store_url)

    async def go() -> list[dict[str, Any]]:
        script = load_outcome_script(ROOT / "examples" / "outcomes.json")
        async with open_store(store_of(config)) as store:
            simulation = Simulation(load_config(config), store, script, START)
            await simulation.run(read_events(ROOT / "examples" / "events.jsonl", START), 4)
            return [r async for r in store.audit_records()]
    return config, asyncio.run(go())


def test_the_preview_is_what_was_sent(simulated: tuple[Path, list[dict[str, Any]]]) -> None:
    config, records = simulated
    attempts = [r for r in records if r["kind"] == "attempt"]
    assert {a["channel"] for a in attempts} == {"call", "sms"}
    for attempt in attempts:
        done = dispatcher("templates", "preview", "--config", str(config), "--template",
                          attempt["template"], "--locale", attempt["template_locale"],
                          "--account", attempt["account_id"], "--at", attempt["at"])
        assert done.returncode == 0, done.stderr
        shown = parts(done.stdout)
        # The audit record hashes what was sent: every part, one a line, in speaking order.
        body = (shown["text"] if attempt["channel"] == "sms"
                else f"{shown['greeting']}\n{shown['after_identity']}")
        assert content_hash(body) == attempt["template_hash"], (attempt, done.stdout)


def test_a_call_shows_its_parts_apart_and_the_greeting_keeps_the_debt_back(
        tmp_path: Path) -> None:
    config = make_config(tmp_path / "cfg", "mqtt://127.0.0.1:1")
    done = dispatcher("templates", "preview", "--config", str(config), "--template",
                      "call_script", "--locale", "en-US")
    assert done.returncode == 0, done.stderr
    assert "values: sample values" in done.stdout.splitlines()[0]
    shown = parts(done.stdout)
    assert list(shown) == ["greeting", "after_identity", "voicemail"]
    assert SAMPLE_NAME in shown["greeting"]
    assert "press 1" in shown["greeting"]
    for part in ("greeting", "voicemail"):
        assert SAMPLE_AMOUNT not in shown[part]
    assert f"{SAMPLE_AMOUNT} {SAMPLE_CURRENCY}" in shown["after_identity"]
    assert "{" not in done.stdout


def test_a_third_party_preview_is_what_a_third_party_hears(
        simulated: tuple[Path, list[dict[str, Any]]]) -> None:
    config, _ = simulated
    for account in (("--account", "EX-US-1002"), ()):
        done = dispatcher("templates", "preview", "--config", str(config), "--template",
                          "location_call", "--locale", "en", *account)
        assert done.returncode == 0, done.stderr
        assert list(parts(done.stdout)) == ["location"]
        # Nothing about the debt anywhere in the output: not the amount, currency nor days.
        for secret in ("860.00", "USD", SAMPLE_AMOUNT, "past due", "days"):
            assert secret not in done.stdout
        assert "none about the debt" in done.stdout


@pytest.mark.parametrize(("argv", "message"), [
    (("--template", "nope", "--locale", "en"), "no template 'nope' in "),
    (("--template", "call_script", "--locale", "fr"),
     "template 'call_script' has no text for locale 'fr' (it has: en, zh-CN)"),
    (("--template", "call_script", "--locale", "en", "--account", "NOPE"),
     "no account 'NOPE' in "),
])
def test_unknown_names_are_clear_errors(tmp_path: Path, argv: tuple[str, ...],
                                        message: str) -> None:
    config = make_config(tmp_path / "cfg", "mqtt://127.0.0.1:1")
    # A store must exist for --account to be looked up in.
    asyncio.run(_create(config))
    done = dispatcher("templates", "preview", "--config", str(config), *argv)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.startswith(f"dispatcher: {message}"), done.stderr


async def _create(config: Path) -> None:
    async with open_store(store_of(config)):
        pass


def test_a_keyword_reply_is_rendered_as_the_webhook_answers(tmp_path: Path) -> None:
    config = make_config(tmp_path / "cfg", "mqtt://127.0.0.1:1")
    done = dispatcher("templates", "preview", "--config", str(config), "--template", "help",
                      "--locale", "en", "--at", (START + timedelta(days=1)).isoformat())
    assert done.returncode == 0, done.stderr
    (text,) = parts(done.stdout).values()
    assert text == reply_texts(policy_of(load_config(config))).help


def test_a_name_with_control_characters_is_shown_not_obeyed(tmp_path: Path) -> None:
    config = make_config(tmp_path / "cfg", "mqtt://127.0.0.1:1")
    event = overdue_event(1, "A-ESC")
    event["data"]["debtor"]["name"] = "Jo\x1b[2J\u202eDoe"

    async def seed() -> None:
        async with open_store(store_of(config)) as store:
            await store.record_batch([classify(encode(event), "collections/events/x", 65536)],
                                     now=START, config_version="t")
    asyncio.run(seed())
    done = dispatcher("templates", "preview", "--config", str(config), "--template",
                      "call_script", "--locale", "en", "--account", "A-ESC",
                      "--at", "2026-12-02T15:00:00Z")
    assert done.returncode == 0, done.stderr
    assert "\x1b" not in done.stdout
    assert "\u202e" not in done.stdout
    assert "calling for Jo\\x1b[2J\\u202eDoe." in parts(done.stdout)["greeting"]
