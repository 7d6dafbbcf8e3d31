"""Templates: the content rules as tables, the loader's problems, locale choice, render and hash."""
# ruff: noqa: RUF001  (Chinese texts are written with full-width punctuation, as they are sent)

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from dispatcher.contact.templates import (
    AFTER_IDENTITY,
    DEBT_PLACEHOLDERS,
    DEBT_WORDS_EN,
    DEBT_WORDS_EN_EXTRA,
    DEBT_WORDS_ZH,
    GREETING,
    TEXT,
    MissingValues,
    Purpose,
    Template,
    UnknownTemplate,
    content_hash,
    debt_terms,
    load_templates,
    render,
    template_problems,
)
from dispatcher.domain.contact import Medium, Party
from dispatcher.errors import ConfigError, ConfigProblem

SHIPPED = Path(__file__).resolve().parents[2] / "config" / "templates.toml"

THIRD_PARTY = {"medium": "call", "party": "third_party", "purpose": "location"}
VOICEMAIL = {"medium": "call", "party": "debtor", "purpose": "voicemail"}
DEBTOR_CALL = {"medium": "call", "party": "debtor", "purpose": "collection"}
DEBTOR_SMS = {"medium": "sms", "party": "debtor", "purpose": "collection"}
HELP = {"medium": "sms", "party": "debtor", "purpose": "help"}
OPT_OUT_CONFIRMATION = {"medium": "sms", "party": "debtor", "purpose": "opt_out_confirmation"}
HEARD_FIRST = {"third_party": THIRD_PARTY, "voicemail": VOICEMAIL, "help": HELP,
               "opt_out_confirmation": OPT_OUT_CONFIRMATION}
WHO = {"third_party": "a third_party template", "voicemail": "a voicemail",
       "help": "a help reply (sent to whoever texts in)",
       "opt_out_confirmation": "an opt-out confirmation (sent to whoever texts in)",
       GREETING: "a call greeting (heard before the person has pressed 1 to say they are the "
                 "debtor)"}

INFLECTED = ["payments", "Paying", "debts", "loans", "collected", "collector", "defaulted",
             "OVERDUE", "Past Due", "past-due", "balances"]
HARMLESS = ["Owen", "display", "allowed", "towing", "power", "bowed", "Lowe", "overtime"]


GREETINGS = {"en": "Hello, this is {agent}, calling for {name}. If you are {name}, press 1.",
             "zh-CN": "您好，我是{agent}，找{name}。如果您是{name}本人，请按1。"}


def raw(kind: dict[str, str], **texts: str) -> dict[str, Any]:
    """A template table of `kind`; keyword `zh_CN` stands for the locale zh-CN."""
    return {**kind, "text": {k.replace("_", "-"): v for k, v in texts.items()}}


def call(*, greeting: str | None = None, **after_identity: str) -> dict[str, Any]:
    """A call to the debtor: `after_identity` by locale, and a lawful greeting for each of its
    locales unless `greeting` (for every locale) is given."""
    after = {k.replace("_", "-"): v for k, v in after_identity.items()}
    return {**DEBTOR_CALL, GREETING: {k: greeting or GREETINGS.get(k, GREETINGS["en"])
                                      for k in after},
            AFTER_IDENTITY: after}


def heard_first(kind: str, text: str, locale: str = "en") -> dict[str, Any]:
    """A template whose `text` reaches someone who may not be the debtor: a third party's call,
    a voicemail, a reply to whoever texts in, or a call greeting."""
    if kind == GREETING:
        return call(greeting=text, **{locale: "Thank you."})
    if kind == "help":
        text += " Reply STOP, TD or 退订."
    return {**HEARD_FIRST[kind], "text": {locale: text}}


def reasons(raw_table: dict[str, Any], template_id: str = "t") -> list[str]:
    return [reason for _, reason in template_problems(template_id, raw_table)]


def write(folder: Path, text: str) -> Path:
    path = folder / "templates.toml"
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(path: Path) -> list[ConfigProblem]:
    with pytest.raises(ConfigError) as caught:
        load_templates(path)
    assert caught.value.problems
    return caught.value.problems


