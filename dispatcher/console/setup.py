"""Whether the console is on, and what it needs before the daemon starts serving it."""

from __future__ import annotations

from collections.abc import Mapping

from dispatcher.config.settings import LoadedConfig
from dispatcher.console.users import UsersFileError, read_users
from dispatcher.errors import ConfigProblem

TOKEN_VARIABLE = "DISPATCHER_CONSOLE_TOKEN"
MIN_TOKEN_CHARS = 32


def console_token(environ: Mapping[str, str]) -> str | None:
    """The automation token from the environment; None when unset or empty (Bearer is off)."""
    return environ.get(TOKEN_VARIABLE) or None


def console_enabled(config: LoadedConfig, environ: Mapping[str, str]) -> bool:
    """`[console] enabled`; unset, on when a users file or the token is given."""
    chosen = config.settings.console.enabled
    if chosen is not None:
        return chosen
    return config.console_users_file is not None or console_token(environ) is not None


def console_problems(config: LoadedConfig, environ: Mapping[str, str]) -> list[ConfigProblem]:
    """Why the console cannot be served as configured (empty when it is off or sound)."""
    if not console_enabled(config, environ):
        return []
    path, token = str(config.path), console_token(environ)
    users = config.console_users_file
    problems = []
    if users is None and token is None:
        problems.append(ConfigProblem(path, "console.enabled", (
            f"is true, but neither [console] users_file nor {TOKEN_VARIABLE} is set: nobody "
            "could use the console")))
    if token is not None and (len(token) < MIN_TOKEN_CHARS or not token.isprintable()
                              or " " in token):
        problems.append(ConfigProblem(path, "console.enabled", (
            f"{TOKEN_VARIABLE} must be at least {MIN_TOKEN_CHARS} printable characters without "
            "spaces (e.g. `openssl rand -base64 33`)")))
    if users is not None:
        try:
            read_users(users)
        except UsersFileError as exc:
            problems.append(ConfigProblem(path, "console.users_file", str(exc)))
    return problems
