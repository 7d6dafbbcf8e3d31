"""Hot reload: what a new config may change while the daemon runs, and when files changed.

The contact policy (profile limits, schedule, templates, business details), the log level, the
sweep interval, the shutdown grace and the retention job apply at once. Everything that holds a
connection, a file or a socket (MQTT, ingest, the store, the channel, the webhook server and its
console, the audit head file and its job) and the log format needs a restart: a reload that
changes them is refused, naming each key, and the daemon keeps its last good config.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dispatcher.config.settings import LoadedConfig
from dispatcher.errors import ConfigProblem

RESTART_SECTIONS = ("mqtt", "ingest", "store", "channels", "twilio", "webhook", "audit",
                    "console")


def needs_restart(old: LoadedConfig, new: LoadedConfig) -> list[ConfigProblem]:
    """Every key whose change cannot apply while the daemon runs."""
    problems = []
    for section in RESTART_SECTIONS:
        before = getattr(old.settings, section).model_dump()
        after = getattr(new.settings, section).model_dump()
        problems += [ConfigProblem(str(new.path), f"{section}.{key}",
                                   "cannot change while the daemon runs; restart it")
                     for key in sorted(set(before) | set(after))
                     if before.get(key) != after.get(key)]
    if old.settings.service.log_format != new.settings.service.log_format:
        problems.append(ConfigProblem(str(new.path), "service.log_format",
                                      "cannot change while the daemon runs; restart it"))
    return problems


@dataclass(frozen=True)
class FileStamp:
    """What tells a file changed: its modification time and size (or that it is gone)."""

    mtime_ns: int
    size: int


def stamps(paths: tuple[Path, ...]) -> dict[Path, FileStamp | None]:
    """The current stamp of each file."""
    found: dict[Path, FileStamp | None] = {}
    for path in paths:
        try:
            stat = path.stat()
        except OSError:
            found[path] = None
        else:
            found[path] = FileStamp(stat.st_mtime_ns, stat.st_size)
    return found