def en_text(word: str) -> str:
    return f"Hello, this is {{agent}}. Please call me at {{callback}} about the {word}."


def zh_text(word: str) -> str:
    return f"您好，我是{{agent}}，关于{word}，请回电{{callback}}。"


# --- Words and placeholders that reveal the debt -------------------------------------------------

WORD_CASES = ([(w, en_text(w)) for w in (*DEBT_WORDS_EN, *DEBT_WORDS_EN_EXTRA, *INFLECTED)]
              + [(w, zh_text(w)) for w in DEBT_WORDS_ZH]
              # An English word inside Chinese text: no \b edge between 复 and p.
              + [("pay", "回复pay，请回电{callback}。")])


@pytest.mark.parametrize(("word", "text"), WORD_CASES)
@pytest.mark.parametrize("kind", [*HEARD_FIRST, GREETING])
def test_a_debt_word_is_refused_where_the_debtor_is_not_yet_known(
        kind: str, word: str, text: str) -> None:
    found = [r for r in reasons(heard_first(kind, text)) if "must not reveal the debt" in r]
    assert len(found) == 1, found
    assert found[0].startswith(f"{WHO[kind]} must not reveal the debt: word ")
    assert repr(" ".join(word.lower().replace("-", " ").split())) in found[0]


@pytest.mark.parametrize(("word", "text"), WORD_CASES)
def test_a_debt_word_is_allowed_for_the_debtor(word: str, text: str) -> None:
    assert reasons(call(en=text)) == []


@pytest.mark.parametrize("word", HARMLESS)
@pytest.mark.parametrize("kind", [*HEARD_FIRST, GREETING])
def test_a_word_that_merely_contains_a_debt_word_is_allowed(kind: str, word: str) -> None:
    text = en_text(word) + (" If you are {name}, press 1." if kind == GREETING else "")
    assert reasons(heard_first(kind, text)) == []


# Written so that a check of the text as typed would miss them: full width, capitals, a
# zero-width space or joiner inside the word, traditional script.
DISGUISED = [
    ("en", "Ｈｅｌｌｏ, about your ＤＥＢＴ, call {callback}. Press 1.", "debt"),
    ("en", "Hello, about your Ｏｖｅｒｄｕｅ account, call {callback}. Press 1.", "overdue"),
    ("en", "Hello, your PAST DUE account: call {callback}. Press 1.", "past due"),
    ("en", "Hello, about the de\u200bbt, call {callback}. Press 1.", "debt"),
    ("en", "Hello, about your ｂａｌａｎｃｅ, call {callback}. Press 1.", "balance"),
    ("zh-CN", "您好，关于您的欠\u200d款，请回电{callback}。请按１。", "欠款"),
    ("zh-CN", "您好，关于您的欠费，请回电{callback}。请按1。", "欠费"),
    ("zh-CN", "您好，关于您的債務，请回电{callback}。请按1。", "債務"),
    ("zh-TW", "您好，關於您的還款，請回電{callback}。請按1。", "還款"),
]


@pytest.mark.parametrize(("locale", "text", "term"), DISGUISED)
@pytest.mark.parametrize("kind", [*HEARD_FIRST, GREETING])
def test_a_disguised_debt_word_is_refused(kind: str, locale: str, text: str, term: str) -> None:
    assert (f"templates.t.{TEXT if kind in HEARD_FIRST else GREETING}.{locale}",
            f"{WHO[kind]} must not reveal the debt: word {term!r}") in template_problems(
                "t", heard_first(kind, text, locale))


@pytest.mark.parametrize("name", sorted(DEBT_PLACEHOLDERS))
@pytest.mark.parametrize("kind", [*HEARD_FIRST, GREETING])
def test_a_debt_placeholder_is_refused_where_the_debtor_is_not_yet_known(
        kind: str, name: str) -> None:
    text = f"This is {{agent}}: call {{callback}} ({{{name}}}), press 1."
    part = TEXT if kind in HEARD_FIRST else GREETING
    assert template_problems("t", heard_first(kind, text, "zh-CN")) == [
        (f"templates.t.{part}.zh-CN",
         f"{WHO[kind]} must not reveal the debt: placeholder {{{name}}}")]


