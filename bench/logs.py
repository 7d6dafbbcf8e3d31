"""Logs benchmark: what one decision line and one outcome line cost, off and on.

Run: `.venv/bin/python -m bench.logs [--lines 20000] [--rounds 5]`. It times the engine's log
calls for a sent decision and an outcome, with info off (as in `simulate`), and on in text and in
JSON (written to /dev/null), against a baseline measured in the same run: serialising the stored
plan, which the engine does for every decision anyway. CPU time, median of interleaved rounds.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from dispatcher.compliance.gate import Refusal
from dispatcher.contact.decide import AWAITING_OUTCOME, Decision, StoredPlan, plan_to_json
from dispatcher.contact.operator_log import say_decision, say_outcomes
from dispatcher.domain.contact import Medium, Role, Target
from dispatcher.service.logs import configure_logging
from schedules.planner import NoAttempt, PlannedAttempt

NOW = datetime(2026, 12, 7, 15, 0, tzinfo=UTC)
TARGET = Target(Role.DEBTOR, "debtor", "+13125550142", "mobile", Medium.CALL)
SEND = PlannedAttempt(NOW, TARGET, "early", "evening", "standard:early:evening", "early_call")
WAIT = NoAttempt((Refusal(AWAITING_OUTCOME, "attempt sent"),), NOW + timedelta(minutes=10))
DECISION = Decision(SEND, WAIT, (), None, "digest")
OUTCOME = {"kind": "outcome", "attempt_id": "at-0123456789abcdef01234567", "account_id": "A-1001",
           "channel": "call", "party": "debtor", "role": "debtor", "to": "+13125550142",
           "stage": "early", "status": "no-answer", "provider_sid": "CA123"}


def _discard(_: object) -> None:
    """Drop a result: the baseline's work is making it."""


def _per_call(work: Callable[[], None], lines: int) -> float:
    """Microseconds of CPU time per call of `work`."""
    started = time.process_time()
    for _ in range(lines):
        work()
    return (time.process_time() - started) / lines * 1e6


def main() -> None:
    """Time each case in interleaved rounds and print medians."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    stored = StoredPlan(SEND, None, "digest")
    with open("/dev/null", "w") as sink:
        cases: dict[str, tuple[str | None, Callable[[], None]]] = {
            "baseline: plan_to_json": (None, lambda: _discard(plan_to_json(stored))),
            "decision, info off": ("off", lambda: say_decision("A-1001", DECISION, NOW)),
            "decision, text": ("text", lambda: say_decision("A-1001", DECISION, NOW)),
            "decision, json": ("json", lambda: say_decision("A-1001", DECISION, NOW)),
            "outcome, info off": ("off", lambda: say_outcomes([OUTCOME])),
            "outcome, text": ("text", lambda: say_outcomes([OUTCOME])),
            "outcome, json": ("json", lambda: say_outcomes([OUTCOME])),
        }
        results: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(args.rounds):
            for name, (fmt, work) in cases.items():
                if fmt == "off":
                    configure_logging("warning", "text", sink)
                elif fmt is not None:
                    configure_logging("info", fmt, sink)
                results[name].append(_per_call(work, args.lines))
        logging.getLogger().handlers.clear()
    base = statistics.median(results["baseline: plan_to_json"])
    print(f"lines per case x rounds:  {args.lines:,} x {args.rounds}")
    for name, times in results.items():
        median = statistics.median(times)
        print(f"{name:<26}{median:8.2f} us  ({median / base:5.2f} x baseline)")


if __name__ == "__main__":
    main()
