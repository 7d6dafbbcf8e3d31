"""The report's own re-check of the contact rules, fed hand-made audit records.

The debtor of A-1 lives in Chicago (CST, UTC-6); 2026-12-07 is a Monday. Each test breaks one
rule on purpose and expects exactly that rule, naming exactly the records that show it; the
limits a test is not about are loosened so that each test sees only its own rule.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from dispatcher.compliance.policy import Limits
from dispatcher.compliance.profiles import ProfileLimits, RegionProfiles
from dispatcher.contact.templates import AFTER_IDENTITY, GREETING, TEXT, Purpose, Template
from dispatcher.domain.clock import utc_rfc3339
from dispatcher.domain.contact import Medium, Party
from dispatcher.report.attempt_log import attempts_of, outcome_statuses
from dispatcher.report.recheck import (
    CALL_CAP,
    CONTACT_CAP,
    COOLDOWN,
    DAILY_CAP,
    HOLD,
    HOURS,
    MIN_GAP,
    OPTED_OUT,
    RESOLVED,
    RULE_TITLES,
    SMS_CAP,
    SUNDAY,
    THIRD_PARTY_CHANNEL,
    THIRD_PARTY_LIMIT,
    THIRD_PARTY_TEMPLATE,
    WORK_NUMBER,
    Violation,
    in_window,
    recheck,
    recheck_by_region,
)

CHICAGO = "America/Chicago"
DEBTOR = "+13125550100"
DEBTOR_HOME = "+13125550101"
SISTER = "+13125550177"
# Loose enough that only the rule under test can be broken.
LOOSE = Limits(attempts_per_day=10, min_gap_minutes=0, calls_per_7_days=50, sms_per_7_days=50,
               contacts_per_7_days=100, conversation_cooldown_days=0,
               third_party_calls_per_contact=10)
TEMPLATES = {
    "location_call": Template("location_call", Medium.CALL, Party.THIRD_PARTY, Purpose.LOCATION,
                              {TEXT: {"en": "Hello, this is {agent}. Could {name} call me at "
                                            "{callback}?"}}),
    "leaky_location": Template("leaky_location", Medium.CALL, Party.THIRD_PARTY,
                               Purpose.LOCATION,
                               {TEXT: {"en": "Please tell {name} about the {amount} due."}}),
    "call_script": Template("call_script", Medium.CALL, Party.DEBTOR, Purpose.COLLECTION,
                            {GREETING: {"en": "Hello, is this {name}? Press 1."},
                             AFTER_IDENTITY: {"en": "About your payment of {amount}."}}),
}


def cst(day: int, hour: int, minute: int = 0) -> datetime:
    """A wall-clock time in Chicago in December 2026, as UTC."""
    return datetime(2026, 12, day, hour, minute, tzinfo=ZoneInfo(CHICAGO)).astimezone(UTC)


class Log:
    """Audit records in the shape the store writes them, seq by seq."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def add(self, kind: str, at: datetime, **fields: Any) -> int:
        seq = len(self.records) + 1
        self.records.append({"seq": seq, "at": utc_rfc3339(at), "kind": kind, **fields})
        return seq

    def attempt(self, at: datetime, *, account: str = "A-1", channel: str = "call",
                to: str = DEBTOR, role: str = "debtor", status: str | None = "no-answer",
                zones: Sequence[str] = (CHICAGO,), template: str | None = None,
                number_type: str = "mobile", local_times: dict[str, str] | None = None) -> int:
        """An attempt record and, when `status` is given, its outcome record a minute later."""
        attempt_id = f"at-{len(self.records) + 1}"
        party = "debtor" if role == "debtor" else "third_party"
        times = local_times if local_times is not None else {
            z: at.astimezone(ZoneInfo(z)).isoformat(timespec="minutes") for z in zones}
        seq = self.add("attempt", at, attempt_id=attempt_id, account_id=account,
                       channel=channel, party=party, role=role, to=to, local_times=times,
                       number_type=number_type if role == "debtor" else None,
                       template=template or ("location_call" if role != "debtor"
                                             else "call_script"))
        if status is not None:
            self.add("outcome", at + timedelta(minutes=1), attempt_id=attempt_id,
                     account_id=account, channel=channel, party=party, role=role, to=to,
                     status=status)
        return seq

    def event(self, at: datetime, event_type: str, event_id: str, *, account: str = "A-1",
              occurred_at: datetime | None = None) -> int:
        return self.add("event", at, event_id=event_id, event_type=event_type,
                        account_id=account, occurred_at=utc_rfc3339(occurred_at or at))

    def opt(self, at: datetime, status: str, channel: str, *, number: str = DEBTOR,
            occurred_at: datetime | None = None) -> int:
        event_id = f"e-opt-{len(self.records)}"
        kind = "contact.opt_out" if status == "opted_out" else "contact.opt_in"
        self.event(at, kind, event_id, occurred_at=occurred_at)
        return self.add("opt_out", at, event_id=event_id, account_id="A-1", to=number,
                        channel=channel, status=status)

    def hold(self, at: datetime, status: str, *, until: str | None = None) -> int:
        event_id = f"e-hold-{len(self.records)}"
        self.event(at, "account.hold" if status == "placed" else "account.release", event_id)
        fields: dict[str, Any] = {"until": until} if status == "placed" else {}
        return self.add("hold", at, event_id=event_id, account_id="A-1",
                        reason="hold:dispute", status=status, **fields)


