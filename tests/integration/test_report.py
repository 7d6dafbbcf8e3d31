"""`dispatcher report` end to end: a real store from the real engine, the real command, the page
rendered in headless Chromium, and every figure on it compared with `audit export`.

The figures are recomputed here from the export's JSON lines in a deliberately different way
(local hours from the recorded `local_times` text, not from the zones) and read back from the
DOM Chromium rendered, so that a figure the page shows wrongly, or not at all, fails the test.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import struct
import subprocess
import sys
import zlib
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from channels.sandbox import load_outcome_script
from dispatcher.cli.main import main
from dispatcher.config.settings import load_config
from dispatcher.contact.simulate import Simulation, read_events
from dispatcher.store import open_store
from tests.support import ROOT, execute, make_config, overdue_at, query

START = datetime(2026, 12, 7, 6, 0, tzinfo=UTC)
SINCE, UNTIL = "2026-12-10", "2026-12-24"
NOT_COUNTED = {"busy", "failed", "canceled", "invalid-number", "not-sent"}
NIGHT_CALL_AT = datetime(2026, 12, 20, 9, 0, tzinfo=UTC)  # 03:00 in Chicago


def _overdue(account: str, days: int, number: str, zone: str, region: str,
             contacts: list[dict[str, str]] | None = None) -> dict[str, Any]:
    return overdue_at(START, account, days, number, zone, region, contacts)


def _event(event_id: str, kind: str, account: str, at: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"schema": 1, "event_id": event_id, "type": kind, "occurred_at": at,
            "account_id": account, "data": data}


EVENTS = [
    _overdue("A-1", 20, "+13125550102", "America/Chicago", "US-IL",
             [{"contact_id": "c-9", "name": "Sam Ray", "relation": "sister",
               "number": "+13125550177", "role": "emergency"}]),
    _overdue("A-2", 9, "+12125550101", "America/New_York", "US-NY"),
    _overdue("A-3", 2, "+14155550103", "America/Los_Angeles", "US-CA"),
    _event("e-hold", "account.hold", "A-3", "2026-12-13T18:00:00Z", {"reason": "dispute"}),
    _event("e-release", "account.release", "A-3", "2026-12-15T18:00:00Z", {"reason": "dispute"}),
    _event("e-paid", "account.resolved", "A-2", "2026-12-18T18:00:00Z", {"reason": "paid"}),
]
OUTCOMES = {"default": {"call": ["no-answer", "machine", "busy", "no-answer"],
                        "sms": "delivered"},
            "numbers": {"+12125550101": {"call": ["no-answer", "completed", "no-answer"]}},
            "replies": [{"at": "2026-12-11T20:00:00Z", "from": "+14155550103", "body": "STOP"}]}


async def _simulate(config_path: Path, folder: Path) -> None:
    """The real engine over 21 virtual days, into the config's own store; then one attempt
    appended at 03:00 local, as a broken engine would write it."""
    (folder / "events.jsonl").write_text("\n".join(json.dumps(e) for e in EVENTS))
    (folder / "outcomes.json").write_text(json.dumps(OUTCOMES))
    config = load_config(config_path, {})
    async with open_store(config.store_location) as store:
        await Simulation(config, store, load_outcome_script(folder / "outcomes.json"),
                         START).run(read_events(folder / "events.jsonl", START), 21)
        await store.append_audit([{
            "kind": "attempt", "attempt_id": "at-night", "account_id": "A-9",
            "channel": "call", "party": "debtor", "role": "debtor", "to": "+13125550102",
            "template": "call_script", "config_version": config.version,
            "local_times": {"America/Chicago": "2026-12-20T03:00-06:00"}}], now=NIGHT_CALL_AT)


@pytest.fixture(scope="module")
def store_config(tmp_path_factory: pytest.TempPathFactory, module_store_url: str) -> Path:
    """Three weeks of the real engine, on SQLite, then on PostgreSQL."""
    folder = tmp_path_factory.mktemp("report")
    path = make_config(folder / "cfg", "mqtt://127.0.0.1:1", store_url=module_store_url)
    asyncio.run(_simulate(path, folder))
    return path


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dispatcher", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=120, check=False)


def _export(config: Path, since: str | None = None,
            until: str | None = None) -> list[dict[str, Any]]:
    window = [*(["--since", since] if since else []), *(["--until", until] if until else [])]
    done = _cli("audit", "export", "--config", str(config), "--format", "jsonl", *window)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail("Debian's `chromium` is needed to render the report: apt-get install -y "
                    "chromium (bash scripts/test installs it when missing)")
    return found


def _browser(binary: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([binary, "--headless", "--no-sandbox", "--disable-gpu",
                           "--no-first-run", "--disable-extensions", "--hide-scrollbars",
                           "--disable-background-networking", f"--user-data-dir={profile}",
                           *args], capture_output=True, text=True, timeout=120, check=False)


class _Dom(HTMLParser):
    """Every element's attributes, and the text of elements with an id."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, {k: v or "" for k, v in attrs}))

    def having(self, name: str) -> list[dict[str, str]]:
        return [a for _, a in self.elements if name in a]


