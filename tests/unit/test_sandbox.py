"""The sandbox channel: scripted outcomes, the availability model, replies, invalid files."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, time
from pathlib import Path
from typing import Any

import pytest

from channels.availability import Availability
from channels.base import Channel
from channels.sandbox import (
    OutcomeScript,
    Reply,
    SandboxChannel,
    load_outcome_script,
    provider_sid,
)
from dispatcher.config.settings import load_config
from dispatcher.domain.contact import Delivery, DeliveryResult, Medium, Outcome
from dispatcher.errors import ConfigError
from dispatcher.service.app import Dispatcher

DANA = "+15125550100"
SHIPPED_CONFIG = Path(__file__).resolve().parents[2] / "config" / "dispatcher.toml"
GAIL = "+15125550199"
CHICAGO = "America/Chicago"
NOON = datetime(2026, 12, 1, 18, 0, tzinfo=UTC)  # 12:00 in Chicago (CST, UTC-6)
DOCS_EXAMPLE: dict[str, Any] = {
    "default": {"call": "no-answer", "sms": "delivered"},
    "numbers": {DANA: {"call": ["no-answer", "busy", "completed"], "sms": ["delivered"]}},
    "replies": [{"at": "2026-12-02T15:00:00Z", "from": DANA, "body": "STOP"}],
}


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def delivery(to: str = DANA, medium: Medium = Medium.CALL, *, at: datetime = NOON,
             attempt_id: str = "att-1", zone: str = CHICAGO) -> Delivery:
    return Delivery(attempt_id=attempt_id, medium=medium, to=to, body="Please call us.",
                    template="first_notice", local_zone=zone, at=at)


def write(folder: Path, data: object) -> Path:
    path = folder / "outcomes.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path


def script_of(folder: Path, data: object) -> OutcomeScript:
    return load_outcome_script(write(folder, data))


def evening(call: dict[str, Any] | None = None) -> dict[str, Any]:
    """A script whose debtor answers calls only between 18:00 and 20:00."""
    model = call or {"answers_between": ["18:00", "20:00"]}
    return {"numbers": {DANA: {"call": model}}}


async def outcomes(channel: SandboxChannel, deliveries: list[Delivery]) -> list[Outcome | None]:
    return [(await channel.send(d)).outcome for d in deliveries]


# --- statuses and lists ------------------------------------------------------------------------


def test_without_a_file_calls_go_unanswered_and_sms_are_delivered() -> None:
    channel = SandboxChannel(OutcomeScript.empty())
    assert channel.answer(delivery(medium=Medium.CALL)).outcome is Outcome.NO_ANSWER
    assert channel.answer(delivery(medium=Medium.SMS)).outcome is Outcome.DELIVERED
    assert SandboxChannel().script == OutcomeScript.empty()


@pytest.mark.parametrize(
    ("data", "to", "medium", "expected"),
    [
        ({}, DANA, Medium.CALL, Outcome.NO_ANSWER),
        ({}, DANA, Medium.SMS, Outcome.DELIVERED),
        ({"default": {"call": "machine"}}, DANA, Medium.CALL, Outcome.MACHINE),
        # A default that names only calls leaves SMS at its own default.
        ({"default": {"call": "machine"}}, DANA, Medium.SMS, Outcome.DELIVERED),
        ({"default": {"sms": "undelivered"}}, GAIL, Medium.SMS, Outcome.UNDELIVERED),
        # A listed number without a rule for a medium follows the default for it.
        ({"default": {"sms": "failed"}, "numbers": {DANA: {"call": "busy"}}},
         DANA, Medium.SMS, Outcome.FAILED),
        ({"numbers": {DANA: {"call": "busy"}}}, GAIL, Medium.CALL, Outcome.NO_ANSWER),
        ({"numbers": {DANA: {"call": "busy"}}}, DANA, Medium.CALL, Outcome.BUSY),
        ({"numbers": {DANA: {"call": "invalid-number"}}}, DANA, Medium.CALL,
         Outcome.INVALID_NUMBER),
    ],
)
async def test_defaults_and_single_statuses(tmp_path: Path, data: dict[str, Any], to: str,
                                            medium: Medium, expected: Outcome) -> None:
    channel = SandboxChannel(script_of(tmp_path, data))
    assert await outcomes(channel, [delivery(to, medium)] * 3) == [expected] * 3


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ("busy", ["busy"] * 5),
        (["machine"], ["machine"] * 5),
        (["no-answer", "busy", "completed"],
         ["no-answer", "busy", "completed", "completed", "completed"]),
        (["failed", "no-answer", "failed"],
         ["failed", "no-answer", "failed", "failed", "failed"]),
    ],
)
async def test_a_list_is_consumed_in_order_and_its_last_value_repeats(
        tmp_path: Path, rule: str | list[str], expected: list[str]) -> None:
    channel = SandboxChannel(script_of(tmp_path, {"numbers": {DANA: {"call": rule}}}))
    assert await outcomes(channel, [delivery()] * 5) == [Outcome(s) for s in expected]


async def test_call_and_sms_lists_advance_independently(tmp_path: Path) -> None:
    script = script_of(tmp_path, {"numbers": {DANA: {
        "call": ["no-answer", "busy", "completed"], "sms": ["undelivered", "delivered"]}}})
    channel = SandboxChannel(script)
    media = [Medium.SMS, Medium.CALL, Medium.CALL, Medium.SMS, Medium.SMS, Medium.CALL]
    assert await outcomes(channel, [delivery(medium=m) for m in media]) == [
        Outcome.UNDELIVERED, Outcome.NO_ANSWER, Outcome.BUSY,
        Outcome.DELIVERED, Outcome.DELIVERED, Outcome.COMPLETED,
    ]


@pytest.mark.parametrize(
    "data",
    [
        {"numbers": {DANA: {"call": ["busy", "completed"]},
                     GAIL: {"call": ["busy", "completed"]}}},
        # Every number not listed walks the default list on its own.
        {"default": {"call": ["busy", "completed"]}},
    ],
)
async def test_each_number_has_its_own_place_in_a_list(tmp_path: Path,
                                                       data: dict[str, Any]) -> None:
    channel = SandboxChannel(script_of(tmp_path, data))
    order = [DANA, DANA, GAIL, DANA, GAIL]
    assert await outcomes(channel, [delivery(to) for to in order]) == [
        Outcome.BUSY, Outcome.COMPLETED, Outcome.BUSY, Outcome.COMPLETED, Outcome.COMPLETED,
    ]


async def test_the_docs_example_loads(tmp_path: Path) -> None:
    script = script_of(tmp_path, DOCS_EXAMPLE)
    assert script.rule_for(DANA, Medium.CALL) == (Outcome.NO_ANSWER, Outcome.BUSY,
                                                  Outcome.COMPLETED)
    assert script.rule_for(DANA, Medium.SMS) == (Outcome.DELIVERED,)
    assert script.rule_for(GAIL, Medium.CALL) == (Outcome.NO_ANSWER,)
    assert script.replies == (Reply(utc("2026-12-02T15:00"), DANA, "STOP"),)


# --- the availability model --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        # December in Chicago is CST (UTC-6): 18:00 local is 00:00 UTC the next day.
        ("2026-12-01T23:59:59", Outcome.NO_ANSWER),
        ("2026-12-02T00:00:00", Outcome.COMPLETED),  # the start is inclusive
        ("2026-12-02T01:00:00", Outcome.COMPLETED),
        ("2026-12-02T01:59:59", Outcome.COMPLETED),
        ("2026-12-02T02:00:00", Outcome.NO_ANSWER),  # the end is exclusive
        ("2026-12-01T18:00:00", Outcome.NO_ANSWER),  # 18:00 UTC is noon in Chicago
    ],
)
async def test_calls_are_answered_only_inside_the_window(tmp_path: Path, at: str,
                                                         expected: Outcome) -> None:
    channel = SandboxChannel(script_of(tmp_path, evening()))
    assert await outcomes(channel, [delivery(at=utc(at))]) == [expected]


@pytest.mark.parametrize(
    ("at", "expected"),
    [("2026-12-02T00:30:00", Outcome.COMPLETED), ("2026-12-01T18:00:00", Outcome.MACHINE)],
)
async def test_outside_the_window_calls_get_otherwise(tmp_path: Path, at: str,
                                                      expected: Outcome) -> None:
    model = {"answers_between": ["18:00", "20:00"], "otherwise": "machine"}
    channel = SandboxChannel(script_of(tmp_path, evening(model)))
    assert await outcomes(channel, [delivery(at=utc(at))]) == [expected]


async def test_the_window_is_in_the_deliverys_own_zone(tmp_path: Path) -> None:
    channel = SandboxChannel(script_of(tmp_path, evening()))
    at = utc("2026-12-02T00:30")  # 18:30 in Chicago, 19:30 in New York, 16:30 in Los Angeles
    zones = ["America/Chicago", "America/New_York", "America/Los_Angeles"]
    assert await outcomes(channel, [delivery(at=at, zone=z) for z in zones]) == [
        Outcome.COMPLETED, Outcome.COMPLETED, Outcome.NO_ANSWER,
    ]


@pytest.mark.parametrize(
    ("window", "at", "expected"),
    [
        # Chicago leaves CDT (UTC-5) for CST (UTC-6) at 2026-11-01 02:00 local.
        (["18:00", "20:00"], "2026-10-31T23:30:00", Outcome.COMPLETED),  # 18:30 CDT
        (["18:00", "20:00"], "2026-11-01T23:30:00", Outcome.NO_ANSWER),  # 17:30 CST
        (["18:00", "20:00"], "2026-11-02T00:00:00", Outcome.COMPLETED),  # 18:00 CST
        (["18:00", "20:00"], "2026-11-01T01:00:00", Outcome.NO_ANSWER),  # 20:00 CDT
        (["18:00", "20:00"], "2026-11-02T01:00:00", Outcome.COMPLETED),  # 19:00 CST
        # 01:00 to 02:00 happens twice that night; both are inside the window.
        (["01:00", "02:00"], "2026-11-01T06:30:00", Outcome.COMPLETED),  # 01:30 CDT
        (["01:00", "02:00"], "2026-11-01T07:30:00", Outcome.COMPLETED),  # 01:30 CST
        (["01:00", "02:00"], "2026-11-01T08:00:00", Outcome.NO_ANSWER),  # 02:00 CST
        (["01:00", "02:00"], "2026-11-01T05:59:00", Outcome.NO_ANSWER),  # 00:59 CDT
    ],
)
async def test_the_window_follows_daylight_saving_time(tmp_path: Path, window: list[str],
                                                       at: str, expected: Outcome) -> None:
    channel = SandboxChannel(script_of(tmp_path, evening({"answers_between": window})))
    assert await outcomes(channel, [delivery(at=utc(at))]) == [expected]


@pytest.mark.parametrize(
    ("local", "expected"),
    [
        (time(21, 59, 59), False),
        (time(22, 0), True),
        (time(23, 59, 59), True),
        (time(0, 0), True),
        (time(5, 59, 59), True),
        (time(6, 0), False),
        (time(12, 0), False),
    ],
)
def test_a_window_may_cross_midnight(local: time, expected: bool) -> None:
    assert Availability(time(22), time(6)).answers_at(local) is expected


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        ("2026-12-02T03:59:00", Outcome.NO_ANSWER),  # 21:59 CST
        ("2026-12-02T04:00:00", Outcome.COMPLETED),  # 22:00 CST
        ("2026-12-02T06:00:00", Outcome.COMPLETED),  # 00:00 CST
        ("2026-12-02T11:59:00", Outcome.COMPLETED),  # 05:59 CST
        ("2026-12-02T12:00:00", Outcome.NO_ANSWER),  # 06:00 CST
    ],
)
async def test_a_night_window_from_the_file(tmp_path: Path, at: str, expected: Outcome) -> None:
    channel = SandboxChannel(script_of(tmp_path, evening({"answers_between": ["22:00", "06:00"]})))
    assert await outcomes(channel, [delivery(at=utc(at))]) == [expected]


def test_the_availability_model_refuses_a_naive_time() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        Availability(time(18), time(20)).outcome_at(datetime(2026, 12, 1, 18), CHICAGO)


# --- invalid files -----------------------------------------------------------------------------


def problems_of(path: Path) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as caught:
        load_outcome_script(path)
    assert caught.value.problems
    assert all(p.file == str(path) for p in caught.value.problems)
    return [(p.key, p.reason) for p in caught.value.problems]


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    assert problems_of(tmp_path / "absent.json") == [("(file)", "file not found")]


@pytest.mark.parametrize(
    ("data", "key", "reason"),
    [
        ('{"default": ', "(syntax)", "not JSON"),
        ('{"default": {"call": ' + "1" * 5000 + "}}", "(syntax)",
         "not usable JSON"),
        ("[" * 100_000 + "]" * 100_000, "(syntax)", "not usable JSON: nested too deeply"),
        ([], "(root)", "expected a JSON object"),
        ({"defaults": {}}, "defaults", "unknown key"),
        ({"default": []}, "default", 'expected an object with "call" and/or "sms"'),
        ({"default": {"fax": "sent"}}, "default.fax", "unknown key"),
        ({"default": {"call": "ringing"}}, "default.call",
         '"ringing" is not an allowed call status'),
        ({"default": {"sms": "completed"}}, "default.sms",
         '"completed" is not an allowed sms status'),
        ({"default": {"call": 3}}, "default.call", "expected a status or a non-empty list"),
        ({"numbers": []}, "numbers", "expected an object keyed by E.164 number"),
        ({"numbers": {"5125550100": {}}}, "numbers.5125550100", "not an E.164 number"),
        ({"numbers": {"+15550000000": {}}}, "numbers.+15550000000", "not a valid phone number"),
        ({"numbers": {DANA: "busy"}}, f"numbers.{DANA}", 'expected an object with "call"'),
        ({"numbers": {DANA: {"call": []}}}, f"numbers.{DANA}.call",
         "empty list: give at least one status"),
        ({"numbers": {DANA: {"call": ["busy", "completed", "delivered"]}}},
         f"numbers.{DANA}.call[2]", '"delivered" is not an allowed call status'),
        ({"numbers": {DANA: {"sms": {"answers_between": ["18:00", "20:00"]}}}},
         f"numbers.{DANA}.sms", "expected a status or a non-empty list of statuses"),
        (evening({"otherwise": "busy"}), f"numbers.{DANA}.call.answers_between", "missing"),
        (evening({"answers_between": ["18:00"]}), f"numbers.{DANA}.call.answers_between",
         'expected [start, end] as two "HH:MM" local times'),
        (evening({"answers_between": "18:00-20:00"}), f"numbers.{DANA}.call.answers_between",
         "expected [start, end]"),
        (evening({"answers_between": ["18:00", "24:00"]}),
         f"numbers.{DANA}.call.answers_between[1]", '"24:00" is not a 24-hour "HH:MM" time'),
        (evening({"answers_between": ["6pm", "20:00"]}),
         f"numbers.{DANA}.call.answers_between[0]", "is not a 24-hour"),
        (evening({"answers_between": ["18:00", "18:00"]}),
         f"numbers.{DANA}.call.answers_between", "the window is empty"),
        (evening({"answers_between": ["18:00", "20:00"], "otherwise": "delivered"}),
         f"numbers.{DANA}.call.otherwise", '"delivered" is not an allowed call status'),
        (evening({"answers_between": ["18:00", "20:00"], "zone": CHICAGO}),
         f"numbers.{DANA}.call.zone", "unknown key"),
        ({"replies": {}}, "replies", "expected a list of replies"),
        ({"replies": ["STOP"]}, "replies[0]", "expected an object"),
        ({"replies": [{"from": DANA, "body": "STOP"}]}, "replies[0].at", "missing"),
        ({"replies": [{"at": "2026-12-02T15:00:00", "from": DANA, "body": "STOP"}]},
         "replies[0].at", "has no UTC offset"),
        ({"replies": [{"at": "tomorrow", "from": DANA, "body": "STOP"}]},
         "replies[0].at", "not an ISO date or time"),
        ({"replies": [{"at": "2026-12-02T15:00:00Z", "from": "Dana", "body": "STOP"}]},
         "replies[0].from", "not an E.164 number"),
        ({"replies": [{"at": "2026-12-02T15:00:00Z", "from": DANA, "body": None}]},
         "replies[0].body", "expected the text of the message"),
        ({"replies": [{"at": "2026-12-02T15:00:00Z", "from": DANA, "text": "STOP"}]},
         "replies[0].text", "unknown key"),
    ],
)
def test_each_problem_is_named_by_key_and_reason(tmp_path: Path, data: object, key: str,
                                                 reason: str) -> None:
    problems = problems_of(write(tmp_path, data))
    assert key in [k for k, _ in problems]
    assert any(k == key and reason in r for k, r in problems), problems


def _arabic_indic(number: str) -> str:
    return "+" + "".join(chr(0x0660 + int(d)) for d in number[1:])


async def test_a_number_in_other_digits_is_the_same_number(tmp_path: Path) -> None:
    script = script_of(tmp_path, {"numbers": {_arabic_indic(DANA): {"call": "busy"}}})
    assert await outcomes(SandboxChannel(script), [delivery(DANA)]) == [Outcome.BUSY]


def test_two_spellings_of_one_number_are_one_key_too_many(tmp_path: Path) -> None:
    problems = problems_of(write(tmp_path, {"numbers": {DANA: {"call": "busy"},
                                                        _arabic_indic(DANA): {"sms": "failed"}}}))
    assert any("the same number as another key" in reason for _, reason in problems), problems


def test_every_problem_of_a_file_is_reported_at_once(tmp_path: Path) -> None:
    data = {
        "default": {"call": "ringing", "sms": "delivered"},
        "numbers": {
            "0800": {"call": ["busy", "answered"]},
            DANA: {"call": {"answers_between": ["18:00", "25:00"], "otherwise": "sent"},
                   "sms": []},
        },
        "replies": [{"at": "2026-12-02T15:00:00Z", "from": DANA, "body": "STOP"},
                    {"at": "soon", "from": DANA}],
        "extra": True,
    }
    problems = problems_of(write(tmp_path, data))
    assert [k for k, _ in problems] == [
        "extra",
        "default.call",
        "numbers.0800",
        "numbers.0800.call[1]",
        f"numbers.{DANA}.call.answers_between[1]",
        f"numbers.{DANA}.call.otherwise",
        f"numbers.{DANA}.sms",
        "replies[1].at",
        "replies[1].body",
    ]
    assert all(reason for _, reason in problems)


def test_the_error_message_lists_every_problem(tmp_path: Path) -> None:
    path = write(tmp_path, {"default": {"call": "ringing", "sms": "completed"}})
    with pytest.raises(ConfigError, match=re.escape(f"{path}: default.call: ")) as caught:
        load_outcome_script(path)
    assert f"{path}: default.sms: " in str(caught.value)


# --- replies -----------------------------------------------------------------------------------


async def test_replies_are_handed_over_once_in_time_order(tmp_path: Path) -> None:
    script = script_of(tmp_path, {"replies": [
        {"at": "2026-12-03T09:00:00-06:00", "from": GAIL, "body": "who is this"},
        {"at": "2026-12-02T15:00:00Z", "from": DANA, "body": "STOP"},
        {"at": "2026-12-02T16:00:00+01:00", "from": DANA, "body": "HELP"},
    ]})
    stop = Reply(utc("2026-12-02T15:00"), DANA, "STOP")
    help_ = Reply(utc("2026-12-02T15:00"), DANA, "HELP")
    who = Reply(utc("2026-12-03T15:00"), GAIL, "who is this")
    assert script.replies == (stop, help_, who)  # a stable sort keeps the file's order on ties
    channel = SandboxChannel(script)
    assert channel.replies_until(utc("2026-12-02T14:59:59")) == []
    assert channel.replies_until(utc("2026-12-02T15:00")) == [stop, help_]  # `at` is inclusive
    assert channel.replies_until(utc("2026-12-03T12:00")) == []
    assert channel.replies_until(utc("2026-12-31T00:00")) == [who]
    assert channel.replies_until(utc("2027-01-01T00:00")) == []


def test_a_script_built_in_code_sorts_its_replies() -> None:
    late = Reply(utc("2026-12-03T00:00"), DANA, "late")
    early = Reply(utc("2026-12-02T00:00"), DANA, "early")
    assert OutcomeScript(replies=(late, early)).replies == (early, late)


# --- the channel -------------------------------------------------------------------------------


async def test_two_channels_with_the_same_script_answer_alike(tmp_path: Path) -> None:
    data = {**DOCS_EXAMPLE, "numbers": {
        **DOCS_EXAMPLE["numbers"],
        GAIL: {"call": {"answers_between": ["18:00", "20:00"]}, "sms": ["failed", "delivered"]},
    }}
    script = script_of(tmp_path, data)
    deliveries = [
        delivery(to, medium, at=utc(f"2026-12-0{day}T0{hour}:30"), attempt_id=f"att-{n}")
        for n, (to, medium, day, hour) in enumerate([
            (DANA, Medium.CALL, 2, 0), (GAIL, Medium.CALL, 2, 0), (GAIL, Medium.SMS, 2, 1),
            (DANA, Medium.CALL, 3, 4), (GAIL, Medium.CALL, 3, 4), (DANA, Medium.SMS, 3, 5),
            (DANA, Medium.CALL, 4, 0), (GAIL, Medium.SMS, 4, 1), (DANA, Medium.CALL, 4, 2),
        ])
    ]
    first, second = SandboxChannel(script), SandboxChannel(script)
    results = [await first.send(d) for d in deliveries]
    assert results == [await second.send(d) for d in deliveries]
    assert [r.outcome for r in results] == [
        Outcome.NO_ANSWER, Outcome.COMPLETED, Outcome.FAILED,
        Outcome.BUSY, Outcome.NO_ANSWER, Outcome.DELIVERED,
        Outcome.COMPLETED, Outcome.DELIVERED, Outcome.COMPLETED,
    ]
    assert first.sent == deliveries


def test_the_provider_sid_is_derived_from_the_attempt() -> None:
    sid = provider_sid("att-1")
    assert re.fullmatch(r"SB[0-9a-f]{32}", sid)
    assert sid == provider_sid("att-1")
    assert sid != provider_sid("att-2")
    result = SandboxChannel().answer(delivery(attempt_id="att-1"))
    assert result == DeliveryResult(sid, Outcome.NO_ANSWER)


async def test_the_sandbox_is_a_channel() -> None:
    channel: Channel = SandboxChannel()
    assert channel.name == "sandbox"
    result = await channel.send(delivery(medium=Medium.SMS))
    assert result.outcome is Outcome.DELIVERED
    await channel.close()


async def test_the_daemons_sandbox_keeps_no_delivery_a_long_run_would_pile_up() -> None:
    channel = Dispatcher(load_config(SHIPPED_CONFIG, {}))._channel()  # noqa: SLF001
    assert isinstance(channel, SandboxChannel)
    for n in range(3):
        result = await channel.send(delivery(attempt_id=f"att-{n}"))
        assert result.outcome is Outcome.NO_ANSWER
    assert channel.sent == []


async def test_without_keep_sent_the_script_still_counts_each_numbers_deliveries(
        tmp_path: Path) -> None:
    channel = SandboxChannel(script_of(tmp_path, DOCS_EXAMPLE), keep_sent=False)
    outcomes = [(await channel.send(delivery(attempt_id=f"att-{n}"))).outcome for n in range(3)]
    assert outcomes == [Outcome.NO_ANSWER, Outcome.BUSY, Outcome.COMPLETED]
    assert channel.sent == []
