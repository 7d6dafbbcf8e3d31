"""The `opt_outs` table: each number's standing per channel, changed only through `settle`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from dispatcher.compliance.consent import (
    INBOUND_TOPIC,
    ChannelStanding,
    Standing,
    Statement,
    settle,
)
from dispatcher.domain.clock import sortable_utc
from dispatcher.domain.events import EventType, OptChannel, OptData
from dispatcher.store.base import Accepted
from dispatcher.store.common import CHANNELS
from dispatcher.store.sqlite.contact_rows import Db, chunks, marks

Key = tuple[str, str]  # (number, channel)


def _standing(opted_out: int, reason: str | None) -> Standing:
    if not opted_out:
        return Standing.OPTED_IN
    return Standing.REVIEW if reason == Standing.REVIEW else Standing.OPTED_OUT


async def load_standings(db: Db, numbers: Iterable[str]) -> dict[Key, ChannelStanding]:
    """The stored standing of every channel of these numbers."""
    found: dict[Key, ChannelStanding] = {}
    for chunk in chunks(sorted(set(numbers))):
        for r in await db.execute_fetchall(
                f"SELECT number, channel, opted_out, reason, changed_at, event_id, account_id "
                f"FROM opt_outs WHERE number IN ({marks(len(chunk))})", chunk):
            found[(r[0], r[1])] = ChannelStanding(_standing(r[2], r[3]), r[4], r[5], r[6])
    return found


async def save_standings(db: Db, changed: Mapping[Key, ChannelStanding]) -> None:
    """Write changed standings (inserted or replaced)."""
    await db.executemany(
        "INSERT INTO opt_outs(number, channel, opted_out, reason, changed_at, event_id, "
        "account_id) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(number, channel) DO UPDATE SET "
        "opted_out = excluded.opted_out, reason = excluded.reason, "
        "changed_at = excluded.changed_at, event_id = excluded.event_id, "
        "account_id = excluded.account_id",
        [(number, channel, int(s.standing is not Standing.OPTED_IN),
          Standing.REVIEW.value if s.standing is Standing.REVIEW else None, s.changed_at,
          s.event_id, s.account_id) for (number, channel), s in changed.items()])


def _statements(item: Accepted) -> list[tuple[Key, Statement]]:
    event = item.event
    assert isinstance(event.data, OptData)
    standing = Standing.OPTED_OUT if event.type is EventType.OPT_OUT else Standing.OPTED_IN
    statement = Statement(standing, item.occurred_at_key, event.event_id, event.account_id,
                          from_debtor=item.topic == INBOUND_TOPIC)
    channels = CHANNELS if event.data.channel is OptChannel.ALL else (event.data.channel.value,)
    return [((event.data.number, channel), statement) for channel in channels]


async def apply_opt_events(db: Db, fresh: Sequence[Accepted],
                           now: datetime) -> dict[str, dict[str, str]]:
    """Settle the opt-out/opt-in events of a batch in order of arrival; return, per event id,
    the channels whose opt-in was not applied and why."""
    items = [i for i in fresh if isinstance(i.event.data, OptData)]
    if not items:
        return {}
    statements = [s for item in items for s in _statements(item)]
    current = await load_standings(db, (key[0] for key, _ in statements))
    changed: dict[Key, ChannelStanding] = {}
    refused: dict[str, dict[str, str]] = {}
    received = sortable_utc(now)
    for key, statement in statements:
        after, why = settle(current.get(key), statement, received)
        if after is not None:
            current[key] = changed[key] = after
        if why is not None:
            refused.setdefault(statement.event_id, {})[key[1]] = why
    await save_standings(db, changed)
    return refused


async def pause_for_review(db: Db, number: str, *, key: str, account_id: str | None,
                           at: datetime) -> dict[str, Standing] | None:
    """Pause every channel of `number` for a person to review a reply; the channels whose
    standing changed, with their standing now (an opt-out stays one), or None when this very
    reply paused it before (a replayed webhook)."""
    current = await load_standings(db, [number])
    if all(current.get((number, c)) is not None and current[(number, c)].event_id == key
           for c in CHANNELS):
        return None
    statement = Statement(Standing.REVIEW, sortable_utc(at), key, account_id, from_debtor=True)
    changed: dict[Key, ChannelStanding] = {}
    for channel in CHANNELS:
        after, _ = settle(current.get((number, channel)), statement, sortable_utc(at))
        if after is not None:
            changed[(number, channel)] = after
    await save_standings(db, changed)
    return {channel: s.standing for (_, channel), s in changed.items()}