def check(log: Log, limits: Limits = LOOSE) -> list[Violation]:
    records = log.records
    return recheck(records, attempts_of(records, outcome_statuses(records)), limits, TEMPLATES)


def rules(found: list[Violation]) -> list[tuple[str, tuple[int, ...]]]:
    return [(v.rule, v.seqs) for v in found]


def test_a_lawful_fortnight_shows_no_violation() -> None:
    """Every rule is approached and none is crossed, under the default (us) limits."""
    log = Log()
    log.event(cst(6, 12), "account.overdue", "e-1")
    log.attempt(cst(7, 9), channel="sms", status="delivered", template="reminder_sms")
    log.attempt(cst(8, 20, 59))                                  # last minute of the day
    log.attempt(cst(9, 8), to=DEBTOR_HOME)                       # first minute of the day
    log.attempt(cst(10, 13), status="busy")                      # busy: not a call in the cap
    log.attempt(cst(11, 13), status="completed")                 # a conversation on day 1 ...
    log.attempt(cst(12, 10), channel="sms", status="delivered", template="reminder_sms")
    log.attempt(cst(18, 9))                                      # ... calls resume on day 8
    log.opt(cst(18, 12), "opted_out", "sms")
    log.attempt(cst(19, 9))                                      # opted out of sms, not calls
    log.hold(cst(19, 12), "placed")
    log.hold(cst(20, 12), "released")
    log.attempt(cst(21, 9))
    log.attempt(cst(21, 15), role="emergency", to=SISTER, zones=(CHICAGO, "America/New_York"))
    log.event(cst(21, 16), "account.resolved", "e-2")
    log.event(cst(22, 9), "account.overdue", "e-3")               # a new delinquency reopens it
    log.attempt(cst(22, 10))
    log.attempt(cst(23, 3), status="not-sent")                   # never left: no contact at all
    assert check(log, Limits()) == []


@pytest.mark.parametrize(("at", "zones", "recorded"), [
    pytest.param(cst(8, 7, 59), (CHICAGO,), None, id="before-08:00"),
    pytest.param(cst(8, 21), (CHICAGO,), None, id="at-21:00"),
    # 09:00 in Chicago is 07:00 in Los Angeles: outside in one candidate zone is outside.
    pytest.param(cst(8, 9), (CHICAGO, "America/Los_Angeles"), None, id="one-zone-early"),
    pytest.param(cst(8, 10), (CHICAGO,), {CHICAGO: "2026-12-08T12:00-06:00"},
                 id="recorded-local-time-wrong"),
    pytest.param(cst(8, 10), (), {}, id="no-zone-at-all"),
])
def test_attempts_outside_the_allowed_hours(at: datetime, zones: tuple[str, ...],
                                            recorded: dict[str, str] | None) -> None:
    log = Log()
    seq = log.attempt(at, zones=zones, local_times=recorded)
    assert rules(check(log)) == [(HOURS, (seq,))]


def test_sundays_only_where_the_profile_forbids_them() -> None:
    log = Log()
    seq = log.attempt(cst(13, 10))  # Sunday
    assert check(log) == []
    assert rules(check(log, LOOSE.model_copy(update={"contact_on_sundays": False}))) == [
        (SUNDAY, (seq,))]


