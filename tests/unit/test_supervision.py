"""The supervisor's decisions, its entry-point parsing, its config reading and its 503 answer."""

from __future__ import annotations

import json
import random
import signal
from pathlib import Path

import pytest

from dispatcher.cli.entry import plain_run
from dispatcher.config.settings import ServiceSettings, WebhookSettings
from dispatcher.service.standby import response
from dispatcher.service.supervised import EXIT_UNAVAILABLE
from dispatcher.service.supervision import MAX_DELAY, judge, restart_delay
from dispatcher.service.supervisor import Plan, read_plan


@pytest.mark.parametrize(("returncode", "stopping", "exit_code"), [
    (0, True, 0),                       # drained after SIGTERM
    (-signal.SIGTERM, True, 0),         # killed by the stop signal before it could handle it
    (-signal.SIGINT, True, 0),
    (EXIT_UNAVAILABLE, True, 0),        # asked to stop while the store was refused
    (1, True, 1),
    (-signal.SIGSEGV, True, 128 + signal.SIGSEGV),
    (2, False, 2),                      # an invalid config: restarting cannot help
    (0, False, 0),
])
def test_the_supervisor_exits_when_asked_to_stop_or_when_restarting_cannot_help(
        returncode: int, stopping: bool, exit_code: int) -> None:
    verdict = judge(returncode, stopping=stopping)
    assert verdict.exit_code == exit_code


@pytest.mark.parametrize(("returncode", "words", "store"), [
    (-signal.SIGBUS, ["SIGBUS", "unwritable", "read-only"], True),
    (-signal.SIGSEGV, ["SIGSEGV"], False),
    (-signal.SIGABRT, ["SIGABRT"], False),
    (-signal.SIGKILL, ["SIGKILL"], False),  # the kernel's out-of-memory killer
    (1, ["exited with status 1"], False),
    (EXIT_UNAVAILABLE, ["store is not writable", "/d/dispatcher.db is not writable"], True),
])
def test_any_other_end_restarts_the_daemon_and_says_why_in_one_line(
        returncode: int, words: list[str], store: bool) -> None:
    verdict = judge(returncode, stopping=False, detail="/d/dispatcher.db is not writable")
    assert verdict.exit_code is None
    assert verdict.store_unwritable is store
    line = verdict.log_line()
    assert "\n" not in line
    assert line.endswith("restarting it with backoff")
    for word in words:
        assert word in line


def test_restart_delays_grow_with_jitter_up_to_a_cap() -> None:
    rng = random.Random(7)
    delays = [restart_delay(n, rng) for n in range(12)]
    assert 0.25 <= delays[0] <= 0.5
    assert all(0 < d <= MAX_DELAY for d in delays)
    assert delays[-1] >= MAX_DELAY / 2
    assert max(delays[:3]) < min(delays[-3:])
    assert restart_delay(10**6, rng) <= MAX_DELAY  # no overflow after a very long outage


@pytest.mark.parametrize(("argv", "expected"), [
    (["run"], (True, None)),
    (["run", "--config", "a.toml"], (True, "a.toml")),
    (["--config", "a.toml", "run", "--config=b.toml"], (True, "b.toml")),
    (["run", "--help"], (False, None)),
    (["run", "--bogus"], (False, None)),
    (["check-config"], (False, None)),
    (["audit", "export"], (False, None)),
    ([], (False, None)),
])
def test_only_a_plain_run_command_is_supervised(
        argv: list[str], expected: tuple[bool, str | None]) -> None:
    assert plain_run(argv) == expected


def test_the_plan_defaults_are_the_settings_defaults(tmp_path: Path) -> None:
    path = tmp_path / "d.toml"
    path.write_text("[mqtt]\nurl = 'mqtt://x'\n")
    webhook, service = WebhookSettings(), ServiceSettings()
    assert read_plan(path) == Plan(webhook.host, webhook.port, service.log_level,
                                   service.log_format)


@pytest.mark.parametrize("text", [
    "[webhook]\nport = 'x'\n", "[webhook]\nport = 70000\n", "[webhook]\nport = true\n",
    "[service]\nlog_format = 'xml'\n", "webhook = 3\n", "not toml [",
])
def test_a_config_that_is_not_plainly_valid_is_left_to_the_daemon_to_report(
        tmp_path: Path, text: str) -> None:
    path = tmp_path / "d.toml"
    path.write_text(text)
    assert read_plan(path) is None
    assert read_plan(tmp_path / "missing.toml") is None


def test_standby_answers_503_with_the_reason() -> None:
    health = {"status": "degraded", "problems": {"daemon": "died of SIGBUS"}}
    head, _, body = response(b"GET /healthz?x=1 HTTP/1.1", health).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 503 ")
    assert json.loads(body) == health
    _, _, other = response(b"POST /twilio/status HTTP/1.1", health).partition(b"\r\n\r\n")
    assert json.loads(other)["problems"] == {"daemon": "died of SIGBUS"}
    assert response(b"HEAD /healthz HTTP/1.1", health).endswith(b"\r\n\r\n")
