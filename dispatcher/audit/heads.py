"""Signed heads of the audit chain, kept outside the database, and checking a log against them.

A hash chain shows edits, insertions and deletions inside it, but not records cut from its end.
A head states `head_seq` and `head_hash` of the chain's newest record and when it was signed
(`signed_at`), signed with the checkpoint key (Ed25519) when the daemon has one. (Not `seq` and
`hash`: a consumer of `<out_prefix>/#` must never take a head for the record it names.)
A log is shorter than a head that names a seq it lacks, and was rewritten when its record at
that seq has another hash.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from dispatcher.audit.chain import ChainHead, canonical_json
from dispatcher.audit.keys import CheckpointSigner, signature_valid
from dispatcher.domain.clock import utc_rfc3339

HEAD_KIND = "audit_head"
# The fields a head's signature covers.
HEAD_FIELDS = ("head_seq", "head_hash", "signed_at", "key_id")
# Account ids are one topic level without '/', so two levels can never be an account's topic.
HEAD_TOPIC_SUFFIX = "_audit/head"


def head_topic(out_prefix: str) -> str:
    """Where the latest head is retained: `<out_prefix>/_audit/head`."""
    return f"{out_prefix}/{HEAD_TOPIC_SUFFIX}"


def signed_head(head: ChainHead, at: datetime, signer: CheckpointSigner | None) -> dict[str, Any]:
    """The head as written to the file and the broker; unsigned without a signer."""
    statement = {"head_seq": head.seq, "head_hash": head.hash, "signed_at": utc_rfc3339(at),
                 "key_id": signer.key_id if signer else None}
    return {"kind": HEAD_KIND, **statement,
            "signature": signer.sign(statement) if signer else None}


def write_head(path: Path, head: Mapping[str, Any], keep: int) -> None:
    """Add `head` to the JSONL file at `path`, keeping its newest `keep` lines; the file is
    replaced atomically, so a crash leaves the old one or the new one, never half a line."""
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    lines = [line for line in lines if line.strip()][-(keep - 1):] if keep > 1 else []
    lines.append(canonical_json(head))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def read_heads(path: Path) -> list[dict[str, Any]]:
    """The heads in a head file, oldest first; ValueError naming the line of a bad one."""
    heads = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            heads.append(parse_head(line, f"{path}:{number}"))
    return heads


def parse_head(text: str, where: str = "--head") -> dict[str, Any]:
    """One head from its JSON; ValueError saying what is wrong."""
    try:
        head = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{where}: not JSON: {exc}") from None
    if not (isinstance(head, dict) and isinstance(head.get("head_seq"), int)
            and isinstance(head.get("head_hash"), str)):
        what = "needs an integer head_seq and a head_hash"
        raise ValueError(f"{where}: not an audit head ({what})")  # noqa: TRY004 - bad input
    return head


@dataclass(frozen=True)
class HeadCheck:
    """The verdict of a log against heads: problems (any makes it fail) and notes."""

    problems: tuple[str, ...]
    notes: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """Whether the log holds every head."""
        return not self.problems


def heads_to_look_up(heads: Sequence[Mapping[str, Any]]) -> set[int]:
    """The seqs whose hashes `check_heads` needs."""
    return {int(h["head_seq"]) for h in heads}


def check_heads(heads: Sequence[Mapping[str, Any]], hashes: Mapping[int, str], last_seq: int,
                checkpoint: Mapping[str, Any] | None,
                public_keys: Sequence[str]) -> HeadCheck:
    """Check a log (its last seq, and the hashes at the heads' seqs) against `heads`."""
    problems: list[str] = []
    seen = {"unsigned": 0, "unchecked": 0, "pruned": 0}
    for head in heads:
        name = f"the head signed at {head.get('signed_at')} (seq {head['head_seq']})"
        trust = _signature(head, public_keys)
        if trust == "forged":
            problems.append(f"{name}: its signature (key {head.get('key_id')}) does not verify "
                            "with any trusted public key: it was forged or altered")
            continue
        if trust != "signed":
            seen[trust] += 1
        problem = _against_log(head, hashes, last_seq, checkpoint)
        if problem == "pruned":
            seen["pruned"] += 1
        elif problem:
            problems.append(f"{name}: {problem}")
    notes = [f"{len(heads)} head(s) checked, the latest at seq "
             f"{max((int(h['head_seq']) for h in heads), default=0)}"]
    if seen["unsigned"]:
        notes.append(f"{seen['unsigned']} head(s) are unsigned (the daemon had no signing key): "
                     "they show records cut from the end, but anyone who can write where they "
                     "are kept could have written them")
    if seen["unchecked"]:
        notes.append(f"{seen['unchecked']} signed head(s) checked as unsigned: no public key is "
                     "trusted to check their signatures (--public-key)")
    if seen["pruned"]:
        notes.append(f"{seen['pruned']} head(s) name records retention has since pruned")
    return HeadCheck(tuple(problems), tuple(notes))


def _signature(head: Mapping[str, Any], public_keys: Sequence[str]) -> str:
    """'signed' (by a trusted key), 'unsigned', 'unchecked' (no trusted key) or 'forged'."""
    signature = head.get("signature")
    if not signature:
        return "unsigned"
    if not public_keys:
        return "unchecked"
    statement = {field: head.get(field) for field in HEAD_FIELDS}
    return "signed" if signature_valid(statement, str(signature), public_keys) else "forged"


def _against_log(head: Mapping[str, Any], hashes: Mapping[int, str], last_seq: int,
                 checkpoint: Mapping[str, Any] | None) -> str | None:
    """What is wrong with the log against one head; 'pruned' when its record is gone by
    retention; None when the log holds it."""
    seq, stated = int(head["head_seq"]), head.get("head_hash")
    through = int(checkpoint["through_seq"]) if checkpoint else 0
    if seq > last_seq:
        return (f"the log ends at seq {last_seq}, {seq - last_seq} record(s) short of it: "
                "records were removed from its end")
    if seq in hashes:
        if hashes[seq] != stated:
            return (f"the record at seq {seq} has hash {hashes[seq]}, the head says {stated}: "
                    "the log was rewritten")
        return None
    if checkpoint is not None and seq == through:
        return None if checkpoint.get("through_hash") == stated else (
            f"the retention anchor at seq {seq} has another hash: the log was rewritten")
    if seq <= through:
        return "pruned"
    return f"the log has no record at seq {seq}"