@pytest.mark.parametrize("written", ["{AMOUNT}", "｛amount｝", "｛ａｍｏｕｎｔ｝", "{ amount }"])
@pytest.mark.parametrize("kind", [*HEARD_FIRST, GREETING])
def test_a_debt_placeholder_in_another_width_or_case_is_refused(kind: str, written: str) -> None:
    text = f"This is {{agent}}: call {{callback}} {written}, press 1."
    assert f"{WHO[kind]} must not reveal the debt: placeholder {{amount}}" in reasons(
        heard_first(kind, text))


@pytest.mark.parametrize("name", sorted(DEBT_PLACEHOLDERS))
def test_a_debt_placeholder_is_allowed_for_the_debtor(name: str) -> None:
    assert reasons(call(en=f"Hi {{first_name}}, {{{name}}}.")) == []
    assert reasons(raw(DEBTOR_SMS, en=f"Hi {{first_name}}, {{{name}}}. Reply STOP to end.")) == []


def test_debt_terms_reports_each_term_once_in_order() -> None:
    assert debt_terms("Payments PAST  due, payments, 逾期 and owe") == [
        "payments", "past due", "owe", "逾期"]


def test_debt_terms_reports_the_longer_chinese_word() -> None:
    assert debt_terms("欠债还钱，债务") == ["欠债", "还钱", "债务"]
    assert debt_terms("讨债") == ["债"]


# --- A call to the debtor: the greeting, then the rest -----------------------------------------

OLD_SHAPE = {
    "en": "Hello, this is {agent} from {business}. May I speak with {name}? [Continue only once "
          "you have confirmed you are speaking with {name}.] I'm calling about your account: "
          "{amount} {currency} was due on {due_date}.",
    "zh-CN": "您好，我是{business}的{agent}。请问是{name}本人吗？【确认对方是{name}本人后再继续】"
             "您有一笔{amount}{currency}的款项应于{due_date}还款。",
}


def test_a_call_to_the_debtor_written_as_one_text_is_refused(tmp_path: Path) -> None:
    shipped = SHIPPED.read_text(encoding="utf-8")
    start = shipped.index("[templates.call_script.greeting]")
    end = shipped.index("# Played only when")
    old = "[templates.call_script.text]\n" + "".join(
        f"{locale} = {json.dumps(text, ensure_ascii=False)}\n"
        for locale, text in OLD_SHAPE.items())
    path = write(tmp_path, shipped[:start] + old + "\n" + shipped[end:])
    [problem] = problems_of(path)
    assert (problem.file, problem.key) == (str(path), "templates.call_script.text")
    assert problem.reason.startswith("a call to the debtor is written in two parts, not one "
                                     "text: [templates.call_script.greeting] is what whoever "
                                     "answers hears before pressing 1")


@pytest.mark.parametrize("note", ["[Continue only once confirmed.]", "【确认对方是本人后再继续】",
                                  "［确认］", "〔pause〕"])
@pytest.mark.parametrize("table", [
    lambda t: call(en=t), lambda t: call(greeting=t + " Press 1.", en="Thanks."),
    lambda t: raw(VOICEMAIL, en=t + " {callback}"), lambda t: raw(THIRD_PARTY, en=t),
    lambda t: raw(DEBTOR_SMS, en=t + " Reply STOP to opt out."),
], ids=["after_identity", "greeting", "voicemail", "third_party", "sms"])
def test_a_note_for_an_agent_is_refused_in_every_template(note: str, table: Any) -> None:
    [reason] = reasons(table(f"Hello {{name}}. {note}"))
    assert reason.startswith("brackets ")
    assert "mark a note for an agent, and every word of a template is sent or spoken" in reason


