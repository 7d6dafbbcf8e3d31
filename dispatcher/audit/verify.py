"""Verifying an audit log: the hash chain, and where retention pruned it, its signed checkpoint.

Pruning removes records from the front of the chain. The `checkpoint` record it appends states
`through_seq` (the last seq pruning considered), `through_hash` (that record's hash: the anchor
the rest of the chain continues from), and `kept_count` / `kept_digest` (every record at or
before `through_seq` that stays, as a digest over their seqs and hashes), signed with Ed25519.
A log verifies when the latest checkpoint's signature holds under a trusted key, the records up
to `through_seq` are each intact and exactly the kept set, and the chain after it is unbroken.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from dispatcher.audit.chain import ChainHead, ChainVerifier, record_hash
from dispatcher.audit.checkpoint import kept_digest, statement_of
from dispatcher.audit.index import IndexDisagreement, summary
from dispatcher.audit.keys import signature_valid
from dispatcher.store import VerifiableStore

# Index disagreements listed at most (each names its seq; one is enough to refuse).
INDEX_LIMIT = 100


@dataclass(frozen=True)
class LogVerification:
    """The verdict on an audit log; when broken, the first bad record and what is wrong."""

    ok: bool
    checked: int
    head: ChainHead
    bad_seq: int | None = None
    problem: str | None = None
    bad_record: str | None = None
    checkpoint: Mapping[str, Any] | None = None  # the anchor, when the log was pruned
    signed_by: str | None = None  # the trusted key id that signed it
    # Index columns beside the records that disagree with them (the chain may be intact).
    index: tuple[IndexDisagreement, ...] = ()
    chain_ok: bool = True  # False when the chain or its checkpoint is broken


class _Broken(Exception):
    def __init__(self, seq: int | None, problem: str, record: str | None = None) -> None:
        super().__init__(problem)
        self.seq, self.problem, self.record = seq, problem, record


async def verify_rows(rows: AsyncIterable[tuple[int, str]],
                      checkpoint: Mapping[str, Any] | None,
                      public_keys: Sequence[str]) -> LogVerification:
    """Check (stored seq, record JSON) rows in seq order against the latest checkpoint, if any."""
    signed_by = None
    verifier = ChainVerifier()
    checked = 0
    try:
        if checkpoint is not None:
            signed_by = _check_signature(checkpoint, public_keys)
            verifier = ChainVerifier(ChainHead(int(checkpoint["through_seq"]),
                                               str(checkpoint["through_hash"])))
        through = verifier.head.seq  # 0 without a checkpoint: nothing is before the chain
        kept: list[tuple[int, str]] = []
        kept_checked = checkpoint is None
        async for seq, text in rows:
            if seq <= through:
                kept.append((seq, _intact(seq, text)))
                checked += 1
                continue
            if checkpoint is not None and not kept_checked:
                _check_kept(checkpoint, kept)
                kept_checked = True
            _chained(verifier, seq, text)
            checked += 1
        if checkpoint is not None and not kept_checked:
            _check_kept(checkpoint, kept)
    except _Broken as broken:
        return LogVerification(False, checked, verifier.head, broken.seq, broken.problem,
                               broken.record, checkpoint, signed_by, chain_ok=False)
    return LogVerification(True, checked, verifier.head, checkpoint=checkpoint,
                           signed_by=signed_by)


def describe_anchor(result: LogVerification) -> str | None:
    """Where retention pruned the log and which checkpoint anchors it; None if never pruned."""
    checkpoint = result.checkpoint
    if checkpoint is None:
        return None
    return (f"pruned by retention up to seq {checkpoint['through_seq']} "
            f"({checkpoint['kept_count']} kept), anchored at checkpoint seq {checkpoint['seq']} "
            f"signed by {result.signed_by or checkpoint['key_id']}")


def _chained(verifier: ChainVerifier, seq: int, text: str) -> None:
    problem = verifier.feed(seq, text)
    if problem:
        raise _Broken(seq, problem, text)


def _check_signature(checkpoint: Mapping[str, Any], public_keys: Sequence[str]) -> str:
    seq = checkpoint.get("seq")
    if not public_keys:
        raise _Broken(seq, "the log was pruned at this checkpoint, and no public key is trusted "
                           "to check its signature ([retention] checkpoint_public_keys, or "
                           "--public-key)")
    signed_by = signature_valid(statement_of(checkpoint), str(checkpoint.get("signature", "")),
                                public_keys)
    if signed_by is None:
        raise _Broken(seq, f"checkpoint signature (key {checkpoint.get('key_id')}) does not "
                           "verify with any trusted public key")
    return signed_by


def _intact(seq: int, text: str) -> str:
    """The hash of a record kept before the anchor, which must match its content."""
    try:
        record = json.loads(text)
    except json.JSONDecodeError:
        raise _Broken(seq, "record is not valid JSON", text) from None
    if not isinstance(record, dict) or record.get("seq") != seq:
        raise _Broken(seq, f"record is not stored as seq {seq}", text)
    if record.get("hash") != record_hash(record):
        raise _Broken(seq, "hash does not match the record's content: it was edited", text)
    return str(record["hash"])


def _check_kept(checkpoint: Mapping[str, Any], kept: list[tuple[int, str]]) -> None:
    if len(kept) != checkpoint.get("kept_count") or kept_digest(kept) != checkpoint.get(
            "kept_digest"):
        raise _Broken(checkpoint.get("seq"), (
            f"the records at or before seq {checkpoint.get('through_seq')} are not the "
            f"{checkpoint.get('kept_count')} the checkpoint kept ({len(kept)} found): one was "
            "deleted, inserted or replaced"))


async def verify_audit_log(store: VerifiableStore,
                           public_keys: Sequence[str] = ()) -> LogVerification:
    """Check the stored log in seq order, anchored at its latest checkpoint if it was pruned,
    and the index columns beside it against the records."""
    result = await verify_rows(store.audit_rows(), await store.latest_checkpoint(), public_keys)
    found = await store.index_disagreements(INDEX_LIMIT)
    if not found:
        return result
    if not result.ok:
        return replace(result, index=tuple(found), chain_ok=False)
    return replace(result, ok=False, bad_seq=found[0].seq, problem=summary(found, INDEX_LIMIT),
                   index=tuple(found))
