"""Retention: records past the profile's period are pruned under a signed checkpoint, the store
forgets those accounts, and `audit verify` holds across the checkpoint yet catches tampering."""

from __future__ import annotations

import asyncio
import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from dispatcher.audit.chain import record_hash
from dispatcher.audit.keys import KEY_VARIABLE, CheckpointSigner, new_private_key
from dispatcher.audit.retention import retention_cutoff, run_retention
from dispatcher.audit.verify import verify_audit_log
from dispatcher.cli import main as cli
from dispatcher.config.settings import LoadedConfig, load_config
from dispatcher.errors import ConfigError
from dispatcher.ingest.classify import classify
from dispatcher.store import Store, StoreLocation, open_store
from tests.postgres import store_execute, store_rows
from tests.support import encode, make_config, overdue_event

OLD = datetime(2019, 3, 1, 12, tzinfo=UTC)
MIDDLE = datetime(2021, 9, 1, 12, tzinfo=UTC)
RECENT = datetime(2025, 5, 1, 12, tzinfo=UTC)
NOW = datetime(2026, 6, 1, 3, 30, tzinfo=UTC)  # cutoff for 5 years: 2021-06-01
LATER = datetime(2029, 7, 1, 3, 30, tzinfo=UTC)  # cutoff 2024-07-01: C is past it, B not


@pytest.fixture
def key() -> str:
    return new_private_key()


@pytest.fixture
def config(tmp_path: Path, key: str, store_at: StoreLocation) -> LoadedConfig:
    """On SQLite, then on PostgreSQL."""
    public = CheckpointSigner.from_text(key).public_key
    url = store_at if isinstance(store_at, str) else "sqlite://data/dispatcher.db"
    path = make_config(tmp_path / "cfg", "mqtt://127.0.0.1:1", store_url=url,
                       extra=f'[retention]\ncheckpoint_public_keys = ["{public}"]\n')
    return load_config(path, {KEY_VARIABLE: key})


async def ingest(store: Store, n: int, account: str, when: datetime) -> None:
    payload = encode(overdue_event(n, account, occurred_at=when.isoformat()))
    await store.record_batch([classify(payload, "collections/events/x", 65536)], now=when,
                             config_version="v-test")


async def dead_letter(store: Store, when: datetime) -> None:
    await store.record_batch([classify(b"not json at all", "collections/events/x", 65536)],
                             now=when, config_version="v-test")


async def history(store: Store) -> None:
    """A: active in 2019 only. B: 2019 and 2025. C: 2021-09 (inside 5 years of NOW)."""
    await store.append_audit([{"kind": "config", "status": "loaded", "config_version": "v-1"}],
                             now=OLD)
    await ingest(store, 1, "A", OLD)
    await ingest(store, 2, "B", OLD)
    await dead_letter(store, OLD)
    await ingest(store, 3, "A", OLD.replace(month=4))
    await ingest(store, 4, "C", MIDDLE)
    await ingest(store, 5, "B", RECENT)


def audit_rows(config: LoadedConfig) -> list[dict[str, Any]]:
    return [json.loads(text) for (text,) in store_rows(
        config.store_location, "SELECT record FROM audit ORDER BY seq")]


def scalar(config: LoadedConfig, sql: str) -> Any:
    return store_rows(config.store_location, sql)[0][0]


def tamper(config: LoadedConfig, sql: str, params: tuple[Any, ...] = ()) -> None:
    store_execute(config.store_location, sql, params)


async def run_cli(config: LoadedConfig, *args: str) -> tuple[int, str]:
    """The CLI in a thread (it runs its own event loop), as an operator would run it."""
    out = io.StringIO()
    code = await asyncio.to_thread(cli.main, [*args, "--config", str(config.path)], out)
    return code, out.getvalue()


def test_cutoff_is_calendar_years_back() -> None:
    assert retention_cutoff(NOW, 5) == datetime(2021, 6, 1, 3, 30, tzinfo=UTC)
    assert retention_cutoff(datetime(2028, 2, 29, tzinfo=UTC), 5) == datetime(
        2023, 2, 28, tzinfo=UTC)