def test_calls_over_the_7_day_cap_and_what_counts() -> None:
    limits = LOOSE.model_copy(update={"calls_per_7_days": 2})
    log = Log()
    first = log.attempt(cst(7, 10))
    log.attempt(cst(8, 10), status="busy")          # never connected: not counted
    log.attempt(cst(8, 14), status="failed")
    log.attempt(cst(8, 15), channel="sms", status="delivered")  # texts have their own budget
    second = log.attempt(cst(9, 10), status="machine", to=DEBTOR_HOME)  # every number counts
    assert check(log, limits) == []
    third = log.attempt(cst(14, 9, 59), status=None)  # in flight counts; 7 x 24 h after `first`
    assert rules(check(log, limits)) == [(CALL_CAP, (first, second, third))]
    log.attempt(cst(16, 10))  # the week since `second`'s day has passed
    assert rules(check(log, limits)) == [(CALL_CAP, (first, second, third))]


def test_a_guarantor_has_the_tighter_cap() -> None:
    limits = LOOSE.model_copy(update={"guarantor_calls_per_7_days": 1})
    log = Log()
    first = log.attempt(cst(7, 10), role="guarantor", to=SISTER)
    second = log.attempt(cst(8, 10), role="guarantor", to=SISTER)
    assert rules(check(log, limits)) == [(CALL_CAP, (first, second))]


def test_texts_and_all_attempts_have_their_own_7_day_caps() -> None:
    limits = LOOSE.model_copy(update={"sms_per_7_days": 1, "contacts_per_7_days": 2})
    log = Log()
    one = log.attempt(cst(7, 10), channel="sms", status="delivered")
    two = log.attempt(cst(8, 10))
    three = log.attempt(cst(9, 10), channel="sms", status="delivered")
    assert sorted(rules(check(log, limits))) == [(CONTACT_CAP, (one, two, three)),
                                                 (SMS_CAP, (one, three))]


def test_no_call_within_the_cool_down_after_a_conversation() -> None:
    limits = LOOSE.model_copy(update={"conversation_cooldown_days": 7})
    log = Log()
    talk = log.attempt(cst(7, 20, 30), status="completed")  # day 1 (Monday)
    log.attempt(cst(8, 10), channel="sms", status="delivered")  # texts are not calls
    log.attempt(cst(14, 10), role="emergency", to=SISTER)  # another person
    early = log.attempt(cst(13, 20, 59))  # day 7: too early
    log.attempt(cst(14, 8))  # day 8: allowed
    assert rules(check(log, limits)) == [(COOLDOWN, (talk, early))]


def test_the_daily_cap_counts_local_days_not_utc_days() -> None:
    limits = LOOSE.model_copy(update={"attempts_per_day": 1})
    log = Log()
    morning = log.attempt(cst(8, 9))  # 15:00 UTC on the 8th
    evening = log.attempt(cst(8, 20), channel="sms", status="delivered")  # 02:00 UTC on the 9th
    log.attempt(cst(9, 9))
    log.attempt(cst(9, 9), role="emergency", to=SISTER)  # another person's own count
    assert rules(check(log, limits)) == [(DAILY_CAP, (morning, evening))]


def test_a_minimum_gap_between_attempts_on_one_number() -> None:
    limits = LOOSE.model_copy(update={"min_gap_minutes": 240})
    log = Log()
    first = log.attempt(cst(8, 9))
    log.attempt(cst(8, 10), to=DEBTOR_HOME)  # another number
    soon = log.attempt(cst(8, 12, 59), channel="sms", status="delivered")
    log.attempt(cst(8, 17))  # 4 h 1 min after `soon`
    assert rules(check(log, limits)) == [(MIN_GAP, (first, soon))]


def test_work_numbers_only_when_the_profile_allows() -> None:
    log = Log()
    seq = log.attempt(cst(8, 10), number_type="work")
    assert rules(check(log)) == [(WORK_NUMBER, (seq,))]
    assert check(log, LOOSE.model_copy(update={"call_work_numbers": True})) == []


def test_nothing_on_a_channel_after_its_opt_out_until_the_opt_in() -> None:
    log = Log()
    log.attempt(cst(7, 10), channel="sms", status="delivered")
    out = log.opt(cst(7, 12), "opted_out", "sms")
    log.attempt(cst(8, 10))  # calls are another channel
    sms = log.attempt(cst(9, 10), channel="sms", status="delivered")
    log.opt(cst(10, 12), "opted_in", "sms")
    log.attempt(cst(11, 10), channel="sms", status="delivered")
    everything = log.opt(cst(11, 12), "opted_out", "all")
    call = log.attempt(cst(12, 10))
    assert rules(check(log)) == [(OPTED_OUT, (out, sms)), (OPTED_OUT, (everything, call))]


