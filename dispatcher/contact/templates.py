"""Message templates: read from TOML and refused at load when they could break contact law.

The rules: a third-party template is a location call that reveals nothing about the debt; a
voicemail is a limited-content message (Reg F 1006.2(j)); a call to the debtor is spoken in two
parts, and its greeting, heard by whoever answers, reveals nothing about the debt either; every
SMS but the opt-out confirmation tells the reader how to opt out (Reg F 1006.6(e)); every word of
a template is sent or spoken, so no template carries a note for an agent.
"""

from __future__ import annotations

import functools
import hashlib
import re
import string
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

from dispatcher.config.tomlfiles import read_toml
from dispatcher.domain.contact import Medium, Party
from dispatcher.errors import ConfigError, ConfigProblem


class Purpose(StrEnum):
    """What a template is for; it decides which content rules apply."""

    COLLECTION = "collection"
    VOICEMAIL = "voicemail"
    LOCATION = "location"
    OPT_OUT_CONFIRMATION = "opt_out_confirmation"
    HELP = "help"


PLACEHOLDERS = frozenset({"first_name", "name", "business", "callback", "agent", "amount",
                          "currency", "days_past_due", "due_date"})
DEBT_PLACEHOLDERS = frozenset({"amount", "currency", "days_past_due", "due_date"})

DEBT_WORDS_EN = ("debt", "overdue", "owe", "owes", "owed", "owing", "payment", "pay",
                 "collection", "collect", "balance", "loan", "arrears", "delinquent", "past due",
                 "default", "bill", "credit", "settle", "installment", "instalment", "charge off")
# Debt words that are not inflections of the list above; a false refusal costs an edit of the
# template, a miss tells a third party about the debt.
DEBT_WORDS_EN_EXTRA = ("payday", "repay", "repaid", "repayment", "paid", "unpaid", "debtor",
                       "indebted", "creditor", "delinquency", "chargeoff", "recovery", "dues")
# Traditional-script forms follow the simplified ones so that a zh-TW/zh-HK text is held to the
# same rule. A longer word is reported rather than the single character inside it (债务, not 债).
DEBT_WORDS_ZH = ("欠款", "逾期", "催收", "还款", "债务", "欠债", "贷款", "借款", "账单",
                 "欠费", "欠钱", "还钱", "拖欠", "付款", "缴费", "缴款", "余额", "催款", "应还",
                 "到期", "利息", "罚息", "滞纳金", "债", "贷",
                 "還款", "債務", "欠債", "貸款", "賬單", "帳單", "欠費", "欠錢", "還錢", "繳費",
                 "繳款", "餘額", "應還", "罰息", "滯納金", "債", "貸")

# English words match whole words plus regular inflections ("payments", "collected", "debts"),
# so "payday" is refused (listed above: it names a kind of loan) while "Owen", "display",
# "allowed" and "towing" are not. A word's edge is any character that is not an ASCII letter or
# digit, so "回复pay" still matches: \b would see no edge between a CJK letter and a Latin one.
_INFLECTIONS = "(?:s|es|d|ed|ing|ment|ments|er|ers|or|ors)?"
_EDGE_BEFORE, _EDGE_AFTER = r"(?<![a-z0-9])", r"(?![a-z0-9])"


def _alternation(words: Sequence[str]) -> str:
    ordered = sorted(words, key=len, reverse=True)
    return "|".join(r"[\s-]+".join(re.escape(part) for part in w.split()) for w in ordered)


_DEBT_EN = re.compile(
    _EDGE_BEFORE + "(?:" + _alternation(DEBT_WORDS_EN + DEBT_WORDS_EN_EXTRA) + ")"
    + _INFLECTIONS + _EDGE_AFTER, re.IGNORECASE)
