"""Account state as a fold over events: semantics table and order-independence properties."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from dispatcher.domain.accounts import AccountState, AccountStatus, fold, is_in_order
from dispatcher.domain.events import Event, HoldReason, ResolvedReason
from tests.unit.samples import event, overdue_data

ACCOUNT = "A-1001"


def at(hour: int) -> str:
    return f"2026-12-01T{hour:02d}:00:00Z"


def utc(hour: int) -> datetime:
    return datetime(2026, 12, 1, hour, tzinfo=UTC)


def test_no_events_is_an_unknown_account() -> None:
    state = fold(ACCOUNT, [])
    assert state == AccountState(account_id=ACCOUNT)
    assert state.status is AccountStatus.UNKNOWN
    assert state.event_count == 0


def test_overdue_creates_an_open_account() -> None:
    state = fold(ACCOUNT, [event("account.overdue", event_id="e1", occurred_at=at(9))])
    assert state.status is AccountStatus.OPEN
    assert (state.days_past_due, state.amount_due, state.currency) == (12, "125.50", "USD")
    assert state.days_past_due_as_of == utc(9)
    assert state.debtor is not None
    assert state.debtor.name == "Dana Debtor"
    assert [c.contact_id for c in state.contacts] == ["C-1"]
    assert state.last_occurred_at == utc(9)
    assert state.event_count == 1


def test_events_before_overdue_leave_the_account_unknown() -> None:
    state = fold(ACCOUNT, [event("account.hold", event_id="e1", occurred_at=at(9))])
    assert state.status is AccountStatus.UNKNOWN
    assert [h.reason for h in state.holds] == [HoldReason.DISPUTE]


def test_updated_replaces_only_the_fields_given() -> None:
    state = fold(ACCOUNT, [
        event("account.overdue", event_id="e1", occurred_at=at(9)),
        event("account.updated", {"amount_due": "80.00"}, event_id="e2", occurred_at=at(10)),
    ])
    assert state.amount_due == "80.00"
    assert (state.days_past_due, state.currency) == (12, "USD")
    assert state.days_past_due_as_of == utc(9)
    assert state.debtor is not None
    assert state.debtor.phones[0].number == "+15125550100"
    assert len(state.contacts) == 1
    assert state.status is AccountStatus.OPEN


def test_updated_days_past_due_moves_its_as_of_time() -> None:
    state = fold(ACCOUNT, [
        event("account.overdue", event_id="e1", occurred_at=at(9)),
        event("account.updated", {"days_past_due": 40}, event_id="e2", occurred_at=at(11)),
    ])
    assert (state.days_past_due, state.days_past_due_as_of) == (40, utc(11))
    assert state.amount_due == "125.50"


def test_resolved_closes_the_account() -> None:
    state = fold(ACCOUNT, [
        event("account.overdue", event_id="e1", occurred_at=at(9)),
        event("account.resolved", {"reason": "settled"}, event_id="e2", occurred_at=at(10)),
    ])
    assert state.status is AccountStatus.RESOLVED
    assert state.resolved_reason is ResolvedReason.SETTLED
    assert state.resolved_at == utc(10)


def test_an_older_overdue_arriving_late_does_not_reopen() -> None:
    state = fold(ACCOUNT, [
        event("account.resolved", event_id="e2", occurred_at=at(10)),
        event("account.overdue", event_id="e1", occurred_at=at(9)),
    ])
    assert state.status is AccountStatus.RESOLVED
    assert state.last_occurred_at == utc(10)


def test_a_newer_overdue_after_resolved_reopens_and_clears_the_promise() -> None:
    state = fold(ACCOUNT, [
        event("account.overdue", event_id="e1", occurred_at=at(9)),
        event("account.promise", event_id="e2", occurred_at=at(10)),
        event("account.resolved", event_id="e3", occurred_at=at(11)),
        event("account.overdue", {**overdue_data(), "days_past_due": 3}, event_id="e4",
              occurred_at=at(12)),
    ])
    assert state.status is AccountStatus.OPEN
    assert state.promise is None
    assert (state.resolved_reason, state.resolved_at) == (None, None)
    assert state.days_past_due == 3


def test_a_refreshed_overdue_on_an_open_account_keeps_the_promise() -> None:
    state = fold(ACCOUNT, [
        event("account.overdue", event_id="e1", occurred_at=at(9)),
        event("account.promise", event_id="e2", occurred_at=at(10)),
        event("account.overdue", event_id="e3", occurred_at=at(11)),
    ])
    assert state.promise is not None
    assert state.promise.event_id == "e2"


def test_promise_is_stored() -> None:
    state = fold(ACCOUNT, [
        event("account.overdue", event_id="e1", occurred_at=at(9)),
        event("account.promise", {"due_on": "2026-12-10", "amount": "50.00"}, event_id="e2",
              occurred_at="2026-12-01T05:00:00-05:00"),
    ])
    assert state.promise is not None
    assert state.promise.due_on == date(2026, 12, 10)
    assert state.promise.amount == "50.00"
    assert state.promise.made_at == utc(10)
    assert state.promise.event_id == "e2"


def test_hold_adds_by_reason_and_replaces_the_same_reason() -> None:
    state = fold(ACCOUNT, [
        event("account.overdue", event_id="e1", occurred_at=at(9)),
        event("account.hold", {"reason": "dispute", "until": "2026-12-06"}, event_id="e2",
              occurred_at=at(10)),
        event("account.hold", {"reason": "attorney"}, event_id="e3", occurred_at=at(11)),
        event("account.hold", {"reason": "dispute", "until": "2026-12-20"}, event_id="e4",
              occurred_at=at(12)),
    ])
    holds = {h.reason: h for h in state.holds}
    assert len(state.holds) == 2
    assert set(holds) == {HoldReason.DISPUTE, HoldReason.ATTORNEY}
    assert holds[HoldReason.DISPUTE].until == date(2026, 12, 20)
    assert holds[HoldReason.DISPUTE].event_id == "e4"
    assert holds[HoldReason.DISPUTE].placed_at == utc(12)
    assert holds[HoldReason.ATTORNEY].until is None


def test_release_removes_only_that_reason() -> None:
    state = fold(ACCOUNT, [
        event("account.overdue", event_id="e1", occurred_at=at(9)),
        event("account.hold", {"reason": "dispute"}, event_id="e2", occurred_at=at(10)),
        event("account.hold", {"reason": "hardship"}, event_id="e3", occurred_at=at(10)),
        event("account.release", {"reason": "dispute"}, event_id="e4", occurred_at=at(11)),
        event("account.release", {"reason": "cease"}, event_id="e5", occurred_at=at(12)),
    ])
    assert [h.reason for h in state.holds] == [HoldReason.HARDSHIP]
    assert state.event_count == 5


def test_is_in_order() -> None:
    empty = AccountState(account_id=ACCOUNT)
    older = event("account.hold", event_id="e0", occurred_at=at(8))
    newer = event("account.hold", event_id="e0", occurred_at=at(10))
    state = fold(ACCOUNT, [event("account.overdue", event_id="e1", occurred_at=at(9))])
    assert is_in_order(empty, [older])
    assert is_in_order(state, [newer])
    assert is_in_order(state, [])
    assert not is_in_order(state, [newer, older])


def test_incremental_fold_matches_full_fold_when_times_tie() -> None:
    # Same occurred_at: fold orders ties by event_id, so "e-1" (release) takes effect before
    # "e-2" (hold) and the hold stays. When is_in_order() accepts the late "e-1", the store
    # folds it onto the stored state instead of refolding: that must give the same answer.
    hold = event("account.hold", {"reason": "dispute"}, event_id="e-2", occurred_at=at(10))
    release = event("account.release", {"reason": "dispute"}, event_id="e-1",
                    occurred_at=at(10))
    full = fold(ACCOUNT, [hold, release])
    assert [h.reason for h in full.holds] == [HoldReason.DISPUTE]
    before = fold(ACCOUNT, [hold])
    assert not is_in_order(before, [release]) or fold(ACCOUNT, [release], before) == full


BASE = datetime(2026, 12, 1, 12, tzinfo=UTC)
ZONES = [UTC, timezone(timedelta(hours=-5)), timezone(timedelta(hours=8))]
HOLD_REASONS = ["dispute", "attorney"]

EVENT_DATA: st.SearchStrategy[tuple[str, dict[str, Any]]] = st.one_of(
    st.builds(lambda d, a: ("account.overdue", {**overdue_data(), "days_past_due": d,
                                                "amount_due": a}),
              st.integers(1, 90), st.sampled_from(["10.00", "20.00"])),
    st.sampled_from([("account.updated", {"amount_due": "5.00"}),
                     ("account.updated", {"days_past_due": 77}),
                     ("account.updated", {"currency": "EUR", "contacts": []})]),
    st.builds(lambda r: ("account.resolved", {"reason": r}), st.sampled_from(["paid", "closed"])),
    st.builds(lambda d: ("account.promise", {"due_on": d}),
              st.sampled_from(["2026-12-05", "2026-12-09"])),
    st.builds(lambda r, u: ("account.hold", {"reason": r, "until": u}),
              st.sampled_from(HOLD_REASONS), st.sampled_from([None, "2026-12-06"])),
    st.builds(lambda r: ("account.release", {"reason": r}), st.sampled_from(HOLD_REASONS)),
    st.just(("contact.opt_out", {"number": "+15125550100", "channel": "call"})),
)


@st.composite
def account_events(draw: st.DrawFn, times: int = 4) -> list[Event]:
    """Events of one account with distinct ids and a few distinct `times` (so ties happen)."""
    specs = draw(st.lists(EVENT_DATA, min_size=1, max_size=8))
    ids = draw(st.permutations(range(len(specs))))
    events = []
    for (kind, data), n in zip(specs, ids, strict=True):
        moment = BASE + timedelta(minutes=30 * draw(st.integers(0, times - 1)))
        stamp = moment.astimezone(draw(st.sampled_from(ZONES))).isoformat()
        events.append(event(kind, data, event_id=f"e-{n:02d}", occurred_at=stamp))
    return events


@settings(max_examples=150, deadline=None, database=None, derandomize=True)
@given(events=account_events(), data=st.data())
def test_arrival_order_never_changes_the_state(events: list[Event], data: st.DataObject) -> None:
    arrival = data.draw(st.permutations(events))
    assert fold(ACCOUNT, arrival) == fold(ACCOUNT, events)
    assert fold(ACCOUNT, list(reversed(events))) == fold(ACCOUNT, events)


def _arrival_in_time_order(events: list[Event], data: st.DataObject) -> list[Event]:
    # Arrival order that never goes back in occurred_at; ties arrive in random id order.
    shuffled = data.draw(st.permutations(events))
    return sorted(shuffled, key=lambda e: e.occurred_at)


@settings(max_examples=150, deadline=None, database=None, derandomize=True)
@given(events=account_events(), data=st.data())
def test_incremental_fold_equals_full_fold_when_newer(events: list[Event],
                                                      data: st.DataObject) -> None:
    arrival = _arrival_in_time_order(events, data)
    cuts = [k for k in range(len(arrival) + 1)
            if k in (0, len(arrival)) or arrival[k - 1].occurred_at < arrival[k].occurred_at]
    k = data.draw(st.sampled_from(cuts))
    before = fold(ACCOUNT, arrival[:k])
    assert is_in_order(before, arrival[k:])
    assert fold(ACCOUNT, arrival[k:], before) == fold(ACCOUNT, events)


@settings(max_examples=300, deadline=None, database=None, derandomize=True)
@given(events=account_events(times=2), data=st.data())
def test_incremental_fold_equals_full_fold_whenever_in_order(events: list[Event],
                                                             data: st.DataObject) -> None:
    # What the store does: fold the new events onto the stored state when is_in_order() says
    # so, else refold everything. Either way the result must be the full fold.
    arrival = _arrival_in_time_order(events, data)
    k = data.draw(st.integers(0, len(arrival)))
    before, rest = fold(ACCOUNT, arrival[:k]), arrival[k:]
    if is_in_order(before, rest):
        assert fold(ACCOUNT, rest, before) == fold(ACCOUNT, events)
