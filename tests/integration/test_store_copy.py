"""`dispatcher store copy`: a SQLite store made by the real engine, copied into PostgreSQL.

The source holds what a daemon leaves behind: events, accounts with plans and leases, attempts
with outcomes, a number found invalid, dead letters, opt-outs, the answer model, published and
unpublishable marks, a retention checkpoint over a pruned chain, and a signed heads file. The
copy must hold the same rows table by table, and `audit verify` (a subprocess) must say the same
of both, heads included.
"""

from __future__ import annotations

import asyncio
import io
import json
import shutil
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from channels.sandbox import load_outcome_script
from dispatcher.audit.chain import ChainHead
from dispatcher.audit.heads import signed_head, write_head
from dispatcher.audit.keys import KEY_VARIABLE, CheckpointSigner, new_private_key
from dispatcher.cli.main import main
from dispatcher.config.settings import LoadedConfig, load_config
from dispatcher.contact.simulate import Simulation, read_events
from dispatcher.ingest.classify import classify
from dispatcher.store import Store, open_store
from dispatcher.store.postgres.migrations import SCHEMA_VERSION
from dispatcher.store.sqlite.migrations import SCHEMA_VERSION as SQLITE_SCHEMA_VERSION
from tests.postgres import store_rows
from tests.support import ROOT, encode, make_config, overdue_event

START = datetime(2026, 11, 30, tzinfo=UTC)
OLD = datetime(2019, 3, 1, 12, tzinfo=UTC)
END = START + timedelta(days=14)
# Appended to the log so that a copy with one row a batch takes seconds: time to kill it.
FILLER_RECORDS = 15_000


def _outcomes(folder: Path) -> Path:
    """The example outcomes, and one number that turns out not to exist."""
    outcomes = json.loads((ROOT / "examples" / "outcomes.json").read_text())
    outcomes["numbers"]["+15125550111"] = {"call": "invalid-number", "sms": "invalid-number"}
    path = folder / "outcomes.json"
    path.write_text(json.dumps(outcomes))
    return path


async def _old_history(store: Store) -> None:
    """Two accounts and a dead letter from 2019, for retention to prune."""
    for n, account in ((1, "OLD-1"), (2, "OLD-2")):
        payload = encode(overdue_event(n, account, occurred_at=OLD.isoformat()))
        await store.record_batch([classify(payload, "collections/events/x", 65536)], now=OLD,
                                 config_version="v-old")
    await store.record_batch([classify(b"not json", "collections/events/x", 65536)], now=OLD,
                             config_version="v-old")


async def _build(config: LoadedConfig, key: str, folder: Path) -> None:
    signer = CheckpointSigner.from_text(key)
    async with open_store(config.store_path) as store:
        await _old_history(store)
        await Simulation(config, store, load_outcome_script(_outcomes(folder)), START).run(
            read_events(ROOT / "examples" / "events.jsonl", START), 14)
        write_head(config.head_file, signed_head(await store.audit_head(), END, signer), 10)
        if await store.answer_model() is None:
            await store.save_answer_model('{"rates": []}', END)
        waiting = [int(r["seq"]) for r in await store.unpublished(10)]
        await store.mark_published(waiting[:6])
        await store.mark_unpublishable(waiting[6:8])
        pruned = await store.prune_audit(cutoff=END - timedelta(days=5 * 365), now=END,
                                         retention_years=5, signer=signer,
                                         config_version=config.version)
        assert pruned.pruned > 0
        await store.append_audit([{"kind": "config", "status": "loaded", "n": n}
                                  for n in range(FILLER_RECORDS)], now=END)
        await store.claim_due(END, 2)
        write_head(config.head_file, signed_head(await store.audit_head(), END, signer), 10)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A source store, made once: its config file and the checkpoint key."""
    folder = tmp_path_factory.mktemp("copy-source")
    key = new_private_key()
    path = make_config(folder / "cfg", "mqtt://127.0.0.1:1", extra=_retention(key))
    asyncio.run(_build(load_config(path, {KEY_VARIABLE: key}), key, folder))
    return path, key


def _retention(key: str) -> str:
    public = CheckpointSigner.from_text(key).public_key
    return f'[retention]\ncheckpoint_public_keys = ["{public}"]\n'


@pytest.fixture
def source(built: tuple[Path, str], tmp_path: Path) -> LoadedConfig:
    """This test's own copy of the source store, its heads file and its config."""
    config_path, key = built
    original = load_config(config_path)
    path = make_config(tmp_path / "src", "mqtt://127.0.0.1:1", extra=_retention(key))
    config = load_config(path)
    config.store_path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(original.store_path, config.store_path)
    shutil.copy(original.head_file, config.head_file)
    return config


def _target_config(folder: Path, url: str, key: str) -> LoadedConfig:
    return load_config(make_config(folder, "mqtt://127.0.0.1:1", store_url=url,
                                   extra=_retention(key)))


def _cli(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dispatcher", *argv], capture_output=True,
                          text=True, cwd=ROOT, timeout=300, check=False)


