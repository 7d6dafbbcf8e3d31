"""Startup benchmark: how long each `dispatcher` command a person types takes, start to exit.

Run: `.venv/bin/python -m bench.startup [--repeat 7]`. In a temporary folder it copies the
shipped config folder and stores a few events and a dead letter, then runs, from that folder
(the config is found as ./config/dispatcher.toml), `--version`, `--help`, a subcommand's
`--help`, the read-only commands and `simulate` over one event and one day: one round unmeasured,
then `--repeat` rounds of each in turn. It prints the median and the slowest wall time of each,
next to `python -c pass` and `python -c "import dispatcher"` measured in the same rounds.

Compiled bytecode is cached (in the temporary folder) as in an ordinary install, also where
PYTHONDONTWRITEBYTECODE is set; `--no-bytecode-cache` keeps that variable, and every run then
compiles the project's modules again.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import dispatcher
from bench.processes import timed
from dispatcher.config.settings import load_config
from dispatcher.ingest.classify import classify
from dispatcher.store import open_store
from tests.support import ROOT, encode, overdue_event

ACCOUNT = "A-0001"


def command() -> list[str]:
    """The `dispatcher` console script beside this Python, else `python -m dispatcher`."""
    script = Path(sys.executable).with_name("dispatcher")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "dispatcher"]


def cases(folder: Path) -> dict[str, list[str]]:
    """Each measured command line, by the label it is printed with."""
    events = folder / "simulate.jsonl"
    events.write_text(json.dumps(overdue_event(1, ACCOUNT)) + "\n")
    run = command()
    return {
        "python -c pass": [sys.executable, "-c", "pass"],
        'python -c "import dispatcher"': [sys.executable, "-c", "import dispatcher"],
        "dispatcher --version": [*run, "--version"],
        "dispatcher --help": [*run, "--help"],
        "dispatcher audit export --help": [*run, "audit", "export", "--help"],
        "dispatcher check-config": [*run, "check-config"],
        "dispatcher explain": [*run, "explain", "--account", ACCOUNT,
                               "--at", "2026-12-02T00:00:00Z"],
        "dispatcher invalid-numbers": [*run, "invalid-numbers"],
        "dispatcher dead-letters list": [*run, "dead-letters", "list"],
        "dispatcher audit export": [*run, "audit", "export"],
        "dispatcher audit verify": [*run, "audit", "verify"],
        "dispatcher report": [*run, "report", "--since", "2026-12-01", "--until", "2026-12-08",
                              "--out", str(folder / "report.html")],
        "dispatcher simulate (1 event, 1 day)": [*run, "simulate", "--events", str(events),
                                                 "--start", "2026-12-01", "--days", "1"],
    }


async def fill(config_path: Path) -> None:
    """A few events for three accounts and one dead letter, in the config's store."""
    config = load_config(config_path, {})
    payloads = [encode(overdue_event(n, f"A-{n % 3:04d}")) for n in range(6)] + [b"not json"]
    async with open_store(config.store_path) as store:
        items = [classify(p, "collections/events/bench", 65536) for p in payloads]
        await store.record_batch(items, now=datetime.now(UTC), config_version=config.version)


def main() -> None:
    """Prepare the folder, run the rounds, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=7, help="rounds of every command")
    parser.add_argument("--no-bytecode-cache", action="store_true",
                        help="keep PYTHONDONTWRITEBYTECODE from the environment")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        # The config is found in the working directory; the code is this checkout's (or
        # PYTHONPATH's).
        env = {k: v for k, v in os.environ.items() if k != "DISPATCHER_CONFIG"}
        if not args.no_bytecode_cache:
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            env["PYTHONPYCACHEPREFIX"] = str(folder / "pycache")
        cached = "PYTHONDONTWRITEBYTECODE" not in env
        shutil.copytree(ROOT / "config", folder / "config")
        asyncio.run(fill(folder / "config" / "dispatcher.toml"))
        measured = cases(folder)
        wall: dict[str, list[float]] = {label: [] for label in measured}
        cpu: dict[str, list[float]] = {label: [] for label in measured}
        for round_number in range(args.repeat + 1):
            for label, argv in measured.items():
                elapsed, used = timed(argv, folder, env)
                if round_number:  # the first round fills the caches
                    wall[label].append(elapsed)
                    cpu[label].append(used)
    print(f"code:     {Path(dispatcher.__file__).parent}")
    print(f"bytecode: {'cached' if cached else 'compiled on every run'}")
    print(f"runs:     {args.repeat} of each, in turn; ms from start to exit (CPU: user + system,"
          " steadier than wall time on a busy machine)")
    print(f"{'':40} {'median':>7} {'max':>7} {'CPU median':>11}")
    for label, values in wall.items():
        print(f"{label + ':':40} {statistics.median(values) * 1000:7.0f} "
              f"{max(values) * 1000:7.0f} {statistics.median(cpu[label]) * 1000:11.0f}")
    base = statistics.median(wall["python -c pass"])
    worst = max((label for label in wall if label.startswith("dispatcher ")),
                key=lambda label: statistics.median(wall[label]))
    print(f"slowest command (median): {worst.removeprefix('dispatcher ')}, "
          f"{statistics.median(wall[worst]) * 1000:.0f} ms "
          f"({(statistics.median(wall[worst]) - base) * 1000:.0f} ms over python -c pass)")


if __name__ == "__main__":
    main()
