"""The `dispatcher` command: parse arguments, load settings, configure logging, run.

Parsing imports nothing heavy: each command imports its libraries when it runs, so that
`--help`, `--version` and the read-only commands start at once.
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from dispatcher import __version__
from dispatcher.cli import agenda as cli_agenda
from dispatcher.cli import audit as cli_audit
from dispatcher.cli import console as cli_console
from dispatcher.cli import contact as cli_contact
from dispatcher.cli import queue as cli_queue
from dispatcher.cli import store as cli_store
from dispatcher.cli import templates as cli_templates
from dispatcher.config.lookup import SYSTEM_CONFIG, find_config
from dispatcher.domain.clock import SystemClock, parse_rfc3339
from dispatcher.errors import ConfigError, ConfigNotFound, StoreError, StoreUnwritable

if TYPE_CHECKING:
    from dispatcher.config.settings import LoadedConfig
    from dispatcher.service.supervised import Supervision

EXIT_OK, EXIT_PROBLEM, EXIT_USAGE = 0, 1, 2

log = logging.getLogger("dispatcher.cli")


class UsageError(Exception):
    """A usage or input error: one line on stderr, exit 2."""


def _parse_time(text: str) -> datetime:
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC)
        return parse_rfc3339(text)
    except ValueError as exc:
        hint = f"; write e.g. {text}Z or {text}+01:00" if "UTC offset" in str(exc) else ""
        raise argparse.ArgumentTypeError(f"{exc}{hint}") from None


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    config_help = ("config file (default: $DISPATCHER_CONFIG, else ./config/dispatcher.toml, "
                   f"else {SYSTEM_CONFIG})")
    top = argparse.ArgumentParser(add_help=False)
    top.add_argument("--config", metavar="PATH", help=config_help)
    # Subcommands take --config too; SUPPRESS keeps one given before the subcommand.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="PATH", help=config_help, default=argparse.SUPPRESS)
    parser = argparse.ArgumentParser(prog="dispatcher", parents=[top],
                                     description="Compliance-first contact engine for overdue "
                                                 "accounts.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("run", parents=[common], help="run the daemon")
    check = sub.add_parser("check-config", parents=[common], help="validate every config file",
                           description="Validate every config file and list each problem "
                                       "(exit 1); print the profile of each region. With "
                                       "--events, warn of each account whose debtor's region "
                                       "no profile covers (the exit code stays 0).")
    check.add_argument("--events", type=Path, metavar="FILE",
                       help="JSONL file of events (as for simulate): warn of accounts whose "
                            "debtor's region maps to no profile")

    audit = sub.add_parser("audit", parents=[common],
                           help="export, verify or prune the audit log")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    export = audit_sub.add_parser("export", parents=[common], help="audit records, oldest first")
    export.add_argument("--account", metavar="ID")
    export.add_argument("--since", type=_parse_time, metavar="ISO", help="inclusive")
    export.add_argument("--until", type=_parse_time, metavar="ISO", help="exclusive")
    export.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    cli_audit.add_parsers(audit_sub, common)

    dead = sub.add_parser("dead-letters", parents=[common], help="inspect and replay rejects")
    dead_sub = dead.add_subparsers(dest="dead_command", required=True, metavar="ACTION")
    listing = dead_sub.add_parser("list", parents=[common],
                                  help="dead letters neither replayed nor dismissed")
    listing.add_argument("--all", action="store_true", help="include replayed and dismissed ones")
    listing.add_argument("--format", choices=("table", "jsonl"), default="table")
    replay = dead_sub.add_parser("replay", parents=[common],
                                 help="re-submit dead letters (all pending when no ID is given)")
    replay.add_argument("ids", nargs="*", type=int, metavar="ID")
    cli_queue.add_dead_letter_parser(dead_sub, common)
    cli_queue.add_parsers(sub, common)
    cli_contact.add_parsers(sub, common, _parse_time)
    cli_agenda.add_parsers(sub, common, _parse_time)
    cli_templates.add_parsers(sub, common, _parse_time)
    cli_store.add_parsers(sub, common)
    cli_console.add_parsers(sub, common)
    report = sub.add_parser("report", parents=[common],
                            help="the compliance report of a time window, one HTML file",
                            description="Write the compliance report of the audit records "
                                        "written in [--since, --until) to one self-contained "
                                        "HTML file. Exit 0 once it is written, also when it "
                                        "lists violations or a broken chain (read the summary "
                                        "line); 2 for bad input.")
    report.add_argument("--since", required=True, type=_parse_time, metavar="ISO",
                        help="inclusive")
    report.add_argument("--until", required=True, type=_parse_time, metavar="ISO",
                        help="exclusive")
    report.add_argument("--out", required=True, metavar="FILE", help="the HTML file to write")
    return parser


def _load(args: argparse.Namespace, system_config: Path) -> LoadedConfig:
    from dispatcher.config.settings import load_config

    return load_config(find_config(args.config, os.environ, system_config))


def cmd_check_config(args: argparse.Namespace, out: TextIO,
                     system_config: Path = SYSTEM_CONFIG) -> int:
    """Validate the config files; list every problem; show the profile of each region."""
    from dispatcher.cli.regions import mapping_lines, uncovered_lines
    from dispatcher.config.schedule_warnings import schedule_warnings
    from dispatcher.config.settings import provider_secret_problem
    from dispatcher.console.setup import console_problems

    if args.events is not None and not args.events.is_file():
        print(f"dispatcher: --events: no file {args.events}", file=sys.stderr)
        return EXIT_USAGE
    try:
        config = _load(args, system_config)
    except ConfigError as exc:
        problems = [str(exc)] if isinstance(exc, ConfigNotFound) else exc.problems
        for problem in problems:
            print(problem, file=out)
        print(f"{len(problems)} problem(s) found", file=out)
        return EXIT_PROBLEM
    print(f"OK: {', '.join(str(p) for p in config.files)} (config version {config.version})",
          file=out)
    for line in mapping_lines(config):
        print(line, file=out)
    schedule_file = config.path.parent / "schedules" / f"{config.settings.contact.schedule}.toml"
    for warning in schedule_warnings(config.schedule, schedule_file, config.regions):
        # Warnings, not problems: nothing unlawful follows from them, so the exit code stays.
        print(f"warning: {warning}", file=out)
    missing = provider_secret_problem(config, os.environ)
    if missing is not None:
        # Not a problem of the files: other commands run without them; only `run` needs them.
        print(f"note: `dispatcher run` will refuse here: {missing.reason}", file=out)
    for problem in console_problems(config, os.environ):
        # The console's users file and token are `run`'s alone too.
        print(f"note: `dispatcher run` will refuse here: {problem}", file=out)
    if args.events is not None:
        # Warnings, not problems: the config is sound; these debtors are refused by design.
        for line in uncovered_lines(config, args.events):
            print(line, file=out)
    return EXIT_OK


async def _serve(config: LoadedConfig, supervision: Supervision | None) -> None:
    import asyncio
    import signal

    from dispatcher.service.app import Dispatcher

    loop = asyncio.get_running_loop()
    sock = supervision.listen_socket() if supervision else None
    async with Dispatcher(config, listen_socket=sock) as daemon:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, daemon.request_stop)
        loop.add_signal_handler(signal.SIGHUP, daemon.request_reload)
        if supervision:
            supervision.report_ready()
        await daemon.run()


def cmd_run(args: argparse.Namespace, out: TextIO, system_config: Path = SYSTEM_CONFIG) -> int:
    """Run the daemon until SIGTERM or SIGINT."""
    import asyncio

    from dispatcher.config.settings import provider_secret_problem
    from dispatcher.service.logs import configure_logging
    from dispatcher.service.runtime import tune_gc
    from dispatcher.service.supervised import EXIT_UNAVAILABLE, Supervision

    supervision = Supervision.take(os.environ)
    try:
        config = _load(args, system_config)
    except ConfigNotFound as exc:
        print(f"dispatcher: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"dispatcher: invalid config: {problem}", file=sys.stderr)
        return EXIT_USAGE
    missing = provider_secret_problem(config, os.environ)
    if missing is not None:
        print(f"dispatcher: cannot run: {missing}", file=sys.stderr)
        return EXIT_USAGE
    from dispatcher.console.setup import console_problems

    for problem in console_problems(config, os.environ):
        print(f"dispatcher: cannot run: {problem}", file=sys.stderr)
        missing = problem
    if missing is not None:
        return EXIT_USAGE
    service = config.settings.service
    configure_logging(service.log_level, service.log_format)
    tune_gc()
    try:
        asyncio.run(_serve(config, supervision))
    except StoreUnwritable as exc:
        if supervision is None:
            raise
        # The supervisor tries again with backoff: said once, not on every attempt.
        log.log(logging.DEBUG if supervision.attempt else logging.ERROR,
                "cannot start: %s; waiting until the store is writable", exc)
        supervision.report_unavailable(str(exc))
        return EXIT_UNAVAILABLE
    return EXIT_OK


def _csv_row(record: dict[str, Any]) -> list[str]:
    from dispatcher.audit.chain import EXPORT_FIELDS, canonical_json

    def cell(value: object) -> str:
        if value is None:
            return ""
        return value if isinstance(value, str) else canonical_json({"v": value})[5:-1]
    others = {k: v for k, v in record.items() if k not in EXPORT_FIELDS}
    return [cell(record.get(k)) for k in EXPORT_FIELDS] + [
        canonical_json(others) if others else ""]


async def _export(config: LoadedConfig, args: argparse.Namespace, out: TextIO) -> int:
    from dispatcher.audit.chain import EXPORT_FIELDS, canonical_json
    from dispatcher.store import open_store

    async with open_store(config.store_location, create=False) as store:
        writer = csv.writer(out, lineterminator="\n") if args.format == "csv" else None
        if writer:
            writer.writerow([*EXPORT_FIELDS, "other"])
        async for record in store.audit_records(account_id=args.account, since=args.since,
                                                until=args.until):
            if writer:
                writer.writerow(_csv_row(record))
            else:
                out.write(canonical_json(record) + "\n")
    return EXIT_OK


def _audit(args: argparse.Namespace, out: TextIO, system_config: Path) -> int:
    import asyncio

    if args.audit_command == "keygen":
        return cli_audit.keygen(out)  # needs no config
    config = _load(args, system_config)
    if args.audit_command == "export":
        return asyncio.run(_export(config, args, out))
    if args.audit_command == "prune":
        return asyncio.run(cli_audit.prune(config, args, out, os.environ))
    return asyncio.run(cli_audit.verify(config, args, out))


async def _list_dead(config: LoadedConfig, args: argparse.Namespace, out: TextIO) -> int:
    from dispatcher.audit.chain import canonical_json
    from dispatcher.domain.phones import mask_numbers_in
    from dispatcher.store import open_store

    async with open_store(config.store_location, create=False) as store:
        letters = await store.dead_letters(include_replayed=args.all)
    if args.format == "jsonl":
        for d in letters:
            out.write(canonical_json({
                "id": d.id, "received_at": d.received_at, "topic": d.topic, "reason": d.reason,
                "detail": d.detail, "event_id": d.event_id, "event_type": d.event_type,
                "account_id": d.account_id, "replayed_at": d.replayed_at,
                "dismissed_at": d.dismissed_at, "dismissed_by": d.dismissed_by,
                "payload": d.payload.decode("utf-8", "replace")}) + "\n")
        return EXIT_OK
    print(f"{'ID':>6}  {'RECEIVED (UTC)':27}  {'REASON':14}  {'EVENT':24}  DETAIL", file=out)
    for d in letters:
        state = (f" [replayed as {d.replay_event_id}]" if d.replayed_at
                 else f" [dismissed by {d.dismissed_by}]" if d.dismissed_at else "")
        print(f"{d.id:>6}  {d.received_at:27}  {d.reason:14}  {(d.event_id or '-')[:24]:24}  "
              f"{mask_numbers_in(d.detail)}{state}", file=out)
    print(f"{len(letters)} dead letter(s)", file=out)
    return EXIT_OK


async def _replay(config: LoadedConfig, ids: Sequence[int], out: TextIO) -> int:
    from dispatcher.domain.phones import mask_numbers_in
    from dispatcher.ingest.replay import replay_dead_letters
    from dispatcher.store import open_store

    async with open_store(config.store_location, create=False) as store:
        result = await replay_dead_letters(
            store, ids, now=SystemClock().now(),
            max_payload_bytes=config.settings.ingest.max_payload_bytes,
            max_future=timedelta(seconds=config.settings.ingest.max_future_seconds),
            config_version=config.version)
    if result.missing:
        raise UsageError(f"no dead letter with id {', '.join(map(str, result.missing))}")
    failed = 0
    for fate in result.replayed:
        if fate.status == "already":
            print(f"{fate.id}: already replayed as {fate.event_id}", file=out)
        elif fate.status == "rejected":
            failed += 1
            print(f"{fate.id}: still rejected: {fate.reason}: {mask_numbers_in(fate.detail)}",
                  file=out)
    if result.batch is not None:
        for fate in result.replayed:
            if fate.status == "accepted":
                print(f"{fate.id}: accepted as event {fate.event_id}", file=out)
        print(f"{result.batch.stored} stored, {result.batch.duplicates} already known", file=out)
    return EXIT_PROBLEM if failed else EXIT_OK


async def _report(config: LoadedConfig, args: argparse.Namespace, out: TextIO) -> int:
    from dispatcher.report import build as report

    path = report.checked_request(args.since, args.until, args.out)  # ValueError: exit 2
    summary = await report.write_report(config, args.since, args.until, path,
                                        SystemClock().now())
    print(summary.line(), file=out)
    return EXIT_OK


def _configured(config: LoadedConfig, args: argparse.Namespace, out: TextIO) -> int:
    """Run a command that needs the config."""
    import asyncio

    now = SystemClock().now()
    if args.command == "invalid-numbers" and args.invalid_command == "clear":
        return asyncio.run(cli_queue.cmd_clear_invalid(config, args, out, now))
    if args.command in cli_contact.COMMANDS:
        return asyncio.run(cli_contact.run(config, args, out, now))
    if args.command == "queue":
        return asyncio.run(cli_queue.run(config, args, out, now))
    if args.command == "report":
        return asyncio.run(_report(config, args, out))
    if args.command == "store":
        return asyncio.run(cli_store.migrate(config, out))
    if args.command == "console":
        return cli_console.adduser(config, args, out)
    if args.dead_command == "list":
        return asyncio.run(_list_dead(config, args, out))
    if args.dead_command == "dismiss":
        return asyncio.run(cli_queue.cmd_dismiss(config, args, out, now))
    return asyncio.run(_replay(config, args.ids, out))


def main(argv: Sequence[str] | None = None, out: TextIO | None = None,
         system_config: Path = SYSTEM_CONFIG) -> int:
    """Entry point of the `dispatcher` command; returns the exit code. `system_config` is the
    last place the config file is looked for."""
    out = out or sys.stdout
    args = build_parser().parse_args(argv)
    try:
        if args.command == "run":
            return cmd_run(args, out, system_config)
        if args.command == "check-config":
            return cmd_check_config(args, out, system_config)
        if args.command == "audit":
            return _audit(args, out, system_config)
        import asyncio

        if args.command == "store" and args.store_command == "copy":
            return asyncio.run(cli_store.copy(args, out))  # needs no config
        return _configured(_load(args, system_config), args, out)
    except ConfigNotFound as exc:
        print(f"dispatcher: {exc}", file=sys.stderr)
    except ConfigError as exc:
        print(f"dispatcher: invalid config: {exc.problems[0]}"
              + (f" (+{len(exc.problems) - 1} more; run check-config)"
                 if len(exc.problems) > 1 else ""), file=sys.stderr)
    except (StoreError, UsageError, FileNotFoundError, ValueError) as exc:
        print(f"dispatcher: {exc}", file=sys.stderr)
    except BrokenPipeError:
        return EXIT_OK
    return EXIT_USAGE
