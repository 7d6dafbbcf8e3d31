"""The work queue on both stores: items made with the records that call for them, once each;
statements place their hold at once; a person's action is one transaction, never doubled."""

from __future__ import annotations

import asyncio
import unicodedata
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dispatcher.audit.chain import PUBLISHED_KINDS
from dispatcher.contact.engine import outcome_record
from dispatcher.contact.replies import handle_reply
from dispatcher.domain.contact import Medium, Outcome, Role
from dispatcher.errors import QueueError
from dispatcher.ingest.classify import classify
from dispatcher.queue.actions import clear_invalid, dismiss_dead_letter, resolve
from dispatcher.queue.items import MAX_EXCERPT, Reason, State, list_items
from dispatcher.queue.unreachable import unreachable_item
from dispatcher.store import AttemptRow, OutcomeRow, Store, open_store
from tests.support import encode, overdue_event, verify_log

T0 = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)
NUMBER = "+15125550100"
LIMIT = 65536


async def _seed(store: Store, account: str = "A-1") -> None:
    await store.record_batch([classify(encode(overdue_event(1, account)), "t", LIMIT)], now=T0,
                             config_version="test")


async def _reply(store: Store, body: str, sid: str = "SM1") -> None:
    await handle_reply(store, NUMBER, body, T0, config_version="test",
                       max_payload_bytes=LIMIT, message_id=sid)


async def _records(store: Store, kind: str) -> list[dict[str, object]]:
    return [r async for r in store.audit_records() if r["kind"] == kind]


async def _verifies(store: Store) -> None:
    result = await verify_log([row async for row in store.audit_rows()])
    assert result.ok, result


async def test_free_text_reply_makes_one_item_however_often_it_is_delivered(
        store_at: Path | str) -> None:
    async with open_store(store_at) as store:
        await _seed(store)
        for _ in range(3):  # a webhook delivered three times
            await _reply(store, "who is this? call me after 5\x00\x07")
        items = await list_items(store)
        assert [(i.reason, i.account_id, i.number) for i in items] == [
            (Reason.UNCLASSIFIED_REPLY, "A-1", NUMBER)]
        assert "\x00" not in items[0].excerpt
        assert "\x07" not in items[0].excerpt
        created = [r for r in await _records(store, "queue") if r["status"] == "created"]
        assert len(created) == 1
        assert created[0]["item_id"] == items[0].id
        assert "queue" in PUBLISHED_KINDS
        await _verifies(store)


async def test_a_dispute_places_the_hold_at_once_and_resume_lifts_it(
        store_at: Path | str) -> None:
    async with open_store(store_at) as store:
        await _seed(store)
        await _reply(store, "I DISPUTE this debt, it is not mine")
        await _reply(store, "I DISPUTE this debt, it is not mine")  # redelivered
        state = await store.account("A-1")
        assert state is not None
        assert [h.reason.value for h in state.holds] == ["dispute"]
        holds = await _records(store, "hold")
        assert [(h["reason"], h["status"]) for h in holds] == [("hold:dispute", "placed")]
        [item] = await list_items(store)
        assert item.reason is Reason.DISPUTE
        assert item.paused == ("hold:dispute",)
        assert "resume" in [a.value for a in item.actions]
        await resolve(store, item.id, "resume", note="checked the file", actor="ana",
                      now=T0 + timedelta(hours=1), config_version="test")
        state = await store.account("A-1")
        assert state is not None
        assert state.holds == ()
        with pytest.raises(QueueError, match="already resolved"):
            await resolve(store, item.id, "resume", note="again", actor="ana",
                          now=T0 + timedelta(hours=2))
        assert await list_items(store) == []
        [done] = await list_items(store, state=State.RESOLVED)
        assert (done.resolved_by, done.action, done.note) == ("ana", "resume",
                                                              "checked the file")
        resolved = [r for r in await _records(store, "queue") if r["status"] == "resolved"]
        assert [(r["by"], r["action"]) for r in resolved] == [("ana", "resume")]
        assert [h["status"] for h in await _records(store, "hold")] == ["placed", "released"]
        await _verifies(store)


async def test_a_bereavement_holds_as_deceased(store_at: Path | str) -> None:
    async with open_store(store_at) as store:
        await _seed(store)
        await _reply(store, "Mi madre falleció la semana pasada")
        state = await store.account("A-1")
        assert state is not None
        assert [h.reason.value for h in state.holds] == ["deceased"]
        [item] = await list_items(store)
        assert item.reason is Reason.BEREAVEMENT


async def test_a_possible_revocation_resumed_lifts_only_the_review(
        store_at: Path | str) -> None:
    async with open_store(store_at) as store:
        await _seed(store)
        await _reply(store, "stop it with this nonsense, what is this")
        [item] = await list_items(store)
        assert item.reason is Reason.REVOCATION_REVIEW
        assert {o.standing for o in await store.opt_outs(NUMBER)} == {"revocation_review"}
        await resolve(store, item.id, "resume", note="not a revocation", actor="bo",
                      now=T0 + timedelta(minutes=5))
        assert {o.standing for o in await store.opt_outs(NUMBER)} == {"opted_in"}