@pytest.mark.parametrize(("greeting", "ok"), [
    ("Hello, this is {agent}, for {name}. If you are {name}, press 1.", True),
    ("您好，我是{agent}，找{name}。如果您是{name}本人，请按１。", True),
    ("Hello, this is {agent}, for {name}. Are you {name}?", False),
])
def test_a_greeting_asks_for_the_confirm_digit(greeting: str, ok: bool) -> None:
    expected = [] if ok else [(
        "templates.t.greeting.en",
        "a call greeting must ask the person to press 1 if they are the debtor: include '1'")]
    assert template_problems("t", call(greeting=greeting, en="Thanks.")) == expected


def test_both_parts_of_a_call_have_the_same_locales() -> None:
    table = {**DEBTOR_CALL, GREETING: {"en": GREETINGS["en"], "zh-CN": GREETINGS["zh-CN"]},
             AFTER_IDENTITY: {"en": "Thanks.", "es": "Gracias."}}
    assert template_problems("t", table) == [
        ("templates.t.greeting", "no text for es, which after_identity has"),
        ("templates.t.after_identity", "no text for zh-CN, which greeting has")]


def test_a_call_needs_both_parts() -> None:
    assert template_problems("t", {**DEBTOR_CALL, GREETING: GREETINGS}) == [
        ("templates.t.after_identity",
         "missing: add a [templates.t.after_identity] table of locale = text")]


@pytest.mark.parametrize("part", [GREETING, AFTER_IDENTITY])
def test_only_a_call_to_the_debtor_has_a_greeting(part: str) -> None:
    table = {**raw(VOICEMAIL, en="Call {callback}."), part: {"en": "Hi, press 1."}}
    assert template_problems("vm", table) == [
        (f"templates.vm.{part}", "only a call to the debtor for collection has greeting and "
                                 "after_identity; write this template as one [templates.vm.text]")]


def test_a_leaky_greeting_in_a_file_is_named_with_file_key_and_reason(tmp_path: Path) -> None:
    shipped = SHIPPED.read_text(encoding="utf-8")
    leaky = shipped.replace("找{name}。", "找{name}，关于您的欠款。", 1)
    assert leaky != shipped
    path = write(tmp_path, leaky)
    assert problems_of(path) == [ConfigProblem(
        str(path), "templates.call_script.greeting.zh-CN",
        "a call greeting (heard before the person has pressed 1 to say they are the debtor) "
        "must not reveal the debt: word '欠款'")]


# --- Who, how and what for ----------------------------------------------------------------------

@pytest.mark.parametrize(
    ("kind", "key", "reason_part"),
    [
        ({"medium": "sms", "party": "third_party", "purpose": "location"}, "medium",
         "no SMS to third parties"),
        ({"medium": "call", "party": "third_party", "purpose": "voicemail"}, "purpose",
         "no voicemail or collection to third parties"),
        ({"medium": "call", "party": "third_party", "purpose": "collection"}, "purpose",
         "may only have purpose location"),
        ({"medium": "call", "party": "debtor", "purpose": "location"}, "party",
         "purpose location is for third_party templates"),
        ({"medium": "sms", "party": "debtor", "purpose": "voicemail"}, "medium",
         "a voicemail is left by a call"),
        ({"medium": "call", "party": "debtor", "purpose": "help"}, "medium", "a reply by SMS"),
        ({"medium": "call", "party": "debtor", "purpose": "opt_out_confirmation"}, "medium",
         "a reply by SMS"),
    ],
)
def test_medium_party_and_purpose_must_fit_together(kind: dict[str, str], key: str,
                                                    reason_part: str) -> None:
    problems = template_problems("t", raw(kind, en="Call {callback}. Reply STOP to opt out."))
    assert [k for k, r in problems if reason_part in r] == [f"templates.t.{key}"], problems


def test_a_third_party_template_must_not_name_the_business() -> None:
    text = "This is {agent} from {business}. Please ask {name} to call {callback}."
    assert template_problems("t", raw(THIRD_PARTY, en=text)) == [
        ("templates.t.text.en",
         "a third_party template must not name the business: {business}")]


