"""The ingest benchmark runs end to end (its numbers are read by people, never asserted)."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.postgres import ADMIN_URL, store_rows
from tests.support import ROOT


def test_ingest_benchmark_runs_and_prints_both_rates() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench.ingest", "--events", "600", "--accounts", "60",
         "--rounds", "2"],
        capture_output=True, text=True, cwd=ROOT, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    for line in ("bare aiomqtt, manual ack:", "bare aiomqtt v5, manual ack:",
                 "bare v5, drained, manual ack:", "dispatcher end-to-end:",
                 "ratio dispatcher / bare aiomqtt:", "ratio dispatcher / bare aiomqtt v5:",
                 "ratio dispatcher / bare v5 drained:", "validate+commit alone, no MQTT:"):
        assert line in result.stdout


def test_dispatch_benchmark_runs_and_prints_rate_and_limit() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench.dispatch", "--accounts", "60", "--rate", "50"],
        capture_output=True, text=True, cwd=ROOT, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    for line in ("accounts (texts sent):        60", "configured limit:",
                 "sustained dispatch rate:", "most in any one second:"):
        assert line in result.stdout


def test_dispatch_benchmark_measures_a_fleet_sharing_one_limit() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench.dispatch", "--daemons", "2", "--accounts", "40", "--rate",
         "100"], capture_output=True, text=True, cwd=ROOT, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    assert "limit 100 SMS/s (shared by the PostgreSQL fleet)" in result.stdout
    rows = {line.split("  ")[0]: line.split() for line in result.stdout.splitlines()
            if line.startswith(("sqlite, 1 daemon ", "postgresql, 2 daemon(s) "))}
    assert set(rows) == {"sqlite, 1 daemon", "postgresql, 2 daemon(s)"}, result.stdout
    for cells in rows.values():
        assert int(cells[-1].replace(",", "")) >= 40  # every account's attempt sent


def test_simulate_benchmark_runs_and_prints_cpu_per_attempt() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench.simulate", "--population", "silent", "--accounts", "20",
         "--days", "2"],
        capture_output=True, text=True, cwd=ROOT, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    for line in ("accounts x days:        20 x 2", "CPU time:", "µs per attempt)",
                 "audit records:", "decisions:"):
        assert line in result.stdout


def test_simulate_benchmark_compares_with_an_earlier_engine_in_turns() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench.simulate", "--baseline", "HEAD", "--rounds", "2",
         "--accounts", "20", "--days", "2"],
        capture_output=True, text=True, cwd=ROOT, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    rows = [re.fullmatch(r"round (\d): +(.+?) +(mixed|silent) +(\d+\.\d) s", line)
            for line in result.stdout.splitlines() if line.startswith("round ")]
    # Two rounds, each the baseline's mixed month, then this tree's mixed and silent ones.
    assert [row.groups()[:3] if row else None for row in rows] == [
        (n, *run) for n in ("1", "2")
        for run in (("HEAD", "mixed"), ("this tree", "mixed"), ("this tree", "silent"))]
    for line in ("mixed, this tree / HEAD:", "silent goal on this machine:",
                 "silent, this tree / the goal:", "the goal is for 10,000 accounts x 30 days)"):
        assert line in result.stdout


def test_simulate_benchmark_refuses_a_revision_git_does_not_know() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench.simulate", "--baseline", "no-such-revision",
         "--accounts", "20", "--days", "2"],
        capture_output=True, text=True, cwd=ROOT, timeout=120, check=False)
    assert result.returncode == 1
    assert "cannot read revision 'no-such-revision' from git" in result.stderr


def test_simulate_benchmark_refuses_a_baseline_that_would_run_this_checkout() -> None:
    # Git's empty tree: nothing of its own to import, so `python -m` from it would take this
    # checkout's installed packages and measure this engine twice.
    empty_tree = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
    result = subprocess.run(
        [sys.executable, "-m", "bench.simulate", "--baseline", empty_tree, "--accounts", "20",
         "--days", "2"],
        capture_output=True, text=True, cwd=ROOT, timeout=120, check=False)
    assert result.returncode == 1
    assert f"the baseline would not be {empty_tree}" in result.stderr


def test_report_benchmark_runs_and_finds_the_engine_compliant() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench.report", "--accounts", "40", "--days", "10"],
        capture_output=True, text=True, cwd=ROOT, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert "accounts x days:  40 x 10" in result.stdout
    # The report's independent re-check agrees with the engine on a real run.
    assert " 0 violation(s), hash chain intact" in result.stdout
    assert "audit verify:" in result.stdout


def test_startup_benchmark_runs_every_command_and_prints_the_baselines() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench.startup", "--repeat", "1"],
        capture_output=True, text=True, cwd=ROOT, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    for line in ("python -c pass:", 'python -c "import dispatcher":', "dispatcher --version:",
                 "dispatcher --help:", "dispatcher check-config:", "dispatcher explain:",
                 "dispatcher invalid-numbers:", "dispatcher dead-letters list:",
                 "dispatcher audit export:", "dispatcher audit verify:", "dispatcher report:",
                 "dispatcher simulate (1 event, 1 day):", "slowest command (median):"):
        assert line in result.stdout


def test_logs_benchmark_runs_every_case_against_its_baseline() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench.logs", "--lines", "200", "--rounds", "1"],
        capture_output=True, text=True, cwd=ROOT, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # every line went to /dev/null
    for case in ("baseline: plan_to_json", "decision, info off", "decision, text",
                 "decision, json", "outcome, info off", "outcome, text", "outcome, json"):
        assert case in result.stdout


def test_agenda_benchmark_runs_on_both_stores_against_its_baseline() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench.agenda", "--accounts", "300", "--repeat", "1",
         "--postgres"], capture_output=True, text=True, cwd=ROOT, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("explain one account (baseline):") == 2
    # 300 plans spread over a week: some in the first 24 hours.
    assert result.stdout.count("agenda, 24 h, limit 1000 (0 rows)") == 0
    assert "(300 open accounts with a planned attempt)" in result.stdout


def test_fleet_benchmark_runs_sqlite_and_postgresql_side_by_side() -> None:
    before = _bench_databases()
    result = subprocess.run(
        [sys.executable, "-m", "bench.fleet", "--events", "300", "--accounts", "30",
         "--dispatch-accounts", "40", "--rate", "200", "--audit-seconds", "0.1",
         "--audit-rounds", "1", "--size-accounts", "100", "--memory-accounts", "50",
         "--daemons", "1,2"],
        capture_output=True, text=True, cwd=ROOT, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    for line in ("limit 200 SMS/s (shared by the PostgreSQL fleet)",
                 "sqlite, 1 daemon ", "postgresql, 1 daemon(s) ", "postgresql, 2 daemon(s) ",
                 "postgresql, 3 writer(s), append_audit (chain lock)",
                 "postgresql, 3 writer(s), plain insert (no shared lock)",
                 "store on disk per 100,000 accounts", "  sqlite ", "  postgresql ",
                 "daemon memory, MiB", "  sqlite, empty ", "  sqlite, 50 ",
                 "  postgresql, difference "):
        assert line in result.stdout
    # The database the run created is gone.
    assert _bench_databases() == before


def _bench_databases() -> set[str]:
    rows = store_rows(ADMIN_URL, "SELECT datname FROM pg_database WHERE datname LIKE ?",
                      ("fleet_bench_%",))
    return {str(row[0]) for row in rows}
