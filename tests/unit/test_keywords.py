"""What an inbound text asks for: revocation in the debtor's own words, whatever the wrapping."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dispatcher.compliance.keywords import (
    CONTACT_PHRASES,
    OPT_OUT_KEYWORDS,
    Keyword,
    classify_reply,
    normalize,
)

OUT, ALL, REVIEW, FREE = Keyword.OPT_OUT, Keyword.OPT_OUT_ALL, Keyword.REVIEW, Keyword.FREE_TEXT


@pytest.mark.parametrize(("body", "expected"), [
    # CTIA keywords, any case, any wrapping
    ("STOP", OUT), ("  Stop ", OUT), ("stop.", OUT), ("STOPALL", OUT), ("Unsubscribe", OUT),
    ("CANCEL", OUT), ("end", OUT), ("Quit!", OUT), ("REVOKE", OUT), ("optout", OUT),
    ("OPT OUT", OUT), ("opt-out", OUT), ("unsub", OUT), ("TD", OUT),
    ("\uff33\uff34\uff2f\uff30", OUT),  # full-width
    ("STOP \N{PERSON WITH FOLDED HANDS}", OUT),
    ("STOP \N{PERSON WITH FOLDED HANDS}\N{EMOJI MODIFIER FITZPATRICK TYPE-4}", OUT),
    ('"STOP"', OUT), ("\u201cStop\u201d", OUT), ("STOP\u200b", OUT), ("S\u200bT\u2060OP", OUT),
    ("\u00abstop\u00bb", OUT), ("please stop", OUT), ("Stop please", OUT),
    ("stop stop stop", OUT), ("STOP NOW!!!", OUT), ("stop, thank you", OUT),
    # plain requests about texts
    ("please stop texting me", OUT), ("Don\u2019t text me anymore", OUT),
    ("no more messages please", OUT), ("unsubscribe me from this", OUT),
    ("Please remove me from your list", OUT),
    # Chinese, Spanish, Hindi
    ("退订。", OUT), ("退訂", OUT), ("请退订", OUT), ("停止", OUT), ("取消", OUT),
    ("不要再发短信了", OUT), ("ALTO", OUT), ("Parar", OUT), ("baja", OUT), ("CANCELAR", OUT),
    ("no más mensajes", OUT), ("darme de baja por favor", OUT), ("बंद करो", OUT),
    ("band karo", OUT), ("message mat bhejo", OUT),
    # calls or contact in general: every channel
    ("stop calling me", ALL), ("Stop, wrong number", ALL), ("don't contact me", ALL),
    ("DO NOT CALL", ALL), ("leave me alone", ALL), ("stop texting and calling me", ALL),
    ("别再打电话", ALL), ("不要再打了", ALL), ("請勿來電", ALL), ("no me llames", ALL),
    ("Dejen de llamar", ALL), ("call mat karo", ALL), ("कॉल मत करो", ALL),
    # an emoji variation selector after a word of a script with its own marks
    ("कॉल मत करो\ufe0f", ALL), ("बंद करो\ufe0f", OUT), ("STOP\ufe0f", OUT),
    # might be a revocation: a person decides
    ("who is this stop", REVIEW), ("not now", REVIEW), ("can you stop by later?", REVIEW),
    ("how do I unsubscribe from the paper bill", REVIEW), ("\N{OCTAGONAL SIGN}", REVIEW),
    # not a revocation
    ("I will pay on Friday", FREE), ("I lost my job, can we talk?", FREE),
    ("The end of the month works", FREE), ("ok", FREE), ("thanks", FREE), ("", FREE),
    ("\N{THUMBS UP SIGN}", FREE), ("我周五还款", FREE), ("pagaré el viernes", FREE),
    ("I have no more money until payday", FREE), ("can you remove the late fee", FREE),
    ("el pago es muy alto", FREE), ("leave me a voicemail", FREE),
    # opt-in and help stay as they were
    ("START", Keyword.OPT_IN), ("unstop", Keyword.OPT_IN), ("Yes!", Keyword.OPT_IN),
    ("HELP", Keyword.HELP), ("info", Keyword.HELP),
])
def test_a_reply_is_classified(body: str, expected: Keyword) -> None:
    assert classify_reply(body) is expected


# Wrapping that must never hide a keyword: punctuation, quotes, emoji, zero-width and spaces.
WRAPPING = st.text(st.sampled_from([
    *" .,!?;:\"'()[]-_*~/\u201c\u201d\u2018\u2019\u00ab\u00bb\u3002\uff01\u200b\u200c"
     "\u200d\u2060\ufeff\u00a0\u3000\ufe0f\t\n",
    "\N{PERSON WITH FOLDED HANDS}", "\N{FACE WITH TEARS OF JOY}", "\N{HEAVY BLACK HEART}",
    "\N{EMOJI MODIFIER FITZPATRICK TYPE-5}", "\N{SMILING FACE WITH SMILING EYES}"]),
    max_size=8)
INVISIBLE = st.sampled_from(["", "", "", "\u200b", "\u200d", "\u2060", "\u00ad"])
FULL_WIDTH = {chr(c): chr(c + 0xFEE0) for c in range(0x21, 0x7F)}


@st.composite
def disguised(draw: st.DrawFn, keywords: tuple[str, ...]) -> str:
    """A keyword in random case, maybe full-width, with invisible characters inside and
    arbitrary punctuation, emoji and spaces around it."""
    word = draw(st.sampled_from(keywords))
    letters = []
    for original in word:
        ch = original.upper() if draw(st.booleans()) else original
        if ch in FULL_WIDTH and draw(st.booleans()):
            ch = FULL_WIDTH[ch]
        letters.append(ch + draw(INVISIBLE))
    return draw(WRAPPING) + "".join(letters) + draw(WRAPPING)


@given(disguised(OPT_OUT_KEYWORDS))
def test_any_keyword_however_wrapped_revokes(body: str) -> None:
    assert classify_reply(body) in (Keyword.OPT_OUT, Keyword.OPT_OUT_ALL)


@given(disguised(CONTACT_PHRASES))
def test_any_contact_phrase_however_wrapped_revokes_every_channel(body: str) -> None:
    assert classify_reply(body) is Keyword.OPT_OUT_ALL


@given(disguised(OPT_OUT_KEYWORDS), st.sampled_from(["please", "pls", "now", "thanks", "ok"]))
def test_a_keyword_with_a_polite_word_still_revokes(body: str, polite: str) -> None:
    assert classify_reply(f"{polite} {body}") in (Keyword.OPT_OUT, Keyword.OPT_OUT_ALL)
    assert classify_reply(f"{body} {polite}") in (Keyword.OPT_OUT, Keyword.OPT_OUT_ALL)


PLAIN_WORDS = ["i", "will", "pay", "on", "friday", "the", "money", "tomorrow", "next", "week",
               "can", "we", "talk", "my", "salary", "comes", "half", "now", "and", "rest",
               "later", "sorry", "for", "delay", "at", "of", "month", "bank", "transfer"]


@given(st.lists(st.sampled_from(PLAIN_WORDS), min_size=1, max_size=12), WRAPPING)
def test_a_plain_reply_is_never_taken_for_a_revocation(words: list[str], end: str) -> None:
    assert classify_reply(" ".join(words) + end) is Keyword.FREE_TEXT


@given(st.text(max_size=60))
def test_normalising_is_idempotent_and_classifying_sees_only_the_normal_form(body: str) -> None:
    text = normalize(body)
    assert normalize(text) == text
    expected = classify_reply(body)
    if expected is not Keyword.REVIEW:  # a stop-sign emoji is read before normalising
        assert classify_reply(text) is expected