def test_a_voicemail_must_give_a_callback_number() -> None:
    assert template_problems("vm", raw(VOICEMAIL, en="This is {agent} from {business}.")) == [
        ("templates.vm.text.en", "a voicemail must give a callback number: {callback}")]


# --- The opt-out instruction in every SMS -------------------------------------------------------

@pytest.mark.parametrize(
    ("purpose", "locale", "text", "ok"),
    [
        ("collection", "en", "Hi {first_name}, call {callback}. Reply STOP to opt out.", True),
        ("collection", "en", "Hi {first_name}, call {callback}. Reply stop to opt out.", True),
        ("collection", "en-US", "Hi, call {callback}. Text STOP to end.", True),
        ("collection", "en", "Hi {first_name}, please call {callback}.", False),
        ("collection", "en", "Hi, call {callback}. Non-STOPPING service.", False),
        ("collection", "zh-CN", "{name}您好，请致电{callback}。回复TD退订。", True),
        ("collection", "zh-CN", "{name}您好，请致电{callback}。回复TD。", True),
        ("collection", "zh-CN", "{name}您好，请致电{callback}。回复退订。", True),
        ("collection", "zh-CN", "{name}您好，请致电{callback}。回复STOP。", False),
        ("collection", "zh-CN", "{name}您好，请致电{callback}。", False),
        ("collection", "zh-TW", "{name}您好，請致電{callback}。回覆TD退訂。", True),
        ("collection", "es", "Hola {first_name}, llame al {callback}. Responda STOP.", True),
        ("collection", "es", "Hola {first_name}, llame al {callback}.", False),
        ("help", "en", "{business}: for help call {callback}. Reply STOP to opt out.", True),
        ("help", "en", "{business}: for help call {callback}.", False),
        ("help", "zh-CN", "{business}：如需帮助请致电{callback}。", False),
        ("opt_out_confirmation", "en", "{business}: you will get no more texts.", True),
        ("opt_out_confirmation", "zh-CN", "{business}：您已成功退订。", True),
    ],
)
def test_every_sms_but_the_opt_out_confirmation_says_how_to_opt_out(
        purpose: str, locale: str, text: str, ok: bool) -> None:
    kind = {"medium": "sms", "party": "debtor", "purpose": purpose}
    problems = template_problems("s", {**kind, "text": {locale: text}})
    if ok:
        assert problems == []
    else:
        [(key, reason)] = problems
        assert key == f"templates.s.text.{locale}"
        assert reason.startswith("an SMS must say how to opt out: include ")


def test_the_chinese_opt_out_reason_names_its_words() -> None:
    assert reasons(raw(DEBTOR_SMS, zh_CN="请致电{callback}。")) == [
        "an SMS must say how to opt out: include 'TD' or '退订' or '退訂'"]


def test_a_call_needs_no_opt_out_word() -> None:
    assert reasons(call(en="Hello {name}, this is {agent}.")) == []


