"""Inbound texts in the debtor's own words: a revocation, an opt-in, help, a possible
revocation for a person to read, or free text.

Revocation of consent by any reasonable means must be honoured (FCC 24-24, 47 CFR
64.1200(a)(10)): besides the CTIA keywords, a reply is normalised (Unicode NFKC, case, accents on
Latin letters, zero-width and format characters, punctuation, quotes, emoji and other symbols)
and matched against the keyword and phrase lists below, in English, Chinese, Spanish and Hindi.
The lists are data: extend them here (docs/compliance.md says how they are used).
Every entry is normalised the same way as a reply when this module loads.
"""

from __future__ import annotations

import unicodedata
from enum import StrEnum


class Keyword(StrEnum):
    """What an inbound text asks for."""

    OPT_OUT = "opt_out"  # no more texts to this number
    OPT_OUT_ALL = "opt_out_all"  # no more texts or calls: the reply is about calls or contact
    OPT_IN = "opt_in"
    HELP = "help"
    REVIEW = "revocation_review"  # might be a revocation: paused until a person decides
    FREE_TEXT = "free_text"


# The whole reply, with polite words around it (FILLER), is one of these: texts stop.
OPT_OUT_KEYWORDS = (
    # CTIA and carriers
    "stop", "stopall", "stop all", "unsubscribe", "cancel", "end", "quit", "revoke", "optout",
    "opt out", "unsub", "remove", "remove me", "td",
    # Chinese
    "退订", "退訂", "停止", "取消", "退订短信", "退訂簡訊",
    # Spanish
    "alto", "parar", "para", "baja", "cancelar", "basta", "detener", "darme de baja",
    # Hindi (romanised and Devanagari)
    "band", "band karo", "bandh karo", "roko", "ruko", "बंद", "बंद करो", "रोको", "रुको",
)
# Words that may surround a keyword without making the reply unclear ("Stop please", "STOP 🙏").
FILLER = (
    "please", "pls", "plz", "now", "it", "thanks", "thank", "you", "ok", "okay", "asap",
    "immediately", "right", "all", "me", "just", "already", "sms", "texts", "messages",
    "por", "favor", "ya", "gracias", "kripya", "कृपया", "请", "謝謝", "谢谢", "吧", "了",
)
# Anywhere in a reply: every channel stops (the reply is about calls, or contact in general).
CONTACT_PHRASES = (
    "stop calling", "stop call", "stop calls", "stop the calls", "no calls", "quit calling",
    "stop contacting", "stop harassing",
    "dont call", "do not call", "dont contact", "do not contact", "never call",
    "never contact", "no more calls", "leave me alone", "wrong number", "wrong person",
    "lose my number", "delete my number", "remove my number",
    "别再打", "不要再打", "别打电话", "不要打电话", "别打了", "不要打了", "别联系", "不要联系",
    "别再联系", "不要再联系", "停止联系", "请勿来电", "请勿联系", "打错了", "打错电话",
    "別再打", "別打電話", "不要打電話", "不要聯繫", "別聯繫", "請勿來電", "打錯了",
    "no me llames", "no me llamen", "no llamen", "no llames", "deja de llamar",
    "dejen de llamar", "no me contactes", "no me contacten", "no mas llamadas",
    "numero equivocado",
    "call mat karo", "phone mat karo", "call mat kariye", "phone mat kariye", "galat number",
    "कॉल मत करो", "फोन मत करो", "फ़ोन मत करो", "कॉल मत कीजिए", "संपर्क मत करो", "गलत नंबर",
)
# Anywhere in a reply: texts stop (every channel too when the reply also names calls).
TEXT_PHRASES = (
    "stop texting", "stop messaging", "stop sending", "stop the texts", "stop these texts",
    "stop the messages", "stop text", "stop msg", "dont text", "do not text", "dont message",
    "do not message", "dont send", "do not send", "no more texts", "no more text",
    "no more messages", "unsubscribe me", "remove me", "take me off", "opt me out",
    "stop all messages",
    "退订", "退訂", "不要再发", "别再发", "停止发送", "不要发短信", "別再發", "不要再發",
    "no me envies", "no me envien", "no mas mensajes", "no me escribas", "no me escriban",
    "dar de baja", "darme de baja", "deja de escribir", "dejen de escribir",
    "message mat bhejo", "msg mat bhejo", "sms mat bhejo", "sandesh mat bhejo",
    "मैसेज मत भेजो", "संदेश मत भेजो", "मत भेजो",
)
# With a text revocation, any of these makes it a revocation of calls too.
CALL_WORDS = ("call", "calls", "calling", "phone", "ring", "llamar", "llamadas", "llames",
              "llamen", "电话", "電話", "来电", "來電", "कॉल", "फोन", "फ़ोन")