def _png_facts(path: Path) -> tuple[int, int, int]:
    """Width, height and the number of distinct byte values in the decoded image data."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    chunks, pos = [], 8
    while pos < len(data):
        length = struct.unpack(">I", data[pos:pos + 4])[0]
        if data[pos + 4:pos + 8] == b"IDAT":
            chunks.append(data[pos + 8:pos + 8 + length])
        pos += 12 + length
    pixels = zlib.decompress(b"".join(chunks))
    return width, height, len(set(pixels[::7]))


def _earliest_local(record: dict[str, Any]) -> datetime:
    """The attempt's earliest recorded wall-clock time, read from the text of `local_times`."""
    walls = [datetime.fromisoformat(text).replace(tzinfo=None)
             for text in record["local_times"].values()]
    return min(walls)


def test_the_report_matches_the_audit_export_in_chromium(store_config: Path,
                                                          tmp_path: Path) -> None:
    chromium = _chromium()
    out = tmp_path / "report.html"
    done = _cli("report", "--config", str(store_config), "--since", SINCE, "--until", UNTIL,
                "--out", str(out))
    assert done.returncode == 0, done.stderr

    window = _export(store_config, SINCE, UNTIL)
    everything = _export(store_config)
    attempts = [r for r in window if r["kind"] == "attempt"]
    assert done.stdout.strip() == (f"wrote {out}: {len(window)} records, {len(attempts)} "
                                   "attempts, 1 violation(s), hash chain intact")

    # The scenario holds every kind of figure inside the window.
    kinds = Counter(r["kind"] for r in window)
    assert kinds["attempt"] > 10
    assert kinds["outcome"] > 10
    assert kinds["suppressed"] >= 2
    assert kinds["opt_out"] == 1
    assert kinds["hold"] == 2
    assert any(r.get("party") == "third_party" for r in attempts)

    html = out.read_text()
    assert "<script" not in html.lower()
    for outside in ("http://", "https://", "src=", "href=", "url(", "@import"):
        assert outside not in html.lower(), outside
    for number in {r["to"] for r in everything if r.get("to")}:
        assert number not in html, "phone numbers are masked"

    dumped = _browser(chromium, tmp_path / "profile", "--dump-dom", out.as_uri())
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    dom = _Dom()
    dom.feed(dumped.stdout)

    figures = {a["data-figure"]: a["data-value"] for a in dom.having("data-figure")}
    assert figures == {
        "records": str(len(window)),
        "attempts": str(len(attempts)),
        "calls": str(sum(1 for r in attempts if r["channel"] == "call")),
        "sms": str(sum(1 for r in attempts if r["channel"] == "sms")),
        "not_sent": str(sum(1 for r in window if r["kind"] == "outcome"
                            and r["status"] == "not-sent")),
        "suppressed": str(kinds["suppressed"]),
        "third_party": str(sum(1 for r in attempts if r["party"] == "third_party")),
        "opt_outs": "1",
        "violations": "1",
        "chain": "intact",
    }

    per_day = {(a["data-day"], a["data-channel"]): int(a["data-count"])
               for a in dom.having("data-day")}
    expected_days = Counter((r["at"][:10], r["channel"]) for r in attempts)
    assert len(per_day) == 14 * 2
    assert {k: v for k, v in per_day.items() if v} == dict(expected_days)

    heat = {(int(a["data-weekday"]), int(a["data-hour"])): int(a["data-count"])
            for a in dom.having("data-weekday")}
    assert len(heat) == 7 * 24
    local = Counter((t.weekday(), t.hour) for t in map(_earliest_local, attempts))
    assert {k: v for k, v in heat.items() if v} == dict(local)
    assert heat[(6, 3)] == 1  # the night call: Sunday 03:00

    reasons = {a["data-reason"]: int(a["data-count"]) for a in dom.having("data-reason")}
    assert reasons == dict(Counter(r["reason"] for r in window if r["kind"] == "suppressed"))

    # Calls per debt in 7 days: calls before the window count, unconnected calls do not.
    since = datetime.fromisoformat(SINCE).replace(tzinfo=UTC)
    wide = _export(store_config, (since - timedelta(days=8)).date().isoformat(), "2026-12-25")
    status = {r["attempt_id"]: r["status"] for r in wide if r["kind"] == "outcome"}
    calls: dict[str, list[datetime]] = defaultdict(list)
    debts = {r["account_id"] for r in attempts if r["party"] == "debtor"}
    for r in wide:
        if (r["kind"] == "attempt" and r["party"] == "debtor" and r["channel"] == "call"
                and r["at"] < "2026-12-24" and status.get(r["attempt_id"]) not in NOT_COUNTED):
            calls[r["account_id"]].append(datetime.fromisoformat(r["at"]))
    peaks = Counter(
        max([sum(1 for s in calls[d] if t - timedelta(days=7) < s <= t)
             for t in calls[d] if t >= since] or [0]) for d in debts)
    shown = {int(a["data-calls"]): int(a["data-count"]) for a in dom.having("data-calls")}
    assert {k: v for k, v in shown.items() if v} == dict(peaks)
    assert {7, 8} <= set(shown)  # the cap and one over it are always on the axis
    assert max(peaks) <= 7

    third = [int(a["data-seq"]) for a in dom.having("data-seq")
             if a.get("data-status") and "data-channel" not in a]
    assert third == [r["seq"] for r in attempts if r["party"] == "third_party"]
    opt_outs = [a for a in dom.having("data-seq") if "data-channel" in a]
    assert [(int(a["data-seq"]), a["data-status"]) for a in opt_outs] == [
        (r["seq"], r["status"]) for r in window if r["kind"] == "opt_out"]

    # The rule check: the one attempt made at 03:00 local, named by its seq and account.
    night = next(r for r in everything if r.get("attempt_id") == "at-night")
    violations = dom.having("data-rule")
    assert [(a["data-rule"], a["data-account"], a["data-seqs"]) for a in violations] == [
        ("hours", "A-9", str(night["seq"]))]

    chain = next(a for a in dom.having("data-ok"))
    assert (chain["data-ok"], chain["data-checked"]) == ("true", str(len(everything)))

    shot = tmp_path / "report.png"
    taken = _browser(chromium, tmp_path / "profile", f"--screenshot={shot}",
                     "--window-size=1400,3000", out.as_uri())
    assert taken.returncode == 0, taken.stderr[-2000:]
    print(f"report screenshot: {shot}")
    width, height, distinct = _png_facts(shot)
    assert (width, height) == (1400, 3000)
    assert shot.stat().st_size > 50_000
    assert distinct > 20, "the screenshot is not one flat colour"


