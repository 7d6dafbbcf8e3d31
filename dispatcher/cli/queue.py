"""The work queue's subcommands: `queue list|show|resolve`, `dead-letters dismiss` and
`invalid-numbers clear` (the last two share the queue's actions)."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from typing import TYPE_CHECKING, TextIO

from dispatcher.domain.queue import Action, Reason, State

if TYPE_CHECKING:
    from dispatcher.config.settings import LoadedConfig
    from dispatcher.domain.queue import QueueItem


# How many items `queue list` prints unless told otherwise: a flood of dead letters may queue
# a great many.
DEFAULT_LIMIT = 1000


def _limit(text: str) -> int:
    value = int(text) if text.isascii() and text.isdigit() else -1
    if not 0 <= value <= 10_000_000:
        raise argparse.ArgumentTypeError("a whole number from 0 (all) to 10000000")
    return value


def _by(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--by", metavar="WHO", required=True,
                        help="who acts (kept in the audit log)")


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser],
                common: argparse.ArgumentParser) -> None:
    """Register `queue` and its actions."""
    queue = sub.add_parser("queue", parents=[common], help="the work queue for people")
    queue_sub = queue.add_subparsers(dest="queue_command", required=True, metavar="ACTION")
    listing = queue_sub.add_parser("list", parents=[common], help="items, oldest first")
    listing.add_argument("--reason", choices=[r.value for r in Reason])
    listing.add_argument("--account", metavar="ID")
    listing.add_argument("--state", choices=("open", "resolved", "all"), default="open")
    listing.add_argument("--format", choices=("table", "jsonl"), default="table")
    listing.add_argument("--limit", type=_limit, default=DEFAULT_LIMIT, metavar="N",
                         help=f"at most N items, oldest first (default {DEFAULT_LIMIT}; 0: all)")
    show = queue_sub.add_parser("show", parents=[common], help="one item in full")
    show.add_argument("id", type=int, metavar="ID")
    resolve = queue_sub.add_parser("resolve", parents=[common],
                                   help="resolve an item with one of its allowed actions")
    resolve.add_argument("id", type=int, metavar="ID")
    resolve.add_argument("--action", required=True, metavar="ACTION",
                         help=f"one of {', '.join(a.value for a in Action)}")
    resolve.add_argument("--hold", metavar="REASON", help="the hold reason of --action hold")
    resolve.add_argument("--number", metavar="E164",
                         help="the number an action on a number applies to, when the item "
                              "names none")
    resolve.add_argument("--note", required=True, metavar="TEXT", help="why")
    _by(resolve)


def add_dead_letter_parser(dead_sub: argparse._SubParsersAction[argparse.ArgumentParser],
                           common: argparse.ArgumentParser) -> None:
    """Register `dead-letters dismiss`."""
    dismiss = dead_sub.add_parser("dismiss", parents=[common],
                                  help="dismiss a dead letter (no longer listed by default)")
    dismiss.add_argument("id", type=int, metavar="ID")
    dismiss.add_argument("--reason", required=True, metavar="TEXT", help="why")
    _by(dismiss)


def add_invalid_parser(invalid: argparse.ArgumentParser,
                       common: argparse.ArgumentParser) -> None:
    """Register `invalid-numbers clear`."""
    invalid_sub = invalid.add_subparsers(dest="invalid_command", metavar="ACTION")
    clear = invalid_sub.add_parser("clear", parents=[common],
                                   help="clear a number's invalid mark (contact may resume)")
    clear.add_argument("number", metavar="NUMBER")
    clear.add_argument("--note", required=True, metavar="TEXT", help="why")
    _by(clear)


def _table_line(item: QueueItem) -> str:
    from dispatcher.domain.phones import mask_number, mask_numbers_in

    number = mask_number(item.number) if item.number else "-"
    text = mask_numbers_in(item.excerpt or item.detail)
    return (f"{item.id:>6}  {item.created_at[:19]:19}  {item.state.value:8}  "
            f"{item.reason.value:18}  {(item.account_id or '-')[:20]:20}  {number:16}  "
            f"{text[:60]}")


async def cmd_list(config: LoadedConfig, args: argparse.Namespace, out: TextIO) -> int:
    """List items."""
    from dispatcher.audit.chain import canonical_json
    from dispatcher.queue.items import list_items
    from dispatcher.store import open_store

    state = None if args.state == "all" else State(args.state)
    async with open_store(config.store_location, create=False) as store:
        # One more than asked for: whether there are more to say so.
        items = await list_items(store, state=state,
                                 reason=Reason(args.reason) if args.reason else None,
                                 account_id=args.account,
                                 limit=args.limit + 1 if args.limit else None)
    truncated = bool(args.limit) and len(items) > args.limit
    items = items[:args.limit] if truncated else items
    more = (f"TRUNCATED: the oldest {len(items)} item(s) are listed and more match; "
            f"raise --limit or filter by --reason or --account\n")
    if args.format == "jsonl":
        for item in items:
            out.write(canonical_json(item.as_dict()) + "\n")
        if truncated:
            sys.stderr.write(more)  # stdout stays one item per line
        return 0
    out.write(f"{'ID':>6}  {'CREATED (UTC)':19}  {'STATE':8}  {'REASON':18}  {'ACCOUNT':20}  "
              f"{'NUMBER':16}  EXCERPT\n")
    for item in items:
        out.write(_table_line(item) + "\n")
    out.write(more if truncated else f"{len(items)} item(s)\n")
    return 0


async def cmd_show(config: LoadedConfig, args: argparse.Namespace, out: TextIO) -> int:
    """Show one item in full (numbers masked)."""
    from dispatcher.domain.phones import mask_number, mask_numbers_in
    from dispatcher.errors import QueueError
    from dispatcher.store import open_store

    async with open_store(config.store_location, create=False) as store:
        item = await store.queue_item(args.id)
    if item is None:
        raise QueueError(f"no queue item with id {args.id}")
    shown = item.as_dict()
    shown["number"] = mask_number(item.number) if item.number else None
    for name in ("excerpt", "detail", "note"):
        if shown[name]:
            shown[name] = mask_numbers_in(str(shown[name]))
    for name, value in shown.items():
        text = (", ".join(value) or "-") if isinstance(value, list) else value
        out.write(f"{name + ':':13} {'-' if text is None else text}\n")
    return 0


async def cmd_resolve(config: LoadedConfig, args: argparse.Namespace, out: TextIO,
                      now: datetime) -> int:
    """Resolve one item."""
    from dispatcher.queue.actions import resolve
    from dispatcher.store import open_store

    async with open_store(config.store_location, create=False) as store:
        records = await resolve(store, args.id, args.action, note=args.note, actor=args.by,
                                now=now, hold=args.hold, number=args.number,
                                config_version=config.version)
    out.write(f"queue item {args.id} resolved: {args.action} ({len(records)} audit record(s))\n")
    return 0


async def cmd_dismiss(config: LoadedConfig, args: argparse.Namespace, out: TextIO,
                      now: datetime) -> int:
    """Dismiss a dead letter."""
    from dispatcher.queue.actions import dismiss_dead_letter
    from dispatcher.store import open_store

    async with open_store(config.store_location, create=False) as store:
        await dismiss_dead_letter(store, args.id, note=args.reason, actor=args.by, now=now,
                                  config_version=config.version)
    out.write(f"dead letter {args.id} dismissed\n")
    return 0


async def cmd_clear_invalid(config: LoadedConfig, args: argparse.Namespace, out: TextIO,
                            now: datetime) -> int:
    """Clear an invalid-number mark."""
    from dispatcher.domain.phones import mask_number
    from dispatcher.queue.actions import clear_invalid
    from dispatcher.store import open_store

    async with open_store(config.store_location, create=False) as store:
        await clear_invalid(store, args.number, note=args.note, actor=args.by, now=now,
                            config_version=config.version)
    out.write(f"invalid mark of {mask_number(args.number)} cleared\n")
    return 0


async def run(config: LoadedConfig, args: argparse.Namespace, out: TextIO,
              now: datetime) -> int:
    """Run `queue ACTION`."""
    if args.queue_command == "list":
        return await cmd_list(config, args, out)
    if args.queue_command == "show":
        return await cmd_show(config, args, out)
    return await cmd_resolve(config, args, out, now)
