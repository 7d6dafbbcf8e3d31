"""Finding a slot: every lawful slot of a day is considered before the next day, and the most
likely to be answered is chosen."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from dispatcher.compliance.gate import Facts
from dispatcher.compliance.policy import Limits
from dispatcher.config.settings import load_config
from dispatcher.domain.accounts import AccountState, AccountStatus
from dispatcher.domain.events import Debtor, Phone
from schedules.planner import PlannedAttempt, plan_next

CONFIG = Path(__file__).resolve().parents[2] / "config" / "dispatcher.toml"
LOS_ANGELES = "America/Los_Angeles"
NEW_YORK = "America/New_York"
NEW_YORK_NUMBER = "+12125550187"


def _facts(days_past_due: int, as_of: datetime) -> Facts:
    debtor = Debtor(name="Pat Doe", timezone=LOS_ANGELES,
                    phones=[Phone(number=NEW_YORK_NUMBER, type="mobile", sms_consent=True,
                                  call_consent=True)])
    state = AccountState(account_id="A-1", status=AccountStatus.OPEN, debtor=debtor,
                         days_past_due=days_past_due, days_past_due_as_of=as_of,
                         amount_due="100.00", currency="USD")
    return Facts(state=state, zones=(LOS_ANGELES, NEW_YORK), home_zone=LOS_ANGELES,
                 holiday_region=None)


@pytest.mark.parametrize("days_past_due", [8, 25])
def test_late_evenings_refused_in_one_zone_do_not_push_past_the_day_both_zones_allow(
        days_past_due: int) -> None:
    schedule = load_config(CONFIG, {}).schedule
    # Monday 2026-12-07, 05:00 in Los Angeles: its evening after 18:00 is 21:00 in New York and
    # never lawful in both zones; the rest of this very day is.
    now = datetime(2026, 12, 7, 5, 0, tzinfo=ZoneInfo(LOS_ANGELES)).astimezone(UTC)
    plan = plan_next(_facts(days_past_due, now), schedule, Limits(), now)
    assert isinstance(plan, PlannedAttempt), plan
    local = plan.at.astimezone(ZoneInfo(LOS_ANGELES))
    assert local.date().isoformat() == "2026-12-07"
    for zone in (LOS_ANGELES, NEW_YORK):
        assert 8 <= plan.at.astimezone(ZoneInfo(zone)).hour < 21
