"""The compliance report as one self-contained HTML page: inline CSS and SVG, no script, no link.

Every figure carries its numbers in `data-` attributes (`data-figure`, `data-day`, `data-count`,
...), so that a test or a script can read the rendered page back and compare it with the log.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape

from dispatcher.compliance.policy import Limits
from dispatcher.domain.phones import mask_number, mask_numbers_in
from dispatcher.report.attempt_log import Attempt, at_of
from dispatcher.report.figures import CHANNELS, Figures, peak_histogram
from dispatcher.report.recheck import RULE_TITLES, Violation

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
COLORS = {"call": "#2f6db5", "sms": "#e08a1e"}


@dataclass(frozen=True)
class Chain:
    """The hash-chain verdict as the report shows it."""

    ok: bool
    checked: int
    head_seq: int | None
    bad_seq: int | None = None
    problem: str | None = None
    anchor: str | None = None  # where retention pruned the chain, when it did


@dataclass(frozen=True)
class ReportPage:
    """Everything on the page."""

    since: datetime
    until: datetime
    generated_at: datetime
    config_version: str
    profile: str
    limits: Limits
    lookback_days: int
    figures: Figures
    violations: Sequence[Violation]
    attempts_checked: int
    chain: Chain


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _t(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d2330;
margin:0;background:#f4f6f9}
main{max-width:1280px;margin:0 auto;padding:24px 32px 48px}
h1{font-size:26px;margin:0 0 4px}h2{font-size:19px;margin:0 0 4px}
.meta{color:#4a5366;margin:0 0 18px}.meta b{color:#1d2330}
section{background:#fff;border:1px solid #dde2ea;border-radius:8px;padding:16px 20px;
margin:0 0 18px}
p.why{color:#4a5366;margin:0 0 12px}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(150px,1fr));gap:10px}
.card{border:1px solid #dde2ea;border-radius:6px;padding:10px 12px;background:#fafbfd}
.card .v{font-size:24px;font-weight:650}.card .l{color:#4a5366;font-size:12px}
.bad{color:#b3261e}.good{color:#1e7b34}
.card.bad{border-color:#e4a8a3;background:#fdf1f0}.card.good{border-color:#a9d5b4}
table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}
th,td{border-bottom:1px solid #e6e9ef;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f0f2f6;font-weight:600}td.n,th.n{text-align:right}
table.heat{width:auto}
table.heat td{width:34px;min-width:34px;height:22px;text-align:center;font-size:11px;
border:1px solid #fff;padding:0}
table.heat th{font-size:11px;text-align:center;padding:2px}
.bar{display:inline-block;height:12px;background:#2f6db5;border-radius:2px;vertical-align:middle}
.verdict{font-size:18px;font-weight:650}
.legend span{display:inline-block;margin-right:14px}
.legend i{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:-1px}
.scroll{overflow-x:auto}
code{font-size:12px;background:#f0f2f6;padding:1px 4px;border-radius:3px}
ul.notes li{margin-bottom:4px}
"""


def render(page: ReportPage) -> str:
    """The whole HTML document."""
    window = f"{_t(page.since)} to {_t(page.until)}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Compliance report {_e(window)}</title>",
        f"<style>{CSS}</style></head><body><main>",
        f'<h1 id="title" data-since="{_e(page.since.isoformat())}" '
        f'data-until="{_e(page.until.isoformat())}">Compliance report: {_e(window)}</h1>',
        f'<p class="meta">Records written from <b>{_e(_t(page.since))}</b> (inclusive) to '
        f"<b>{_e(_t(page.until))}</b> (exclusive) · profile <b>{_e(page.profile)}</b> · "
        f"config version <b>{_e(page.config_version)}</b> · generated "
        f"<b>{_e(_t(page.generated_at))}</b></p>",
        _summary(page),
        _violations(page),
        _chain(page.chain),
        _per_day(page.figures),
        _heatmap(page.figures),
        _suppressions(page.figures),
        _call_peaks(page.figures, page.limits.calls_per_7_days),
        _third_parties(page.figures),
        _opt_outs(page.figures),
        _method(page),
        "</main></body></html>",
    ]
    return "\n".join(parts) + "\n"