async def test_prune_removes_what_is_past_retention_and_verify_holds(
        config: LoadedConfig, key: str) -> None:
    async with open_store(config.store_location) as store:
        await history(store)
        before = audit_rows(config)
        result = await run_retention(store, config, {KEY_VARIABLE: key}, NOW)
        verdict = await verify_audit_log(store, config.settings.retention.checkpoint_public_keys)

    after = audit_rows(config)
    kinds = [(r["kind"], r.get("account_id")) for r in after]
    # A (last active 2019) and the account-less dead letter of 2019 (and its work-queue item)
    # are gone; B's 2019 record stays because B was active in 2025; C is inside the period; the
    # config record stays.
    assert ("event", "A") not in kinds
    assert ("dead_letter", None) not in kinds
    assert ("queue", None) not in kinds
    assert kinds[:4] == [("config", None), ("event", "B"), ("event", "C"), ("event", "B")]
    assert kinds[-1] == ("checkpoint", None)
    assert result.pruned == len(before) - (len(after) - 1) == 4
    checkpoint = after[-1]
    assert checkpoint["through_seq"] == max(r["seq"] for r in before if r["at"] < "2021-06-01")
    assert checkpoint["through_hash"] == next(
        r["hash"] for r in before if r["seq"] == checkpoint["through_seq"])
    assert checkpoint["kept_count"] == 2
    assert checkpoint["pruned_count"] == 4
    assert checkpoint["retention_years"] == 5
    assert checkpoint["key_id"].startswith("ed25519:")
    assert verdict.ok, verdict.problem
    assert verdict.checkpoint is not None
    assert verdict.checkpoint["seq"] == checkpoint["seq"]
    # The store forgot A entirely; B and C remain; the 2019 dead letter is gone.
    assert scalar(config, "SELECT COUNT(*) FROM accounts WHERE account_id = 'A'") == 0
    assert scalar(config, "SELECT COUNT(*) FROM events WHERE account_id = 'A'") == 0
    assert scalar(config, "SELECT COUNT(*) FROM party_numbers WHERE account_id = 'A'") == 0
    assert scalar(config, "SELECT COUNT(*) FROM accounts") == 2
    assert scalar(config, "SELECT COUNT(*) FROM dead_letters") == 0
    assert scalar(config, "SELECT COUNT(*) FROM queue_items") == 0


async def test_verify_across_the_checkpoint_from_the_cli_and_from_an_export(
        config: LoadedConfig, key: str, tmp_path: Path) -> None:
    async with open_store(config.store_location) as store:
        await history(store)
        await run_retention(store, config, {KEY_VARIABLE: key}, NOW)
    code, text = await run_cli(config, "audit", "verify")
    assert code == 0, text
    assert "pruned by retention up to seq" in text
    assert "signed by ed25519:" in text
    code, exported = await run_cli(config, "audit", "export")
    export = tmp_path / "export.jsonl"
    export.write_text(exported)
    assert (await run_cli(config, "audit", "verify", "--file", str(export)))[0] == 0
    # A reviewer's copy edited in one byte no longer verifies.
    export.write_text(exported.replace('"account_id":"C"', '"account_id":"D"', 1))
    code, text = await run_cli(config, "audit", "verify", "--file", str(export))
    assert code == 1
    assert "edited" in text


async def test_verify_needs_a_trusted_key_once_pruned(config: LoadedConfig, key: str) -> None:
    async with open_store(config.store_location) as store:
        await history(store)
        await run_retention(store, config, {KEY_VARIABLE: key}, NOW)
        untrusted = await verify_audit_log(store, ())
        other = CheckpointSigner.from_text(new_private_key()).public_key
        wrong = await verify_audit_log(store, (other,))
    assert not untrusted.ok
    assert "no public key is trusted" in (untrusted.problem or "")
    assert not wrong.ok
    assert "does not verify" in (wrong.problem or "")


@pytest.mark.parametrize("attack", ["edit kept", "delete kept", "delete after",
                                    "forged checkpoint"])