_DEBT_ZH = re.compile(_alternation(DEBT_WORDS_ZH))
# A debt placeholder written so that str.format does not see it ({AMOUNT}, full-width braces)
# is not filled in, but it still shows what the text is about.
_DEBT_PLACEHOLDER = re.compile(r"\{\s*(" + "|".join(sorted(DEBT_PLACEHOLDERS)) + r")\s*\}")
# Brackets mark stage directions ("[Continue only once ...]", "【确认...】"): words for an agent,
# which a template must not carry, since every word of it is sent or spoken.
NOTE_BRACKETS = "[]【】〔〕〖〗〘〙"  # noqa: RUF001  (brackets, not parentheses)

# The reply words of which an SMS must name one, by language. STOP is the carriers' word in
# every language; Chinese texts follow the local convention "回复TD退订" instead (退订 means
# "unsubscribe"; 退訂 in traditional script). A language added here needs its words recognised
# by the inbound opt-out handling too.
OPT_OUT_WORDS: Mapping[str, tuple[str, ...]] = MappingProxyType({"zh": ("TD", "退订", "退訂")})
DEFAULT_OPT_OUT_WORDS = ("STOP",)

# The parts of a template, each a table of locale = text. A call to the debtor for collection is
# spoken in two: the greeting to whoever answers, and, once they have pressed CONFIRM_DIGIT to
# say they are the debtor, the rest. Every other template is one text.
TEXT, GREETING, AFTER_IDENTITY = "text", "greeting", "after_identity"
PARTS = (TEXT, GREETING, AFTER_IDENTITY)
CONFIRM_DIGIT = "1"

_FIELDS = ("medium", "party", "purpose", *PARTS)
_TEMPLATE_ID = re.compile(r"[a-z][a-z0-9_]*")
_LOCALE = re.compile(r"[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})*")
_FORMATTER = string.Formatter()
# Distinct (locale, fallback) pairs a template keeps the whole text of.
_WHOLE_TEXTS = 64

_E = TypeVar("_E", bound=StrEnum)


class _ClearKeyError(KeyError):
    def __str__(self) -> str:
        # KeyError's own str() is the repr of its argument: quoted, escaped.
        return str(self.args[0])


class MissingValues(_ClearKeyError):
    """render() was given no value for these placeholders."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = tuple(names)
        listed = ", ".join("{" + n + "}" for n in self.names)
        super().__init__(f"no value for placeholder(s) {listed}")


class UnknownTemplate(_ClearKeyError):
    """No template has this id."""


def parts_for(medium: Medium, party: Party, purpose: Purpose) -> tuple[str, ...]:
    """The parts a template of this kind is written in, in speaking order."""
    if medium is Medium.CALL and party is Party.DEBTOR and purpose is Purpose.COLLECTION:
        return (GREETING, AFTER_IDENTITY)
    return (TEXT,)


@dataclass(frozen=True)
class Template:
    """One checked template: its id, medium, party, purpose and, by part, its text by locale."""

    template_id: str
    medium: Medium
    party: Party
    purpose: Purpose
    parts: Mapping[str, Mapping[str, str]]  # every part has the same locales (checked at load)
    # whole_text by (locale, fallback): every attempt with the template asks for one of a few.
    _whole: dict[tuple[str | None, str], tuple[str, str]] = field(
        default_factory=dict, init=False, repr=False, compare=False)

    def locale_for(self, locale: str | None, fallback: str = "en") -> str:
        """The locale of the texts used for `locale`, else for `fallback`."""
        texts = next(iter(self.parts.values()), {})
        for wanted in (locale, fallback):
            found = _match_locale(wanted, texts) if wanted else None
            if found is not None:
                return found
        raise LookupError(f"template {self.template_id!r} has no text for {locale!r} nor for "
                          f"the fallback {fallback!r}")

    def text_for(self, locale: str | None, fallback: str = "en",
                 part: str = TEXT) -> tuple[str, str]:
        """The text of `part` for `locale`, else for `fallback`, as (locale used, text)."""
        if part not in self.parts:
            raise LookupError(f"template {self.template_id!r} has no part {part!r}; it has "
                              + ", ".join(self.parts))
        used = self.locale_for(locale, fallback)
        return used, self.parts[part][used]

    def whole_text(self, locale: str | None, fallback: str = "en") -> tuple[str, str]:
        """Every part's text (see text_for), one per line in speaking order, as (locale, text)."""
        found = self._whole.get((locale, fallback))
        if found is None:
            used = self.locale_for(locale, fallback)
            found = used, "\n".join(texts[used] for texts in self.parts.values())
            if len(self._whole) < _WHOLE_TEXTS:  # locales come from events: bound them
                self._whole[locale, fallback] = found
        return found


