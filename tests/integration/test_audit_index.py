"""The index columns stored beside each audit record (`at`, `kind`, `account_id`) are edited in
the real SQLite file: verify names every disagreement, export and the report still find the
record by its own content, and pruning refuses to run on such a log.

SQLite only: the edits are made with SQLite's JSON functions.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from dispatcher.audit.keys import KEY_VARIABLE
from dispatcher.audit.retention import run_retention
from dispatcher.config.settings import LoadedConfig
from dispatcher.store import open_store
from tests.integration import test_retention
from tests.integration.test_retention import NOW, audit_rows, history, run_cli, scalar, tamper

pytestmark = pytest.mark.sqlite

key = test_retention.key
config = test_retention.config


@pytest.fixture
def store_at(tmp_path: Path) -> Path:
    """SQLite only: the edits here are made with SQLite's JSON functions."""
    return tmp_path / "s.db"


async def _seq_of(config: LoadedConfig, kind: str, account: str, year: str) -> int:
    return next(int(r["seq"]) for r in audit_rows(config)
                if r["kind"] == kind and r.get("account_id") == account
                and r["at"].startswith(year))


@pytest.fixture
async def recent_b(config: LoadedConfig) -> int:
    """The history of test_retention; the seq of B's 2025 event (B is active, not prunable)."""
    async with open_store(config.store_location) as store:
        await history(store)
    return await _seq_of(config, "event", "B", "2025")


async def test_verify_names_every_index_column_that_disagrees(config: LoadedConfig,
                                                              recent_b: int) -> None:
    assert (await run_cli(config, "audit", "verify"))[0] == 0
    tamper(config, "UPDATE audit SET at = '2019-01-01T00:00:00.000Z' WHERE seq = ?", (recent_b,))
    tamper(config, "UPDATE audit SET account_id = 'Z' WHERE seq = ?", (recent_b - 1,))
    code, text = await run_cli(config, "audit", "verify")
    assert code == 1, text
    recorded_at = next(r["at"] for r in audit_rows(config) if r["seq"] == recent_b)
    assert (f"seq {recent_b}: index column at is '2019-01-01T00:00:00.000Z' but the record "
            f"says '{recorded_at}'") in text
    recorded_account = next(r.get("account_id") for r in audit_rows(config)
                            if r["seq"] == recent_b - 1)
    assert (f"seq {recent_b - 1}: index column account_id is 'Z' but the record says "
            f"{recorded_account!r}") in text
    # The chain itself is intact: only the index beside it was edited.
    assert "2 index disagreement(s)" in text


async def test_export_finds_the_record_whatever_its_index_says(config: LoadedConfig,
                                                               recent_b: int) -> None:
    def seqs(text: str) -> list[int]:
        return [json.loads(line)["seq"] for line in text.splitlines()]

    by_account = seqs((await run_cli(config, "audit", "export", "--account", "B"))[1])
    in_2025 = seqs((await run_cli(config, "audit", "export", "--since", "2025-01-01",
                                  "--until", "2026-01-01"))[1])
    assert recent_b in by_account
    assert in_2025 == [recent_b]
    tamper(config, "UPDATE audit SET at = '2019-01-01T00:00:00.000Z', account_id = 'Z' "
                   "WHERE seq = ?", (recent_b,))
    code, text = await run_cli(config, "audit", "export", "--account", "B")
    assert code == 0
    assert seqs(text) == by_account
    code, text = await run_cli(config, "audit", "export", "--since", "2025-01-01",
                               "--until", "2026-01-01")
    assert code == 0
    assert seqs(text) == in_2025
    # Nor does an edited index pull a record into a window or an account it is not in.
    assert seqs((await run_cli(config, "audit", "export", "--account", "Z"))[1]) == []
    assert recent_b not in seqs((await run_cli(config, "audit", "export", "--until",
                                               "2020-01-01"))[1])


async def test_the_report_does_not_hide_a_record_moved_out_of_its_window(
        config: LoadedConfig, recent_b: int, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    window = ("report", "--since", "2025-01-01", "--until", "2026-01-01", "--out", str(out))
    code, before = await run_cli(config, *window)
    assert code == 0, before
    assert before.startswith(f"wrote {out}: 1 records")
    tamper(config, "UPDATE audit SET at = '2031-01-01T00:00:00.000Z' WHERE seq = ?", (recent_b,))
    code, after = await run_cli(config, *window)
    assert code == 0, after
    assert after.startswith(f"wrote {out}: 1 records")
    assert after.rstrip().endswith("hash chain BROKEN")
    html = out.read_text()
    assert f"BROKEN at seq {recent_b}: 1 index disagreement(s)" in html
    assert f"seq {recent_b}: index column at is" in html


@pytest.mark.parametrize("column", ["at", "account_id", "kind"])
async def test_prune_refuses_a_log_whose_index_disagrees(
        config: LoadedConfig, key: str, recent_b: int, column: str,
        caplog: pytest.LogCaptureFixture) -> None:
    value = {"at": "2019-01-01T00:00:00.000Z", "account_id": "Z", "kind": "config"}[column]
    # Back-dated or re-assigned, B's 2025 record would make B look inactive since 2019.
    tamper(config, f"UPDATE audit SET {column} = ? WHERE seq = ?", (value, recent_b))
    before = audit_rows(config)
    async with open_store(config.store_location) as store:
        with caplog.at_level(logging.ERROR):
            result = await run_retention(store, config, {KEY_VARIABLE: key}, NOW)
    assert (result.pruned, result.checkpoints) == (0, ())
    assert audit_rows(config) == before
    assert scalar(config, "SELECT COUNT(*) FROM accounts") == 3
    assert f"index column {column}" in caplog.text
    assert "nothing pruned" in caplog.text


async def test_prune_from_the_cli_refuses_a_log_that_does_not_verify(
        config: LoadedConfig, key: str, recent_b: int,
        monkeypatch: pytest.MonkeyPatch) -> None:
    tamper(config, "UPDATE audit SET at = '2019-01-01T00:00:00.000Z' WHERE seq = ?", (recent_b,))
    monkeypatch.setenv(KEY_VARIABLE, key)
    before = audit_rows(config)
    code, text = await run_cli(config, "audit", "prune")
    assert code == 1
    assert "does not verify" in text
    assert f"seq {recent_b}" in text
    assert audit_rows(config) == before
    # An edited record (not only its index) is refused too.
    tamper(config, "UPDATE audit SET at = json_extract(record, '$.at') WHERE seq = ?",
           (recent_b,))
    tamper(config, "UPDATE audit SET record = json_set(record, '$.status', 'x') WHERE seq = ?",
           (recent_b - 1,))
    code, text = await run_cli(config, "audit", "prune")
    assert code == 1
    assert "edited" in text
    assert audit_rows(config) == [r if r["seq"] != recent_b - 1 else {**r, "status": "x"}
                                  for r in before]


async def test_a_broken_chain_is_named_first_and_index_disagreements_listed_after_it(
        config: LoadedConfig, recent_b: int) -> None:
    tamper(config, "UPDATE audit SET record = json_set(record, '$.status', 'x') WHERE seq = 2")
    tamper(config, "UPDATE audit SET account_id = 'Z' WHERE seq = ?", (recent_b,))
    code, text = await run_cli(config, "audit", "verify")
    assert code == 1
    assert text.startswith("BROKEN at seq 2: hash does not match")
    assert "hash chain itself is intact" not in text
    assert f"seq {recent_b}: index column account_id is 'Z' but the record says 'B'" in text