async def test_tampering_after_pruning_is_caught(config: LoadedConfig, key: str,
                                                 attack: str) -> None:
    async with open_store(config.store_location) as store:
        await history(store)
        await run_retention(store, config, {KEY_VARIABLE: key}, NOW)
    rows = audit_rows(config)
    checkpoint = rows[-1]
    kept_b = next(r for r in rows if r.get("account_id") == "B")
    after = next(r for r in rows if r["seq"] > checkpoint["through_seq"])
    if attack == "edit kept":
        tamper(config, "UPDATE audit SET record = replace(record, '\"B\"', '\"Z\"') "
               "WHERE seq = ?", (kept_b["seq"],))
    elif attack == "delete kept":
        tamper(config, "DELETE FROM audit WHERE seq = ?", (kept_b["seq"],))
    elif attack == "delete after":
        tamper(config, "DELETE FROM audit WHERE seq = ?", (after["seq"],))
    else:
        # Someone without the key prunes more and signs their own checkpoint.
        impostor = CheckpointSigner.from_text(new_private_key())
        forged = {**checkpoint, "kept_count": 1, "key_id": impostor.key_id}
        forged["signature"] = impostor.sign({k: forged[k] for k in (
            "through_seq", "through_hash", "kept_count", "kept_digest", "pruned_count",
            "cutoff", "retention_years", "key_id")})
        forged["hash"] = record_hash(forged)  # the chain itself stays intact: it is the last
        tamper(config, "UPDATE audit SET record = ? WHERE seq = ?",
               (json.dumps(forged), checkpoint["seq"]))
    code, text = await run_cli(config, "audit", "verify")
    assert code == 1, text
    assert text.startswith("BROKEN at seq")
    if attack == "forged checkpoint":
        assert "does not verify with any trusted public key" in text


async def test_pruning_again_is_a_no_op_and_later_prunes_extend_the_anchor(
        config: LoadedConfig, key: str) -> None:
    environ = {KEY_VARIABLE: key}
    async with open_store(config.store_location) as store:
        await history(store)
        first = await run_retention(store, config, environ, NOW)
        again = await run_retention(store, config, environ, NOW)
        assert (again.due, again.pruned, again.checkpoints) == (0, 0, ())
        later = await run_retention(store, config, environ, LATER)
        verdict = await verify_audit_log(store, config.settings.retention.checkpoint_public_keys)
    assert first.pruned == 4
    # By mid-2029 B (last active 2025-05) is within 5 years still; C (2021-09) is past it.
    assert later.pruned == 1
    assert len(later.checkpoints) == 1
    remaining = [(r["kind"], r.get("account_id")) for r in audit_rows(config)]
    assert ("event", "C") not in remaining
    assert remaining.count(("event", "B")) == 2
    assert remaining.count(("checkpoint", None)) == 2
    assert verdict.ok, verdict.problem
    assert verdict.checkpoint is not None
    assert verdict.checkpoint["seq"] == later.checkpoints[0]["seq"]


async def test_a_large_backlog_is_pruned_in_steps_each_under_its_own_checkpoint(
        config: LoadedConfig, key: str) -> None:
    async with open_store(config.store_location) as store:
        for n in range(10):
            await ingest(store, 100 + n, f"OLD-{n}", OLD)
        await ingest(store, 200, "NEW", RECENT)
        result = await run_retention(store, config, {KEY_VARIABLE: key}, NOW, step_seqs=3)
        verdict = await verify_audit_log(store, config.settings.retention.checkpoint_public_keys)
    assert result.pruned == 10
    assert len(result.checkpoints) == 4  # seqs 1-3, 4-6, 7-9, 10
    assert [c["through_seq"] for c in result.checkpoints] == [3, 6, 9, 10]
    assert verdict.ok, verdict.problem