@dataclass(frozen=True)
class TemplateSet:
    """The templates of one file by id, with the file and a hash of its bytes."""

    path: Path
    version: str
    templates: Mapping[str, Template]

    def get(self, template_id: str) -> Template:
        """The template with this id; UnknownTemplate (a KeyError) when there is none."""
        try:
            return self.templates[template_id]
        except KeyError:
            raise UnknownTemplate(f"no template {template_id!r} in {self.path}") from None


def _norm_locale(tag: str) -> str:
    return tag.replace("_", "-").casefold()


def _match_locale(wanted: str, texts: Mapping[str, str]) -> str | None:
    """The exact tag, else the bare language ("en-US" -> "en"), else the first (sorted) text of
    the same language ("zh" -> "zh-CN")."""
    by_norm = {_norm_locale(k): k for k in sorted(texts)}
    tag = _norm_locale(wanted)
    if tag in by_norm:
        return by_norm[tag]
    language = tag.split("-")[0]
    if language in by_norm:
        return by_norm[language]
    same = [k for n, k in by_norm.items() if n.split("-")[0] == language]
    return same[0] if same else None


def _split(text: str) -> tuple[str, list[tuple[str, str, str | None]]]:
    """The literal text (each placeholder as a space) and the (name, spec, conversion) of each
    placeholder; ValueError on unbalanced braces."""
    literal: list[str] = []
    fields: list[tuple[str, str, str | None]] = []
    for text_part, name, spec, conversion in _FORMATTER.parse(text):
        literal.append(text_part)
        if name is not None:
            literal.append(" ")
            fields.append((name, spec or "", conversion))
    return "".join(literal), fields