def test_a_broken_chain_is_reported_with_its_first_bad_record(store_config: Path,
                                                             tmp_path: Path) -> None:
    copy = tmp_path / "cfg"
    shutil.copytree(store_config.parent, copy)
    config = copy / "dispatcher.toml"
    [(record,)] = query(config, "SELECT record FROM audit WHERE seq = 30")
    edited = json.loads(record) | {"status": "completed"}
    execute(config, "UPDATE audit SET record = ? WHERE seq = 30", (json.dumps(edited),))
    out = tmp_path / "broken.html"
    try:
        done = _cli("report", "--config", str(config), "--since", SINCE, "--until", UNTIL,
                    "--out", str(out))
    finally:
        # On PostgreSQL the copied config names the module's own schema: mend it for the rest.
        execute(config, "UPDATE audit SET record = ? WHERE seq = 30", (record,))
    assert done.returncode == 0, done.stderr
    assert done.stdout.rstrip().endswith("hash chain BROKEN")
    html = out.read_text()
    assert '<section id="chain" data-ok="false" data-checked="29" data-bad-seq="30">' in html
    assert "BROKEN at seq 30" in html


@pytest.mark.parametrize(("args", "message"), [
    (["--since", "2026-12-24", "--until", "2026-12-10"],
     "dispatcher: --until (2026-12-10T00:00:00+00:00) must be after --since"),
    (["--since", "2026-12-10", "--until", "2026-12-10"], "must be after --since"),
    (["--since", "2026-12-10", "--until", "2026-12-24", "--out", "/nonexistent/r.html"],
     "dispatcher: --out: no directory /nonexistent"),
])
def test_bad_input_exits_2_with_one_line(store_config: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str], args: list[str],
                                         message: str) -> None:
    if "--out" not in args:
        args = [*args, "--out", str(tmp_path / "r.html")]
    assert main(["report", "--config", str(store_config), *args]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1
    assert not (tmp_path / "r.html").exists()


def test_a_time_without_offset_is_refused(store_config: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["report", "--config", str(store_config), "--since", "2026-12-10T00:00:00",
              "--until", "2026-12-24", "--out", "r.html"])
    assert exit_.value.code == 2
    assert "--since" in capsys.readouterr().err
