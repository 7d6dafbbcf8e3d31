"""The sandbox channel: the default provider, answering from an outcomes script, without network.

The outcomes file (docs/simulate.md) says, per number and medium, which status each attempt
gets: one status, a list consumed in order whose last value repeats, or (for calls) an
availability model (channels/availability.py): answering only inside a daily window of the
debtor's local time, or with a probability by local hour and weekday. It also scripts inbound
replies, which `simulate` feeds back to the engine as the virtual clock passes.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeAlias, TypeVar

from channels.availability import CallModel, check_keys, child_key, parse_call_model, shown
from dispatcher.domain.clock import parse_rfc3339
from dispatcher.domain.contact import (
    CALL_OUTCOMES,
    SMS_OUTCOMES,
    Delivery,
    DeliveryResult,
    Medium,
    Outcome,
)
from dispatcher.domain.phones import canonical_e164, mask_number
from dispatcher.errors import ConfigError, ConfigProblem

_ALLOWED: Mapping[Medium, frozenset[Outcome]] = {Medium.CALL: CALL_OUTCOMES,
                                                  Medium.SMS: SMS_OUTCOMES}
_T = TypeVar("_T")
log = logging.getLogger("channels.sandbox")


# A list of statuses consumed in order (the last repeats), or a model of when calls are answered.
Rule: TypeAlias = tuple[Outcome, ...] | CallModel

DEFAULT_RULES: Mapping[Medium, Rule] = {Medium.CALL: (Outcome.NO_ANSWER,),
                                        Medium.SMS: (Outcome.DELIVERED,)}


def outcome_of(rule: Rule, nth: int, delivery: Delivery) -> Outcome:
    """The outcome `rule` gives `delivery`, the `nth` (from 0) to its number by its medium."""
    if isinstance(rule, tuple):
        return rule[min(nth, len(rule) - 1)]
    return rule.outcome_for(delivery)


@dataclass(frozen=True)
class Reply:
    """An inbound SMS the sandbox hands over once the clock reaches `at` (aware, UTC)."""

    at: datetime
    from_number: str
    body: str


@dataclass(frozen=True)
class OutcomeScript:
    """The parsed, validated outcomes file."""

    default: Mapping[Medium, Rule] = field(default_factory=lambda: dict(DEFAULT_RULES))
    numbers: Mapping[str, Mapping[Medium, Rule]] = field(default_factory=dict)
    replies: tuple[Reply, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "replies", tuple(sorted(self.replies, key=lambda r: r.at)))

    @classmethod
    def empty(cls) -> OutcomeScript:
        """The script without a file: every call unanswered, every SMS delivered."""
        return cls()

    def rule_for(self, number: str, medium: Medium) -> Rule:
        """The rule for `number` by `medium`: its own if the file gives one, else the default."""
        own = self.numbers.get(number, {}).get(medium)
        return own if own is not None else self.default[medium]

    def outcome_for(self, delivery: Delivery, nth: int) -> Outcome:
        """The outcome of `delivery`, the `nth` (from 0) to its number by its medium."""
        return outcome_of(self.rule_for(delivery.to, delivery.medium), nth, delivery)


def provider_sid(attempt_id: str) -> str:
    """The sandbox's message or call id: the same for the same attempt, shaped like Twilio's."""
    return "SB" + hashlib.sha256(attempt_id.encode("utf-8")).hexdigest()[:32]


class SandboxChannel:
    """The channel that sends nothing: outcomes come at once from the script."""

    name: str = "sandbox"

    def __init__(self, script: OutcomeScript | None = None, *, keep_sent: bool = True) -> None:
        self.script = script if script is not None else OutcomeScript.empty()
        # Every delivery, in order (with `keep_sent`): a long simulation's would be hundreds of
        # thousands of objects, each one scanned again by every full garbage collection.
        self.sent: list[Delivery] = []
        self._keep_sent = keep_sent
        self._counts: Counter[tuple[str, Medium]] = Counter()
        self._replies = deque(self.script.replies)

    def answer(self, delivery: Delivery) -> DeliveryResult:
        """Record `delivery` and return its scripted result."""
        key = (delivery.to, delivery.medium)
        outcome = self.script.outcome_for(delivery, self._counts[key])
        self._counts[key] += 1
        if self._keep_sent:
            self.sent.append(delivery)
        log_delivery(delivery, outcome)
        return DeliveryResult(provider_sid(delivery.attempt_id), outcome)

    async def send(self, delivery: Delivery) -> DeliveryResult:
        """Record `delivery` and return its scripted result."""
        return self.answer(delivery)

    async def close(self) -> None:
        """Nothing to release: the sandbox holds no connection."""

    def next_reply_at(self) -> datetime | None:
        """When the next scripted reply arrives, if any is left."""
        return self._replies[0].at if self._replies else None

    def replies_until(self, moment: datetime) -> list[Reply]:
        """Remove and return the scripted replies due at or before `moment`, oldest first."""
        due = []
        while self._replies and self._replies[0].at <= moment:
            due.append(self._replies.popleft())
        return due


def logged_body(body: str) -> str:
    """`body` as the log shows it: a call's parts on one line, in speaking order."""
    return " / ".join(part for part in body.splitlines() if part.strip())