def normalized(text: str) -> str:
    """`text` as the checks read it: NFKC (full-width letters are letters), case-folded, and
    without invisible format characters (a zero-width space inside a word)."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return "".join(c for c in folded if unicodedata.category(c) != "Cf")


def debt_terms(text: str) -> list[str]:
    """The debt-revealing words in `text` (English and Chinese, in any width or case), each
    once, English first, in order found."""
    text = normalized(text)
    found = [re.sub(r"[\s-]+", " ", m.group(0)) for m in _DEBT_EN.finditer(text)]
    found.extend(m.group(0) for m in _DEBT_ZH.finditer(text))
    return list(dict.fromkeys(found))


def debt_placeholders(text: str) -> list[str]:
    """The debt placeholders in `text`, however written ({amount}, {AMOUNT}, full width), each
    once, in order found."""
    return list(dict.fromkeys(m.group(1) for m in _DEBT_PLACEHOLDER.finditer(normalized(text))))


def _has_word(text: str, word: str) -> bool:
    if word.isascii():
        return re.search(_EDGE_BEFORE + re.escape(word) + _EDGE_AFTER, text,
                         re.IGNORECASE) is not None
    return word in text


def opt_out_words(locale: str) -> tuple[str, ...]:
    """The reply words of which an SMS in this locale must name one."""
    return OPT_OUT_WORDS.get(_norm_locale(locale).split("-")[0], DEFAULT_OPT_OUT_WORDS)


def _choice(raw: Mapping[str, Any], field: str, kind: type[_E], base: str,
            problems: list[tuple[str, str]]) -> _E | None:
    key = f"{base}.{field}"
    if field not in raw:
        problems.append((key, "missing"))
        return None
    value = raw[field]
    choices = ", ".join(m.value for m in kind)
    if isinstance(value, str):
        try:
            return kind(value)
        except ValueError:
            pass
    problems.append((key, f"unknown {field} {value!r}; expected one of: {choices}"))
    return None


def _texts(raw: Mapping[str, Any], base: str, part: str,
           problems: list[tuple[str, str]]) -> dict[str, str]:
    key = f"{base}.{part}"
    if part not in raw:
        problems.append((key, "missing: add a [" + key + "] table of locale = text"))
        return {}
    table = raw[part]
    if not isinstance(table, Mapping):
        problems.append((key, "must be a table of locale = text"))
        return {}
    if not table:
        problems.append((key, "no texts: give at least one locale"))
    texts: dict[str, str] = {}
    seen: dict[str, str] = {}
    for locale, text in table.items():
        at = f"{key}.{locale}"
        if not _LOCALE.fullmatch(locale):
            problems.append((at, "not a locale tag such as en, en-US or zh-CN"))
        elif _norm_locale(locale) in seen:
            problems.append((at, f"the same locale as {seen[_norm_locale(locale)]}"))
        elif not isinstance(text, str):
            problems.append((at, "must be a string"))
        elif not text.strip():
            problems.append((at, "empty text"))
        else:
            texts[locale] = text
        seen.setdefault(_norm_locale(locale), locale)
    return texts


def _expected_parts(raw: Mapping[str, Any], medium: Medium | None, party: Party | None,
                    purpose: Purpose | None) -> tuple[str, ...]:
    if medium is None or party is None or purpose is None:
        # The kind is already refused; check whatever parts are there.
        return tuple(p for p in PARTS if p in raw) or (TEXT,)
    return parts_for(medium, party, purpose)


def _part_problems(raw: Mapping[str, Any], base: str,
                   expected: tuple[str, ...]) -> list[tuple[str, str]]:
    """A part the template's kind does not have; a single text where two parts are needed."""
    problems = []
    for part in PARTS:
        if part not in raw or part in expected:
            continue
        if part == TEXT:
            problems.append((f"{base}.text", (
                f"a call to the debtor is written in two parts, not one text: "
                f"[{base}.{GREETING}] is what whoever answers hears before pressing "
                f"{CONFIRM_DIGIT} to say they are the debtor (nothing about the debt), and "
                f"[{base}.{AFTER_IDENTITY}] is said only after that")))
        else:
            problems.append((f"{base}.{part}", (
                f"only a call to the debtor for collection has {GREETING} and "
                f"{AFTER_IDENTITY}; write this template as one [{base}.text]")))
    return problems


def _same_locales(base: str, by_part: Mapping[str, Mapping[str, str]]) -> list[tuple[str, str]]:
    """Every part has a text for every locale another part has (a part missing altogether is
    named once, elsewhere)."""
    problems: list[tuple[str, str]] = []
    for part, texts in by_part.items():
        if not texts:
            continue
        have = {_norm_locale(locale) for locale in texts}
        for other, other_texts in by_part.items():
            problems.extend((f"{base}.{part}", f"no text for {locale}, which {other} has")
                            for locale in other_texts
                            if other != part and _norm_locale(locale) not in have)
    return problems


def _rule_problems(base: str, medium: Medium | None, party: Party | None,
                   purpose: Purpose | None) -> list[tuple[str, str]]:
    problems = []
    if party is Party.THIRD_PARTY:
        if medium is not None and medium is not Medium.CALL:
            problems.append((f"{base}.medium", "a third_party template must be a call: no SMS "
                                               "to third parties"))
        if purpose is not None and purpose is not Purpose.LOCATION:
            problems.append((f"{base}.purpose", f"a third_party template may only have purpose "
                                                f"location, not {purpose} (no voicemail or "
                                                f"collection to third parties)"))
    if purpose is Purpose.LOCATION and party is Party.DEBTOR:
        problems.append((f"{base}.party", "purpose location is for third_party templates"))
    if purpose is Purpose.VOICEMAIL and medium is Medium.SMS:
        problems.append((f"{base}.medium", "a voicemail is left by a call"))
    if purpose in (Purpose.OPT_OUT_CONFIRMATION, Purpose.HELP) and medium is Medium.CALL:
        problems.append((f"{base}.medium", f"purpose {purpose} is a reply by SMS"))
    return problems


