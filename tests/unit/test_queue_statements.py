"""Statements a person must act on, found in replies; the items replies make, bounded."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dispatcher.queue.items import MAX_EXCERPT, Reason, clean, items_from_audit
from dispatcher.queue.statements import DEFAULT_MATCHER, StatementMatcher

FOUND = [
    ("I dispute this debt", (Reason.DISPUTE,)),
    ("I DISPUTE THIS", (Reason.DISPUTE,)),
    ("ｉ ｄｉｓｐｕｔｅ ｔｈｉｓ", (Reason.DISPUTE,)),  # noqa: RUF001 - full width
    ("this is NOT my debt!!", (Reason.DISPUTE,)),
    ("I don\u2019t owe you anything", (Reason.DISPUTE,)),
    ("no es mi deuda", (Reason.DISPUTE,)),
    ("NO ES MÍ DEUDA", (Reason.DISPUTE,)),
    ("这不是我的债", (Reason.DISPUTE,)),
    ("my husband passed away last month", (Reason.BEREAVEMENT,)),
    ("Él falleció", (Reason.BEREAVEMENT,)),
    ("mi padre FALLECIÓ", (Reason.BEREAVEMENT,)),
    ("他已经去世了", (Reason.BEREAVEMENT,)),
    ("他已經過世了", (Reason.BEREAVEMENT,)),
    ("I lost my job and can\u2019t pay", (Reason.HARDSHIP,)),
    ("perdí mi trabajo", (Reason.HARDSHIP,)),
    ("我失业了", (Reason.HARDSHIP,)),
    ("I will file a complaint with the CFPB", (Reason.COMPLAINT,)),
    ("voy a poner una queja", (Reason.COMPLAINT,)),
    ("我要投诉你们", (Reason.COMPLAINT,)),
    ("I dispute it and I lost my job", (Reason.DISPUTE, Reason.HARDSHIP)),
    ("dis\u200bpute", (Reason.DISPUTE,)),  # a zero-width space inside the word
]

NOT_FOUND = [
    "", "ok thanks", "undisputed champion", "indisputable", "I paid on the 3rd, thanks",
    "complainant", "the lawyers", "hardshipping", "diedre called", "a ripe apple",
    "no problem", "disputes? no", "\x00\x01\x02", "🙂", "pago mañana",
]


@pytest.mark.parametrize(("body", "expected"), FOUND)
def test_statements_found(body: str, expected: tuple[Reason, ...]) -> None:
    assert DEFAULT_MATCHER.find(body) == expected


@pytest.mark.parametrize("body", NOT_FOUND)
def test_no_statement_inside_other_words(body: str) -> None:
    assert DEFAULT_MATCHER.find(body) == ()


def test_config_phrases_add_to_the_shipped_ones() -> None:
    matcher = StatementMatcher({"fr": {"dispute": ["je conteste"]}})
    assert matcher.find("JE CONTESTE cette dette") == (Reason.DISPUTE,)
    assert matcher.find("I dispute it") == (Reason.DISPUTE,)
    assert DEFAULT_MATCHER.find("je conteste") == ()


def _reply(body: str, *, status: str = "free_text") -> dict[str, object]:
    found = DEFAULT_MATCHER.find(body)
    return {"kind": "reply", "account_id": "A-1", "to": "+15125550100", "status": status,
            "detail": body[:500], "reply_id": "r1",
            "statements": [s.value for s in found], "holds": []}


def test_a_reply_makes_one_item_for_the_gravest_statement() -> None:
    [item] = items_from_audit([_reply("he died, and I dispute this, complaint filed",
                                      status="revocation_review")])
    assert item.reason is Reason.BEREAVEMENT
    assert "dispute" in item.detail
    assert item.paused == ("number:sms", "number:call")


def test_help_makes_no_item() -> None:
    assert items_from_audit([_reply("help", status="help")]) == []


def test_clean_bounds_and_strips_control_characters() -> None:
    text = clean("a\x00b\x1b[31mc\u202e" + "x" * 10_000)
    assert len(text) <= MAX_EXCERPT
    assert all(unicodedata.category(ch)[0] != "C" for ch in text)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=3000), st.sampled_from(["free_text", "revocation_review", "help"]))
def test_hostile_text_never_crashes_and_makes_at_most_one_item(body: str, status: str) -> None:
    record = _reply(body, status=status)
    items = items_from_audit([record])
    assert len(items) <= 1
    for item in items:
        assert len(item.excerpt) <= MAX_EXCERPT
        assert all(unicodedata.category(ch)[0] != "C" for ch in item.excerpt)


def test_a_megabyte_reply_is_matched_in_bounded_time_and_space() -> None:
    body = ("é\u0301" * 500_000) + " I dispute"
    # Only the head is read (as revocations are): a statement past it is not looked for.
    assert DEFAULT_MATCHER.find(body) == ()
    assert DEFAULT_MATCHER.find("I dispute " + body) == (Reason.DISPUTE,)
