"""Conditions that keep the daemon from doing its work, by source; `/healthz` reports them."""

from __future__ import annotations

import logging

log = logging.getLogger("dispatcher.problems")


class Problems:
    """Active problems by source ("store", "writer", ...): each logged once, not per retry."""

    def __init__(self) -> None:
        self._active: dict[str, str] = {}

    def report(self, source: str, detail: str) -> None:
        """Note that `source` is failing; log it when it starts failing."""
        if source not in self._active:
            log.error("%s: %s; retrying with backoff until it clears", source, detail)
        self._active[source] = detail

    def clear(self, source: str) -> None:
        """Note that `source` works again; log it when it was failing."""
        if self._active.pop(source, None) is not None:
            log.info("%s: working again", source)

    def active(self) -> dict[str, str]:
        """The current problems by source."""
        return dict(self._active)