def _listener(party: Party | None, purpose: Purpose | None, part: str) -> str | None:
    """Who may hear this text without being the confirmed debtor, as the refusals name it."""
    if party is Party.THIRD_PARTY:
        return "a third_party template"
    if purpose is Purpose.VOICEMAIL:
        return "a voicemail"
    if purpose in (Purpose.HELP, Purpose.OPT_OUT_CONFIRMATION):
        # Sent to whatever number texts in: a relative on the debtor's phone, a stranger.
        what = "a help reply" if purpose is Purpose.HELP else "an opt-out confirmation"
        return f"{what} (sent to whoever texts in)"
    if part == GREETING:
        return (f"a call {GREETING} (heard before the person has pressed {CONFIRM_DIGIT} to say "
                f"they are the debtor)")
    return None


def _text_problems(locale: str, text: str, medium: Medium | None, party: Party | None,
                   purpose: Purpose | None, *, part: str) -> list[str]:
    try:
        literal, fields = _split(text)
    except ValueError as exc:
        return [f"malformed placeholder: {exc} (write {{{{ and }}}} for literal braces)"]
    reasons = []
    names = [name for name, _, _ in fields]
    for name, spec, conversion in fields:
        if name not in PLACEHOLDERS:
            reasons.append(f"unknown placeholder {{{name}}}; known: "
                           + ", ".join("{" + p + "}" for p in sorted(PLACEHOLDERS)))
        elif spec or conversion:
            reasons.append(f"placeholder {{{name}}} takes no format spec or conversion")
    notes = sorted({c for c in normalized(literal) if c in NOTE_BRACKETS},
                   key=NOTE_BRACKETS.index)
    if notes:
        reasons.append(f"brackets {''.join(notes)!r} mark a note for an agent, and every word of "
                       f"a template is sent or spoken: keep notes in TOML comments")
    who = _listener(party, purpose, part)
    if who is not None:
        reasons.extend(f"{who} must not reveal the debt: placeholder {{{name}}}"
                       for name in debt_placeholders(text))
        reasons.extend(f"{who} must not reveal the debt: word {term!r}"
                       for term in debt_terms(literal))
    if part == GREETING and CONFIRM_DIGIT not in normalized(literal):
        reasons.append(f"a call {GREETING} must ask the person to press {CONFIRM_DIGIT} if they "
                       f"are the debtor: include {CONFIRM_DIGIT!r}")
    if party is Party.THIRD_PARTY and "business" in names:
        # 15 USC 1692b(1), Reg F 1006.10(b)(1): the caller names the employer only when asked.
        reasons.append("a third_party template must not name the business: {business}")
    if purpose is Purpose.VOICEMAIL and "callback" not in names:
        reasons.append("a voicemail must give a callback number: {callback}")
    if medium is Medium.SMS and purpose is not Purpose.OPT_OUT_CONFIRMATION:
        words = opt_out_words(locale)
        if not any(_has_word(literal, w) for w in words):
            reasons.append("an SMS must say how to opt out: include "
                           + " or ".join(repr(w) for w in words))
    return reasons


