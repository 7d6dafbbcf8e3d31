"""Application logs: JSON lines with extras, phone numbers masked in every field."""

from __future__ import annotations

import io
import json
import logging
import re
from typing import Any

import pytest

from dispatcher.service.logs import configure_logging

NUMBER = "+15125550100"
MASKED = "+15*******00"




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


# -- hostile values: no value can end its line, forge a field, or grow a line without bound ----

HOSTILE = ["A-1\n2026-12-01 14:00:00,000 INFO    dispatcher.contact: decision account=A-9 "
           "result=sent", "A-1\r\x1b[2J\x1b[31mred", 'A-1" result=sent x="', "A-1\u2028B\u2029C",
           "A-1\x85\x9b31m", "A-1\u202egnp.exe", "A-1\\x0a", "A-\x00-\x7f"]


@pytest.mark.parametrize("hostile", HOSTILE)
def test_a_hostile_text_value_stays_one_field_of_one_line(stream: io.StringIO,
                                                         hostile: str) -> None:
    configure_logging("info", "text", stream)
    logging.getLogger("dispatcher.test").info(
        "account %s seen", hostile, extra={"account": hostile, "result": "deferred"})
    text = stream.getvalue()
    assert text.endswith("\n")
    assert text.count("\n") == 1
    assert not re.search("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u202e]", text)
    # The fields after the message: exactly the two given, the hostile one quoted whole.
    after = " " + text.rstrip("\n").split(" seen ", 1)[1]
    fields = re.findall(r' (\w+)=("(?:[^"\\]|\\.)*"|[^ "]*)', after)
    assert [name for name, _ in fields] == ["account", "result"]
    assert fields[1][1] == "deferred"
    assert fields[0][1].startswith('"')
    assert fields[0][1].endswith('"')


@pytest.mark.parametrize("hostile", HOSTILE)
def test_a_hostile_json_value_comes_back_as_it_was(stream: io.StringIO, hostile: str) -> None:
    configure_logging("info", "json", stream)
    logging.getLogger("dispatcher.test").info("account %s seen", hostile,
                                              extra={"account": hostile})
    text = stream.getvalue()
    assert text.count("\n") == 1
    assert not re.search("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u202e]", text)
    [entry] = lines(stream)
    assert entry["account"] == hostile
    assert entry["message"] == f"account {hostile} seen"


def test_plain_values_are_unquoted_and_others_quoted(stream: io.StringIO) -> None:
    configure_logging("info", "text", stream)
    logging.getLogger("dispatcher.test").info("decision", extra={
        "account": "A-1", "detail": "provider error 21610", "empty": "", "n": 3, "none": None,
        "counts": {"quiet_hours": 2, "hold:dispute": 1}, "list": ["a", "b"]})
    line = stream.getvalue().rstrip("\n")
    assert line.endswith(': decision account=A-1 detail="provider error 21610" empty="" n=3 '
                         'none=None counts=quiet_hours:2,hold:dispute:1 list=a,b')


def test_a_huge_value_is_cut_and_says_how_much_went(stream: io.StringIO) -> None:
    configure_logging("info", "json", stream)
    huge = "A" * 1_000_000
    logging.getLogger("dispatcher.test").info("x" * 100_000, extra={"account": huge})
    [entry] = lines(stream)
    assert len(stream.getvalue()) < 4000
    assert entry["account"] == "A" * 256 + "...[999744 more characters]"
    assert entry["message"].endswith("...[97952 more characters]")


def test_a_number_cut_in_half_is_still_masked(stream: io.StringIO) -> None:
    configure_logging("info", "text", stream)
    logging.getLogger("dispatcher.test").info("x", extra={"v": "A" * 250 + NUMBER})
    assert "5550100" not in stream.getvalue()
    assert "5550" not in stream.getvalue()


def test_a_traceback_is_indented_under_its_line(stream: io.StringIO) -> None:
    configure_logging("info", "text", stream)
    error = RuntimeError(f"bad\n2026-12-01 14:00:00,000 INFO    forged {NUMBER}\x1b[2J")
    logging.getLogger("dispatcher.test").error("send failed", exc_info=error)
    first, *rest = stream.getvalue().rstrip("\n").split("\n")
    assert first.endswith("dispatcher.test: send failed")
    assert rest
    assert all(line.startswith("    ") for line in rest)
    assert NUMBER not in stream.getvalue()
    assert "\x1b" not in stream.getvalue()


def test_json_time_is_when_the_line_was_logged(stream: io.StringIO) -> None:
    configure_logging("info", "json", stream)
    record = logging.LogRecord("dispatcher.test", logging.INFO, "", 0, "old", None, None)
    record.created = 1796126400.25  # 2026-12-01 12:00:00.250 UTC
    logging.getLogger("dispatcher.test").handle(record)
    [entry] = lines(stream)
    assert entry["time"] == "2026-12-01T12:00:00.250Z"


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_a_huge_exception_message_is_cut(stream: io.StringIO, fmt: str) -> None:
    configure_logging("info", fmt, stream)
    error = ValueError("x" * 1_000_000)
    logging.getLogger("dispatcher.test").error("failed", exc_info=error)
    assert len(stream.getvalue()) < 20_000
    assert "more characters]" in stream.getvalue()
