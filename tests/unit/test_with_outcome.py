"""`with_outcome` gives the facts `dataclasses.replace` would: every field carried over."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from dispatcher.compliance.gate import Facts
from dispatcher.contact.account_facts import with_outcome
from dispatcher.domain.accounts import AccountState
from dispatcher.domain.contact import Medium, NumberClaim, Outcome, PastAttempt, Role, Target
from dispatcher.store import OutcomeRow
from schedules.planner import PlannedAttempt

NOW = datetime(2026, 12, 9, 18, 0, tzinfo=UTC)


def test_facts_computes_nothing_on_construction() -> None:
    # with_outcome copies the fields instead of calling __init__: right only while it sets
    # each field as given.
    assert not hasattr(Facts, "__post_init__")
    assert all(f.init for f in dataclasses.fields(Facts))


@given(st.sampled_from(list(Outcome)), st.sampled_from(list(Role)),
       st.sampled_from(list(Medium)), st.booleans())
def test_with_outcome_is_replace(outcome: Outcome, role: Role, medium: Medium,
                                 busy: bool) -> None:
    earlier = PastAttempt("at-1", NOW - timedelta(hours=3), "debtor", Role.DEBTOR,
                          "+13125550100", Medium.CALL, "morning", "early", Outcome.REFUSED)
    facts = Facts(state=AccountState(account_id="A"), zones=("America/Chicago",),
                  home_zone="America/Chicago", holiday_region="US-TX",
                  opted_out=frozenset({("+13125550101", Medium.SMS)}),
                  invalid_numbers=frozenset({"+13125550102"}), history=(earlier,),
                  refused_contacts=frozenset({"c-1"}),
                  under_review=frozenset({("+13125550103", Medium.CALL)}),
                  number_history=(earlier,) if busy else (),
                  number_claims=(NumberClaim("B", "+13125550100", NOW, None),) if busy else (),
                  number_last_used={"+13125550100": NOW} if busy else {})
    target = Target(role, "debtor" if role is Role.DEBTOR else "c-2", "+13125550104", None,
                    medium)
    planned = PlannedAttempt(NOW, target, "early", "evening", "rule", "template")
    row = OutcomeRow("at-2", outcome, NOW + timedelta(minutes=1))
    after = with_outcome(facts, planned, row)
    past = PastAttempt("at-2", row.at, target.person, role, target.number, medium, "evening",
                       "early", outcome)
    invalid = {target.number} if outcome is Outcome.INVALID_NUMBER else set()
    refused = {target.person} if outcome is Outcome.REFUSED else set()
    expected = dataclasses.replace(facts, history=(earlier, past),
                                   invalid_numbers=facts.invalid_numbers | invalid,
                                   refused_contacts=facts.refused_contacts | refused)
    assert type(after) is Facts
    assert vars(after) == vars(expected)
    assert vars(facts)["history"] == (earlier,)  # the facts given are left as they were