async def test_without_the_signing_key_nothing_is_pruned(config: LoadedConfig,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    async with open_store(config.store_location) as store:
        await history(store)
        count = len(audit_rows(config))
        result = await run_retention(store, config, {}, NOW)
    assert (result.due, result.pruned) == (4, 0)
    assert len(audit_rows(config)) == count
    assert f"{KEY_VARIABLE} is not set; nothing pruned" in caplog.text
    # The CLI runs on the real clock, by which C (2021-09) is past the period too.
    code, text = await run_cli(config, "audit", "prune")
    assert code == 1
    assert "5 records are past retention; nothing pruned" in text


async def test_dry_run_counts_without_removing(config: LoadedConfig, key: str,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    async with open_store(config.store_location) as store:
        await history(store)
    count = len(audit_rows(config))
    monkeypatch.setenv(KEY_VARIABLE, key)
    code, text = await run_cli(config, "audit", "prune", "--dry-run")
    assert code == 0
    assert "past retention" in text
    assert len(audit_rows(config)) == count
    # The CLI runs on the real clock: A (2019) and C (2021-09) are more than 5 years old.
    code, text = await run_cli(config, "audit", "prune")
    assert code == 0
    assert text.startswith("pruned ")
    assert (await run_cli(config, "audit", "verify"))[0] == 0


def test_keygen_prints_a_pair_that_check_config_accepts(tmp_path: Path) -> None:
    out = io.StringIO()
    assert cli.main(["audit", "keygen"], out=out) == 0
    lines = [line for line in out.getvalue().splitlines() if not line.startswith("#")]
    private = lines[0].split("=", 1)[1]
    public_line = lines[1]
    path = make_config(tmp_path, "mqtt://127.0.0.1:1", extra=f"[retention]\n{public_line}\n")
    assert load_config(path, {KEY_VARIABLE: private}).settings.retention.checkpoint_public_keys


def test_a_signing_key_whose_public_half_is_not_listed_is_refused(tmp_path: Path) -> None:
    path = make_config(tmp_path, "mqtt://127.0.0.1:1")
    with pytest.raises(ConfigError) as refused:
        load_config(path, {KEY_VARIABLE: new_private_key()})
    assert "retention.checkpoint_public_keys" in str(refused.value.problems[0])
    with pytest.raises(ConfigError) as bad:
        load_config(path, {KEY_VARIABLE: "not a key"})
    assert "not base64" in str(bad.value.problems[0])
    path.write_text(path.read_text() + '[retention]\ncheckpoint_public_keys = ["AAAA"]\n')
    with pytest.raises(ConfigError) as short:
        load_config(path, {})
    assert "32 bytes" in str(short.value.problems[0])


async def test_the_report_shows_the_chain_anchored_at_the_checkpoint(
        config: LoadedConfig, key: str, tmp_path: Path) -> None:
    async with open_store(config.store_location) as store:
        await history(store)
        await run_retention(store, config, {KEY_VARIABLE: key}, NOW)
    out = tmp_path / "report.html"
    code, text = await run_cli(config, "report", "--since", "2019-01-01", "--until",
                               "2026-06-01", "--out", str(out))
    assert code == 0, text
    assert text.rstrip().endswith("hash chain intact")
    assert "pruned by retention up to seq" in out.read_text()


async def test_records_kept_behind_an_anchor_are_pruned_later_without_moving_it_back(
        config: LoadedConfig, key: str) -> None:
    # One seq per step: B's 2019 record, kept behind the first run's anchor, becomes prunable
    # when B goes quiet; the next checkpoint must not anchor before the first one did.
    environ = {KEY_VARIABLE: key}
    async with open_store(config.store_location) as store:
        await history(store)
        first = await run_retention(store, config, environ, NOW, step_seqs=1)
        anchor = first.checkpoints[-1]["through_seq"]
        much_later = await run_retention(store, config, environ,
                                         datetime(2031, 1, 1, tzinfo=UTC), step_seqs=1)
        verdict = await verify_audit_log(store, config.settings.retention.checkpoint_public_keys)
    assert much_later.pruned == 3  # B twice, C once
    assert all(c["through_seq"] >= anchor for c in much_later.checkpoints)
    assert verdict.ok, verdict.problem
    kinds = {r["kind"] for r in audit_rows(config)}
    assert kinds == {"config", "checkpoint"}
