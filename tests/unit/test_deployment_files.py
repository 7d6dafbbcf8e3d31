"""The shipped systemd unit agrees with the command it runs."""

from __future__ import annotations

import configparser
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