async def test_unknown_action_and_unknown_item_change_nothing(store_at: Path | str) -> None:
    async with open_store(store_at) as store:
        await _seed(store)
        await _reply(store, "hello?")
        [item] = await list_items(store)
        before = len([r async for r in store.audit_records()])
        with pytest.raises(QueueError, match="unknown action"):
            await resolve(store, item.id, "explode", note="x", actor="a", now=T0)
        with pytest.raises(QueueError, match="no queue item"):
            await resolve(store, 999, "dismiss", note="x", actor="a", now=T0)
        with pytest.raises(QueueError, match="allows"):
            await resolve(store, item.id, "mark_valid", note="x", actor="a", now=T0)
        with pytest.raises(QueueError, match="--action hold only"):
            await resolve(store, item.id, "dismiss", note="x", actor="a", now=T0,
                          hold="dispute")
        with pytest.raises(QueueError, match="unknown hold reason"):
            await resolve(store, item.id, "hold", note="x", actor="a", now=T0, hold="nap")
        with pytest.raises(QueueError, match="--by"):
            await resolve(store, item.id, "dismiss", note="x", actor=" ", now=T0)
        assert len([r async for r in store.audit_records()]) == before
        assert (await list_items(store))[0].state is State.OPEN


async def test_unknown_outcome_and_mark_invalid_then_clear(store_at: Path | str) -> None:
    async with open_store(store_at) as store:
        await _seed(store)
        attempt = AttemptRow("att-1", "A-1", "debtor", Role.DEBTOR, NUMBER, Medium.SMS, None,
                             None, None, None, T0)
        await store.record_decisions(attempts=[attempt], plans=[], audit=[], now=T0,
                                     config_version="test")
        lost = OutcomeRow("att-1", Outcome.UNKNOWN, T0, None, "lost")
        for _ in range(2):  # reconcile run twice
            await store.record_outcomes([lost], now=T0, config_version="test",
                                        audit_for=outcome_record)
        [item] = await list_items(store)
        assert (item.reason, item.ref) == (Reason.UNKNOWN_OUTCOME, "att-1")
        await resolve(store, item.id, "mark_invalid", note="disconnected", actor="cy", now=T0)
        assert [r["number"] for r in await store.invalid_numbers()] == [NUMBER]
        await clear_invalid(store, NUMBER, note="customer called in", actor="cy", now=T0)
        assert await store.invalid_numbers() == []
        with pytest.raises(QueueError, match="not marked invalid"):
            await clear_invalid(store, NUMBER, note="again", actor="cy", now=T0)
        operator = await _records(store, "operator")
        assert [(r["action"], r["by"]) for r in operator] == [("mark_valid", "cy")]
        await _verifies(store)


async def test_dead_letter_item_and_dismissal(store_at: Path | str) -> None:
    async with open_store(store_at) as store:
        await store.record_batch([classify(b"not json", "t", LIMIT)], now=T0,
                                 config_version="test")
        [item] = await list_items(store)
        assert item.reason is Reason.DEAD_LETTER
        [letter] = await store.dead_letters()
        await dismiss_dead_letter(store, letter.id, note="test noise", actor="di", now=T0)
        assert await store.dead_letters() == []
        assert [d.dismissed_by for d in await store.dead_letters(include_replayed=True)] == [
            "di"]
        assert await list_items(store) == []
        with pytest.raises(QueueError, match="already dismissed"):
            await dismiss_dead_letter(store, letter.id, note="x", actor="di", now=T0)
        with pytest.raises(QueueError, match="no dead letter"):
            await dismiss_dead_letter(store, 77, note="x", actor="di", now=T0)


async def test_a_second_broken_promise_makes_an_item(store_at: Path | str) -> None:
    async with open_store(store_at) as store:
        await _seed(store)
        for n in (1, 2, 3):
            await store.append_audit([{"kind": "promise", "account_id": "A-1",
                                       "status": "broken", "event_id": f"p-{n}"}], now=T0)
        items = await list_items(store)
        assert [(i.reason, i.ref) for i in items] == [(Reason.PROMISES_BROKEN, "p-2"),
                                                      (Reason.PROMISES_BROKEN, "p-3")]


async def test_a_huge_reply_is_stored_bounded(store_at: Path | str) -> None:
    async with open_store(store_at) as store:
        await _seed(store)
        await _reply(store, "\x1b[31m" + "blah " * 200_000)
        [item] = await list_items(store)
        assert len(item.excerpt) <= 280
        assert "\x1b" not in item.excerpt


hostile = st.one_of(
    st.text(max_size=2000),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=200).map(lambda t: t * 50),
    st.sampled_from(["\x00" * 10_000, "dispute\u200b" * 3000, "去世" * 5000,
                     "STOP " + "a" * 300_000, "\ud7ff\ufeff\u202e" * 100]),
)