def _card(figure: str, value: int | str, label: str, tone: str = "") -> str:
    return (f'<div class="card {tone}" data-figure="{_e(figure)}" data-value="{_e(value)}">'
            f'<div class="v">{_e(value)}</div><div class="l">{_e(label)}</div></div>')


def _summary(page: ReportPage) -> str:
    f = page.figures
    calls = sum(c.get("call", 0) for c in f.attempts_by_day.values())
    texts = sum(c.get("sms", 0) for c in f.attempts_by_day.values())
    cards = [
        _card("records", f.records, "audit records in the window"),
        _card("attempts", f.attempts, "contact attempts"),
        _card("calls", calls, "calls"),
        _card("sms", texts, "texts"),
        _card("not_sent", f.not_sent, "attempts never sent (provider refused)"),
        _card("suppressed", f.kinds.get("suppressed", 0), "suppressions"),
        _card("third_party", len(f.third_party), "third-party attempts"),
        _card("opt_outs", len(f.opt_outs), "opt-out / opt-in records"),
        _card("violations", len(page.violations), "rule violations found",
              "bad" if page.violations else "good"),
        _card("chain", "intact" if page.chain.ok else "BROKEN", "hash chain",
              "good" if page.chain.ok else "bad"),
    ]
    return ('<section id="summary"><h2>Summary</h2><p class="why">What the log holds for the '
            'window, and the two verdicts: the rules re-checked, and the chain verified.</p>'
            f'<div class="cards">{"".join(cards)}</div></section>')


def _violations(page: ReportPage) -> str:
    head = (f'<section id="violations" data-count="{len(page.violations)}"><h2>Rules '
            're-checked against the log</h2><p class="why">Every attempt in the window '
            're-checked from the audit records alone, independently of the engine; a violation '
            'names the records that show it (by seq and account, with the full numbers in the '
            'audit export).</p>')
    if not page.violations:
        return (head + f'<p class="verdict good">No violation: {page.attempts_checked} '
                f"attempt(s) checked against {len(RULE_TITLES)} rules.</p></section>")
    rows = "".join(
        f'<tr class="violation" data-rule="{_e(v.rule)}" data-account="{_e(v.account_id)}" '
        f'data-seqs="{_e(" ".join(map(str, v.seqs)))}"><td>{_e(v.title)} '
        f"<code>{_e(v.rule)}</code></td><td>{_e(v.account_id)}</td>"
        f"<td>{_e(mask_numbers_in(v.explanation))}</td>"
        f"<td>{_e(', '.join(map(str, v.seqs)))}</td><td>{_e(_t(v.at))}</td></tr>"
        for v in page.violations)
    return (head + f'<p class="verdict bad">{len(page.violations)} violation(s) in '
            f"{page.attempts_checked} attempt(s).</p><div class=\"scroll\"><table><thead><tr>"
            "<th>Rule</th><th>Account</th><th>What the records show</th><th>Records (seq)</th>"
            f"<th>Last record</th></tr></thead><tbody>{rows}</tbody></table></div></section>")


def _chain(chain: Chain) -> str:
    if chain.ok:
        anchor = f"; {_e(chain.anchor)}" if chain.anchor else ""
        verdict = (f'<p class="verdict good">Intact: {chain.checked} record(s) checked, head seq '
                   f"{_e(chain.head_seq)}{anchor}.</p>")
    else:
        verdict = (f'<p class="verdict bad">BROKEN at seq {_e(chain.bad_seq)}: '
                   f"{_e(mask_numbers_in(chain.problem or ''))} ({chain.checked} record(s) "
                   "before it are intact).</p>")
    return (f'<section id="chain" data-ok="{str(chain.ok).lower()}" data-checked="{chain.checked}"'
            f' data-bad-seq="{_e(chain.bad_seq or "")}"><h2>Hash-chain verification</h2>'
            '<p class="why">The whole stored log, not only the window, recomputed record by '
            'record as <code>dispatcher audit verify</code> does: a broken chain means records '
            f"were altered or removed.</p>{verdict}</section>")


