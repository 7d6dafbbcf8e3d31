"""Fixtures of the unit tests that configure logging."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    """Root and aiomqtt loggers as they were before the test, afterwards."""
    root = logging.getLogger()
    mqtt = logging.getLogger("aiomqtt")
    saved = (list(root.handlers), root.level, mqtt.level)
    out = io.StringIO()
    try:
        yield out
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])
        mqtt.setLevel(saved[2])