# Anywhere in a reply that is not clearly one of the above: it might be a revocation.
# Words with an everyday sense ("no more money", "muy alto", "remove the fee") are left out.
REVIEW_PHRASES = (
    "stop", "stopp", "stopall", "unsubscribe", "unsub", "optout", "opt out", "revoke", "cancel",
    "block", "harass", "harassing", "harassment", "spam", "not now", "parar", "basta",
    "cancelar", "停止", "取消", "骚扰", "騷擾", "拉黑", "बंद", "रोको",
)
# Symbols that say "stop" on their own; emoji are otherwise dropped by normalisation.
REVIEW_SYMBOLS = ("\N{OCTAGONAL SIGN}", "\N{NO ENTRY}", "\N{NO ENTRY SIGN}")
OPT_IN_KEYWORDS = ("start", "unstop", "yes")
HELP_KEYWORDS = ("help", "info")

# An SMS is at most 1,600 characters; reading more would only let a huge body cost time.
MAX_CLASSIFIED = 4000
_APOSTROPHES = frozenset("'\u2019\u02bc\u2018`\u00b4")


def normalize(body: str) -> str:
    """The reply as it is matched: NFKC, casefolded, Latin accents, zero-width and format
    characters and apostrophes removed, other punctuation and symbols as spaces, one space
    between words."""
    text = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", body).casefold())
    out: list[str] = []
    base = " "
    for ch in text:
        category = unicodedata.category(ch)
        if category == "Cf" or ch in _APOSTROPHES or _is_variation_selector(ch):
            continue  # "S\u200bTOP" is STOP; "don't" is "dont"; "STOP\ufe0f" (emoji style) too
        if category[0] == "M":
            # A mark on a Latin letter is an accent ("más"); on a symbol, an emoji modifier.
            # Marks of scripts such as Devanagari are part of the word.
            if base != " " and not base.isascii():
                out.append(ch)
            continue
        if category[0] in "LN":
            out.append(ch)
            base = ch
        else:
            out.append(" ")
            base = " "
    return " ".join(unicodedata.normalize("NFC", "".join(out)).split())


def _is_variation_selector(ch: str) -> bool:
    # A mark (Mn) that picks a glyph's style, not part of any word: kept, it would stick to a
    # word of a script whose own marks are kept (Devanagari), and that word would match nothing.
    code = ord(ch)
    return 0xFE00 <= code <= 0xFE0F or 0xE0100 <= code <= 0xE01EF


def _is_spaceless(phrase: str) -> bool:
    """Chinese and Japanese are written without spaces: match their phrases inside words."""
    return any(unicodedata.east_asian_width(ch) == "W" for ch in phrase)


class _Phrases:
    """A list of phrases, normalised once, matched on word boundaries (or inside CJK text)."""

    def __init__(self, phrases: tuple[str, ...]) -> None:
        normalised = {normalize(p) for p in phrases} - {""}
        self.spaced = tuple(sorted(f" {p} " for p in normalised if not _is_spaceless(p)))
        self.spaceless = tuple(sorted(p for p in normalised if _is_spaceless(p)))

    def found_in(self, spaced: str, compact: str) -> bool:
        """Whether any phrase occurs in the reply (`spaced`: " words ", `compact`: no spaces)."""
        return (any(p in spaced for p in self.spaced)
                or any(p in compact for p in self.spaceless))


# Public: the work queue matches statements (a dispute, a bereavement) the same way.
Phrases = _Phrases


def _words(items: tuple[str, ...]) -> frozenset[str]:
    return frozenset(normalize(i) for i in items) - {""}


_KEYWORDS = _words(OPT_OUT_KEYWORDS)
_FILLER = _words(FILLER)
_OPT_IN = _words(OPT_IN_KEYWORDS)
_HELP = _words(HELP_KEYWORDS)
_CONTACT = _Phrases(CONTACT_PHRASES)
_TEXT = _Phrases(TEXT_PHRASES)
_CALLS = _Phrases(CALL_WORDS)
_REVIEW = _Phrases(REVIEW_PHRASES)
_SPACELESS_FILLER = tuple(sorted((f for f in _FILLER if _is_spaceless(f)), key=len,
                                 reverse=True))


def _keyword_only(words: list[str], compact: str) -> bool:
    """The reply is opt-out keywords and polite words, nothing else."""
    rest = [w for w in words if w not in _FILLER]
    if rest and (" ".join(rest) in _KEYWORDS or all(w in _KEYWORDS for w in rest)):
        return True
    for filler in _SPACELESS_FILLER:  # "请退订", "停止吧"
        compact = compact.replace(filler, "")
    return compact in _KEYWORDS


def classify_reply(body: str) -> Keyword:
    """What an inbound text asks for; a revocation whenever it reasonably is one."""
    body = body[:MAX_CLASSIFIED]
    text = normalize(body)
    if text in _OPT_IN:
        return Keyword.OPT_IN
    if text in _HELP:
        return Keyword.HELP
    spaced, compact = f" {text} ", text.replace(" ", "")
    if _CONTACT.found_in(spaced, compact):
        return Keyword.OPT_OUT_ALL
    if text and (_TEXT.found_in(spaced, compact) or _keyword_only(text.split(), compact)):
        return Keyword.OPT_OUT_ALL if _CALLS.found_in(spaced, compact) else Keyword.OPT_OUT
    if _REVIEW.found_in(spaced, compact) or any(s in body for s in REVIEW_SYMBOLS):
        return Keyword.REVIEW
    return Keyword.FREE_TEXT
