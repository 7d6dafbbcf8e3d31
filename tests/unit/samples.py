"""Event payloads for the unit tests: one valid envelope per type, built from plain dicts."""

from __future__ import annotations

import copy
import json
from typing import Any

from dispatcher.domain.events import Event, validate_event

OCCURRED_AT = "2026-12-01T09:00:00-05:00"


def debtor() -> dict[str, Any]:
    """A debtor with one mobile number and full consent."""
    return {
        "name": "Dana Debtor",
        "timezone": "America/Chicago",
        "region": "US-TX",
        "locale": "en-US",
        "phones": [
            {"number": "+15125550100", "type": "mobile", "sms_consent": True,
             "call_consent": True},
        ],
    }


def overdue_data() -> dict[str, Any]:
    """Data of a valid account.overdue event."""
    return {
        "days_past_due": 12,
        "amount_due": "125.50",
        "currency": "USD",
        "debtor": debtor(),
        "contacts": [
            {"contact_id": "C-1", "name": "Gail Guarantor", "relation": "sister",
             "number": "+15125550199", "role": "guarantor"},
        ],
    }


VALID_DATA: dict[str, dict[str, Any]] = {
    "account.overdue": overdue_data(),
    "account.updated": {"amount_due": "99.00"},
    "account.resolved": {"reason": "paid"},
    "account.promise": {"due_on": "2026-12-10", "amount": "50.00"},
    "account.hold": {"reason": "dispute", "until": "2026-12-06"},
    "account.release": {"reason": "dispute"},
    "contact.opt_out": {"number": "+15125550100", "channel": "sms"},
    "contact.opt_in": {"number": "+15125550100", "channel": "all"},
}


def envelope(kind: str = "account.overdue", data: dict[str, Any] | None = None, *,
             event_id: str = "e-2026-12-01-000001", account_id: str = "A-1001",
             occurred_at: str = OCCURRED_AT) -> dict[str, Any]:
    """A complete schema-1 envelope; `data` defaults to the valid example of `kind`."""
    return {
        "schema": 1,
        "event_id": event_id,
        "type": kind,
        "occurred_at": occurred_at,
        "account_id": account_id,
        "data": copy.deepcopy(VALID_DATA[kind] if data is None else data),
    }


def encode(raw: object) -> bytes:
    """JSON-encode a payload as the broker would deliver it."""
    return json.dumps(raw).encode("utf-8")


def event(kind: str, data: dict[str, Any] | None = None, *, event_id: str,
          occurred_at: str, account_id: str = "A-1001") -> Event:
    """A validated Event."""
    return validate_event(envelope(kind, data, event_id=event_id, account_id=account_id,
                                   occurred_at=occurred_at))