def test_hostile_replies_never_crash_and_make_at_most_one_item_each(
        store_at: Path | str) -> None:
    async def scenario(bodies: list[str]) -> None:
        async with open_store(store_at) as store:
            await _seed(store)
            for body in bodies:
                sid = f"SM-{uuid.uuid4().hex}"
                before = len(await list_items(store, state=None))
                for _ in range(2):  # delivered twice
                    await handle_reply(store, NUMBER, body, T0, config_version="test",
                                       max_payload_bytes=LIMIT, message_id=sid)
                after = await list_items(store, state=None)
                assert len(after) - before <= 1
                for item in after[before:]:
                    assert len(item.excerpt) <= MAX_EXCERPT
                    assert all(unicodedata.category(c)[0] != "C" for c in item.excerpt)
            await _verifies(store)

    @settings(max_examples=15, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(st.lists(hostile, min_size=1, max_size=4))
    def check(bodies: list[str]) -> None:
        asyncio.run(scenario(bodies))

    check()


async def test_resume_releases_the_holds_the_reply_placed_on_every_account_and_no_other(
        store_at: Path | str) -> None:
    async with open_store(store_at) as store:
        await _seed(store, "A-1")
        await store.record_batch([classify(encode(overdue_event(2, "A-2")), "t", LIMIT)],
                                 now=T0, config_version="test")
        await _reply(store, "he passed away last week")
        for account in ("A-1", "A-2"):
            state = await store.account(account)
            assert state is not None
            assert [h.reason.value for h in state.holds] == ["deceased"]
        # Upstream confirms the death on A-2 with its own hold, which replaces the reply's.
        upstream = encode({"schema": 1, "event_id": "up-hold", "type": "account.hold",
                           "occurred_at": "2026-12-01T15:30:00Z", "account_id": "A-2",
                           "data": {"reason": "deceased"}})
        await store.record_batch([classify(upstream, "t", LIMIT)], now=T0,
                                 config_version="test")
        [item] = await list_items(store)
        records = await resolve(store, item.id, "resume", note="wrong person", actor="ed",
                                now=T0 + timedelta(hours=1))
        [resolved] = [r for r in records if r["kind"] == "queue"]
        assert resolved["released"] == ["A-1"]
        one, two = await store.account("A-1"), await store.account("A-2")
        assert one is not None
        assert two is not None
        assert one.holds == ()
        assert [h.event_id for h in two.holds] == ["up-hold"]


async def test_an_unreachable_account_makes_one_item_until_its_marks_change(
        store_at: Path | str) -> None:
    async with open_store(store_at) as store:
        await _seed(store)
        context = (await store.contexts(["A-1"], T0))["A-1"]
        assert unreachable_item(context) is None  # its number is usable
        attempt = AttemptRow("att-9", "A-1", "debtor", Role.DEBTOR, NUMBER, Medium.SMS, None,
                             None, None, None, T0)
        await store.record_decisions(attempts=[attempt], plans=[], audit=[], now=T0,
                                     config_version="test")
        await store.record_outcomes([OutcomeRow("att-9", Outcome.INVALID_NUMBER, T0)], now=T0,
                                    config_version="test", audit_for=outcome_record)
        context = (await store.contexts(["A-1"], T0))["A-1"]
        item = unreachable_item(context)
        assert item is not None
        for _ in range(3):  # every sweep that decides the account finds it so again
            await store.record_decisions(attempts=[], plans=[], audit=[], now=T0,
                                         config_version="test", queue=[item])
        [stored] = await list_items(store)
        assert (stored.reason, stored.paused) == (Reason.UNREACHABLE, ("account",))
        with pytest.raises(QueueError, match="not listed"):
            await resolve(store, stored.id, "mark_valid", note="x", actor="fi", now=T0,
                          number="+15125550999")
        await resolve(store, stored.id, "mark_valid", note="the line works again",
                      actor="fi", now=T0, number=NUMBER)
        assert await store.invalid_numbers() == []
        context = (await store.contexts(["A-1"], T0))["A-1"]
        assert unreachable_item(context) is None


async def test_hardship_places_no_hold_until_a_person_does(store_at: Path | str) -> None:
    async with open_store(store_at) as store:
        await _seed(store)
        await _reply(store, "I lost my job, I cannot pay this month")
        state = await store.account("A-1")
        assert state is not None
        assert state.holds == ()
        [item] = await list_items(store)
        assert (item.reason, item.paused) == (Reason.HARDSHIP, ())
        await resolve(store, item.id, "hold", note="30 days of forbearance", actor="gu",
                      now=T0, hold="hardship")
        state = await store.account("A-1")
        assert state is not None
        assert [h.reason.value for h in state.holds] == ["hardship"]
        [resolved] = [r for r in await _records(store, "queue") if r["status"] == "resolved"]
        assert (resolved["action"], resolved["hold"], resolved["by"]) == ("hold", "hardship",
                                                                          "gu")
