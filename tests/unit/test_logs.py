"""Application logs: JSON lines with extras, phone numbers masked in every field."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest

from dispatcher.service.logs import configure_logging

NUMBER = "+15125550100"
MASKED = "+15*******00"


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


def lines(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_json_line_carries_message_level_logger_time_and_extras(stream: io.StringIO) -> None:
    configure_logging("info", "json", stream)
    logging.getLogger("dispatcher.test").info("attempt %s planned", "a-1",
                                              extra={"account_id": "A-1001", "count": 3})
    [entry] = lines(stream)
    assert entry["message"] == "attempt a-1 planned"
    assert entry["level"] == "info"
    assert entry["logger"] == "dispatcher.test"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry["time"])
    assert (entry["account_id"], entry["count"]) == ("A-1001", 3)
    assert "args" not in entry
    assert "msg" not in entry


def test_one_json_object_per_line(stream: io.StringIO) -> None:
    configure_logging("info", "json", stream)
    log = logging.getLogger("dispatcher.test")
    log.info("first")
    log.warning("second")
    assert [e["message"] for e in lines(stream)] == ["first", "second"]
    assert [e["level"] for e in lines(stream)] == ["info", "warning"]


def test_numbers_are_masked_in_the_message_and_in_extras(stream: io.StringIO) -> None:
    configure_logging("info", "json", stream)
    logging.getLogger("dispatcher.test").info(
        f"sms to {NUMBER} delivered", extra={"to": NUMBER, "numbers": [NUMBER]})
    text = stream.getvalue()
    assert NUMBER not in text
    [entry] = lines(stream)
    assert entry["message"] == f"sms to {MASKED} delivered"
    assert entry["to"] == MASKED
    assert entry["numbers"] == [MASKED]


@pytest.mark.parametrize("separator", ["\n", "\t", "\r"])
def test_numbers_after_a_control_character_are_masked(stream: io.StringIO,
                                                      separator: str) -> None:
    configure_logging("info", "json", stream)
    logging.getLogger("dispatcher.test").info(
        f"numbers:{separator}{NUMBER}", extra={"to": f"list:{separator}{NUMBER}"})
    assert NUMBER not in stream.getvalue()
    [entry] = lines(stream)
    assert entry["message"] == f"numbers:{separator}{MASKED}"


def test_numbers_in_an_exception_are_masked(stream: io.StringIO) -> None:
    configure_logging("info", "json", stream)
    error = RuntimeError(f"provider refused {NUMBER}")
    logging.getLogger("dispatcher.test").error("send failed", exc_info=error)
    [entry] = lines(stream)
    assert "RuntimeError" in entry["exception"]
    assert NUMBER not in stream.getvalue()


def test_dates_and_event_ids_stay_readable(stream: io.StringIO) -> None:
    configure_logging("info", "json", stream)
    logging.getLogger("dispatcher.test").info(
        "event e-2026-12-01-000001 due 2026-12-01", extra={"event_id": "e-2026-12-01-000001"})
    [entry] = lines(stream)
    assert entry["message"] == "event e-2026-12-01-000001 due 2026-12-01"
    assert entry["event_id"] == "e-2026-12-01-000001"


def test_level_filters_and_handlers_are_replaced(stream: io.StringIO) -> None:
    configure_logging("info", "json", io.StringIO())
    configure_logging("warning", "json", stream)
    log = logging.getLogger("dispatcher.test")
    log.info("hidden")
    log.error("shown")
    assert [e["message"] for e in lines(stream)] == ["shown"]
    assert len(logging.getLogger().handlers) == 1


def test_text_format_masks_too(stream: io.StringIO) -> None:
    configure_logging("info", "text", stream)
    logging.getLogger("dispatcher.test").info(f"call {NUMBER}", extra={"to": NUMBER})
    text = stream.getvalue()
    assert NUMBER not in text
    assert f"call {MASKED}" in text
    assert f"to={MASKED}" in text
