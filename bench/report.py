"""Report benchmark: `dispatcher report` and `audit verify` over a month of the real engine.

Run: `.venv/bin/python -m bench.report [--accounts 3000] [--days 30]`. It fills a store with the
engine on a virtual clock (the accounts of bench/simulate.py; calls: no answer, voicemail, then
a conversation; texts delivered), then times the two commands as an operator runs them, and
prints the records, the attempts and the violations the report's independent re-check found.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.simulate import START, make_events
from channels.sandbox import load_outcome_script
from dispatcher.config.settings import load_config
from dispatcher.contact.simulate import Simulation, read_events
from dispatcher.store import open_store
from tests.support import ROOT, make_config

OUTCOMES = {"default": {"call": ["no-answer", "machine", "completed"], "sms": "delivered"}}


async def fill(config_path: Path, folder: Path, accounts: int, days: int) -> None:
    """Run the engine over `days` into the config's store."""
    (folder / "events.jsonl").write_text("\n".join(json.dumps(e) for e in make_events(accounts)))
    (folder / "outcomes.json").write_text(json.dumps(OUTCOMES))
    config = load_config(config_path, {})
    async with open_store(config.store_path) as store:
        await Simulation(config, store, load_outcome_script(folder / "outcomes.json"),
                         START).run(read_events(folder / "events.jsonl", START), days)


def timed(*args: str) -> tuple[float, str]:
    """Seconds and output of one `dispatcher` command."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "dispatcher", *args], capture_output=True,
                          text=True, cwd=ROOT, check=True)
    return time.perf_counter() - started, done.stdout.strip()


def main() -> None:
    """Fill, then time report and verify."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--accounts", type=int, default=3000)
    parser.add_argument("--days", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        config = make_config(folder / "cfg", "mqtt://127.0.0.1:1")
        asyncio.run(fill(config, folder, args.accounts, args.days))
        until = (START.date().toordinal() + args.days)
        since_text = START.date().isoformat()
        until_text = START.date().fromordinal(until).isoformat()
        out = folder / "report.html"
        report_s, report = timed("report", "--config", str(config), "--since", since_text,
                                 "--until", until_text, "--out", str(out))
        verify_s, verify = timed("audit", "verify", "--config", str(config))
        print(f"accounts x days:  {args.accounts} x {args.days}")
        print(f"report:           {report_s:6.2f} s  ({report.split(': ', 1)[1]}; "
              f"{out.stat().st_size:,} bytes)")
        print(f"audit verify:     {verify_s:6.2f} s  ({verify.split(' (')[0]})")


if __name__ == "__main__":
    main()
