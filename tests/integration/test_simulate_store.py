"""`simulate --store PATH`: the simulation's store kept as a SQLite file that `report`, `agenda`,
`explain` and `audit verify` read through `[store] url`; never written over by mistake."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

from dispatcher.store.sqlite.migrations import MIGRATIONS
from tests.support import make_config

ROOT = Path(__file__).resolve().parents[2]
SIMULATE = ("simulate", "--events", str(ROOT / "examples" / "events.jsonl"), "--outcomes",
            str(ROOT / "examples" / "outcomes.json"), "--start", "2026-11-29T06:00:00Z",
            "--days", "4")


def dispatcher(*argv: str) -> subprocess.CompletedProcess[str]:
    """`dispatcher ARGV` in a process of its own."""
    return subprocess.run([sys.executable, "-m", "dispatcher", *argv], capture_output=True,
                          text=True, timeout=120, check=False)


def made_indexes() -> set[str]:
    """The names of the indexes the SQLite store's migrations create."""
    return {statement.split()[2] for step in MIGRATIONS for statement in step
            if statement.startswith("CREATE INDEX")}


def test_the_kept_store_holds_what_was_printed_and_the_other_commands_read_it(
        tmp_path: Path) -> None:
    config = make_config(tmp_path / "cfg", "mqtt://127.0.0.1:1")
    kept = tmp_path / "sim.db"
    plain = dispatcher(*SIMULATE, "--config", str(config))
    done = dispatcher(*SIMULATE, "--config", str(config), "--store", str(kept))
    assert done.returncode == 0, done.stderr
    # Keeping the store changes nothing of the run.
    assert done.stdout == plain.stdout
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("sim")] == ["sim.db"]
    with sqlite3.connect(kept) as db:
        indexes = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='index'")}
        # The indexes the simulation dropped to write faster are back: every one a store has.
        assert made_indexes() <= indexes
        assert db.execute("SELECT COUNT(*) FROM audit").fetchone()[0] == len(
            done.stdout.splitlines())
    reader = make_config(tmp_path / "reader", "mqtt://127.0.0.1:1",
                         store_url=f"sqlite://{kept}")
    verify = dispatcher("audit", "verify", "--config", str(reader))
    assert verify.returncode == 0, verify.stdout + verify.stderr
    agenda = dispatcher("agenda", "--config", str(reader), "--from", "2026-12-03T06:00:00Z",
                        "--to", "2026-12-10T06:00:00Z")
    assert agenda.returncode == 0, agenda.stderr
    assert "EX-US-1001" in agenda.stdout
    explain = dispatcher("explain", "--config", str(reader), "--account", "EX-US-1001",
                         "--at", "2026-12-03T06:00:00Z")
    assert explain.returncode == 0, explain.stderr
    report = dispatcher("report", "--config", str(reader), "--since", "2026-11-29",
                        "--until", "2026-12-04", "--out", str(tmp_path / "report.html"))
    assert report.returncode == 0, report.stderr
    assert (tmp_path / "report.html").stat().st_size > 0


def test_a_file_is_replaced_only_with_force(tmp_path: Path) -> None:
    config = make_config(tmp_path / "cfg", "mqtt://127.0.0.1:1")
    kept = tmp_path / "sim.db"
    kept.write_bytes(b"precious")
    stale = tmp_path / "sim.db-wal"
    stale.write_bytes(b"an old write-ahead log")
    refused = dispatcher(*SIMULATE, "--config", str(config), "--store", str(kept))
    assert refused.returncode == 2
    assert refused.stdout == ""
    assert refused.stderr == (f"dispatcher: --store: {kept} exists and is not empty; give "
                              f"--force to replace it\n")
    assert kept.read_bytes() == b"precious"
    forced = dispatcher(*SIMULATE, "--config", str(config), "--store", str(kept), "--force")
    assert forced.returncode == 0, forced.stderr
    assert not stale.exists()
    with sqlite3.connect(kept) as db:
        assert db.execute("SELECT COUNT(*) FROM audit").fetchone()[0] > 0


def test_an_empty_file_is_used_and_bad_paths_are_named(tmp_path: Path) -> None:
    config = make_config(tmp_path / "cfg", "mqtt://127.0.0.1:1")
    empty = tmp_path / "empty.db"
    empty.touch()
    assert dispatcher(*SIMULATE, "--config", str(config), "--store", str(empty)).returncode == 0
    assert empty.stat().st_size > 0
    for argv, message in (
            (("--store", str(tmp_path)), "is a folder"),
            (("--store", str(tmp_path / "nowhere" / "s.db")), "no folder"),
            (("--force",), "--force goes with --store")):
        done = dispatcher(*SIMULATE, "--config", str(config), *argv)
        assert (done.returncode, done.stdout) == (2, ""), done.stderr
        assert message in done.stderr
