"""Retention on PostgreSQL: pruning the front of the audit chain under a signed checkpoint.

The rules are SQLite's (dispatcher.store.sqlite.retention_rows): a record is past retention when
it is at or before `through_seq` (the last record written before the cutoff) and belongs to an
account whose last record is at or before it, or to no account; `config` and `checkpoint` records
stay, and so does the newest record. An account past retention is forgotten with its records;
opt-outs stay. One run keeps one connection: the accounts past retention are in a temp table.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson

from dispatcher.audit.checkpoint import kept_digest
from dispatcher.audit.keys import CheckpointSigner
from dispatcher.domain.clock import sortable_utc, utc_rfc3339
from dispatcher.errors import StoreError
from dispatcher.store.base import PruneResult
from dispatcher.store.postgres.host import Conn, Host

# One transaction prunes at most this many seqs of the chain, so that ingest never waits long
# for the chain's head; a large backlog becomes several checkpoints, each anchoring the next.
STEP_SEQS = 50_000

_STALE = "account_id IN (SELECT account_id FROM prune_accounts)"
# The newest record stays whatever it is: the chain's head, which the next record links to.
_PRUNABLE = (f"seq <= $1 AND kind NOT IN ('config', 'checkpoint') "
             f"AND (account_id IS NULL OR {_STALE}) AND seq < (SELECT MAX(seq) FROM audit)")


class RetentionRows:
    """Mixin of PostgresStore: the latest checkpoint, and pruning under a new one."""

    async def latest_checkpoint(self: Host) -> dict[str, Any] | None:
        """The newest checkpoint record: where a pruned chain is anchored."""
        async with self._acquire() as conn:
            return await _latest(conn)

    async def prune_audit(self: Host, *, cutoff: datetime, now: datetime, retention_years: int,
                          signer: CheckpointSigner | None, config_version: str,
                          dry_run: bool = False, step_seqs: int | None = None) -> PruneResult:
        """Remove what is past retention, in steps of at most `step_seqs` seqs (STEP_SEQS
        unless given), each under a signed checkpoint."""
        async with self._acquire() as conn:
            through, due, accounts = await _prepare(conn, cutoff)
            if through is None:
                return PruneResult(cutoff, None, 0, 0, 0)
            if dry_run or signer is None or due == 0:
                return PruneResult(cutoff, through, due, 0, accounts)
            pruned, checkpoints = 0, list[dict[str, Any]]()
            while True:
                step = await _prune_step(self, conn, through, cutoff=cutoff, now=now,
                                         retention_years=retention_years, signer=signer,
                                         config_version=config_version,
                                         forget=not checkpoints,
                                         step_seqs=step_seqs or STEP_SEQS)
                if step is None:
                    break
                pruned += step["pruned_count"]
                checkpoints.append(step)
        return PruneResult(cutoff, through, due, pruned, accounts, tuple(checkpoints))


async def _prepare(conn: Conn, cutoff: datetime) -> tuple[int | None, int, int]:
    """The last seq before the cutoff, the records past retention, and their accounts, whose
    ids go to a temp table of this connection."""
    through = await conn.fetchval("SELECT MAX(seq) FROM audit WHERE at < $1",
                                  utc_rfc3339(cutoff))
    if through is None:
        return None, 0, 0
    await conn.execute('CREATE TEMP TABLE IF NOT EXISTS prune_accounts '
                       '(account_id TEXT COLLATE "C" PRIMARY KEY)')
    await conn.execute("DELETE FROM prune_accounts")
    await conn.execute(
        "INSERT INTO prune_accounts SELECT account_id FROM audit "
        "WHERE account_id IS NOT NULL GROUP BY account_id HAVING MAX(seq) <= $1", through)
    due = await conn.fetchval(f"SELECT COUNT(*) FROM audit WHERE {_PRUNABLE}", through)
    accounts = await conn.fetchval("SELECT COUNT(*) FROM prune_accounts")
    return int(through), int(due), int(accounts)


async def _prune_step(host: Host, conn: Conn, through: int, *, cutoff: datetime,
                      now: datetime, retention_years: int, signer: CheckpointSigner,
                      config_version: str, forget: bool,
                      step_seqs: int) -> dict[str, Any] | None:
    """One transaction: prune up to the next step's anchor and append its checkpoint; with
    `forget` (the run's first step), also the store rows of the accounts past retention."""
    async with host._write(conn) as tx:  # noqa: SLF001 - the mixin's own host
        # An account active again since the run began is no longer past retention.
        await conn.execute(
            f"DELETE FROM prune_accounts WHERE account_id IN (SELECT account_id FROM audit "
            f"WHERE seq > $1 AND {_STALE})", through)
        start = await conn.fetchval(f"SELECT MIN(seq) FROM audit WHERE {_PRUNABLE}", through)
        if start is None:
            return None
        previous = await _latest(conn)
        # Never anchor before an earlier checkpoint: records between the two were pruned then,
        # and the chain continues only from the later anchor.
        floor = int(previous["through_seq"]) if previous is not None else 0
        anchor = max(floor, min(through, int(start) + step_seqs - 1))
        anchor_hash = await _hash_of(conn, anchor)
        if anchor_hash is None:  # pruned before: the previous checkpoint anchored here
            if previous is None or previous["through_seq"] != anchor:
                raise RuntimeError(f"audit record {anchor} is missing and no checkpoint "
                                   "anchors the chain there; run `audit verify`")
            anchor_hash = previous["through_hash"]
        status = await conn.execute(f"DELETE FROM audit WHERE {_PRUNABLE}", anchor)
        pruned = int(status.rpartition(" ")[2])
        if forget:
            await _forget_accounts(conn, cutoff)
        kept = [(int(seq), hash_in(int(seq), text)) for seq, text in await conn.fetch(
            "SELECT seq, record FROM audit WHERE seq <= $1 ORDER BY seq", anchor)]
        statement = {"through_seq": anchor, "through_hash": anchor_hash,
                     "kept_count": len(kept), "kept_digest": kept_digest(kept),
                     "pruned_count": pruned, "cutoff": utc_rfc3339(cutoff),
                     "retention_years": retention_years, "key_id": signer.key_id}
        sealed = await host._insert_audit(  # noqa: SLF001 - the mixin's own host
            tx, [{"kind": "checkpoint", **statement, "signature": signer.sign(statement)}], now,
            {"config_version": config_version})
        return sealed[0]


async def _forget_accounts(conn: Conn, cutoff: datetime) -> None:
    """Store rows of accounts past retention, and dead letters (and queue items of no account)
    received before the cutoff."""
    for table in ("events", "attempts", "party_numbers", "invalid_numbers", "queue_items",
                  "accounts"):
        await conn.execute(f"DELETE FROM {table} WHERE {_STALE}")
    await conn.execute("DELETE FROM dead_letters WHERE received_at < $1", sortable_utc(cutoff))
    await conn.execute("DELETE FROM queue_items WHERE account_id IS NULL AND created_at < $1",
                       sortable_utc(cutoff))


def hash_in(seq: int, text: str) -> str:
    """The `hash` field of a stored record."""
    try:
        record = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise StoreError(f"audit record seq {seq} is not valid JSON; run "
                         "`dispatcher audit verify`") from None
    return str(record.get("hash")) if isinstance(record, dict) else "None"


async def _latest(conn: Conn) -> dict[str, Any] | None:
    text = await conn.fetchval(
        "SELECT record FROM audit WHERE kind = 'checkpoint' ORDER BY seq DESC LIMIT 1")
    return dict(orjson.loads(text)) if text is not None else None


async def _hash_of(conn: Conn, seq: int) -> str | None:
    text = await conn.fetchval("SELECT record FROM audit WHERE seq = $1", seq)
    return hash_in(seq, text) if text is not None else None
