"""Only `run` talks to the provider: every other command works without its credentials.

A compliance reviewer gets the config and a copy of the store, not the Twilio account: with
`provider = "twilio"` and no TWILIO_* variables, each read-only command still runs (exit 0, real
output), as a subprocess against a store written by the real daemon; `run` alone refuses, with
one line naming what is missing.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.publish import publish_all
from tests.support import (
    ROOT,
    Broker,
    Daemon,
    encode,
    make_config,
    overdue_event,
    query,
    stored_events,
    wait_until,
)

TWILIO = ('[channels]\nprovider = "twilio"\n[twilio]\nfrom_number = "+15005550006"\n'
          'api_base = "http://127.0.0.1:9"\n')


def without_twilio() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("TWILIO_")}


def dispatcher(config: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dispatcher", *argv, "--config", str(config)],
                          capture_output=True, text=True, cwd=ROOT, env=without_twilio(),
                          timeout=120, check=False)


@pytest.fixture(scope="module")
def reviewed(tmp_path_factory: pytest.TempPathFactory, module_store_url: str) -> Path:
    """A store written by the daemon (sandbox), then the config switched to Twilio."""
    folder = tmp_path_factory.mktemp("reviewed")
    broker = Broker(folder / "broker")
    broker.start()
    daemon: Daemon | None = None
    try:
        config = make_config(folder / "cfg", broker.url, store_url=module_store_url)
        daemon = Daemon(config, env=without_twilio())
        daemon.start()
        asyncio.run(publish_all(broker.port, [encode(overdue_event(n, f"A-{n}"))
                                              for n in range(3)] + [b"not json"]))
        wait_until(lambda: stored_events(config) == 3, 20, "events stored")
        wait_until(lambda: query(config, "SELECT COUNT(*) FROM dead_letters")[0][0] == 1, 20,
                   "dead letter stored")
        assert daemon.terminate() == 0
    finally:
        if daemon is not None:
            daemon.ensure_stopped()
        broker.stop()
    config.write_text(config.read_text() + TWILIO)
    events = [overdue_event(n, f"S-{n}", occurred_at="2026-12-01T09:00:00-05:00")
              for n in range(2)]
    (config.parent / "events.jsonl").write_text("\n".join(json.dumps(e) for e in events))
    return config


def test_run_without_the_credentials_refuses_in_one_line_naming_them(reviewed: Path) -> None:
    result = dispatcher(reviewed, "run")
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert "TWILIO_ACCOUNT_SID" in line
    assert "TWILIO_AUTH_TOKEN" in line


def test_check_config_passes_and_says_what_run_will_need(reviewed: Path) -> None:
    result = dispatcher(reviewed, "check-config")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("OK:")
    assert "TWILIO_ACCOUNT_SID" in result.stdout


def test_audit_export_and_verify(reviewed: Path) -> None:
    exported = dispatcher(reviewed, "audit", "export")
    assert exported.returncode == 0, exported.stderr
    events = [json.loads(line) for line in exported.stdout.splitlines()
              if json.loads(line)["kind"] == "event"]
    assert sorted(e["event_id"] for e in events) == ["e-000000", "e-000001", "e-000002"]
    verified = dispatcher(reviewed, "audit", "verify")
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.startswith("OK: ")
    pruned = dispatcher(reviewed, "audit", "prune", "--dry-run")
    assert pruned.returncode == 0, pruned.stderr
    keygen = dispatcher(reviewed, "audit", "keygen")
    assert keygen.returncode == 0, keygen.stderr
    assert "checkpoint_public_keys" in keygen.stdout


def test_report_explain_and_invalid_numbers(reviewed: Path) -> None:
    out = reviewed.parent / "report.html"
    report = dispatcher(reviewed, "report", "--since", "2000-01-01", "--until", "2100-01-01",
                        "--out", str(out))
    assert report.returncode == 0, report.stderr
    assert out.read_text().lstrip().lower().startswith("<!doctype html")
    explained = dispatcher(reviewed, "explain", "--account", "A-1")
    assert explained.returncode == 0, explained.stderr
    assert "A-1" in explained.stdout
    invalid = dispatcher(reviewed, "invalid-numbers")
    assert invalid.returncode == 0, invalid.stderr


def test_dead_letters_and_simulate(reviewed: Path) -> None:
    listed = dispatcher(reviewed, "dead-letters", "list")
    assert listed.returncode == 0, listed.stderr
    assert "1 dead letter(s)" in listed.stdout
    # Replay re-reads the payload into the store; it never calls the provider.
    replayed = dispatcher(reviewed, "dead-letters", "replay")
    assert replayed.returncode == 1, replayed.stderr  # "not json" is still not JSON
    assert "still rejected: not_json" in replayed.stdout
    simulated = dispatcher(reviewed, "simulate", "--events",
                           str(reviewed.parent / "events.jsonl"),
                           "--start", "2026-12-01T12:00:00Z", "--days", "1")
    assert simulated.returncode == 0, simulated.stderr
    assert '"kind":"attempt"' in simulated.stdout.replace(" ", "")
