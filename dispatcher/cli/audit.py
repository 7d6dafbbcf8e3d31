"""`audit verify`, `audit prune` and `audit keygen`: the audit log's integrity and retention."""

from __future__ import annotations

import argparse
import json
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from dispatcher.audit.keys import KEY_VARIABLE, CheckpointSigner, new_private_key
from dispatcher.domain.clock import SystemClock

if TYPE_CHECKING:
    from dispatcher.audit.verify import LogVerification
    from dispatcher.config.settings import LoadedConfig

EXIT_OK, EXIT_PROBLEM = 0, 1


def add_parsers(audit_sub: Any, common: argparse.ArgumentParser) -> None:
    """Add verify, prune and keygen under `dispatcher audit`."""
    verify = audit_sub.add_parser(
        "verify", parents=[common],
        help="check the hash chain (and, after pruning, its signed checkpoint)")
    verify.add_argument("--file", type=Path, metavar="JSONL",
                        help="verify an unfiltered `audit export` file instead of the store")
    verify.add_argument("--public-key", action="append", default=[], metavar="BASE64",
                        help="also trust this checkpoint key (repeatable)")
    verify.add_argument("--head-file", action="append", default=[], type=Path, metavar="JSONL",
                        help="check the log against the signed heads in this file (default: "
                             "the daemon's head file, when there is one; repeatable)")
    verify.add_argument("--head", action="append", default=[], metavar="JSON",
                        help="check the log against this head, e.g. the message retained on "
                             "<out_prefix>/_audit/head (repeatable)")
    prune = audit_sub.add_parser(
        "prune", parents=[common],
        help="remove records past the profile's retention now (the daemon does it daily)")
    prune.add_argument("--dry-run", action="store_true", help="only count what is due")
    audit_sub.add_parser("keygen", parents=[common],
                         help=f"print a new checkpoint signing key ({KEY_VARIABLE})")


def keygen(out: TextIO) -> int:
    """Print a new private key for the environment and its public key for the config."""
    private = new_private_key()
    public = CheckpointSigner.from_text(private).public_key
    print(f"# Keep secret; give the daemon (and only it) this environment variable:\n"
          f"{KEY_VARIABLE}={private}\n"
          f"# Publish; list it in [retention] checkpoint_public_keys (and give it to reviewers):\n"
          f'checkpoint_public_keys = ["{public}"]', file=out)
    return EXIT_OK


async def verify(config: LoadedConfig, args: argparse.Namespace, out: TextIO) -> int:
    """Verify the store's log, or an exported file; exit 1 naming the first bad record."""
    from dispatcher.audit.heads import check_heads, heads_to_look_up
    from dispatcher.audit.verify import verify_audit_log, verify_rows
    from dispatcher.store import open_store

    keys = [*config.settings.retention.checkpoint_public_keys, *args.public_key]
    heads, source = _heads(config, args)
    if args.file is not None:
        checkpoint = _last_checkpoint(args.file)
        result = await verify_rows(_file_rows(args.file), checkpoint, keys)
        hashes, last_seq = _file_hashes(args.file, heads_to_look_up(heads))
    else:
        async with open_store(config.store_location, create=False) as store:
            result = await verify_audit_log(store, keys)
            checkpoint = await store.latest_checkpoint()
            hashes = await store.audit_hashes(heads_to_look_up(heads))
            last_seq = (await store.audit_head()).seq
    print(verdict(result), file=out)
    for found in result.index:
        print(found.describe(), file=out)
    if result.bad_record is not None:
        print(f"record: {result.bad_record}", file=out)
    if not heads:
        print(f"heads: none {source}: records cut from the end of the log cannot be detected",
              file=out)
        return EXIT_OK if result.ok else EXIT_PROBLEM
    check = check_heads(heads, hashes, last_seq, checkpoint, keys)
    print(f"heads ({source}): {'OK' if check.ok else 'BROKEN'}: {'; '.join(check.notes)}",
          file=out)
    for problem in check.problems:
        print(f"BROKEN: {problem}", file=out)
    return EXIT_OK if result.ok and check.ok else EXIT_PROBLEM


def _heads(config: LoadedConfig, args: argparse.Namespace) -> tuple[list[dict[str, Any]], str]:
    """The heads to check the log against, and where they came from."""
    from dispatcher.audit.heads import parse_head, read_heads

    if args.head or args.head_file:
        heads = [parse_head(text) for text in args.head]
        for path in args.head_file:
            heads += read_heads(path)
        return heads, "given"
    if config.head_file.exists():
        return read_heads(config.head_file), f"from {config.head_file}"
    return [], f"at {config.head_file}"


def _file_hashes(path: Path, seqs: set[int]) -> tuple[dict[int, str], int]:
    """The hashes at `seqs` in an exported file, and its last seq."""
    hashes, last = {}, 0
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            if not line.strip():
                continue
            record = json.loads(line)
            last = max(last, int(record["seq"]))
            if record["seq"] in seqs:
                hashes[int(record["seq"])] = str(record.get("hash"))
    return hashes, last


def verdict(result: LogVerification) -> str:
    """The one-line result of a verification, naming the anchor of a pruned log."""
    from dispatcher.audit.verify import describe_anchor

    if not result.ok and result.chain_ok:
        return (f"BROKEN: {len(result.index)} index disagreement(s): the columns beside the "
                "records that export, the report and retention select by were edited; the "
                f"hash chain itself is intact ({result.checked} records, head seq "
                f"{result.head.seq})")
    if not result.ok:
        return (f"BROKEN at seq {result.bad_seq}: {result.problem} "
                f"({result.checked} records before it are intact)")
    anchor = describe_anchor(result)
    anchor = f"; {anchor}" if anchor else ""
    return (f"OK: {result.checked} records, hash chain intact{anchor} "
            f"(head seq {result.head.seq}, hash {result.head.hash})")


async def prune(config: LoadedConfig, args: argparse.Namespace, out: TextIO,
                environ: Mapping[str, str]) -> int:
    """Run the retention job once, as the daemon's daily job does."""
    from dispatcher.audit.retention import describe, run_retention
    from dispatcher.store import open_store

    async with open_store(config.store_location, create=False) as store:
        result = await run_retention(store, config, environ, SystemClock().now(),
                                     dry_run=args.dry_run)
    if result.refused:
        print(f"{result.refused}; nothing pruned (`dispatcher audit verify` lists the "
              "problem)", file=out)
        return EXIT_PROBLEM
    if result.due and not args.dry_run and not result.checkpoints:
        print(f"{result.due} records are past retention; nothing pruned: set {KEY_VARIABLE} "
              "(see `dispatcher audit keygen`)", file=out)
        return EXIT_PROBLEM
    print(describe(result, dry_run=args.dry_run), file=out)
    return EXIT_OK


async def _file_rows(path: Path) -> AsyncIterator[tuple[int, str]]:
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if line.strip():
                yield _seq_of(line, path, number), line


def _seq_of(line: str, path: Path, number: int) -> int:
    try:
        return int(json.loads(line)["seq"])
    except (json.JSONDecodeError, TypeError, KeyError, ValueError):
        raise ValueError(f"{path}:{number}: not an audit record (no seq)") from None


def _last_checkpoint(path: Path) -> dict[str, Any] | None:
    found = None
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            if '"checkpoint"' in line:
                record = json.loads(line)
                if record.get("kind") == "checkpoint":
                    found = record
    return found