# --- Structure ----------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ({**THIRD_PARTY, "text": {"en": "Hi"}, "channel": "x"},
         [("templates.t.channel", "unknown key")]),
        (THIRD_PARTY, [("templates.t.text", "missing: add a [templates.t.text] table of "
                                            "locale = text")]),
        ({**THIRD_PARTY, "text": "Hi"}, [("templates.t.text", "must be a table of locale = text")]),
        ({**THIRD_PARTY, "text": {}}, [("templates.t.text", "no texts: give at least one locale")]),
        ({**THIRD_PARTY, "text": {"en": "  "}}, [("templates.t.text.en", "empty text")]),
        ({**THIRD_PARTY, "text": {"en": 3}}, [("templates.t.text.en", "must be a string")]),
        ({**THIRD_PARTY, "text": {"english": "Hi"}},
         [("templates.t.text.english", "not a locale tag such as en, en-US or zh-CN")]),
        ({**THIRD_PARTY, "text": {"en": "Hi", "EN": "Hi"}},
         [("templates.t.text.EN", "the same locale as en")]),
        ({"party": "debtor", "purpose": "collection", "text": {"en": "Hi"}},
         [("templates.t.medium", "missing")]),
        ({**THIRD_PARTY, "medium": "fax", "text": {"en": "Hi"}},
         [("templates.t.medium", "unknown medium 'fax'; expected one of: sms, call")]),
        ({**THIRD_PARTY, "party": "neighbour", "text": {"en": "Hi"}},
         [("templates.t.party", "unknown party 'neighbour'; expected one of: debtor, "
                                "third_party")]),
        ({**THIRD_PARTY, "purpose": 7, "text": {"en": "Hi"}},
         [("templates.t.purpose", "unknown purpose 7; expected one of: collection, voicemail, "
                                  "location, opt_out_confirmation, help")]),
    ],
)
def test_structure_problems(table: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    assert template_problems("t", table) == expected


@pytest.mark.parametrize(
    ("text", "reason_start"),
    [
        ("Hi {nickname}", "unknown placeholder {nickname}; known: {agent}, {amount}"),
        ("Hi {}", "unknown placeholder {}"),
        ("Hi {0}", "unknown placeholder {0}"),
        ("Hi {name.upper}", "unknown placeholder {name.upper}"),
        ("Hi {name", "malformed placeholder: "),
        ("Hi name}", "malformed placeholder: "),
        ("Pay {amount:.2f}", "placeholder {amount} takes no format spec or conversion"),
        ("Hi {name!r}", "placeholder {name} takes no format spec or conversion"),
    ],
)
def test_placeholder_problems(text: str, reason_start: str) -> None:
    [reason] = reasons(call(en=text))
    assert reason.startswith(reason_start), reason


def test_escaped_braces_are_text() -> None:
    assert reasons(call(en="Hi {{name}} {name}")) == []


def test_a_bad_template_id_is_named() -> None:
    assert template_problems("Reminder-SMS", raw(THIRD_PARTY, en="Hi")) == [
        ("templates.Reminder-SMS", "a template id is lowercase letters, digits and _, "
                                   "starting with a letter")]


# --- Loading a file -----------------------------------------------------------------------------

def test_the_shipped_templates_load_cleanly() -> None:
    templates = load_templates(SHIPPED)
    assert set(templates.templates) >= {"reminder_sms", "call_script", "voicemail",
                                        "location_call", "opt_out_confirmation", "help"}
    for template in templates.templates.values():
        for part, texts in template.parts.items():
            assert set(texts) >= {"en", "zh-CN"}, (template.template_id, part)
    assert set(templates.get("call_script").parts) == {GREETING, AFTER_IDENTITY}
    location = templates.get("location_call")
    assert (location.medium, location.party, location.purpose) == (
        Medium.CALL, Party.THIRD_PARTY, Purpose.LOCATION)
    assert templates.get("voicemail").purpose is Purpose.VOICEMAIL
    assert len(templates.version) == 16
    assert templates.path == SHIPPED


FILE_LEAKS = [
    ("call_script.greeting.en", "calling for {name}.", "calling for {name} about a ＤＥＢＴ.",
     "a call greeting (heard before the person has pressed 1 to say they are the debtor)",
     ["word 'debt'"]),
    ("call_script.greeting.zh-CN", "找{name}。", "找{name}，关于｛ａｍｏｕｎｔ｝欠款。",
     "a call greeting (heard before the person has pressed 1 to say they are the debtor)",
     ["placeholder {amount}", "word '欠款'"]),
    ("voicemail.text.en", "call me back at {callback}.",
     "call me back at {callback} about your Ｏｖｅｒｄｕｅ {days_past_due}.", "a voicemail",
     ["placeholder {days_past_due}", "word 'overdue'"]),
    ("voicemail.text.zh-CN", "请您回电{callback}。", "请您回电{callback}，关于逾期。",
     "a voicemail", ["word '逾期'"]),
    ("location_call.text.en", "contact information for {name}.",
     "contact information for {name} about a Past-Due bill.", "a third_party template",
     ["word 'past due'", "word 'bill'"]),
    ("location_call.text.zh-CN", "我们想确认{name}的联系方式", "我们想确认{name}的联系方式（催收）",
     "a third_party template", ["word '催收'"]),
]


@pytest.mark.parametrize(("key", "old", "new", "who", "what"), FILE_LEAKS,
                         ids=[leak[0] for leak in FILE_LEAKS])
def test_a_shipped_file_with_a_leak_is_refused_with_file_key_and_reason(
        tmp_path: Path, key: str, old: str, new: str, who: str, what: list[str]) -> None:
    shipped = SHIPPED.read_text(encoding="utf-8")
    assert shipped.count(old) == 1, old
    path = write(tmp_path, shipped.replace(old, new))
    assert problems_of(path) == [
        ConfigProblem(str(path), f"templates.{key}", f"{who} must not reveal the debt: {w}")
        for w in what]


def test_every_problem_of_a_file_is_reported_at_once(tmp_path: Path) -> None:
    path = write(tmp_path, """
title = "x"

[templates.bad_sms]
medium = "sms"
party = "third_party"
purpose = "location"
[templates.bad_sms.text]
en = "Hi {name}, your balance is {amount}."

[templates.vm]
medium = "call"
party = "debtor"
purpose = "voicemail"
colour = "red"
[templates.vm.text]
zh-CN = "您好，关于您的逾期账单。"

[templates.no_text]
medium = "call"
party = "debtor"
purpose = "collection"
""")
    file = str(path)
    assert problems_of(path) == [
        ConfigProblem(file, "title", "unknown key"),
        ConfigProblem(file, "templates.bad_sms.medium",
                      "a third_party template must be a call: no SMS to third parties"),
        ConfigProblem(file, "templates.bad_sms.text.en",
                      "a third_party template must not reveal the debt: placeholder {amount}"),
        ConfigProblem(file, "templates.bad_sms.text.en",
                      "a third_party template must not reveal the debt: word 'balance'"),
        ConfigProblem(file, "templates.bad_sms.text.en",
                      "an SMS must say how to opt out: include 'STOP'"),
        ConfigProblem(file, "templates.vm.colour", "unknown key"),
        ConfigProblem(file, "templates.vm.text.zh-CN",
                      "a voicemail must not reveal the debt: word '逾期'"),
        ConfigProblem(file, "templates.vm.text.zh-CN",
                      "a voicemail must not reveal the debt: word '账单'"),
        ConfigProblem(file, "templates.vm.text.zh-CN",
                      "a voicemail must give a callback number: {callback}"),
        ConfigProblem(file, "templates.no_text.greeting",
                      "missing: add a [templates.no_text.greeting] table of locale = text"),
        ConfigProblem(file, "templates.no_text.after_identity",
                      "missing: add a [templates.no_text.after_identity] table of locale = text"),
    ]


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        ("", "templates", "no templates: add [templates.<id>] tables"),
        ("[templates]\n", "templates", "no templates: add [templates.<id>] tables"),
        ("templates = 3\n", "templates", "no templates: add [templates.<id>] tables"),
        ("[templates]\nreminder = 3\n", "templates.reminder", "must be a table"),
    ],
)
def test_a_file_without_templates_is_refused(tmp_path: Path, text: str, key: str,
                                             reason: str) -> None:
    path = write(tmp_path, text)
    assert problems_of(path) == [ConfigProblem(str(path), key, reason)]


