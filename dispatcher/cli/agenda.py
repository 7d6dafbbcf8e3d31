"""`dispatcher agenda`: the attempts the engine has planned in a time range, across accounts."""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from dispatcher.config.settings import LoadedConfig

DEFAULT_SPAN = timedelta(hours=24)
# dispatcher.contact.agenda.DEFAULT_LIMIT, written out: parsing imports nothing heavy.
DEFAULT_LIMIT = 1000


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser],
                common: argparse.ArgumentParser,
                parse_time: Callable[[str], datetime]) -> None:
    """Register `agenda`."""
    agenda = sub.add_parser(
        "agenda", parents=[common], help="the next planned attempts across accounts",
        description="List the attempts the engine has planned in [--from, --to) (default: the "
                    "next 24 hours), soonest first: the stored plans `explain` shows, with "
                    "local and UTC time, party, channel, masked number, stage and rule.")
    agenda.add_argument("--from", dest="since", type=parse_time, metavar="ISO",
                        help="inclusive (default: now)")
    agenda.add_argument("--to", dest="until", type=parse_time, metavar="ISO",
                        help="exclusive (default: 24 hours after --from)")
    agenda.add_argument("--account", metavar="ID")
    agenda.add_argument("--channel", choices=("call", "sms"))
    agenda.add_argument("--stage", metavar="NAME", help="a stage of the schedule")
    agenda.add_argument("--party", choices=("debtor", "third_party"))
    agenda.add_argument("--format", choices=("table", "jsonl", "csv"), default="table")
    agenda.add_argument("--limit", type=int, default=DEFAULT_LIMIT, metavar="N",
                        help=f"at most N rows (default {DEFAULT_LIMIT}); the output says when "
                             "more are planned")


async def run(config: LoadedConfig, args: argparse.Namespace, out: TextIO,
              now: datetime) -> int:
    """Print the agenda in the chosen format."""
    from dispatcher.audit.chain import canonical_json
    from dispatcher.contact.agenda import FIELDS, csv_cells, read_agenda, summary, table
    from dispatcher.store import AgendaQuery, open_store

    since = args.since or now
    until = args.until or since + DEFAULT_SPAN
    if args.limit < 1:
        raise ValueError("--limit must be at least 1")
    if until <= since:
        raise ValueError("--to must come after --from")
    stages = [s.name for s in config.schedule.stages]
    if args.stage is not None and args.stage not in stages:
        raise ValueError(f"--stage: no stage {args.stage!r} in the schedule (its stages: "
                         f"{', '.join(stages)})")
    query = AgendaQuery(since, until, args.limit, args.account, args.channel, args.stage,
                        args.party)
    async with open_store(config.store_location, create=False) as store:
        agenda = await read_agenda(store, query)
    if args.format == "table":
        for line in table(agenda):
            out.write(line + "\n")
        return 0
    if args.format == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(FIELDS)
        writer.writerows(csv_cells(row) for row in agenda.rows)
    else:
        for row in agenda.rows:
            out.write(canonical_json(row.as_dict()) + "\n")
    if agenda.truncated:
        # Beside the data, not in it: a machine reading the rows gets rows only.
        print(f"dispatcher agenda: {summary(agenda)}", file=sys.stderr)
    return 0
