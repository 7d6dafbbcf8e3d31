"""Hours the consumer asked to avoid (docs/compliance.md): honoured like quiet hours."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from dispatcher.compliance.gate import Budget, Facts, time_refusals
from dispatcher.compliance.policy import Limits
from dispatcher.domain.accounts import AccountState, AccountStatus
from dispatcher.domain.contact import Medium, Role, Target
from dispatcher.domain.events import AvoidHours, Debtor, Phone, parse_event
from dispatcher.errors import InvalidEvent

NUMBER = "+15125550100"
CHICAGO = "America/Chicago"


def facts(spans: list[tuple[str, str]]) -> Facts:
    debtor = Debtor(name="Pat Doe", timezone=CHICAGO,
                    phones=[Phone(number=NUMBER, type="mobile", sms_consent=True,
                                  call_consent=True)],
                    avoid_hours=[AvoidHours(start=a, end=b) for a, b in spans])
    state = AccountState(account_id="A-1", status=AccountStatus.OPEN, debtor=debtor)
    return Facts(state=state, zones=(CHICAGO,), home_zone=CHICAGO, holiday_region=None)


@pytest.mark.parametrize(("spans", "local", "refused", "retry_local"), [
    ([("12:00", "13:30")], "12:00", True, "13:30"),        # start inclusive
    ([("12:00", "13:30")], "13:29", True, "13:30"),
    ([("12:00", "13:30")], "13:30", False, None),          # end exclusive
    ([("12:00", "13:30")], "11:59", False, None),
    ([("20:00", "09:00")], "08:30", True, "09:00"),        # across midnight, morning side
    ([("20:00", "09:00")], "20:15", True, "09:00+1"),      # evening side: ends tomorrow
    ([("20:00", "09:00")], "10:00", False, None),
    ([("09:00", "10:00"), ("17:00", "18:00")], "17:05", True, "18:00"),
])
def test_avoid_hours_refuse_like_quiet_hours(spans: list[tuple[str, str]], local: str,
                                             refused: bool, retry_local: str | None) -> None:
    day = 9  # Wednesday 2026-12-09, no holiday
    hour, minute = map(int, local.split(":"))
    zone = ZoneInfo(CHICAGO)
    now = datetime(2026, 12, day, hour, minute, tzinfo=zone).astimezone(UTC)
    target = Target(Role.DEBTOR, "debtor", NUMBER, "mobile", Medium.CALL)
    found = [r for r in time_refusals(target, facts(spans), Limits(), Budget(1, 240), now)
             if "avoid" in r.detail]
    assert bool(found) is refused
    if retry_local is not None:
        clock, _, plus = retry_local.partition("+")
        h, m = map(int, clock.split(":"))
        expected = datetime(2026, 12, day + int(plus or 0), h, m, tzinfo=zone).astimezone(UTC)
        assert found[0].reason == "quiet_hours"
        assert found[0].retry_at == expected


def test_avoid_hours_is_an_optional_debtor_field_and_validated() -> None:
    base = ('{"schema":1,"event_id":"e1","type":"account.overdue","occurred_at":'
            '"2026-12-01T09:00:00Z","account_id":"A-1","data":{"days_past_due":3,'
            '"amount_due":"1.00","currency":"USD","debtor":{"name":"Pat","phones":[],'
            '"avoid_hours":%s}}}')
    event = parse_event((base % '[{"start":"12:00","end":"13:00"}]').encode())
    assert event.data.debtor is not None  # type: ignore[union-attr]
    with pytest.raises(InvalidEvent) as caught:
        parse_event((base % '[{"start":"12:00","end":"12:00"}]').encode())
    assert caught.value.reason == "invalid"
    with pytest.raises(InvalidEvent):
        parse_event((base % '[{"start":"25:00","end":"12:00"}]').encode())
