"""Retention's side of the SQLite store: pruning the front of the audit chain under a checkpoint.

A record is past retention when it is at or before `through_seq` (the last record written before
the cutoff) and either belongs to an account whose last record is at or before it, or belongs to
no account. `config` and `checkpoint` records carry no personal data and stay: they say which
rules were in force and where the chain was anchored. The newest record stays too, until a newer
one follows it: it is the head the next record links to. An account past retention is forgotten
with its records: events, attempts, numbers and state. Opt-outs stay (they must be honoured).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any, Protocol

import orjson

from dispatcher.audit.checkpoint import kept_digest
from dispatcher.audit.keys import CheckpointSigner
from dispatcher.domain.clock import sortable_utc, utc_rfc3339
from dispatcher.store.base import PruneResult
from dispatcher.store.sqlite.contact_rows import Db

# Records of these kinds are never pruned.
KEPT_KINDS = ("config", "checkpoint")
# One transaction prunes at most this many seqs of the chain, so that ingest never waits long
# for the write lock; a large backlog becomes several checkpoints, each anchoring the next.
STEP_SEQS = 50_000

_STALE = "account_id IN (SELECT account_id FROM temp.prune_accounts)"
# The newest record stays whatever it is: the chain's head, which the next record links to.
_PRUNABLE = (f"seq <= ? AND kind NOT IN {KEPT_KINDS!r} "
             f"AND (account_id IS NULL OR {_STALE}) AND seq < (SELECT MAX(seq) FROM audit)")


class _Host(Protocol):
    _db: Db
    _lock: asyncio.Lock

    def _write(self) -> AbstractAsyncContextManager[Db]: ...

    async def _insert_audit(self, fields: Sequence[Mapping[str, Any]], now: datetime,
                            common: Mapping[str, Any] | None = None) -> list[dict[str, Any]]: ...


class RetentionRows:
    """Mixin of SqliteStore: the latest checkpoint, and pruning under a new one."""

    async def latest_checkpoint(self: _Host) -> dict[str, Any] | None:
        """The newest checkpoint record: where a pruned chain is anchored."""
        async with self._lock:
            return await _latest(self._db)

    async def prune_audit(self: _Host, *, cutoff: datetime, now: datetime, retention_years: int,
                          signer: CheckpointSigner | None, config_version: str,
                          dry_run: bool = False, step_seqs: int | None = None) -> PruneResult:
        """Remove what is past retention, in steps of at most `step_seqs` seqs (STEP_SEQS
        unless given), each under a signed checkpoint."""
        async with self._lock:
            through, due, accounts = await _prepare(self._db, cutoff)
        if through is None:
            return PruneResult(cutoff, None, 0, 0, 0)
        if dry_run or signer is None or due == 0:
            return PruneResult(cutoff, through, due, 0, accounts)
        pruned, checkpoints = 0, list[dict[str, Any]]()
        while True:
            step = await _prune_step(self, through, cutoff=cutoff, now=now,
                                     retention_years=retention_years, signer=signer,
                                     config_version=config_version,
                                     forget=not checkpoints, step_seqs=step_seqs or STEP_SEQS)
            if step is None:
                break
            pruned += step["pruned_count"]
            checkpoints.append(step)
        return PruneResult(cutoff, through, due, pruned, accounts, tuple(checkpoints))


async def _prepare(db: Db, cutoff: datetime) -> tuple[int | None, int, int]:
    """The last seq before the cutoff, the records past retention, and their accounts, whose
    ids go to a temp table (read only on the main file: ingest keeps committing meanwhile)."""
    rows = await db.execute_fetchall("SELECT MAX(seq) FROM audit WHERE at < ?",
                                     [utc_rfc3339(cutoff)])
    through = next(iter(rows))[0]
    if through is None:
        return None, 0, 0
    await db.execute("CREATE TEMP TABLE IF NOT EXISTS prune_accounts "
                     "(account_id TEXT PRIMARY KEY)")
    await db.execute("DELETE FROM temp.prune_accounts")
    await db.execute(
        "INSERT INTO temp.prune_accounts SELECT account_id FROM audit "
        "WHERE account_id IS NOT NULL GROUP BY account_id HAVING MAX(seq) <= ?", [through])
    due = next(iter(await db.execute_fetchall(
        f"SELECT COUNT(*) FROM audit WHERE {_PRUNABLE}", [through])))[0]
    accounts = next(iter(await db.execute_fetchall(
        "SELECT COUNT(*) FROM temp.prune_accounts")))[0]
    return int(through), int(due), int(accounts)


async def _prune_step(host: _Host, through: int, *, cutoff: datetime, now: datetime,
                      retention_years: int, signer: CheckpointSigner,
                      config_version: str, forget: bool,
                      step_seqs: int) -> dict[str, Any] | None:
    """One transaction: prune up to the next step's anchor and append its checkpoint; with
    `forget` (the run's first step), also the store rows of the accounts past retention."""
    async with host._write() as db:  # noqa: SLF001 - the mixin's own host
        # An account active again since the run began is no longer past retention.
        await db.execute(
            f"DELETE FROM temp.prune_accounts WHERE account_id IN (SELECT account_id FROM audit "
            f"WHERE seq > ? AND {_STALE})", [through])
        first = await db.execute_fetchall(
            f"SELECT MIN(seq) FROM audit WHERE {_PRUNABLE}", [through])
        start = next(iter(first))[0]
        if start is None:
            return None
        previous = await _latest(db)
        # Never anchor before an earlier checkpoint: records between the two were pruned then,
        # and the chain continues only from the later anchor.
        floor = int(previous["through_seq"]) if previous is not None else 0
        anchor = max(floor, min(through, start + step_seqs - 1))
        anchor_hash = await _hash_of(db, anchor)
        if anchor_hash is None:  # pruned before: the previous checkpoint anchored here
            if previous is None or previous["through_seq"] != anchor:
                raise RuntimeError(f"audit record {anchor} is missing and no checkpoint "
                                   "anchors the chain there; run `audit verify`")
            anchor_hash = previous["through_hash"]
        await db.execute(f"DELETE FROM audit WHERE {_PRUNABLE}", [anchor])
        pruned = int(next(iter(await db.execute_fetchall("SELECT changes()")))[0])
        if forget:
            await _forget_accounts(db, cutoff)
        kept = [(int(seq), str(h)) for seq, h in await db.execute_fetchall(
            "SELECT seq, json_extract(record, '$.hash') FROM audit WHERE seq <= ? ORDER BY seq",
            [anchor])]
        statement = {"through_seq": anchor, "through_hash": anchor_hash,
                     "kept_count": len(kept), "kept_digest": kept_digest(kept),
                     "pruned_count": pruned, "cutoff": utc_rfc3339(cutoff),
                     "retention_years": retention_years, "key_id": signer.key_id}
        sealed = await host._insert_audit(  # noqa: SLF001 - the mixin's own host
            [{"kind": "checkpoint", **statement, "signature": signer.sign(statement)}], now,
            {"config_version": config_version})
        return sealed[0]


async def _forget_accounts(db: Db, cutoff: datetime) -> None:
    """Store rows of accounts past retention, and dead letters (and queue items of no account)
    received before the cutoff."""
    for table in ("events", "attempts", "party_numbers", "invalid_numbers", "queue_items",
                  "accounts"):
        await db.execute(f"DELETE FROM {table} WHERE {_STALE}")
    await db.execute("DELETE FROM dead_letters WHERE received_at < ?", [sortable_utc(cutoff)])
    await db.execute("DELETE FROM queue_items WHERE account_id IS NULL AND created_at < ?",
                     [sortable_utc(cutoff)])


async def _latest(db: Db) -> dict[str, Any] | None:
    rows = list(await db.execute_fetchall(
        "SELECT record FROM audit WHERE kind = 'checkpoint' ORDER BY seq DESC LIMIT 1"))
    return dict(orjson.loads(rows[0][0])) if rows else None


async def _hash_of(db: Db, seq: int) -> str | None:
    rows = list(await db.execute_fetchall(
        "SELECT json_extract(record, '$.hash') FROM audit WHERE seq = ?", [seq]))
    return str(rows[0][0]) if rows else None
