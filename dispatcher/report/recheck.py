"""Every contact rule re-checked from the audit records alone: the report's second opinion.

Nothing here calls the engine's gate: each rule of docs/compliance.md is written again from
the records' fields, so that a bug in the gate shows up as a violation instead of being repeated.
Where a record does not say enough to be sure (which candidate zone is the debtor's home, for
instance), a rule counts as broken only when it is broken in every zone the record lists: the
report never accuses the engine of what it may not have done.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from dispatcher.compliance.policy import Limits
from dispatcher.compliance.profiles import RegionProfiles, limits_for
from dispatcher.contact.templates import Template
from dispatcher.report.attempt_log import Attempt, Record, at_of, local, local_dates

WEEK = timedelta(days=7)

HOURS = "hours"
SUNDAY = "sunday"
CALL_CAP = "call_cap_7d"
SMS_CAP = "sms_cap_7d"
CONTACT_CAP = "contact_cap_7d"
COOLDOWN = "post_conversation"
DAILY_CAP = "daily_cap"
MIN_GAP = "min_gap"
WORK_NUMBER = "work_number"
OPTED_OUT = "opted_out"
HOLD = "hold"
RESOLVED = "resolved"
THIRD_PARTY_CHANNEL = "third_party_channel"
THIRD_PARTY_LIMIT = "third_party_limit"
THIRD_PARTY_TEMPLATE = "third_party_template"
NO_PROFILE = "no_profile"

RULE_TITLES: Mapping[str, str] = {
    HOURS: "Outside the allowed hours in a candidate zone",
    SUNDAY: "Contact on a Sunday where the profile forbids it",
    CALL_CAP: "More calls to a person about a debt in 7 days than the cap",
    SMS_CAP: "More texts to a person in 7 days than the cap",
    CONTACT_CAP: "More attempts to a person in 7 days (every channel) than the cap",
    COOLDOWN: "A call within the cool-down after a conversation",
    DAILY_CAP: "More attempts to a person in one local day than the cap",
    MIN_GAP: "Two attempts on one number closer than the minimum gap",
    WORK_NUMBER: "A work number contacted where the profile forbids it",
    OPTED_OUT: "Contact on a number and channel after an opt-out",
    HOLD: "Contact while a hold was in place",
    RESOLVED: "Contact after the account was resolved",
    THIRD_PARTY_CHANNEL: "A third party contacted by something other than a call",
    THIRD_PARTY_LIMIT: "A third party called more often than allowed",
    THIRD_PARTY_TEMPLATE: "A third-party call whose template could reveal the debt",
    NO_PROFILE: "Contact with a debtor whose region no profile covers",
}

# A third party learns nothing of the debt (15 USC 1692b(2), Reg F 1006.10). Written out again
# rather than imported from the template checker, so that a word dropped there is caught here.
_DEBT_PLACEHOLDER = re.compile(r"\{(amount|currency|days_past_due|due_date)\}")
_DEBT_WORD = re.compile(
    r"(?<![a-z])(debt|overdue|owe|owes|owed|owing|pay|payment|payments|paid|unpaid|repay"
    r"|collection|collections|collect|balance|loan|loans|arrears|past due|delinquen\w*)(?![a-z])"
    r"|欠款|逾期|催收|还款|還款|债务|債務|贷款|貸款", re.IGNORECASE)


@dataclass(frozen=True)
class Violation:
    """A rule the log shows broken: which, why, and the records that show it."""

    rule: str
    account_id: str
    explanation: str
    seqs: tuple[int, ...]
    at: datetime  # when the last record involved was written

    @property
    def title(self) -> str:
        """The rule in words."""
        return RULE_TITLES.get(self.rule, self.rule)


def recheck(records: Sequence[Record], attempts: Sequence[Attempt], limits: Limits,
            templates: Mapping[str, Template]) -> list[Violation]:
    """Every violation the records show, ordered by their last record.

    `records` are every audit record read (seq order), `attempts` the attempt records among them
    joined with their outcomes; attempts the provider never took are no contact and are ignored.
    """
    sent = [a for a in attempts if a.sent]
    found = [*_hours(sent, limits), *_rolling_caps(sent, limits), *_cooldown(sent, limits),
             *_daily_cap(sent, limits), *_min_gap(sent, limits), *_work_numbers(sent, limits),
             *_standing_orders(records, sent), *_third_parties(sent, limits, templates)]
    return sorted(found, key=lambda v: (v.seqs[-1], v.rule, v.seqs))


def recheck_by_region(records: Sequence[Record], attempts: Sequence[Attempt],
                      regions: RegionProfiles, limits: Limits,
                      templates: Mapping[str, Template]) -> list[Violation]:
    """`recheck` with each account held to the limits of its region's profile (and a state's
    stricter ones), as the config maps regions to profiles.

    An account's region is the one its latest attempt records; attempts written before records
    carried a region are held to `limits` (the main profile's). An attempt sent to a region no
    profile covers is a violation itself, and is held to `limits` too.
    """
    region_of = {a.account_id: a.region for a in attempts}
    groups: dict[str | None, list[Attempt]] = defaultdict(list)
    for a in attempts:
        groups[region_of[a.account_id]].append(a)
    found = []
    for region, group in groups.items():
        applied = limits_for(regions, region) if region is not None else None
        if region is not None and applied is None:
            found += [Violation(NO_PROFILE, a.account_id, f"sent to a debtor in {region}, which "
                                f"no profile covers", (a.seq,), a.at)
                      for a in group if a.sent]
        found += recheck(records, group, applied.limits if applied else limits, templates)
    return sorted(found, key=lambda v: (v.seqs[-1], v.rule, v.seqs))


def _by_person(attempts: Iterable[Attempt]) -> dict[tuple[str, str], list[Attempt]]:
    groups: dict[tuple[str, str], list[Attempt]] = defaultdict(list)
    for a in attempts:
        groups[(a.account_id, a.person)].append(a)
    return groups


def _who(a: Attempt) -> str:
    return "the debtor" if a.person == "debtor" else f"third party ({a.role})"


def _hours(attempts: Iterable[Attempt], limits: Limits) -> Iterator[Violation]:
    window = f"{limits.hours_start:%H:%M}-{limits.hours_end:%H:%M}"
    for a in attempts:
        if not a.local_times:
            yield Violation(HOURS, a.account_id, "no local time recorded: the attempt was made "
                                                 "without knowing the person's time zone",
                            (a.seq,), a.at)
            continue
        outside = []
        for zone, recorded in a.local_times.items():
            wall = local(a.at, zone)
            if not limits.hours_start <= wall.time() < limits.hours_end:
                outside.append(f"{zone} {wall:%Y-%m-%d %H:%M}")
            elif not str(recorded).startswith(wall.strftime("%Y-%m-%dT%H:%M")):
                outside.append(f"{zone}: recorded {recorded}, but {a.at:%H:%M}Z is "
                               f"{wall:%H:%M} there")
        if outside:
            yield Violation(HOURS, a.account_id, f"{a.channel} to {_who(a)} outside {window}: "
                                                 + "; ".join(outside), (a.seq,), a.at)
        if not limits.contact_on_sundays and all(local(a.at, z).weekday() == 6 for z in a.zones):
            yield Violation(SUNDAY, a.account_id, f"{a.channel} to {_who(a)} on a Sunday in "
                                                  "every candidate zone", (a.seq,), a.at)


def _over_cap(group: Sequence[Attempt], cap: int, rule: str, what: str) -> Iterator[Violation]:
    """Each attempt that makes more than `cap` in the 7 x 24 hours ending with it.

    A rolling 168 hours: any 7 consecutive local calendar days inside the allowed hours fit in
    it, so it never finds fewer than a calendar count would.
    """
    start = 0
    for end, a in enumerate(group):
        while group[start].at <= a.at - WEEK:
            start += 1
        inside = group[start:end + 1]
        if len(inside) > cap:
            yield Violation(rule, a.account_id,
                            f"{len(inside)} {what} to {_who(a)} from "
                            f"{inside[0].at:%Y-%m-%d %H:%MZ} to {a.at:%Y-%m-%d %H:%MZ} "
                            f"(cap {cap} in 7 days)",
                            tuple(x.seq for x in inside), a.at)


def _rolling_caps(attempts: Iterable[Attempt], limits: Limits) -> Iterator[Violation]:
    for group in _by_person(attempts).values():
        calls = [a for a in group if a.counts_as_call]
        if calls:
            cap = limits.calls_per_7_days
            if calls[0].role == "guarantor":
                cap = min(cap, limits.guarantor_calls_per_7_days)
            yield from _over_cap(calls, cap, CALL_CAP, "calls that connected or rang out")
        texts = [a for a in group if a.channel == "sms"]
        yield from _over_cap(texts, limits.sms_per_7_days, SMS_CAP, "texts")
        yield from _over_cap(group, limits.contacts_per_7_days, CONTACT_CAP, "attempts")


def _cooldown(attempts: Iterable[Attempt], limits: Limits) -> Iterator[Violation]:
    days = limits.conversation_cooldown_days
    if not days:
        return
    for group in _by_person(attempts).values():
        last_talk: Attempt | None = None
        for a in group:
            if a.channel != "call":
                continue
            # The conversation's day is day 1: calls resume on day 1 + cool-down, in every zone.
            if last_talk is not None and all(
                    local(a.at, z).date() < local(last_talk.at, z).date() + timedelta(days=days)
                    for z in a.zones):
                yield Violation(COOLDOWN, a.account_id,
                                f"call to {_who(a)} on {local(a.at, a.zones[0]):%Y-%m-%d}, "
                                f"{days}-day cool-down after the conversation of "
                                f"{local(last_talk.at, a.zones[0]):%Y-%m-%d}",
                                (last_talk.seq, a.seq), a.at)
            if a.is_conversation:
                last_talk = a


def _daily_cap(attempts: Iterable[Attempt], limits: Limits) -> Iterator[Violation]:
    cap = limits.attempts_per_day
    for group in _by_person(attempts).values():
        for i, a in enumerate(group):
            day = local_dates(a.at, a.zones)
            same: list[Attempt] = []
            # Walking back two days covers a local day in any zone; the same day means the same
            # date in every zone this attempt lists.
            for b in reversed(group[:i + 1]):
                if a.at - b.at >= timedelta(days=2):
                    break
                if local_dates(b.at, a.zones) == day:
                    same.insert(0, b)
            if len(same) > cap:
                yield Violation(DAILY_CAP, a.account_id,
                                f"{len(same)} attempts to {_who(a)} on {day[0]} local "
                                f"(cap {cap} a day)", tuple(b.seq for b in same), a.at)


def _min_gap(attempts: Iterable[Attempt], limits: Limits) -> Iterator[Violation]:
    gap = timedelta(minutes=limits.min_gap_minutes)
    last: dict[tuple[str, str, str], Attempt] = {}
    for a in attempts:
        key = (a.account_id, a.person, a.to)
        before = last.get(key)
        if before is not None and a.at - before.at < gap:
            minutes = int((a.at - before.at).total_seconds() // 60)
            yield Violation(MIN_GAP, a.account_id,
                            f"{minutes} min between attempts on one number of {_who(a)} "
                            f"(at least {limits.min_gap_minutes} min)", (before.seq, a.seq), a.at)
        last[key] = a


def _work_numbers(attempts: Iterable[Attempt], limits: Limits) -> Iterator[Violation]:
    if limits.call_work_numbers:
        return
    for a in attempts:
        if a.number_type == "work":
            yield Violation(WORK_NUMBER, a.account_id, f"{a.channel} to the debtor's work number",
                            (a.seq,), a.at)


@dataclass(frozen=True)
class _Statement:
    """The newest statement about something (a hold, an opt-out, the account's status)."""

    order: tuple[datetime, int, str]  # occurred_at, then the tie-breaker
    on: bool
    seq: int
    until: str | None = None


def _newer(table: dict[Any, _Statement], key: Any, statement: _Statement) -> None:
    current = table.get(key)
    if current is None or statement.order > current.order:
        table[key] = statement


def _standing_orders(records: Sequence[Record], attempts: Sequence[Attempt]) -> Iterator[Violation]:
    """Opt-outs, holds and resolutions, each as the newest statement by `occurred_at` that was
    recorded before the attempt (an event the engine had not received cannot bind it)."""
    attempt_at = {a.seq: a for a in attempts}
    occurred: dict[str, datetime] = {}
    opt_outs: dict[tuple[str, str], _Statement] = {}
    holds: dict[tuple[str, str], _Statement] = {}
    resolved: dict[str, _Statement] = {}
    for r in records:
        kind, seq = r.get("kind"), int(r["seq"])
        # An opt-out or hold counts from when its event occurred (its own record is later).
        when = occurred.get(str(r.get("event_id"))) or at_of(r)
        if kind == "event":
            occurred[str(r.get("event_id"))] = _occurred(r)
            if r.get("event_type") in ("account.overdue", "account.resolved"):
                _newer(resolved, r.get("account_id"),
                       _Statement((_occurred(r), 0, str(r.get("event_id"))),
                                  r["event_type"] == "account.resolved", seq))
        elif kind == "opt_out" and r.get("status") != "not_applied":
            # A pause for a person to review a reply blocks the channel as an opt-out does.
            out = r.get("status") in ("opted_out", "revocation_review")
            channels = ("sms", "call") if r.get("channel") == "all" else (str(r.get("channel")),)
            for channel in channels:
                # At the same instant an opt-out beats an opt-in.
                _newer(opt_outs, (r.get("to"), channel), _Statement((when, int(out), ""), out, seq))
        elif kind == "hold":
            _newer(holds, (r.get("account_id"), r.get("reason")),
                   _Statement((when, 0, str(r.get("event_id"))), r.get("status") == "placed", seq,
                              r.get("until")))
        elif seq in attempt_at:
            yield from _bound(attempt_at[seq], opt_outs, holds, resolved)


def _occurred(record: Record) -> datetime:
    text = record.get("occurred_at")
    return at_of({"at": text}) if text else at_of(record)


def _bound(a: Attempt, opt_outs: Mapping[tuple[str, str], _Statement],
           holds: Mapping[tuple[str, str], _Statement],
           resolved: Mapping[str, _Statement]) -> Iterator[Violation]:
    out = opt_outs.get((a.to, a.channel))
    if out is not None and out.on:
        yield Violation(OPTED_OUT, a.account_id, f"{a.channel} to {_who(a)} on a number opted "
                                                 f"out of {a.channel}", (out.seq, a.seq), a.at)
    for (account, reason), hold in holds.items():
        if account != a.account_id or not hold.on:
            continue
        if hold.until is not None and not all(
                d < date.fromisoformat(hold.until) for d in local_dates(a.at, a.zones)):
            continue  # the hold had ended, in at least one candidate zone
        until = f" until {hold.until}" if hold.until else ""
        yield Violation(HOLD, a.account_id, f"{a.channel} to {_who(a)} during {reason}{until}",
                        (hold.seq, a.seq), a.at)
    status = resolved.get(a.account_id)
    if status is not None and status.on:
        yield Violation(RESOLVED, a.account_id, f"{a.channel} to {_who(a)} after the account "
                                                "was resolved", (status.seq, a.seq), a.at)


def _third_parties(attempts: Iterable[Attempt], limits: Limits,
                   templates: Mapping[str, Template]) -> Iterator[Violation]:
    for group in _by_person(a for a in attempts if a.party != "debtor").values():
        calls: list[Attempt] = []
        refused: Attempt | None = None
        for a in group:
            if a.channel != "call":
                yield Violation(THIRD_PARTY_CHANNEL, a.account_id,
                                f"{a.channel} to a third party ({a.role}): calls only",
                                (a.seq,), a.at)
                continue
            yield from _third_party_template(a, templates)
            if refused is not None:
                yield Violation(THIRD_PARTY_LIMIT, a.account_id,
                                f"call to a third party ({a.role}) who had asked not to be "
                                "called again", (refused.seq, a.seq), a.at)
            if a.counts_as_call:
                calls.append(a)
                cap = limits.third_party_calls_per_contact
                if a.role == "emergency" and len(calls) > cap:
                    yield Violation(THIRD_PARTY_LIMIT, a.account_id,
                                    f"{len(calls)} calls to one emergency contact on this "
                                    f"account (at most {cap}, ever)",
                                    tuple(c.seq for c in calls), a.at)
            if a.status == "refused":
                refused = a


def _third_party_template(a: Attempt, templates: Mapping[str, Template]) -> Iterator[Violation]:
    template = templates.get(a.template or "")
    if template is None:
        yield Violation(THIRD_PARTY_TEMPLATE, a.account_id,
                        f"template {a.template!r} is not in the current templates: its text "
                        "cannot be checked", (a.seq,), a.at)
        return
    problems = []
    if template.party.value != "third_party":
        problems.append(f"it is a {template.party.value} template")
    for part, texts in template.parts.items():
        for locale, written in sorted(texts.items()):
            text = unicodedata.normalize("NFKC", written)
            words = sorted({m.group(0).lower() for m in _DEBT_PLACEHOLDER.finditer(text)}
                           | {m.group(0).lower() for m in _DEBT_WORD.finditer(text)})
            if words:
                problems.append(f"{locale} {part} has {', '.join(words)}")
    if problems:
        yield Violation(THIRD_PARTY_TEMPLATE, a.account_id,
                        f"template {a.template!r}: " + "; ".join(problems), (a.seq,), a.at)


def in_window(violations: Iterable[Violation], since: datetime,
              until: datetime) -> list[Violation]:
    """The violations whose last record was written in [since, until)."""
    return [v for v in violations if since <= v.at.astimezone(UTC) < until]
