"""Which config file to read: --config, else DISPATCHER_CONFIG, else the usual places."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from dispatcher.errors import ConfigError, ConfigNotFound, ConfigProblem

CONFIG_ENV = "DISPATCHER_CONFIG"
LOCAL_CONFIG = Path("config/dispatcher.toml")  # relative to the working directory
SYSTEM_CONFIG = Path("/etc/overdue-dispatcher/dispatcher.toml")


def find_config(given: str | None, environ: Mapping[str, str] = os.environ,
                system: Path = SYSTEM_CONFIG) -> Path:
    """The config file: `given` (--config), else $DISPATCHER_CONFIG, else the first that exists
    of ./config/dispatcher.toml and `system`. A file named by --config or the variable must
    exist (no fallback); ConfigNotFound names every place tried when none is found."""
    if given:
        return _named(Path(given), "--config")
    if environ.get(CONFIG_ENV):
        return _named(Path(environ[CONFIG_ENV]), CONFIG_ENV)
    for candidate in (LOCAL_CONFIG, system):
        if _exists(candidate):
            return candidate
    raise ConfigNotFound([
        "--config not given" if given is None else "--config empty",
        f"{CONFIG_ENV} {'set but empty' if CONFIG_ENV in environ else 'not set'}",
        f"./{LOCAL_CONFIG}: not found (working directory {_working_directory()})",
        f"{system}: not found"])


def _named(path: Path, source: str) -> Path:
    if not _exists(path):
        raise ConfigError([ConfigProblem(str(path), "(file)",
                                         f"file not found (named by {source})")])
    return path


def _exists(path: Path) -> bool:
    try:
        path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError:
        return True  # there, but not readable: reading it names the reason
    return True


def _working_directory() -> str:
    try:
        return str(Path.cwd())
    except OSError:
        return "removed"