def _per_day(f: Figures) -> str:
    days = list(f.attempts_by_day.items())
    top = max([1, *(sum(c.values()) for _, c in days)])
    width, height, pad = 1200, 220, 30
    step = (width - 2 * pad) / max(1, len(days))
    bars = []
    for i, (day, counts) in enumerate(days):
        y = float(height - pad)
        for channel in CHANNELS:
            n = counts.get(channel, 0)
            if not n:
                continue
            h = (height - 2 * pad) * n / top
            y -= h
            bars.append(f'<rect x="{pad + i * step + 1:.1f}" y="{y:.1f}" width="'
                        f'{max(1.0, step - 2):.1f}" height="{h:.1f}" fill="{COLORS[channel]}">'
                        f"<title>{day} {channel}: {n}</title></rect>")
        if len(days) <= 62 and (len(days) <= 31 or i % 2 == 0):
            bars.append(f'<text x="{pad + (i + 0.5) * step:.1f}" y="{height - 12}" '
                        f'font-size="10" text-anchor="middle">{day:%m-%d}</text>')
    axis = (f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" '
            f'stroke="#888"/><text x="4" y="{pad + 4}" font-size="10">{top}</text>')
    rows = "".join(
        f"<tr><td>{day}</td>"
        + "".join(f'<td class="n" data-day="{day}" data-channel="{ch}" data-count="'
                  f'{c.get(ch, 0)}">{c.get(ch, 0)}</td>' for ch in CHANNELS)
        + f'<td class="n">{sum(c.values())}</td></tr>'
        for day, c in days)
    legend = "".join(f'<span><i style="background:{COLORS[c]}"></i>{c}</span>' for c in CHANNELS)
    return ('<section id="per-day"><h2>Attempts per day by channel</h2><p class="why">Contact '
            "attempts by the UTC day they were made, calls and texts stacked.</p>"
            f'<div class="legend">{legend}</div><svg viewBox="0 0 {width} {height}" '
            f'width="100%" role="img" aria-label="attempts per day">{axis}{"".join(bars)}</svg>'
            '<details><summary>The numbers</summary><table><thead><tr><th>Day (UTC)</th>'
            + "".join(f'<th class="n">{c}</th>' for c in CHANNELS)
            + f'<th class="n">total</th></tr></thead><tbody>{rows}</tbody></table></details>'
            "</section>")


