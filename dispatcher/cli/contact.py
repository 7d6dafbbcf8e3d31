"""The contact subcommands: `simulate`, `explain`, `answer-rates`, `invalid-numbers`, and the
running of `agenda` and `templates` (their own modules in dispatcher.cli)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from dispatcher.cli.queue import add_invalid_parser

if TYPE_CHECKING:
    from dispatcher.config.settings import LoadedConfig


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser],
                common: argparse.ArgumentParser,
                parse_time: Callable[[str], datetime]) -> None:
    """Register `simulate`, `explain`, `answer-rates` and `invalid-numbers`."""
    simulate = sub.add_parser("simulate", parents=[common],
                              help="run the engine on a virtual clock with the sandbox channel")
    simulate.add_argument("--events", required=True, type=Path, metavar="FILE",
                          help="JSONL file of events, delivered at their occurred_at")
    simulate.add_argument("--start", required=True, type=parse_time, metavar="ISO",
                          help="virtual start time (RFC 3339 with offset, or a date = 00:00Z)")
    simulate.add_argument("--days", required=True, type=int, metavar="N")
    simulate.add_argument("--outcomes", type=Path, metavar="FILE",
                          help="scripted outcomes (JSON; see docs/simulate.md)")
    simulate.add_argument("--format", choices=("jsonl", "table"), default="jsonl")
    simulate.add_argument("--store", type=Path, metavar="PATH",
                          help="keep the simulation's store as a SQLite file at PATH (for "
                               "report, agenda and the like through [store] url)")
    simulate.add_argument("--force", action="store_true",
                          help="with --store: replace a file already at PATH")
    explaining = sub.add_parser("explain", parents=[common],
                                help="an account's state, counters and next planned attempt")
    explaining.add_argument("--account", required=True, metavar="ID")
    explaining.add_argument("--at", type=parse_time, metavar="ISO",
                            help="decide as of this instant (default: now)")
    rates = sub.add_parser("answer-rates", parents=[common],
                           help="the answer model the planner ranks slots by: rates by the "
                                "debtor's local weekday and hour")
    rates.add_argument("--format", choices=("table", "json"), default="table")
    invalid = sub.add_parser("invalid-numbers", parents=[common],
                             help="numbers the provider reported invalid, for the data team")
    invalid.add_argument("--format", choices=("table", "jsonl"), default="table")
    add_invalid_parser(invalid, common)


async def cmd_simulate(config: LoadedConfig, args: argparse.Namespace, out: TextIO) -> int:
    """Run a simulation and print the audit records it produced."""
    from channels.sandbox import OutcomeScript, load_outcome_script
    from dispatcher.contact.simulate import check_keep, output_lines, simulated

    if args.days < 1:
        raise ValueError("--days must be at least 1")
    if not args.events.is_file():
        raise FileNotFoundError(f"--events: no file {args.events}")
    if args.force and args.store is None:
        raise ValueError("--force goes with --store")
    if args.store is not None:
        check_keep(args.store, force=args.force)
    script = load_outcome_script(args.outcomes) if args.outcomes else OutcomeScript.empty()
    # Printed as read from the simulation's store: a long run's records are never all held.
    async with simulated(config, args.events, args.start, args.days, script,
                         keep=args.store) as run:
        async for line in output_lines(run, args.format):
            out.write(line + "\n")
    return 0


async def cmd_invalid_numbers(config: LoadedConfig, args: argparse.Namespace,
                              out: TextIO) -> int:
    """List the numbers found invalid, with the account and the attempt that found out."""
    from dispatcher.audit.chain import canonical_json
    from dispatcher.store import open_store

    async with open_store(config.store_location, create=False) as store:
        rows = await store.invalid_numbers()
    if args.format == "jsonl":
        for row in rows:
            out.write(canonical_json(row) + "\n")
        return 0
    out.write(f"{'NUMBER':16} {'ACCOUNT':14} {'MARKED (UTC)':28} {'ATTEMPT':28} DETAIL\n")
    for row in rows:
        out.write(f"{row['number']:16} {row['account_id']:14} {row['marked_at']:28} "
                  f"{row['attempt_id']:28} {row['detail']}\n")
    out.write(f"{len(rows)} invalid number(s)\n")
    return 0


async def cmd_explain(config: LoadedConfig, args: argparse.Namespace, out: TextIO,
                      now: datetime) -> int:
    """Print why the account will or will not be contacted next."""
    from dispatcher.contact.explain import explain
    from dispatcher.store import open_store

    async with open_store(config.store_location, create=False) as store:
        text, found = await explain(store, config, args.account, args.at or now)
    out.write(text)
    return 0 if found else 1


async def cmd_answer_rates(config: LoadedConfig, args: argparse.Namespace, out: TextIO) -> int:
    """Print the answer model in force (the prior when nothing was learned or learning is off)."""
    from dispatcher.contact.learning import stored_model
    from dispatcher.store import open_store

    async with open_store(config.store_location, create=False) as store:
        model = await stored_model(store, config.settings.planner)
    if args.format == "json":
        out.write(model.to_json() + "\n")
        return 0
    if not config.settings.planner.learning:
        out.write("learning is off ([planner] learning = false): slots are ranked by the prior "
                  "and each debtor's own calls\n")
    for line in model.table():
        out.write(line + "\n")
    return 0


COMMANDS = ("simulate", "explain", "answer-rates", "invalid-numbers", "agenda", "templates")


async def run(config: LoadedConfig, args: argparse.Namespace, out: TextIO,
              now: datetime) -> int:
    """Run the contact subcommand `args.command`."""
    if args.command == "simulate":
        return await cmd_simulate(config, args, out)
    if args.command == "explain":
        return await cmd_explain(config, args, out, now)
    if args.command == "answer-rates":
        return await cmd_answer_rates(config, args, out)
    if args.command == "agenda":
        from dispatcher.cli import agenda

        return await agenda.run(config, args, out, now)
    if args.command == "templates":
        from dispatcher.cli import templates

        return await templates.run(config, args, out, now)
    return await cmd_invalid_numbers(config, args, out)