def test_a_syntax_error_and_a_missing_file_are_named(tmp_path: Path) -> None:
    path = write(tmp_path, "[templates.x\n")
    [problem] = problems_of(path)
    assert (problem.file, problem.key) == (str(path), "(syntax)")
    missing = tmp_path / "nowhere.toml"
    assert problems_of(missing) == [ConfigProblem(str(missing), "(file)", "file not found")]


def test_an_unknown_template_id_is_a_key_error() -> None:
    templates = load_templates(SHIPPED)
    with pytest.raises(UnknownTemplate) as caught:
        templates.get("nope")
    assert isinstance(caught.value, KeyError)
    assert str(caught.value) == f"no template 'nope' in {SHIPPED}"


# --- Locale choice ------------------------------------------------------------------------------

TEXTS = Template(template_id="t", medium=Medium.SMS, party=Party.DEBTOR,
                 purpose=Purpose.HELP, parts={TEXT: {"en": "EN", "zh-CN": "ZH", "es-MX": "ES"}})


@pytest.mark.parametrize(
    ("locale", "used"),
    [
        ("en", "en"),
        ("en-US", "en"),
        ("en_GB", "en"),
        ("EN", "en"),
        ("zh", "zh-CN"),
        ("zh-cn", "zh-CN"),
        ("zh_CN", "zh-CN"),
        ("zh-Hans-CN", "zh-CN"),
        # Only a simplified text exists: a Taiwanese reader gets it rather than English.
        ("zh-TW", "zh-CN"),
        ("es", "es-MX"),
        ("es-ES", "es-MX"),
        ("fr", "en"),
        (None, "en"),
        ("", "en"),
    ],
)
def test_text_for_picks_the_closest_locale(locale: str | None, used: str) -> None:
    assert TEXTS.text_for(locale) == (used, TEXTS.parts[TEXT][used])