def _heatmap(f: Figures) -> str:
    top = max([1, *(c.count for c in f.heatmap)])
    cells = {(c.weekday, c.hour): c.count for c in f.heatmap}
    head = "".join(f"<th>{h:02d}</th>" for h in range(24))
    rows = []
    for d, name in enumerate(WEEKDAYS):
        tds = []
        for h in range(24):
            n = cells.get((d, h), 0)
            shade = f"background:rgba(47,109,181,{0.12 + 0.88 * n / top:.2f});" if n else ""
            ink = "color:#fff;" if n > top / 2 else ""
            tds.append(f'<td data-weekday="{d}" data-hour="{h}" data-count="{n}" '
                       f'style="{shade}{ink}">{n or ""}</td>')
        rows.append(f"<tr><th>{name}</th>{''.join(tds)}</tr>")
    note = (f" {f.zones_disagree} attempt(s) had candidate zones that disagreed on the hour; "
            "each is shown at the earliest of its local times, the one nearest the morning "
            "limit." if f.zones_disagree else "")
    return ('<section id="heatmap" data-zones-disagree="' + str(f.zones_disagree) + '">'
            "<h2>Attempts by the debtor's local hour and weekday</h2><p class=\"why\">When "
            "people were contacted, in their own time (the zones recorded with each attempt); "
            f"the allowed hours are set by the profile.{note}</p>"
            f'<div class="scroll"><table class="heat"><thead><tr><th></th>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table></div></section>")


def _bars(rows: Iterable[tuple[str, str, int]], attr: str, top: int) -> str:
    return "".join(
        f'<tr {attr}="{_e(key)}" data-count="{n}"><td>{label}</td><td class="n">{n}</td>'
        f'<td style="width:55%"><span class="bar" style="width:{100 * n / max(1, top):.1f}%">'
        "</span></td></tr>" for key, label, n in rows)


def _suppressions(f: Figures) -> str:
    top = max([1, *f.suppressions.values()])
    rows = _bars(((r, f"<code>{_e(r)}</code>", n) for r, n in f.suppressions.items()),
                 "data-reason", top)
    body = (f"<table><thead><tr><th>Reason</th><th class=\"n\">Records</th><th></th></tr>"
            f"</thead><tbody>{rows}</tbody></table>" if rows else "<p>No suppression.</p>")
    return ('<section id="suppressions"><h2>Suppressions by reason</h2><p class="why">Attempts '
            "the engine planned or considered and refused, by the first rule that refused them."
            f"</p>{body}</section>")


def _call_peaks(f: Figures, cap: int) -> str:
    histogram = peak_histogram(f.call_peaks, cap)
    top = max([1, *histogram.values()])
    width, height, pad = 900, 200, 30
    step = (width - 2 * pad) / len(histogram)
    shapes = []
    for i, (calls, debts) in enumerate(histogram.items()):
        h = (height - 2 * pad) * debts / top
        color = "#b3261e" if calls > cap else "#2f6db5"
        shapes.append(f'<rect x="{pad + i * step + 2:.1f}" y="{height - pad - h:.1f}" width="'
                      f'{step - 4:.1f}" height="{h:.1f}" fill="{color}"><title>{calls} calls: '
                      f'{debts} debt(s)</title></rect><text x="{pad + (i + 0.5) * step:.1f}" '
                      f'y="{height - 12}" font-size="11" text-anchor="middle">{calls}</text>')
    x = pad + (cap + 1) * step
    shapes.append(f'<line x1="{x:.1f}" y1="{pad - 10}" x2="{x:.1f}" y2="{height - pad}" '
                  f'stroke="#b3261e" stroke-dasharray="4 3"/><text x="{x + 4:.1f}" y="{pad}" '
                  f'font-size="11" fill="#b3261e">cap {cap}</text>')
    rows = _bars(((str(c), str(c), n) for c, n in histogram.items()), "data-calls", top)
    return (f'<section id="call-peaks" data-cap="{cap}" data-debts="{len(f.call_peaks)}">'
            "<h2>Calls per debt in 7 days, against the cap</h2><p class=\"why\">For each debt "
            "with a debtor attempt in the window, the most calls to the debtor in any 7 x 24 "
            "hours ending in the window (calls that connected, reached voicemail or rang out; "
            "busy, failed and never-sent calls do not count), and how many debts reached each "
            f"number. Bars right of the line would be over the cap of {cap}.</p>"
            f'<svg viewBox="0 0 {width} {height}" width="75%" role="img" aria-label="7-day call '
            f'counts">{"".join(shapes)}</svg><table><thead><tr><th>Calls in 7 days</th>'
            f'<th class="n">Debts</th><th></th></tr></thead><tbody>{rows}</tbody></table>'
            "</section>")


def _attempt_rows(attempts: Iterable[Attempt]) -> str:
    return "".join(
        f'<tr data-seq="{a.seq}" data-status="{_e(a.status or "")}"><td class="n">{a.seq}</td>'
        f"<td>{_e(_t(a.at))}</td><td>{_e(a.account_id)}</td><td>{_e(a.role)}</td>"
        f"<td>{_e(a.channel)}</td><td>{_e(mask_number(a.to))}</td><td>{_e(a.template or '')}"
        f"</td><td>{_e(a.status or 'no outcome yet')}</td></tr>" for a in attempts)


def _third_parties(f: Figures) -> str:
    rows = _attempt_rows(f.third_party)
    body = ("<table><thead><tr><th class=\"n\">Seq</th><th>When</th><th>Account</th><th>Role"
            "</th><th>Channel</th><th>Number</th><th>Template</th><th>Outcome</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>" if rows else "<p>No third-party contact.</p>")
    return (f'<section id="third-party" data-count="{len(f.third_party)}"><h2>Third-party '
            "contacts</h2><p class=\"why\">Calls to emergency contacts and guarantors, allowed "
            "only to restore contact with an unreachable debtor, and never revealing the debt."
            f"</p>{body}</section>")


def _opt_outs(f: Figures) -> str:
    rows = "".join(
        f'<tr data-seq="{_e(r.get("seq"))}" data-status="{_e(r.get("status"))}" '
        f'data-channel="{_e(r.get("channel"))}"><td class="n">{_e(r.get("seq"))}</td>'
        f'<td>{_e(_t(at_of(r)))}</td><td>{_e(r.get("account_id") or "")}</td>'
        f'<td>{_e(mask_number(str(r.get("to") or "")))}</td><td>{_e(r.get("channel"))}</td>'
        f'<td>{_e(r.get("status"))}</td></tr>' for r in f.opt_outs)
    outs = sum(1 for r in f.opt_outs if r.get("status") == "opted_out")
    body = ("<table><thead><tr><th class=\"n\">Seq</th><th>Recorded</th><th>Account</th>"
            "<th>Number</th><th>Channel</th><th>Status</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>" if rows else "<p>No opt-out or opt-in.</p>")
    return (f'<section id="opt-outs" data-count="{len(f.opt_outs)}" data-opted-out="{outs}">'
            "<h2>Opt-outs and opt-ins</h2><p class=\"why\">Revocations of consent (STOP and "
            "the like, or an upstream event) and their reversals; an opt-out applies to the "
            f"number and channel on every account.</p>{body}</section>")


def _method(page: ReportPage) -> str:
    lim = page.limits
    notes = [
        f"Allowed hours {lim.hours_start:%H:%M}-{lim.hours_end:%H:%M} in every zone recorded "
        "with an attempt, recomputed from its UTC time (a recorded local time that disagrees is "
        f"a violation too){'' if lim.contact_on_sundays else '; no Sundays'}.",
        f"At most {lim.calls_per_7_days} calls per person per debt in any 7 x 24 hours "
        f"(guarantors {lim.guarantor_calls_per_7_days}), {lim.sms_per_7_days} texts and "
        f"{lim.contacts_per_7_days} attempts of any kind; busy, failed, canceled, invalid-number "
        "and never-sent calls do not count.",
        f"No call until {lim.conversation_cooldown_days} days after a conversation (its day is "
        f"day 1); at most {lim.attempts_per_day} attempt(s) per person per local day; at least "
        f"{lim.min_gap_minutes} minutes between attempts on one number.",
        "No attempt on a number and channel whose newest opt-out statement (by when it "
        "occurred) is an opt-out, on an account under a hold, or on a resolved account, counting "
        "only statements recorded before the attempt.",
        f"Third parties: calls only; at most {lim.third_party_calls_per_contact} call(s) per "
        "emergency contact per account, ever, none after they refused; the template must be a "
        "third-party template with no debt placeholder or debt word.",
        f"Records from {page.lookback_days} days before the window are read for the rolling "
        "counts, and opt-outs, holds, resolutions and third-party calls from the whole stored "
        "log; a violation is listed when its last record falls in the window. Where a record "
        "lists several candidate zones, a rule about local days counts as broken only when it "
        "is broken in every one.",
        "Each account is held to the limits of the profile that governs the region its latest "
        "attempt records, as the config maps regions to profiles (with a state's stricter ones "
        "where the profile has them); an attempt to a region no profile covers is a violation; "
        "attempts recorded without a region get the main profile's general limits, listed "
        "here.",
        "Not re-checkable from the log alone: consent flags, holidays, hours the consumer asked "
        "to avoid, a pending promise to pay, and the unreachable test before third-party calls.",
        "Phone numbers are masked; the audit export has them in full.",
    ]
    items = "".join(f"<li>{_e(n)}</li>" for n in notes)
    return ('<section id="method"><h2>How the rules were re-checked</h2><p class="why">The '
            f"profile's limits as this config sets them.</p><ul class=\"notes\">{items}</ul>"
            "</section>")
