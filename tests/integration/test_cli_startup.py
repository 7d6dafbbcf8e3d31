"""The command line starts light: parsing, `--help` and `--version` import none of the heavy
libraries; a command imports them only once it runs."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.support import ROOT

HEAVY = frozenset({"twilio", "aiohttp", "apscheduler", "cryptography", "holidays",
                   "phonenumbers", "aiomqtt", "paho", "prometheus_client", "pydantic",
                   "asyncpg"})

# One command line of every subcommand, as parsed (not run).
EVERY_COMMAND = [
    ["run"], ["check-config"], ["audit", "export", "--since", "2026-12-01"],
    ["audit", "verify", "--head", "{}"], ["audit", "prune", "--dry-run"], ["audit", "keygen"],
    ["dead-letters", "list"], ["dead-letters", "replay", "1"],
    ["simulate", "--events", "e.jsonl", "--start", "2026-12-01", "--days", "1"],
    ["explain", "--account", "A-1", "--at", "2026-12-01T00:00:00Z"], ["invalid-numbers"],
    ["report", "--since", "2026-12-01", "--until", "2026-12-08", "--out", "r.html"],
    ["store", "migrate"], ["store", "copy", "--from", "x.db", "--to", "postgresql://h/d"],
    ["queue", "list", "--state", "all"], ["queue", "show", "1"],
    ["queue", "resolve", "1", "--action", "dismiss", "--note", "n", "--by", "b"],
    ["dead-letters", "dismiss", "1", "--reason", "r", "--by", "b"],
    ["invalid-numbers", "clear", "+15125550100", "--note", "n", "--by", "b"],
]


def heavy_in(modules: list[str]) -> set[str]:
    """The heavy libraries among imported module names."""
    return {name.split(".")[0] for name in modules} & HEAVY


def imported_by_command(*argv: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """`python -X importtime -m dispatcher ARGV`, and every module it imported."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "dispatcher", *argv],
                          capture_output=True, text=True, cwd=ROOT, timeout=120, check=False)
    modules = [line.rpartition("|")[2].strip() for line in done.stderr.splitlines()
               if line.startswith("import time:")]
    return done, modules


def test_parsing_every_command_imports_nothing_heavy() -> None:
    script = ("import json, sys\n"
              "import dispatcher.cli.entry\n"
              "from dispatcher.cli.main import build_parser\n"
              f"for argv in {EVERY_COMMAND!r}:\n"
              "    build_parser().parse_args(argv)\n"
              "print(json.dumps(sorted(sys.modules)))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=ROOT, timeout=120, check=True)
    modules = json.loads(done.stdout)
    assert "dispatcher.cli.main" in modules
    assert heavy_in(modules) == set()


@pytest.mark.parametrize("argv", [["--version"], ["--help"], ["audit", "verify", "--help"],
                                  ["report", "--help"], ["simulate", "--help"]])
def test_help_and_version_import_nothing_heavy(argv: list[str]) -> None:
    done, modules = imported_by_command(*argv)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("dispatcher 0.1.0" if argv == ["--version"] else "usage: ")
    assert "dispatcher.cli.main" in modules
    assert heavy_in(modules) == set()


def test_a_command_that_runs_imports_what_it_needs() -> None:
    # The check above would see them: a command that loads the config imports pydantic.
    done, modules = imported_by_command("check-config", "--config",
                                        str(ROOT / "config" / "dispatcher.toml"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("OK: ")
    assert "pydantic" in heavy_in(modules)
