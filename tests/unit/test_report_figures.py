"""The report's figures, its reading of the log, and the page it renders."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

from dispatcher.compliance.policy import Limits
from dispatcher.report.attempt_log import attempts_of, outcome_statuses
from dispatcher.report.figures import (
    attempts_by_day,
    call_peaks,
    compute_figures,
    heatmap,
    peak_histogram,
)
from dispatcher.report.html import Chain, ReportPage, render
from dispatcher.report.read import lookback, read_log
from dispatcher.report.recheck import DAILY_CAP, Violation
from tests.unit.test_report_rules import CHICAGO, DEBTOR, SISTER, Log, cst

SINCE = datetime(2026, 12, 8, tzinfo=UTC)
UNTIL = datetime(2026, 12, 11, tzinfo=UTC)


def _attempts(log: Log) -> list[Any]:
    return attempts_of(log.records, outcome_statuses(log.records))


def test_attempts_per_utc_day_and_channel_with_empty_days() -> None:
    log = Log()
    log.attempt(cst(8, 9))
    log.attempt(cst(8, 20), channel="sms", status="delivered")  # 02:00 UTC on the 9th
    log.attempt(cst(8, 10), status="not-sent")  # an attempt record all the same
    days = attempts_by_day(_attempts(log), SINCE, UNTIL)
    assert days == {date(2026, 12, 8): {"call": 2, "sms": 0},
                    date(2026, 12, 9): {"call": 0, "sms": 1},
                    date(2026, 12, 10): {"call": 0, "sms": 0}}


def test_heatmap_uses_local_time_and_the_earliest_zone_when_they_disagree() -> None:
    log = Log()
    log.attempt(cst(8, 9))  # Tuesday 09:00 Chicago
    log.attempt(cst(8, 9, 30), zones=(CHICAGO, "America/Los_Angeles"))  # 07:30 Los Angeles
    cells = {(c.weekday, c.hour): c.count for c in heatmap(_attempts(log)) if c.count}
    assert cells == {(1, 9): 1, (1, 7): 1}
    assert len(heatmap(_attempts(log))) == 7 * 24


def test_call_peaks_count_calls_before_the_window_but_not_unconnected_ones() -> None:
    log = Log()
    log.attempt(cst(2, 10))  # more than 7 days before the 8th's call: out of every week
    log.attempt(cst(3, 10))
    log.attempt(cst(5, 10))
    log.attempt(cst(6, 10), status="busy")
    log.attempt(cst(7, 10), channel="sms", status="delivered")
    log.attempt(cst(9, 10))
    log.attempt(cst(9, 10), role="emergency", to=SISTER)  # not the debtor
    log.attempt(cst(9, 12), account="A-2", channel="sms", status="delivered")  # no call: 0
    log.attempt(cst(12, 10), account="A-3")  # after the window
    assert call_peaks(_attempts(log), SINCE, UNTIL) == {"A-1": 3, "A-2": 0}
    assert peak_histogram({"A-1": 3, "A-2": 0}, 2) == {0: 1, 1: 0, 2: 0, 3: 1}
    assert peak_histogram({"A-1": 1}, 2) == {0: 0, 1: 1, 2: 0, 3: 0}


async def _rows(records: list[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
    for record in records:
        yield record


async def test_read_log_keeps_the_window_the_lookback_and_the_standing_orders() -> None:
    since, until = datetime(2026, 12, 10, tzinfo=UTC), datetime(2026, 12, 11, tzinfo=UTC)
    log = Log()
    old_opt_out = log.opt(cst(1, 10), "opted_out", "sms")  # before the 8-day lookback
    old_debtor_call = log.attempt(cst(1, 11))
    old_third = log.attempt(cst(1, 12), role="emergency", to=SISTER)
    lookback_call = log.attempt(cst(5, 10))
    inside = log.attempt(cst(10, 10))
    late = log.attempt(cst(10, 17, 59), status=None)  # 23:59 UTC
    late_outcome = log.add("outcome", cst(10, 18, 30), attempt_id=f"at-{late}",
                           status="no-answer", account_id="A-1")
    log.attempt(cst(10, 19), status=None)  # after the window: only outcomes are kept there
    read = await read_log(_rows(log.records), since, until, lookback(Limits()))
    assert [r["seq"] for r in read.window] == [inside, inside + 1, late]
    assert {r["seq"] for r in read.records} == {
        old_opt_out - 1, old_opt_out,  # the opt-out and its event (when it occurred)
        old_third, old_third + 1,  # third-party calls are limited for ever
        lookback_call, lookback_call + 1, inside, inside + 1, late, late_outcome}
    assert old_debtor_call not in {r["seq"] for r in read.records}
    assert lookback(Limits(conversation_cooldown_days=10)) == timedelta(days=11)


def test_the_page_is_self_contained_masks_numbers_and_carries_its_figures() -> None:
    log = Log()
    first = log.attempt(cst(8, 9))
    second = log.attempt(cst(8, 15), role="emergency", to=SISTER)
    log.opt(cst(8, 16), "opted_out", "sms")
    log.add("suppressed", cst(9, 10), account_id="A-1", reason="opted_out", to=DEBTOR)
    attempts = _attempts(log)
    figures = compute_figures([r for r in log.records if SINCE <= datetime.fromisoformat(
        r["at"]) < UNTIL], attempts, SINCE, UNTIL)
    violation = Violation(DAILY_CAP, "A-1", f"2 attempts to {DEBTOR}", (first, second),
                          cst(8, 15))
    page = render(ReportPage(
        since=SINCE, until=UNTIL, generated_at=UNTIL, config_version="abc123", profile="us",
        limits=Limits(), lookback_days=8, figures=figures, violations=[violation],
        attempts_checked=2, chain=Chain(False, 41, 41, 42, "hash mismatch")))
    assert DEBTOR not in page
    assert SISTER not in page
    assert "+13*******77" in page
    assert not re.search(r"https?:|src=|href=|<script|<link|@import|url\(", page, re.I)
    assert f'data-rule="daily_cap" data-account="A-1" data-seqs="{first} {second}"' in page
    assert 'data-figure="violations" data-value="1"' in page
    assert 'data-figure="attempts" data-value="2"' in page
    assert '<section id="chain" data-ok="false" data-checked="41" data-bad-seq="42">' in page
    assert 'data-day="2026-12-08" data-channel="call" data-count="2"' in page
    assert 'data-weekday="1" data-hour="9" data-count="1"' in page
    assert 'data-reason="opted_out" data-count="1"' in page
    assert '<section id="third-party" data-count="1">' in page
    assert '<section id="opt-outs" data-count="1" data-opted-out="1">' in page
    assert "BROKEN at seq 42: hash mismatch" in page