def template_problems(template_id: str, raw: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Every problem of one [templates.<id>] table as (key, reason); empty when it is lawful."""
    base = f"templates.{template_id}"
    problems: list[tuple[str, str]] = []
    if not _TEMPLATE_ID.fullmatch(template_id):
        problems.append((base, "a template id is lowercase letters, digits and _, "
                               "starting with a letter"))
    problems.extend((f"{base}.{key}", "unknown key") for key in raw if key not in _FIELDS)
    medium = _choice(raw, "medium", Medium, base, problems)
    party = _choice(raw, "party", Party, base, problems)
    purpose = _choice(raw, "purpose", Purpose, base, problems)
    expected = _expected_parts(raw, medium, party, purpose)
    problems.extend(_part_problems(raw, base, expected))
    # A single text in place of two parts is named once above, not again as two parts missing.
    written = [p for p in expected if p in raw or TEXT not in raw]
    by_part = {part: _texts(raw, base, part, problems) for part in written}
    problems.extend(_same_locales(base, by_part))
    problems.extend(_rule_problems(base, medium, party, purpose))
    for part, texts in by_part.items():
        for locale, text in texts.items():
            key = f"{base}.{part}.{locale}"
            problems.extend((key, reason) for reason in
                            _text_problems(locale, text, medium, party, purpose, part=part))
    return problems


def render(text: str, values: Mapping[str, str]) -> str:
    """Fill in a template text's placeholders; MissingValues names every value not given."""
    parts: list[str] = []
    missing: list[str] = []
    for literal, name, spec, conversion in _pieces(text):
        parts.append(literal)
        if name is None:
            continue
        if spec or conversion:
            raise ValueError(f"placeholder {{{name}}} takes no format spec or conversion")
        if name in values:
            parts.append(values[name])
        elif name not in missing:
            missing.append(name)
    if missing:
        raise MissingValues(missing)
    return "".join(parts)


def message_body(template: Template, locale: str | None, default_locale: str,
                 values: Mapping[str, str]) -> tuple[str, str]:
    """What an attempt sends with `template`, as (locale used, text): every part rendered, one
    per line in speaking order (a call's body is what its audited hash covers)."""
    used, text = template.whole_text(locale, default_locale)
    return used, _rendered(text, tuple(values.items()))


@functools.lru_cache(maxsize=1 << 10)
def _rendered(text: str, values: tuple[tuple[str, str], ...]) -> str:
    # Accounts alike in what a template says of them (a batch on one due date) share a body.
    return render(text, dict(values))


@functools.lru_cache(maxsize=1 << 10)
def _pieces(text: str) -> tuple[tuple[str, str | None, str | None, str | None], ...]:
    """A template text's literal pieces and placeholders: a config has few texts, each rendered
    for every attempt."""
    return tuple(_FORMATTER.parse(text))


@functools.lru_cache(maxsize=1 << 10)
def content_hash(text: str) -> str:
    """The SHA-256 (hex) of a rendered text's UTF-8 bytes, as the audit record keeps it."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def load_templates(path: Path) -> TemplateSet:
    """Read and check a templates file; ConfigError lists every problem at once."""
    data, raw_bytes = read_toml(path)
    file = str(path)
    problems = [ConfigProblem(file, key, "unknown key") for key in data if key != "templates"]
    tables = data.get("templates")
    if not isinstance(tables, dict) or not tables:
        problems.append(ConfigProblem(file, "templates", "no templates: add [templates.<id>] "
                                                         "tables"))
        tables = {}
    for template_id, raw in tables.items():
        if not isinstance(raw, dict):
            problems.append(ConfigProblem(file, f"templates.{template_id}", "must be a table"))
            continue
        problems.extend(ConfigProblem(file, key, reason)
                        for key, reason in template_problems(template_id, raw))
    if problems:
        raise ConfigError(problems)
    templates = {template_id: _template(template_id, raw) for template_id, raw in tables.items()}
    return TemplateSet(path=path, version=hashlib.sha256(raw_bytes).hexdigest()[:16],
                       templates=MappingProxyType(templates))


def _template(template_id: str, raw: Mapping[str, Any]) -> Template:
    """A checked template table as a Template."""
    medium, party, purpose = Medium(raw["medium"]), Party(raw["party"]), Purpose(raw["purpose"])
    parts = {part: MappingProxyType(dict(raw[part]))
             for part in parts_for(medium, party, purpose)}
    return Template(template_id=template_id, medium=medium, party=party, purpose=purpose,
                    parts=MappingProxyType(parts))
