"""A retention checkpoint's signed statement and its digest of the records kept before it.

Pure functions shared by the store that writes checkpoints and the verifier that checks them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

# The fields of a checkpoint record that its signature covers.
STATEMENT_FIELDS = ("through_seq", "through_hash", "kept_count", "kept_digest", "pruned_count",
                    "cutoff", "retention_years", "key_id")


def kept_digest(rows: Iterable[tuple[int, str]]) -> str:
    """SHA-256 over `seq:hash` lines of the records kept at or before a checkpoint."""
    digest = hashlib.sha256()
    for seq, record_hash_ in rows:
        digest.update(f"{seq}:{record_hash_}\n".encode())
    return digest.hexdigest()


def statement_of(checkpoint: Mapping[str, Any]) -> dict[str, Any]:
    """What a checkpoint's signature was made over."""
    return {name: checkpoint.get(name) for name in STATEMENT_FIELDS}
