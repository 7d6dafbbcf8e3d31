"""How opt-outs, opt-ins and pauses for review settle into a number's standing on a channel."""

from __future__ import annotations

from itertools import permutations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dispatcher.compliance.consent import (
    OPT_IN_IN_FUTURE,
    OPT_IN_NOT_AFTER_REVOCATION,
    ChannelStanding,
    Standing,
    Statement,
    settle,
)

IN, OUT, REVIEW = Standing.OPTED_IN, Standing.OPTED_OUT, Standing.REVIEW
NOW = "2026-12-01T12:00:00.000000Z"
BEFORE = "2026-12-01T11:00:00.000000Z"
EARLIER = "2026-12-01T10:00:00.000000Z"
FUTURE = "2026-12-01T12:03:20.000000Z"  # 200 s after NOW


def row(standing: Standing, at: str) -> ChannelStanding:
    return ChannelStanding(standing, at, "e-old", "A-1")


def said(standing: Standing, at: str, *, debtor: bool = False) -> Statement:
    return Statement(standing, at, "e-new", "A-1", from_debtor=debtor)


@pytest.mark.parametrize(("current", "statement", "standing", "refused"), [
    # the debtor's own revocation applies whatever the store holds
    (row(IN, FUTURE), said(OUT, NOW, debtor=True), OUT, None),
    (row(REVIEW, BEFORE), said(OUT, NOW, debtor=True), OUT, None),
    (None, said(OUT, NOW, debtor=True), OUT, None),
    # an upstream opt-out: the newest statement wins, a tie goes to the opt-out
    (row(IN, BEFORE), said(OUT, EARLIER), IN, None),
    (row(IN, BEFORE), said(OUT, BEFORE), OUT, None),
    (row(REVIEW, BEFORE), said(OUT, NOW), OUT, None),
    # an opt-in: only after the revocation, and never dated after its receipt
    (row(OUT, BEFORE), said(IN, NOW), IN, None),
    (row(OUT, BEFORE), said(IN, FUTURE), OUT, OPT_IN_IN_FUTURE),
    (None, said(IN, FUTURE), None, OPT_IN_IN_FUTURE),
    (row(OUT, NOW), said(IN, BEFORE), OUT, OPT_IN_NOT_AFTER_REVOCATION),
    (row(OUT, NOW), said(IN, NOW), OUT, OPT_IN_NOT_AFTER_REVOCATION),
    (row(REVIEW, BEFORE), said(IN, EARLIER), REVIEW, OPT_IN_NOT_AFTER_REVOCATION),
    (row(REVIEW, BEFORE), said(IN, NOW), IN, None),
    (row(IN, NOW), said(IN, BEFORE), IN, None),
    # a pause for review: over anything but an opt-out, which stays, dated from the reply
    (row(IN, FUTURE), said(REVIEW, NOW, debtor=True), REVIEW, None),
    (row(OUT, EARLIER), said(REVIEW, BEFORE, debtor=True), OUT, None),
])
def test_a_statement_settles(current: ChannelStanding | None, statement: Statement,
                             standing: Standing | None, refused: str | None) -> None:
    after, why = settle(current, statement, NOW)
    final = after or current
    assert (final.standing if final else None) == standing
    assert why == refused


def test_a_pause_over_an_opt_out_moves_its_date_so_an_older_opt_in_cannot_lift_it() -> None:
    after, _ = settle(row(OUT, EARLIER), said(REVIEW, BEFORE, debtor=True), NOW)
    assert after is not None
    again, why = settle(after, said(IN, "2026-12-01T10:30:00.000000Z"), NOW)
    assert again is None
    assert why == OPT_IN_NOT_AFTER_REVOCATION


TIMES = st.sampled_from([EARLIER, BEFORE, NOW, FUTURE])


@given(st.lists(st.tuples(st.sampled_from([IN, OUT]), TIMES, st.booleans()), max_size=4),
       st.sampled_from([EARLIER, BEFORE, NOW]))
def test_no_order_of_upstream_statements_beats_the_debtors_stop_received_now(
        before: list[tuple[Standing, str, bool]], stop_at: str) -> None:
    """Whatever arrived before, and whatever upstream says afterwards that is not newer than
    the STOP or is dated in the future, the number stays opted out."""
    for order in permutations(before):
        current: ChannelStanding | None = None
        for standing, at, debtor in order:
            after, _ = settle(current, said(standing, at, debtor=debtor and standing is OUT),
                              FUTURE)
            current = after or current
        after, _ = settle(current, said(OUT, stop_at, debtor=True), stop_at)
        current = after or current
        assert current is not None
        assert current.standing is OUT
        for late in (EARLIER, BEFORE, NOW, FUTURE):
            final, why = settle(current, said(IN, late), stop_at)
            assert final is None
            assert why == (OPT_IN_NOT_AFTER_REVOCATION if late <= stop_at else OPT_IN_IN_FUTURE)
