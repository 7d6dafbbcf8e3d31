"""Reading one TOML config file, with every failure named as a ConfigProblem."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dispatcher.errors import ConfigError, ConfigProblem

DEFAULT_CONFIG_PATH = Path("config/dispatcher.toml")
CONFIG_ENV = "DISPATCHER_CONFIG"


def config_path_from(cli_value: str | None, environ: Mapping[str, str] = os.environ) -> Path:
    """--config, else DISPATCHER_CONFIG, else config/dispatcher.toml."""
    if cli_value:
        return Path(cli_value)
    if environ.get(CONFIG_ENV):
        return Path(environ[CONFIG_ENV])
    return DEFAULT_CONFIG_PATH


def read_toml(path: Path) -> tuple[dict[str, Any], bytes]:
    """The parsed file and its raw bytes (for the config version); ConfigError if unreadable."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError([ConfigProblem(str(path), "(file)", "file not found")]) from None
    except OSError as exc:
        raise ConfigError([ConfigProblem(str(path), "(file)", exc.strerror or str(exc))]) from None
    try:
        return tomllib.loads(raw.decode("utf-8")), raw
    except UnicodeDecodeError:
        raise ConfigError([ConfigProblem(str(path), "(file)", "not UTF-8 text")]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([ConfigProblem(str(path), "(syntax)", str(exc))]) from None