def test_the_newest_statement_by_occurred_at_wins_and_opt_out_wins_a_tie() -> None:
    log = Log()
    # The opt-in occurred before the opt-out but arrives after it: the opt-out stands.
    out = log.opt(cst(7, 12), "opted_out", "call", occurred_at=cst(7, 11))
    log.opt(cst(7, 13), "opted_in", "call", occurred_at=cst(7, 10))
    first = log.attempt(cst(8, 10))
    # At the same instant, an opt-out beats an opt-in.
    log.opt(cst(8, 12), "opted_in", "call", occurred_at=cst(8, 11))
    tie = log.opt(cst(8, 13), "opted_out", "call", occurred_at=cst(8, 11))
    second = log.attempt(cst(9, 10))
    assert rules(check(log)) == [(OPTED_OUT, (out, first)), (OPTED_OUT, (tie, second))]


def test_an_opt_in_that_was_not_applied_lifts_nothing_and_a_pause_for_review_binds() -> None:
    log = Log()
    out = log.opt(cst(7, 12), "opted_out", "sms")
    refused = log.opt(cst(7, 13), "opted_in", "sms", occurred_at=cst(7, 14))
    log.records[refused - 1] |= {"status": "not_applied", "reason": "opt_in_in_future"}
    sms = log.attempt(cst(8, 10), channel="sms", status="delivered")
    paused = log.add("opt_out", cst(8, 12), account_id="A-1", to=DEBTOR, channel="call",
                     status="revocation_review", reason="revocation_review")
    call = log.attempt(cst(9, 10))
    assert rules(check(log)) == [(OPTED_OUT, (out, sms)), (OPTED_OUT, (paused, call))]


def test_an_opt_out_recorded_after_the_attempt_does_not_bind_it() -> None:
    log = Log()
    log.attempt(cst(8, 10))
    log.opt(cst(8, 12), "opted_out", "call", occurred_at=cst(8, 9))
    assert check(log) == []


def test_nothing_while_a_hold_is_in_place() -> None:
    log = Log()
    placed = log.hold(cst(7, 12), "placed")
    during = log.attempt(cst(8, 10))
    log.hold(cst(8, 12), "released")
    log.attempt(cst(9, 10))
    until = log.hold(cst(9, 12), "placed", until="2026-12-11")
    before_until = log.attempt(cst(10, 20))
    log.attempt(cst(11, 8))  # the hold ended at 00:00 local on the 11th
    assert rules(check(log)) == [(HOLD, (placed, during)), (HOLD, (until, before_until))]


def test_nothing_after_the_account_is_resolved_unless_a_newer_delinquency_reopens_it() -> None:
    log = Log()
    log.event(cst(6, 12), "account.overdue", "e-1")
    resolved = log.event(cst(7, 12), "account.resolved", "e-2")
    after = log.attempt(cst(8, 10))
    # An overdue event that occurred before the resolution, arriving late, reopens nothing.
    log.event(cst(8, 12), "account.overdue", "e-3", occurred_at=cst(7, 11))
    still = log.attempt(cst(9, 10))
    log.event(cst(9, 12), "account.overdue", "e-4")
    log.attempt(cst(10, 10))
    log.attempt(cst(10, 10), account="A-2")  # another account is not concerned
    assert rules(check(log)) == [(RESOLVED, (resolved, after)), (RESOLVED, (resolved, still))]


def test_third_parties_get_calls_only_once_each_and_never_the_debt() -> None:
    limits = LOOSE.model_copy(update={"third_party_calls_per_contact": 1})
    log = Log()
    text = log.attempt(cst(7, 10), role="emergency", to=SISTER, channel="sms",
                       status="delivered", template="location_call")
    log.attempt(cst(8, 10), role="emergency", to=SISTER, status="busy")  # not connected
    first = log.attempt(cst(9, 10), role="emergency", to=SISTER)
    second = log.attempt(cst(10, 10), role="emergency", to=SISTER)
    assert rules(check(log, limits)) == [(THIRD_PARTY_CHANNEL, (text,)),
                                         (THIRD_PARTY_LIMIT, (first, second))]


