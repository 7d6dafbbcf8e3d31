"""The store subcommands: `store migrate` and `store copy`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from dispatcher.config.settings import LoadedConfig
    from dispatcher.store import CopyResult

EXIT_OK, EXIT_PROBLEM = 0, 1


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser],
                common: argparse.ArgumentParser) -> None:
    """Register `store migrate` and `store copy`."""
    store = sub.add_parser("store", parents=[common], help="manage the store's schema and data")
    store_sub = store.add_subparsers(dest="store_command", required=True, metavar="ACTION")
    store_sub.add_parser("migrate", parents=[common],
                         help="apply the pending schema migrations of the configured store",
                         description="Apply the pending schema migrations of the store that "
                                     "[store] url names (SQLite or PostgreSQL), creating it if "
                                     "need be, and print the schema version before and after. "
                                     "Refuses a schema newer than this dispatcher knows.")
    copy = store_sub.add_parser(
        "copy", parents=[common], help="copy a SQLite store into an empty PostgreSQL store",
        description="Copy everything a SQLite store holds (events, accounts, attempts, dead "
                    "letters, opt-outs, the audit log with its seqs and hashes, ...) into an "
                    "empty PostgreSQL store, migrating it first, in one transaction that "
                    "commits only when every table's row count and the audit chain's head "
                    "equal the source's. Stop the daemon first: a SQLite store another process "
                    "has open is refused. Needs no config.")
    copy.add_argument("--from", dest="source", required=True, metavar="SQLITE",
                      help="the SQLite store: sqlite://PATH, or a path")
    copy.add_argument("--to", dest="target", required=True, metavar="URL",
                      help="the PostgreSQL store: postgresql://user@host:port/database "
                           "(no password: PGPASSWORD or ~/.pgpass)")
    copy.add_argument("--head-file", type=Path, metavar="JSONL",
                      help="signed heads to check the copy against (default: the SQLite "
                           "store's, PATH.heads.jsonl, when there is one)")
    copy.add_argument("--public-key", action="append", default=[], metavar="BASE64",
                      help="trust this key to check the heads' signatures (repeatable)")
    copy.add_argument("--batch-rows", type=int, metavar="N",
                      help="rows read and written at once (default 5000)")


async def migrate(config: LoadedConfig, out: TextIO) -> int:
    """Apply pending migrations; print the store and its schema version before and after."""
    from dispatcher.store import describe_store, migrate_store

    before, after = await migrate_store(config.store_location)
    print(f"store: {describe_store(config.store_location)}", file=out)
    if before == after:
        print(f"schema version {after}: up to date", file=out)
    else:
        print(f"schema version {before} -> {after}: {after - before} migration(s) applied",
              file=out)
    return 0


async def copy(args: argparse.Namespace, out: TextIO) -> int:
    """Copy a SQLite store into an empty PostgreSQL one; print rows per table and the check,
    then check the source's signed heads against the copy."""
    from dispatcher.store import copy_store, describe_store

    source, target = _source(args.source), _target(args.target)
    if args.batch_rows is not None and args.batch_rows < 1:
        raise ValueError("--batch-rows: give at least 1")
    print(f"from: {describe_store(source)}", file=out)
    print(f"to: {describe_store(target)}", file=out, flush=True)

    def progress(table: str, rows: int) -> None:
        print(f"{table}: {rows} row(s)", file=out, flush=True)

    result = await copy_store(source, target, batch_rows=args.batch_rows, progress=progress)
    _summary(result, out)
    heads = args.head_file or source.with_name(f"{source.name}.heads.jsonl")
    ok = await _check_heads(target, heads, args.public_key, given=args.head_file is not None,
                            out=out)
    print("next: `dispatcher audit verify` with [store] url set to the copy and the heads file "
          "in place (docs/postgresql.md, \"Moving from SQLite\")", file=out)
    return EXIT_OK if ok else EXIT_PROBLEM


def _source(text: str) -> Path:
    """The SQLite file that --from names."""
    from dispatcher.config.settings import sqlite_path_part
    from dispatcher.store import is_postgres_url

    if is_postgres_url(text):
        raise ValueError("--from: the source is a SQLite store (sqlite://PATH or a path)")
    return Path(sqlite_path_part(text) if text.startswith("sqlite:") else text)


def _target(text: str) -> str:
    """The PostgreSQL URL that --to names; refused with a password in it, as in the config."""
    from dispatcher.store import is_postgres_url

    if not is_postgres_url(text):
        raise ValueError("--to: the target is a PostgreSQL store (postgresql://...)")
    if urlsplit(text).password is not None:
        raise ValueError("--to: a password in the store url is refused: give it in the "
                         "environment (PGPASSWORD) or in a passfile (~/.pgpass)")
    return text


def _summary(result: CopyResult, out: TextIO) -> None:
    version = (f"{result.version_after}" if result.version_before == result.version_after
               else f"{result.version_before} -> {result.version_after}")
    print(f"schema version of the copy: {version}", file=out)
    print(f"check: row counts equal in {len(result.rows)} tables "
          f"({sum(result.rows.values())} rows); audit head equal: seq {result.head.seq}, "
          f"hash {result.head.hash}", file=out)
    print("committed", file=out)


def _heads_at(path: Path, *, given: bool) -> list[dict[str, Any]] | None:
    """The heads in the file; None when the default one does not exist."""
    from dispatcher.audit.heads import read_heads

    return read_heads(path) if given or path.exists() else None


async def _check_heads(target: str, path: Path, keys: list[str], *, given: bool,
                       out: TextIO) -> bool:
    """Check the signed heads at `path` against the copy, as `audit verify` does."""
    from dispatcher.audit.heads import check_heads, heads_to_look_up
    from dispatcher.store import open_store

    heads = _heads_at(path, given=given)
    if heads is None:
        print(f"heads: none at {path} (give --head-file if [audit] head_file names another)",
              file=out)
        return True
    async with open_store(target, create=False) as store:
        hashes = await store.audit_hashes(heads_to_look_up(heads))
        last_seq = (await store.audit_head()).seq
        checkpoint = await store.latest_checkpoint()
    check = check_heads(heads, hashes, last_seq, checkpoint, keys)
    print(f"heads (from {path}) against the copy: {'OK' if check.ok else 'BROKEN'}: "
          f"{'; '.join(check.notes)}", file=out)
    for problem in check.problems:
        print(f"BROKEN: {problem}", file=out)
    if not check.ok:
        print("the copy equals the source, so the source fails these heads too: see "
              "`dispatcher audit verify` on it", file=out)
    return check.ok
