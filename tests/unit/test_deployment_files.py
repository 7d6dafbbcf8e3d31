"""The shipped systemd unit agrees with the command it runs."""

from __future__ import annotations

import configparser
import re
from pathlib import Path

from dispatcher.cli.main import EXIT_USAGE, build_parser

UNIT = Path(__file__).resolve().parents[2] / "config" / "dispatcher.service"


def _unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment, method-assign]  # keys are case-sensitive
    parser.read_string(UNIT.read_text())
    return parser


def test_the_unit_runs_real_subcommands() -> None:
    service = _unit()["Service"]
    parser = build_parser()
    for key in ("ExecStart", "ExecStartPre"):
        argv = service[key].split()
        assert argv[0].endswith("/bin/dispatcher")
        parser.parse_args(argv[1:])  # exits the test (SystemExit) on an unknown subcommand


def test_an_invalid_config_is_not_restarted_in_a_loop() -> None:
    service = _unit()["Service"]
    assert service["RestartPreventExitStatus"] == str(EXIT_USAGE)
    assert service["KillSignal"] == "SIGTERM"
    assert "DISPATCHER_CONFIG=" in service["Environment"]


def _readme_commands() -> list[str]:
    readme = (UNIT.parents[1] / "README.md").read_text()
    return re.findall(r"```sh\n(.+?)\n```", readme, flags=re.DOTALL)


def test_ci_runs_the_readme_test_command() -> None:
    run_daemon, run_tests = _readme_commands()[:2]
    assert run_daemon.endswith(".venv/bin/dispatcher run")
    ci = (UNIT.parents[1] / ".ci" / "run").read_text().splitlines()
    assert run_tests in ci


def test_the_test_command_installs_what_the_suite_needs() -> None:
    script = (UNIT.parents[1] / "scripts" / "test").read_text()
    for binary in ("mosquitto", "chromium"):
        assert f"command -v {binary}" in script
    assert "apt-get install" in script
    assert ".venv/bin/python -m pytest" in script