def _copy(source: LoadedConfig, url: str, *more: str) -> subprocess.CompletedProcess[str]:
    return _cli("store", "copy", "--from", f"sqlite://{source.store_path}", "--to", url, *more)


def _tables(path: Path) -> list[tuple[str, list[str]]]:
    with closing(sqlite3.connect(path)) as db:
        names = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                          "ORDER BY rowid")]
        return [(n, [r[1] for r in db.execute(f"PRAGMA table_info({n})")]) for n in names]


def _normal(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Rows as comparable values (PostgreSQL's booleans are SQLite's 0 and 1), in one order."""
    return sorted((tuple(int(v) if isinstance(v, bool) else v for v in row) for row in rows),
                  key=repr)


def _head_of(config: LoadedConfig) -> ChainHead:
    rows = store_rows(config.store_location, "SELECT seq, record FROM audit ORDER BY seq DESC "
                                             "LIMIT 1")
    return ChainHead(int(rows[0][0]), json.loads(rows[0][1])["hash"])


def _data_rows(url: str) -> dict[str, int]:
    tables = [r[0] for r in store_rows(
        url, "SELECT table_name FROM information_schema.tables WHERE table_schema = "
             "current_schema() AND table_name NOT IN ('audit_head', 'schema_version')")]
    return {t: int(store_rows(url, f"SELECT COUNT(*) FROM {t}")[0][0]) for t in tables}


def test_the_copy_holds_every_row_and_verifies_as_the_source_does(
        source: LoadedConfig, built: tuple[Path, str], postgres_url: str,
        tmp_path: Path) -> None:
    public = CheckpointSigner.from_text(built[1]).public_key
    done = _copy(source, postgres_url, "--batch-rows", "700", "--public-key", public)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    tables = _tables(source.store_path)
    assert len(tables) == 10
    for name, columns in tables:
        listed = ", ".join(columns)
        expected = store_rows(source.store_path, f"SELECT {listed} FROM {name}")
        copied = store_rows(postgres_url, f"SELECT {listed} FROM {name}")
        assert _normal(copied) == _normal(expected), name
        assert f"{name}: {len(expected)} row(s)" in lines
        assert expected, f"{name} is empty in the source"
    head = _head_of(source)
    assert (f"check: row counts equal in 10 tables "
            f"({sum(len(store_rows(source.store_path, f'SELECT 1 FROM {n}')) for n, _ in tables)}"
            f" rows); audit head equal: seq {head.seq}, hash {head.hash}") in lines
    assert (f"heads (from {source.head_file}) against the copy: OK: 2 head(s) checked, the "
            f"latest at seq {head.seq}") in lines
    # Nothing holds a lease on the copy: the claims were the stopped daemon's.
    assert store_rows(postgres_url, "SELECT COUNT(*) FROM accounts WHERE lease_owner IS NOT "
                                    "NULL") == [(0,)]

    # What an operator does: the heads file goes where the new config keeps it.
    target = _target_config(tmp_path / "dst", postgres_url, built[1])
    target.head_file.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(source.head_file, target.head_file)
    before = _cli("audit", "verify", "--config", str(source.path))
    after = _cli("audit", "verify", "--config", str(target.path))
    assert before.returncode == 0, before.stdout + before.stderr
    assert after.returncode == 0, after.stdout + after.stderr
    first = before.stdout.splitlines()[0]
    assert first.startswith("OK: "), first
    assert "anchored at checkpoint seq" in first, first
    assert f"(head seq {head.seq}, hash {head.hash})" in first
    assert after.stdout.splitlines()[0] == first
    assert after.stdout.splitlines()[1] == before.stdout.splitlines()[1].replace(
        str(source.head_file), str(target.head_file))
    assert ": OK: 2 head(s) checked" in after.stdout.splitlines()[1]


def test_a_target_that_holds_data_is_refused_and_left_as_it_was(
        source: LoadedConfig, postgres_url: str) -> None:
    assert _copy(source, postgres_url).returncode == 0
    counts = _data_rows(postgres_url)
    again = _copy(source, postgres_url)
    assert again.returncode == 2
    schema = postgres_url.rpartition("search_path=")[2]
    assert "already holds data: " in again.stderr
    assert f"audit ({counts['audit']})" in again.stderr
    assert f"DROP SCHEMA {schema} CASCADE; CREATE SCHEMA {schema};" in again.stderr
    assert "committed" not in again.stdout
    assert _data_rows(postgres_url) == counts


def test_heads_the_copy_lacks_fail_the_command_after_the_copy(
        source: LoadedConfig, postgres_url: str, tmp_path: Path) -> None:
    head = _head_of(source)
    heads = tmp_path / "elsewhere.heads.jsonl"
    heads.write_text(json.dumps({"kind": "audit_head", "head_seq": head.seq + 5,
                                 "head_hash": "0" * 64, "signed_at": "2026-12-14T00:00:00Z",
                                 "key_id": None, "signature": None}) + "\n")
    done = _copy(source, postgres_url, "--head-file", str(heads))
    assert done.returncode == 1, done.stderr
    lines = done.stdout.splitlines()
    assert "committed" in lines
    assert f"heads (from {heads}) against the copy: BROKEN: 1 head(s) checked, the latest at " \
           f"seq {head.seq + 5}" in done.stdout
    assert any(line.startswith("BROKEN: the head signed at 2026-12-14T00:00:00Z") and
               f"the log ends at seq {head.seq}, 5 record(s) short of it" in line
               for line in lines), lines


def _killed_midway(source: LoadedConfig, url: str) -> list[str]:
    """Start a copy of one row a batch, SIGKILL it once its first table is in; its output."""
    copying = subprocess.Popen(
        [sys.executable, "-m", "dispatcher", "store", "copy", "--from", str(source.store_path),
         "--to", url, "--batch-rows", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, cwd=ROOT)
    assert copying.stdout is not None
    seen = []
    try:
        for line in copying.stdout:
            seen.append(line.rstrip("\n"))
            if line.startswith("events: "):
                copying.send_signal(signal.SIGKILL)
                break
    finally:
        copying.kill()
        copying.communicate(timeout=60)
    assert copying.returncode == -signal.SIGKILL, seen
    return seen


def test_a_copy_killed_midway_leaves_an_empty_store_and_a_second_run_completes(
        source: LoadedConfig, built: tuple[Path, str], postgres_url: str,
        tmp_path: Path) -> None:
    seen = _killed_midway(source, postgres_url)
    assert seen[-1].startswith("events: "), seen
    assert not [line for line in seen if line.startswith(("audit: ", "check: "))], seen
    # Migrated (that commits first), but without a row: nothing that looks like a copy.
    assert store_rows(postgres_url, "SELECT COUNT(*) FROM schema_version") == [(SCHEMA_VERSION,)]
    counts = _data_rows(postgres_url)
    # The ten tables a copy fills, and the daemons' job leases and rate buckets.
    assert len(counts) == 12
    assert set(counts.values()) == {0}

    done = _copy(source, postgres_url)
    assert done.returncode == 0, done.stderr
    assert "committed" in done.stdout.splitlines()
    target = _target_config(tmp_path / "dst", postgres_url, built[1])
    verified = _cli("audit", "verify", "--config", str(target.path),
                    "--head-file", str(source.head_file))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    head = _head_of(source)
    assert f"(head seq {head.seq}, hash {head.hash})" in verified.stdout.splitlines()[0]


@pytest.fixture
def holder(source: LoadedConfig) -> Iterator[subprocess.Popen[str]]:
    """Another process with the source store open, as the daemon has it."""
    script = ("import sqlite3, sys, time\n"
              "db = sqlite3.connect(sys.argv[1])\n"
              "db.execute('SELECT COUNT(*) FROM audit').fetchall()\n"
              "print('open', flush=True)\n"
              "time.sleep(120)\n")
    process = subprocess.Popen([sys.executable, "-c", script, str(source.store_path)],
                               stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "open"
    yield process
    process.kill()
    process.communicate(timeout=30)


def test_a_source_another_process_has_open_is_refused(
        source: LoadedConfig, postgres_url: str, holder: subprocess.Popen[str]) -> None:
    refused = _copy(source, postgres_url)
    assert refused.returncode == 2
    assert (f"dispatcher: {source.store_path} is open in process {holder.pid} (the daemon?): "
            "stop it") in refused.stderr
    assert store_rows(postgres_url, "SELECT to_regclass('schema_version') IS NULL") == [(True,)]


def test_an_older_source_schema_is_refused_until_migrated(
        source: LoadedConfig, postgres_url: str) -> None:
    with closing(sqlite3.connect(source.store_path)) as db:
        db.execute("PRAGMA user_version = 5")
    refused = _copy(source, postgres_url)
    assert refused.returncode == 2
    assert (f"schema version 5 is older than this dispatcher's ({SQLITE_SCHEMA_VERSION}): run "
            "`dispatcher store migrate` on it first") in refused.stderr
    assert store_rows(postgres_url, "SELECT to_regclass('schema_version') IS NULL") == [(True,)]


@pytest.mark.parametrize(("argv", "problem"), [
    (["--from", "postgresql://h/db", "--to", "postgresql://h/db"],
     "--from: the source is a SQLite store"),
    (["--from", "x.db", "--to", "sqlite://y.db"], "--to: the target is a PostgreSQL store"),
    (["--from", "x.db", "--to", "postgresql://u:secret@h/db"],
     "--to: a password in the store url is refused"),
    (["--from", "missing.db", "--to", "postgresql://u@127.0.0.1:1/db"],
     "no SQLite store at missing.db"),
])
def test_what_is_not_a_copy_is_refused(argv: list[str], problem: str,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["store", "copy", *argv], out=io.StringIO()) == 2
    assert problem in capsys.readouterr().err
