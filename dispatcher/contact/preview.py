"""A template rendered as it would be sent: `dispatcher templates preview`.

The text comes from the functions sending uses: a text's body as the engine renders it for the
channel, a call's parts as the call webhook speaks them (a third party hears only the location
question; the debtor hears the greeting, and the rest only after pressing the confirm digit),
and the keyword replies as the webhook renders them. Values come from an account in the store,
or from SAMPLE_VALUES. A third party's preview is rendered without the debt's values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from dispatcher.contact.account_facts import ContactPolicy
from dispatcher.contact.templates import (
    AFTER_IDENTITY,
    CONFIRM_DIGIT,
    DEBT_PLACEHOLDERS,
    GREETING,
    TEXT,
    Purpose,
    Template,
    UnknownTemplate,
    message_body,
    render,
)
from dispatcher.domain.clock import utc_rfc3339
from dispatcher.domain.contact import Medium, Party, Role
from dispatcher.store import AttemptRow
from dispatcher.webhooks.twilio import call_texts

# The account values a preview without --account uses (docs/operations.md lists them).
SAMPLE_NAME = "Alex Sample"
SAMPLE_AMOUNT, SAMPLE_CURRENCY, SAMPLE_DAYS = "123.45", "USD", 30


@dataclass(frozen=True)
class Part:
    """One separately sent or spoken text, and who receives it when."""

    name: str
    when: str
    text: str


@dataclass(frozen=True)
class Preview:
    """A template rendered as sent: its kind, the locale used, the values' source, its parts."""

    template: Template
    locale: str
    source: str
    parts: tuple[Part, ...]
    notes: tuple[str, ...] = ()

    def lines(self) -> list[str]:
        """The preview as the command prints it."""
        t = self.template
        lines = [f"template {t.template_id}: {t.medium.value} to {t.party.value}, purpose "
                 f"{t.purpose.value}; locale {self.locale}; values: {self.source}"]
        lines += [f"note: {note}" for note in self.notes]
        for part in self.parts:
            lines += ["", f"[{part.name}] {part.when}", part.text]
        return lines


def sample_values(policy: ContactPolicy, now: datetime) -> dict[str, str]:
    """The values of a sample account SAMPLE_DAYS days past due, with the config's business,
    callback and agent."""
    return {"first_name": SAMPLE_NAME.split(maxsplit=1)[0], "name": SAMPLE_NAME,
            "business": policy.business, "callback": policy.callback, "agent": policy.agent,
            "amount": SAMPLE_AMOUNT, "currency": SAMPLE_CURRENCY,
            "days_past_due": str(SAMPLE_DAYS),
            "due_date": (now - timedelta(days=SAMPLE_DAYS)).date().isoformat()}


def template_for(policy: ContactPolicy, template_id: str, locale: str) -> tuple[Template, str]:
    """The template and the locale of its texts for `locale`; ValueError naming what exists
    when either is unknown."""
    templates = policy.templates
    try:
        template = templates.get(template_id)
    except UnknownTemplate:
        raise ValueError(f"no template {template_id!r} in {templates.path}; its templates: "
                         f"{', '.join(sorted(templates.templates))}") from None
    try:
        # The locale itself or its language, as sending matches it, but no fallback: a preview
        # of a locale the template lacks would show another language's text under its name.
        return template, template.locale_for(locale, fallback=locale)
    except LookupError:
        have = ", ".join(next(iter(template.parts.values())))
        raise ValueError(f"template {template_id!r} has no text for locale {locale!r} (it has: "
                         f"{have}); a debtor of that locale is sent the default locale's "
                         f"({policy.default_locale}) text") from None


def preview(policy: ContactPolicy, template_id: str, locale: str, values: Mapping[str, str],
            *, source: str, now: datetime, stage: str | None = None) -> Preview:
    """Render `template_id` in `locale` with `values` as it would be sent (for a debtor call,
    with the voicemail of `stage`)."""
    template, used = template_for(policy, template_id, locale)
    notes: list[str] = []
    if template.party is Party.THIRD_PARTY:
        # What a third party gets is rendered without the debt's values at all.
        values = {k: v for k, v in values.items() if k not in DEBT_PLACEHOLDERS}
        source = "none about the debt (a third party learns nothing of it)"
    if template.purpose in (Purpose.HELP, Purpose.OPT_OUT_CONFIRMATION):
        # A keyword reply knows nothing of an account: whoever texts in gets the same words.
        replies = {k: values[k] for k in ("business", "callback", "agent")}
        notes.append(f"a keyword reply is sent in the default locale "
                     f"({policy.default_locale}), whoever texts in")
        text = render(template.text_for(used, used)[1], replies)
        return Preview(template, used, "the config's business, callback and agent",
                       (Part(TEXT, "the SMS reply", text),), tuple(notes))
    if template.medium is Medium.SMS:
        _, body = message_body(template, used, used, values)
        return Preview(template, used, source, (Part(TEXT, "the SMS", body),), tuple(notes))
    if template.purpose is Purpose.VOICEMAIL:
        text = render(template.text_for(used, used, TEXT)[1], values)
        return Preview(template, used, source,
                       (Part(TEXT, "left on an answering machine", text),), tuple(notes))
    parts, more = _call_parts(policy, template, used, values, stage=stage, now=now)
    return Preview(template, used, source, tuple(parts), (*notes, *more))


def _call_parts(policy: ContactPolicy, template: Template, locale: str,
                values: Mapping[str, str], *, stage: str | None,
                now: datetime) -> tuple[list[Part], list[str]]:
    """A call's parts, from the function the call webhook speaks them with, and notes."""
    role = Role.DEBTOR if template.party is Party.DEBTOR else Role.EMERGENCY
    attempt = AttemptRow("preview", "preview", "debtor", role, "", Medium.CALL, stage, None,
                         None, template.template_id, now)
    texts = call_texts(policy, attempt, locale, values)
    assert texts is not None  # a call template for its own party
    if role is not Role.DEBTOR:
        return [Part("location", "all a third party who answers hears; an answering machine "
                                 "gets nothing (the call hangs up)", texts.location)], []
    parts = [Part(GREETING, f"heard by whoever answers, before anyone presses {CONFIRM_DIGIT}",
                  texts.greeting),
             Part(AFTER_IDENTITY, f"said only once the debtor has pressed {CONFIRM_DIGIT}",
                  texts.after_identity)]
    if texts.voicemail:
        parts.append(Part("voicemail", f"left on a machine, or said when {CONFIRM_DIGIT} is "
                                       f"not pressed (stage {stage})", texts.voicemail))
        return parts, []
    return parts, [f"no voicemail: stage {stage} leaves none" if stage else
                   "no stage uses this template: the voicemail a stage leaves is not shown"]


def stage_using(policy: ContactPolicy, template_id: str) -> str | None:
    """The first stage of the schedule whose calls use `template_id`."""
    return next((s.name for s in policy.schedule.stages if s.call_template == template_id),
                None)


def account_source(account_id: str, at: datetime) -> str:
    """How a preview names values taken from an account."""
    return f"account {account_id} as of {utc_rfc3339(at)}"
