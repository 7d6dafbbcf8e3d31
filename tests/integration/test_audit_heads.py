"""Signed heads of the audit chain, kept outside the store: records cut from the end of the log,
which the chain alone cannot show, are reported against them; the daemon writes them to the
head file and retains them on the broker."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import aiomqtt
import pytest

from dispatcher.audit.anchor import HeadAnchor
from dispatcher.audit.heads import HEAD_FIELDS, head_topic, read_heads
from dispatcher.audit.keys import KEY_VARIABLE, CheckpointSigner, signature_valid
from dispatcher.config.settings import LoadedConfig, load_config
from dispatcher.service.app import Dispatcher
from dispatcher.store import open_store
from tests.integration import test_retention
from tests.integration.inprocess import wait_for
from tests.integration.test_retention import history, ingest, run_cli, scalar, tamper
from tests.support import Broker, make_config

key = test_retention.key
config = test_retention.config
T = datetime(2026, 6, 1, 12, tzinfo=UTC)


async def _anchored(config: LoadedConfig, signer: CheckpointSigner | None) -> None:
    async with open_store(config.store_location) as store:
        await history(store)
        await HeadAnchor(store, config.head_file, signer).anchor(T)


async def test_records_cut_from_the_end_are_reported_against_the_head_file(
        config: LoadedConfig, key: str) -> None:
    await _anchored(config, CheckpointSigner.from_text(key))
    code, text = await run_cli(config, "audit", "verify")
    assert code == 0, text
    assert f"heads (from {config.head_file}): OK: 1 head(s) checked, the latest at seq 8" in text
    last = scalar(config, "SELECT MAX(seq) FROM audit")
    tamper(config, "DELETE FROM audit WHERE seq > ?", (last - 2,))
    code, text = await run_cli(config, "audit", "verify")
    assert code == 1, text
    # The chain alone still looks whole: that is what the head is for.
    assert text.startswith(f"OK: {last - 2} records, hash chain intact")
    assert (f"BROKEN: the head signed at 2026-06-01T12:00:00.000Z (seq {last}): the log ends at "
            f"seq {last - 2}, 2 record(s) short of it: records were removed from its end") in text
    # The same, from the head file given by path (a reviewer's copy).
    copy = config.path.parent / "heads-copy.jsonl"
    copy.write_text(config.head_file.read_text())
    code, text = await run_cli(config, "audit", "verify", "--head-file", str(copy))
    assert code == 1
    assert "heads (given): BROKEN" in text


async def test_a_tail_cut_and_written_again_is_a_rewrite(config: LoadedConfig, key: str) -> None:
    await _anchored(config, CheckpointSigner.from_text(key))
    tamper(config, "DELETE FROM audit WHERE seq = 8")
    async with open_store(config.store_location) as store:
        await ingest(store, 99, "Z", T)  # seq 8 again, another record
    code, text = await run_cli(config, "audit", "verify")
    assert code == 1, text
    assert "(seq 8): the record at seq 8 has hash" in text
    assert "the log was rewritten" in text


async def test_unsigned_heads_are_checked_and_said_to_be_unsigned(config: LoadedConfig) -> None:
    await _anchored(config, None)
    [head] = read_heads(config.head_file)
    assert head["signature"] is None
    code, text = await run_cli(config, "audit", "verify")
    assert code == 0, text
    assert "1 head(s) are unsigned" in text
    tamper(config, "DELETE FROM audit WHERE seq = 8")
    assert (await run_cli(config, "audit", "verify"))[0] == 1


async def test_a_forged_head_is_refused(config: LoadedConfig, key: str) -> None:
    await _anchored(config, CheckpointSigner.from_text(key))
    [head] = read_heads(config.head_file)
    forged = json.dumps({**head, "head_seq": head["head_seq"] + 5})
    code, text = await run_cli(config, "audit", "verify", "--head", forged)
    assert code == 1
    assert "does not verify with any trusted public key: it was forged or altered" in text
    code, text = await run_cli(config, "audit", "verify", "--head", "{}")
    assert code == 2


async def test_without_heads_verify_says_tail_cuts_go_unseen(config: LoadedConfig) -> None:
    async with open_store(config.store_location) as store:
        await history(store)
    if not config.store_is_postgres:
        assert config.head_file == config.store_path.with_name("dispatcher.db.heads.jsonl")
    code, text = await run_cli(config, "audit", "verify")
    assert code == 0
    assert (f"heads: none at {config.head_file}: records cut from the end of the log cannot be "
            "detected") in text


async def test_the_daemon_signs_heads_into_the_file_and_a_retained_message(
        tmp_path: Path, broker: Broker, key: str, store_url: str) -> None:
    public = CheckpointSigner.from_text(key).public_key
    path = make_config(tmp_path / "cfg", broker.url, store_url=store_url, extra=(
        f'[retention]\ncheckpoint_public_keys = ["{public}"]\n'
        "[audit]\nhead_interval_seconds = 0.2\n"))
    environ = {KEY_VARIABLE: key}
    loaded = load_config(path, environ)
    topic = head_topic(loaded.settings.mqtt.out_prefix)
    async with Dispatcher(loaded, environ=environ) as daemon:
        task = asyncio.create_task(daemon.run())
        try:
            async with aiomqtt.Client("127.0.0.1", broker.port) as watcher:
                await watcher.subscribe(topic, qos=1)
                async with asyncio.timeout(15):
                    await anext(aiter(watcher.messages))
        finally:
            daemon.request_stop()
            await task
    # With the daemon gone, the broker still holds the head for anyone who subscribes.
    async with aiomqtt.Client("127.0.0.1", broker.port) as reviewer:
        await reviewer.subscribe(topic, qos=1)
        async with asyncio.timeout(10):
            message = await anext(aiter(reviewer.messages))
    assert message.retain
    assert str(message.topic) == "collections/attempts/_audit/head"
    assert isinstance(message.payload, bytes)
    retained = json.loads(message.payload)
    assert retained["key_id"] == CheckpointSigner.from_text(key).key_id
    assert signature_valid({f: retained[f] for f in HEAD_FIELDS}, retained["signature"],
                           [public]) == retained["key_id"]
    heads = read_heads(loaded.head_file)
    assert retained in heads
    assert all(h["signature"] for h in heads)
    # A reviewer with the retained message and the public key only: the intact log passes.
    code, text = await run_cli(loaded, "audit", "verify", "--head", message.payload.decode())
    assert code == 0, text
    assert "heads (given): OK" in text


@pytest.mark.parametrize("keep", [1, 3])
async def test_the_head_file_keeps_a_bounded_history(config: LoadedConfig, keep: int) -> None:
    async with open_store(config.store_location) as store:
        anchor = HeadAnchor(store, config.head_file, None, keep=keep)
        for n in range(5):
            await ingest(store, n, f"K-{n}", T)
            await anchor.anchor(T)
        assert await anchor.anchor(T) is None  # nothing written since: no new head
    heads = read_heads(config.head_file)
    assert len(heads) == keep
    assert heads[-1]["head_seq"] == scalar(config, "SELECT MAX(seq) FROM audit")


async def test_a_daemon_signs_the_head_as_it_starts(tmp_path: Path, broker: Broker,
                                                     key: str, store_url: str) -> None:
    # A daemon that dies again and again before its first interval must still leave heads.
    public = CheckpointSigner.from_text(key).public_key
    path = make_config(tmp_path / "cfg", broker.url, store_url=store_url, extra=(
        f'[retention]\ncheckpoint_public_keys = ["{public}"]\n'
        "[audit]\nhead_interval_seconds = 3600\n"))
    environ = {KEY_VARIABLE: key}
    loaded = load_config(path, environ)
    async with Dispatcher(loaded, environ=environ) as daemon:
        task = asyncio.create_task(daemon.run())
        try:
            await wait_for(loaded.head_file.exists, 15, "the head file")
            [head] = read_heads(loaded.head_file)
            # It names the chain's head as it was at start: the record of the config loaded.
            assert head["head_seq"] == scalar(loaded, "SELECT MAX(seq) FROM audit")
            assert head["signature"]
        finally:
            daemon.request_stop()
            await task
