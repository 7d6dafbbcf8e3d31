"""The `console` subcommands: `console adduser NAME` sets a console user's password."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from dispatcher.config.settings import LoadedConfig


class ConsoleUsageError(ValueError):
    """A console subcommand's input or setting that cannot be used (exit 2)."""


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser],
                common: argparse.ArgumentParser) -> None:
    """Register `console adduser`."""
    console = sub.add_parser("console", parents=[common], help="manage the web console's users")
    console_sub = console.add_subparsers(dest="console_command", required=True,
                                         metavar="ACTION")
    adduser = console_sub.add_parser(
        "adduser", parents=[common], help="add a console user, or set a user's new password",
        description="Add NAME to the file [console] users_file names (created readable by its "
                    "owner only), or replace NAME's password. The password is asked for twice "
                    "on the terminal, or read from the first line of standard input with "
                    "--password-stdin; at least 12 characters.")
    adduser.add_argument("name", metavar="NAME")
    adduser.add_argument("--password-stdin", action="store_true",
                         help="read the password from standard input instead of the terminal")


def _password(args: argparse.Namespace, stdin: TextIO) -> str:
    if args.password_stdin:
        line = stdin.readline(4096)
        return line.removesuffix("\n").removesuffix("\r")
    if not stdin.isatty():
        raise ConsoleUsageError("no terminal to ask for the password on: use --password-stdin")
    first = getpass.getpass(f"password for {args.name}: ")
    if getpass.getpass("again: ") != first:
        raise ConsoleUsageError("the two passwords differ; nothing changed")
    return first


def adduser(config: LoadedConfig, args: argparse.Namespace, out: TextIO,
            stdin: TextIO | None = None) -> int:
    """Add or update one user in the users file."""
    from dispatcher.console.passwords import hash_password, password_problem
    from dispatcher.console.users import UsersFileError, name_problem, write_user

    path = config.console_users_file
    if path is None:
        raise ConsoleUsageError(f"{config.path}: console.users_file: not set; name the file "
                                "that keeps the console's users first")
    if problem := name_problem(args.name):
        raise ConsoleUsageError(f"user name {args.name!r} {problem}")
    if not path.parent.is_dir():
        raise ConsoleUsageError(f"{config.path}: console.users_file: no directory "
                                f"{path.parent}")
    password = _password(args, stdin or sys.stdin)
    if problem := password_problem(password):
        raise ConsoleUsageError(f"the password {problem}; nothing changed")
    try:
        added = write_user(path, args.name, hash_password(password))
    except UsersFileError as exc:
        raise ConsoleUsageError(f"{exc}; nothing changed") from None
    except OSError as exc:
        raise ConsoleUsageError(f"cannot write {path}: {exc.strerror or exc}") from None
    print(f"{'added' if added else 'changed the password of'} {args.name} in {path}", file=out)
    return 0