def log_delivery(delivery: Delivery, outcome: Outcome) -> None:
    """Log what the sandbox "sent": whom (masked), the rendered text, and the scripted outcome."""
    if not log.isEnabledFor(logging.INFO):
        return  # `simulate` configures no logging: the masked number and text would be thrown away
    # The text holds values from events (a name): the log's formatters mask, bound and escape
    # every line (dispatcher.service.logs), this one too.
    log.info("sandbox %s to %s: %s", delivery.medium.value, mask_number(delivery.to),
             logged_body(delivery.body),
             extra={"attempt_id": delivery.attempt_id, "template": delivery.template,
                    "outcome": outcome.value})


# --- loading the outcomes file ---------------------------------------------------------------


class _Problems:
    """Collects every problem of one file, so that one mistake hides no other."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.found: list[ConfigProblem] = []

    def add(self, key: str, reason: str) -> None:
        self.found.append(ConfigProblem(self.file, key, reason))


def load_outcome_script(path: Path) -> OutcomeScript:
    """Read and validate an outcomes file; raise ConfigError listing every problem."""
    data = _read_json(path)
    problems = _Problems(str(path))
    script = _parse_script(data, problems)
    if problems.found:
        raise ConfigError(problems.found)
    return script


def _read_json(path: Path) -> object:
    def fail(key: str, reason: str) -> ConfigError:
        return ConfigError([ConfigProblem(str(path), key, reason)])

    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise fail("(file)", "file not found") from None
    except OSError as exc:
        raise fail("(file)", exc.strerror or str(exc)) from None
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise fail("(file)", "not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise fail("(syntax)", f"not JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
                   ) from None
    except ValueError as exc:  # an integer of more digits than Python converts
        raise fail("(syntax)", f"not usable JSON: {exc}") from None
    except RecursionError:
        raise fail("(syntax)", "not usable JSON: nested too deeply") from None


def _parse_script(data: object, p: _Problems) -> OutcomeScript:
    if not isinstance(data, dict):
        p.add("(root)", "expected a JSON object")
        return OutcomeScript.empty()
    check_keys(data, ("default", "numbers", "replies"), "", p.add)
    default = {**DEFAULT_RULES, **_parse_rules(data.get("default", {}), "default", p)}
    numbers = _parse_numbers(data.get("numbers", {}), p)
    replies = _parse_replies(data.get("replies", []), p)
    return OutcomeScript(default, numbers, replies)


def _parse_numbers(value: object, p: _Problems) -> dict[str, Mapping[Medium, Rule]]:
    if not isinstance(value, dict):
        p.add("numbers", "expected an object keyed by E.164 number")
        return {}
    numbers: dict[str, Mapping[Medium, Rule]] = {}
    for number, rules in value.items():
        key = child_key("numbers", number)
        canonical = _parse_number(number, key, p) or number
        if canonical in numbers:
            p.add(key, f"the same number as another key ({canonical})")
        numbers[canonical] = _parse_rules(rules, key, p)
    return numbers


def _parse_rules(value: object, key: str, p: _Problems) -> dict[Medium, Rule]:
    if not isinstance(value, dict):
        p.add(key, 'expected an object with "call" and/or "sms"')
        return {}
    check_keys(value, ("call", "sms"), key, p.add)
    rules: dict[Medium, Rule] = {}
    for name, given in value.items():
        if name in _ALLOWED:
            rule = _parse_rule(given, Medium(name), child_key(key, name), p)
            if rule is not None:
                rules[Medium(name)] = rule
    return rules


def _parse_rule(value: object, medium: Medium, key: str, p: _Problems) -> Rule | None:
    if isinstance(value, str):
        status = _parse_status(value, medium, key, p)
        return None if status is None else (status,)
    if isinstance(value, list):
        return _parse_sequence(value, medium, key, p)
    if isinstance(value, dict) and medium is Medium.CALL:
        return parse_call_model(value, key, p.add,
                                lambda v, k: _parse_status(v, Medium.CALL, k, p))
    expected = "a status or a non-empty list of statuses"
    if medium is Medium.CALL:
        expected += ", or an availability model"
    elif isinstance(value, dict):
        expected += " (availability models, answers_between and answer_probability, " \
                    "are for calls only: a text is delivered or not, never answered)"
    p.add(key, f"expected {expected}")
    return None


def _parse_status(value: object, medium: Medium, key: str, p: _Problems) -> Outcome | None:
    allowed = _ALLOWED[medium]
    if isinstance(value, str) and value in allowed:
        return Outcome(value)
    p.add(key, f"{shown(value)} is not an allowed {medium} status "
               f"(expected one of: {', '.join(sorted(allowed))})")
    return None


def _parse_sequence(values: list[object], medium: Medium, key: str,
                    p: _Problems) -> tuple[Outcome, ...] | None:
    if not values:
        p.add(key, "empty list: give at least one status")
        return None
    statuses = [_parse_status(v, medium, f"{key}[{i}]", p) for i, v in enumerate(values)]
    valid = tuple(s for s in statuses if s is not None)
    return valid if len(valid) == len(statuses) else None


def _parse_replies(value: object, p: _Problems) -> tuple[Reply, ...]:
    if not isinstance(value, list):
        p.add("replies", "expected a list of replies")
        return ()
    replies = (_parse_reply(item, f"replies[{i}]", p) for i, item in enumerate(value))
    return tuple(reply for reply in replies if reply is not None)


def _parse_reply(value: object, key: str, p: _Problems) -> Reply | None:
    if not isinstance(value, dict):
        p.add(key, 'expected an object with "at", "from" and "body"')
        return None
    check_keys(value, ("at", "from", "body"), key, p.add)
    at = _parse_field(value, "at", key, p, _parse_moment)
    number = _parse_field(value, "from", key, p, _parse_number)
    body = _parse_field(value, "body", key, p, _parse_text)
    if at is None or number is None or body is None:
        return None
    return Reply(at, number, body)


def _parse_field(obj: dict[str, Any], name: str, key: str, p: _Problems,
                 parse: Callable[[object, str, _Problems], _T | None]) -> _T | None:
    if name not in obj:
        p.add(child_key(key, name), "missing")
        return None
    return parse(obj[name], child_key(key, name), p)


def _parse_moment(value: object, key: str, p: _Problems) -> datetime | None:
    if not isinstance(value, str):
        p.add(key, "expected an ISO 8601 time with a UTC offset")
        return None
    try:
        return parse_rfc3339(value)
    except ValueError as exc:
        p.add(key, str(exc))
        return None


def _parse_text(value: object, key: str, p: _Problems) -> str | None:
    if not isinstance(value, str):
        p.add(key, "expected the text of the message")
        return None
    return value


def _parse_number(value: object, key: str, p: _Problems) -> str | None:
    if not isinstance(value, str):
        p.add(key, "expected an E.164 number as a string")
        return None
    try:
        return canonical_e164(value)
    except ValueError as exc:
        p.add(key, str(exc))
        return None
