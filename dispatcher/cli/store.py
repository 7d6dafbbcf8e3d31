"""The store subcommands: `store migrate`."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from dispatcher.config.settings import LoadedConfig


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser],
                common: argparse.ArgumentParser) -> None:
    """Register `store migrate`."""
    store = sub.add_parser("store", parents=[common], help="manage the store's schema")
    store_sub = store.add_subparsers(dest="store_command", required=True, metavar="ACTION")
    store_sub.add_parser("migrate", parents=[common],
                         help="apply the pending schema migrations of the configured store",
                         description="Apply the pending schema migrations of the store that "
                                     "[store] url names (SQLite or PostgreSQL), creating it if "
                                     "need be, and print the schema version before and after. "
                                     "Refuses a schema newer than this dispatcher knows.")


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
