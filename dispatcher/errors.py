"""The project's errors; each carries the data a caller needs to act on it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ConfigProblem:
    """One problem in one config file: which file, which key, and why."""

    file: str
    key: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}: {self.key}: {self.reason}"


class DispatcherError(Exception):
    """Base class of the project's errors."""


class ConfigError(DispatcherError):
    """The configuration is invalid; `problems` lists every problem found."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))


class ConfigNotFound(ConfigError):
    """No config file was named and none is in the usual places; `tried` says why each was not."""

    def __init__(self, tried: list[str]) -> None:
        self.tried = tried
        super().__init__([ConfigProblem("(no config file)", "(lookup)", "; ".join(tried))])

    def __str__(self) -> str:
        return f"no config file found: {'; '.join(self.tried)}"


class StoreError(DispatcherError):
    """The store cannot be used as it is (for example, a newer schema)."""


class StoreUnwritable(StoreError):
    """The store's files or folder cannot be written right now (full or read-only)."""


class InvalidEvent(DispatcherError):
    """An inbound payload that cannot be accepted; `reason` is a dead-letter reason code."""

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}")


class QueueError(DispatcherError, ValueError):
    """A person's action that cannot be applied (no such item, one already resolved, an action
    the item does not allow); nothing was changed."""