def test_text_for_takes_another_fallback() -> None:
    assert TEXTS.text_for("fr", fallback="zh") == ("zh-CN", "ZH")


def test_text_for_without_any_match_is_a_lookup_error() -> None:
    only_zh = Template(template_id="t", medium=Medium.SMS, party=Party.DEBTOR,
                       purpose=Purpose.HELP, parts={TEXT: {"zh-CN": "ZH"}})
    with pytest.raises(LookupError, match="no text for 'fr' nor for the fallback 'en'"):
        only_zh.text_for("fr")


# --- render and content_hash --------------------------------------------------------------------

def test_render_fills_every_placeholder() -> None:
    values = {"first_name": "Dana", "business": "Acme", "callback": "+15125550100"}
    text = "Hi {first_name}, {business} here: {callback}. {first_name}, {{braces}} stay."
    assert render(text, values) == ("Hi Dana, Acme here: +15125550100. Dana, {braces} stay.")


def test_render_does_not_reinterpret_values() -> None:
    assert render("Hi {name}", {"name": "{amount}"}) == "Hi {amount}"


def test_render_names_every_missing_value() -> None:
    with pytest.raises(MissingValues) as caught:
        render("Hi {first_name}, call {callback} or {callback}.", {"agent": "Sam"})
    assert isinstance(caught.value, KeyError)
    assert caught.value.names == ("first_name", "callback")
    assert str(caught.value) == "no value for placeholder(s) {first_name}, {callback}"


def test_render_refuses_a_format_spec() -> None:
    with pytest.raises(ValueError, match="no format spec"):
        render("{amount:>10}", {"amount": "5"})


def test_shipped_texts_render_with_every_placeholder_given() -> None:
    values = {"first_name": "Dana", "name": "Dana Debtor", "business": "Acme Services",
              "callback": "+15125550100", "agent": "Sam", "amount": "125.50",
              "currency": "USD", "days_past_due": "12", "due_date": "2026-11-19"}
    for template in load_templates(SHIPPED).templates.values():
        for texts in template.parts.values():
            for text in texts.values():
                assert "{" not in render(text, values)


def test_the_whole_text_of_a_call_is_every_part_in_speaking_order() -> None:
    script = load_templates(SHIPPED).get("call_script")
    assert script.whole_text("zh-Hans") == (
        "zh-CN", script.parts[GREETING]["zh-CN"] + "\n" + script.parts[AFTER_IDENTITY]["zh-CN"])
    with pytest.raises(LookupError, match="has no part 'text'"):
        script.text_for("en")


def test_content_hash_is_the_sha256_of_the_utf8_text() -> None:
    assert content_hash("abc") == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    text = "您好，请回电+15125550100。回复TD退订。"
    assert content_hash(text) == hashlib.sha256(text.encode("utf-8")).hexdigest()
    assert content_hash("Hi Dana") != content_hash("Hi Dana ")
