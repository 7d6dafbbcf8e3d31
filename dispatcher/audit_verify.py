"""Verifying the whole stored audit log: the hash chain, and where it was pruned, its checkpoint."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from dispatcher.audit import ChainHead, ChainVerifier
from dispatcher.store.sqlite import SqliteStore


@dataclass(frozen=True)
class LogVerification:
    """The verdict on a stored audit log; when broken, the first bad record and what is wrong."""

    ok: bool
    checked: int
    head: ChainHead
    bad_seq: int | None = None
    problem: str | None = None
    bad_record: str | None = None


async def verify_audit_log(store: SqliteStore,
                           public_keys: Sequence[str] = ()) -> LogVerification:
    """Check every stored record in seq order; stop at the first bad one."""
    verifier = ChainVerifier()
    async for seq, text in store.audit_rows():
        problem = verifier.feed(seq, text)
        if problem:
            return LogVerification(False, verifier.checked, verifier.head, seq, problem, text)
    return LogVerification(True, verifier.checked, verifier.head)
