"""The `dispatcher` command's entry point: `run` goes to the supervisor, all else to the CLI.

Kept light: the supervisor never imports the daemon's libraries, and the CLI imports a
command's libraries only once that command runs.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from dispatcher.config.lookup import find_config
from dispatcher.errors import ConfigError
from dispatcher.service.supervised import die_with_supervisor, is_supervised


def plain_run(argv: Sequence[str]) -> tuple[bool, str | None]:
    """Whether `argv` is `run` with nothing but `--config` options; the last --config given."""
    command, config, rest = None, None, list(argv)
    while rest:
        token = rest.pop(0)
        if token == "--config" and rest:
            config = rest.pop(0)
        elif token.startswith("--config="):
            config = token.partition("=")[2]
        elif token == "run" and command is None:
            command = token
        else:
            return False, None  # anything else is for the full parser
    return command == "run", config


def supervised_run(given: str | None) -> int | None:
    """Run the daemon under the supervisor, on the config file found from `given` (--config);
    None when it cannot be, and the daemon run unsupervised then reports why."""
    try:
        path = find_config(given)
    except ConfigError:
        return None
    from dispatcher.service.supervisor import supervise

    return supervise(path)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `dispatcher` command; returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if is_supervised(os.environ):
        die_with_supervisor(os.environ)
    else:
        is_run, given = plain_run(args)
        if is_run:
            code = supervised_run(given)
            if code is not None:
                return code
    from dispatcher.cli.main import main as cli_main

    return cli_main(args)
