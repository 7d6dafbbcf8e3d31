"""Reading one TOML config file, with every failure named as a ConfigProblem."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from dispatcher.errors import ConfigError, ConfigProblem


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