def test_no_call_to_a_third_party_who_refused() -> None:
    log = Log()
    refused = log.attempt(cst(8, 10), role="emergency", to=SISTER, status="refused")
    again = log.attempt(cst(9, 10), role="emergency", to=SISTER)
    assert rules(check(log)) == [(THIRD_PARTY_LIMIT, (refused, again))]


@pytest.mark.parametrize("template", ["leaky_location", "call_script", "gone_template"])
def test_a_third_party_template_that_could_reveal_the_debt(template: str) -> None:
    log = Log()
    seq = log.attempt(cst(8, 10), role="emergency", to=SISTER, template=template)
    found = check(log)
    assert rules(found) == [(THIRD_PARTY_TEMPLATE, (seq,))]
    assert template in found[0].explanation


def test_attempts_never_sent_are_no_contact() -> None:
    log = Log()
    log.attempt(cst(8, 3), status="not-sent")
    log.attempt(cst(8, 10), role="emergency", to=SISTER, channel="sms", status="not-sent")
    assert check(log) == []


def test_only_violations_whose_last_record_is_in_the_window_are_listed() -> None:
    limits = LOOSE.model_copy(update={"attempts_per_day": 1})
    log = Log()
    log.attempt(cst(7, 9))
    log.attempt(cst(7, 15))
    a = log.attempt(cst(8, 9))
    b = log.attempt(cst(8, 15))
    found = check(log, limits)
    assert len(found) == 2
    assert rules(in_window(found, cst(8, 0), cst(9, 0))) == [(DAILY_CAP, (a, b))]


def test_every_rule_has_a_title() -> None:
    assert all(RULE_TITLES[v] for v in (HOURS, SUNDAY, CALL_CAP, SMS_CAP, CONTACT_CAP, COOLDOWN,
                                        DAILY_CAP, MIN_GAP, WORK_NUMBER, OPTED_OUT, HOLD,
                                        RESOLVED, THIRD_PARTY_CHANNEL, THIRD_PARTY_LIMIT,
                                        THIRD_PARTY_TEMPLATE))


def test_hours_follow_the_configured_window() -> None:
    log = Log()
    log.attempt(cst(8, 20, 30))
    assert check(log) == []
    assert [v.rule for v in check(log, LOOSE.model_copy(update={"hours_end": time(20)}))] == [
        HOURS]


def test_an_account_is_held_to_its_regions_stricter_limits() -> None:
    """Massachusetts allows 2 contacts in 7 days; the same three attempts elsewhere are fine."""
    log = Log()
    for day in (7, 9, 11):
        log.attempt(cst(day, 10), channel="sms", status="delivered")
    for record in log.records:
        if record["kind"] == "attempt":
            record["region"] = "US-MA"
    regional = {"US-MA": LOOSE.model_copy(update={"contacts_per_7_days": 2})}
    regions = RegionProfiles({"US": "us"}, {"us": ProfileLimits("us", LOOSE, regional)})
    records = log.records
    attempts = attempts_of(records, outcome_statuses(records))
    found = recheck_by_region(records, attempts, regions, LOOSE, TEMPLATES)
    assert [v.rule for v in found] == ["contact_cap_7d"]
    assert found[0].seqs[-1] == records[-2]["seq"]
    for record in records:
        record.pop("region", None)
    elsewhere = attempts_of(records, outcome_statuses(records))
    assert recheck_by_region(records, elsewhere, regions, LOOSE, TEMPLATES) == []


def test_an_account_is_held_to_the_profile_of_its_region() -> None:
    """Three texts in a week: within cn's caps, over in's; a region no profile covers is itself
    a violation for each attempt sent there."""
    log = Log()
    for day in (7, 9, 11):
        log.attempt(cst(day, 10), channel="sms", status="delivered")
    strict = LOOSE.model_copy(update={"sms_per_7_days": 2})
    regions = RegionProfiles({"CN": "cn", "IN": "in"}, {"cn": ProfileLimits("cn", LOOSE, {}),
                                                        "in": ProfileLimits("in", strict, {})})
    verdicts = {}
    for region in ("CN-31", "IN-MH", "JP-13"):
        for record in log.records:
            if record["kind"] == "attempt":
                record["region"] = region
        attempts = attempts_of(log.records, outcome_statuses(log.records))
        verdicts[region] = [v.rule for v in recheck_by_region(log.records, attempts, regions,
                                                              LOOSE, TEMPLATES)]
    assert verdicts == {"CN-31": [], "IN-MH": ["sms_cap_7d"],
                        "JP-13": ["no_profile", "no_profile", "no_profile"]}
