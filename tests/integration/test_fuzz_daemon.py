"""Fuzzing a running daemon: hostile payloads between valid events must not stop intake.

One daemon (`dispatcher run`) and one Mosquitto serve the whole module. Each payload is found
again in the store by its raw bytes (events and dead letters keep them) and in the audit log by
their SHA-256. A valid event must be stored and audited exactly once; a hostile payload must be
exactly one audited dead letter with a reason; and at the end the daemon is up, `/healthz`
answers 200 and `dispatcher audit verify` passes.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import json
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.fuzz_corpus import (
    Respelled,
    encode,
    hostile_corpus,
    mutated_payload,
    valid_events,
)
from tests.integration.publish import publish_all
from tests.support import ROOT, Broker, Daemon, make_config, query, wait_until

pytestmark = pytest.mark.slow

SETTLE_SECONDS = 20


@dataclass
class Service:
    """The daemon under fuzzing, its broker, and where its HTTP server listens."""

    broker: Broker
    config: Path
    daemon: Daemon
    http_port: int
    # Payloads and event ids published to this daemon: a repeat would be a duplicate.
    taken: set[bytes | str] = field(default_factory=set)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory,
            module_store_url: str) -> Iterator[Service]:
    """A real Mosquitto and a real `dispatcher run` for every test of the module (on SQLite,
    then on PostgreSQL)."""
    folder = tmp_path_factory.mktemp("fuzz")
    broker = Broker(folder / "broker")
    broker.start()
    config = make_config(folder / "cfg", broker.url, store_url=module_store_url)
    daemon = Daemon(config)
    try:
        daemon.start()
        found: list[int] = []

        def started() -> bool:
            match = re.search(r'"webhook": ?"[^"]*:(\d+)"', daemon.new_log())
            found.extend([int(match.group(1))] if match else [])
            return bool(found)

        wait_until(started, 10, "the daemon's HTTP port in its log")
        yield Service(broker, config, daemon, found[0])
    finally:
        daemon.ensure_stopped()
        broker.stop()


@dataclass
class Seen:
    """What the store made of one payload."""

    events: int = 0
    audited_events: int = 0
    dead_letters: list[tuple[str, str]] | None = None  # (reason, detail) of each
    audited_dead_letters: int = 0

    def stored_once(self) -> bool:
        """Stored and audited as exactly one event, and not a dead letter."""
        return self.events == 1 and self.audited_events == 1 and not self.dead_letters

    def dead_lettered_once(self) -> bool:
        """Exactly one audited dead letter with a reason and a detail, and not an event."""
        letters = self.dead_letters or []
        return (self.events == 0 and self.audited_events == 0 and len(letters) == 1
                and all(letters[0]) and self.audited_dead_letters == 1)

    def describe(self) -> str:
        """A short account for a failure message."""
        return (f"{self.events} event row(s), {self.audited_events} event audit record(s), "
                f"dead letters {self.dead_letters or []}, "
                f"{self.audited_dead_letters} dead-letter audit record(s)")


@dataclass(frozen=True)
class Marks:
    """Where the store stood before a publish: only rows after it belong to the publish (events
    have no order of arrival on every store, so those stored before are named)."""

    event_ids: frozenset[str]
    dead_letter_id: int
    audit_seq: int

    @classmethod
    def now(cls, config: Path) -> Marks:
        """The store's current high-water marks."""
        ids = frozenset(row[0] for row in query(config, "SELECT event_id FROM events"))
        row = query(config, "SELECT (SELECT COALESCE(MAX(id), 0) FROM dead_letters), "
                            "(SELECT COALESCE(MAX(seq), 0) FROM audit)")
        return cls(ids, *row[0]) if row else cls(ids, 0, 0)


def arrived(config: Path, since: Marks) -> int:
    """How many events and dead letters were stored since `since` (no event is ever deleted
    here)."""
    row = query(config, "SELECT (SELECT COUNT(*) FROM events) + "
                        "(SELECT COUNT(*) FROM dead_letters WHERE id > ?)",
                (since.dead_letter_id,))
    return int(row[0][0]) - len(since.event_ids) if row else 0


def settle(config: Path, since: Marks, published: int) -> None:
    """Wait until every published payload could have been stored; a shortfall is for the
    assertions to name, so running out of time is not an error here."""
    deadline = time.monotonic() + SETTLE_SECONDS
    while arrived(config, since) < published and time.monotonic() < deadline:
        time.sleep(0.1)


def outcomes(config: Path, since: Marks, payloads: list[bytes]) -> dict[bytes, Seen]:
    """What became of each payload: its event rows, dead letters and audit records."""
    seen = {payload: Seen() for payload in payloads}
    by_hash = {hashlib.sha256(p).hexdigest(): seen[p] for p in payloads}
    for event_id, payload in query(config, "SELECT event_id, payload FROM events"):
        if event_id not in since.event_ids and (found := seen.get(bytes(payload))) is not None:
            found.events += 1
    for payload, reason, detail in query(
            config, "SELECT payload, reason, detail FROM dead_letters WHERE id > ?",
            (since.dead_letter_id,)):
        if (found := seen.get(bytes(payload))) is not None:
            found.dead_letters = [*(found.dead_letters or []), (reason, detail)]
    for kind, record in query(
            config, "SELECT kind, record FROM audit WHERE seq > ? AND kind IN ('event', "
                    "'dead_letter')", (since.audit_seq,)):
        if (found := by_hash.get(json.loads(record).get("payload_sha256"))) is not None:
            if kind == "event":
                found.audited_events += 1
            else:
                found.audited_dead_letters += 1
    return seen


def stored_ids(config: Path, ids: set[str]) -> set[str]:
    """Which of `ids` the events table holds."""
    return {row[0] for row in query(config, "SELECT event_id FROM events") if row[0] in ids}


def respelling_problems(config: Path, respelled: Respelled) -> list[str]:
    """How a stored number in another script's digits escaped its one ASCII spelling."""
    account = respelled.account_id
    numbers = {row[0] for row in query(
        config, "SELECT number FROM party_numbers WHERE account_id = ? "
                "UNION SELECT number FROM opt_outs WHERE account_id = ?", (account, account))}
    states = [json.loads(row[0]) for row in query(
        config, "SELECT state_json FROM accounts WHERE account_id = ?", (account,))]
    problems = []
    if respelled.ascii_number not in numbers:
        problems.append(f"{respelled.ascii_number} is not among its numbers {sorted(numbers)}")
    if foreign := sorted(n for n in numbers if not n.isascii()) + _foreign_digits(states):
        problems.append(f"kept digits of another script: {foreign}")
    return problems


def _foreign_digits(value: Any) -> list[str]:
    """Every text inside a JSON value that has a digit other than 0-9."""
    if isinstance(value, str):
        return [value] if any(c.isdigit() and not c.isascii() for c in value) else []
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list):
        return [text for inner in value for text in _foreign_digits(inner)]
    return []


def publish(service: Service, payloads: list[bytes]) -> Marks:
    """Publish in order with QoS 1 and wait until the store has caught up; return the marks."""
    since = Marks.now(service.config)
    asyncio.run(publish_all(service.broker.port, payloads))
    settle(service.config, since, len(payloads))
    return since


def health(service: Service) -> list[str]:
    """What is wrong with the daemon now: not running, /healthz not 200, the log not verifying."""
    problems = []
    process = service.daemon.process
    if process is None or process.poll() is not None:
        problems.append(f"the daemon exited ({process and process.returncode})")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{service.http_port}/healthz",
                                    timeout=5) as response:
            status = f"{response.status}"
    except urllib.error.HTTPError as exc:
        status = f"{exc.code} {exc.read()[:500]!r}"
    except OSError as exc:
        status = f"nothing ({exc})"
    if status != "200":
        problems.append(f"/healthz answered {status}")
    verify = subprocess.run(
        [sys.executable, "-m", "dispatcher", "audit", "verify", "--config", str(service.config)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    if verify.returncode != 0:
        problems.append(f"audit verify exited {verify.returncode}: {verify.stdout}"
                        f"{verify.stderr[-2000:]}")
    return problems


def _now() -> datetime:
    return datetime.now(UTC)


def test_hostile_corpus_between_valid_events(service: Service) -> None:
    corpus = hostile_corpus(_now())
    assert len({case.payload for case in corpus}) == len(corpus), "payloads must be distinct"
    valid = [(event["event_id"], encode(event))
             for event in valid_events("v", len(corpus) + 1, _now)]
    # A valid event before and after every hostile payload: a poison shows as missing events.
    payloads = [valid[0][1]]
    for case, (_, after) in zip(corpus, valid[1:], strict=True):
        payloads += [case.payload, after]

    since = publish(service, payloads)
    seen = outcomes(service.config, since, payloads)

    problems = [f"valid event {event_id}: {seen[payload].describe()}"
                for event_id, payload in valid if not seen[payload].stored_once()]
    stored = stored_ids(service.config, {i for case in corpus for i in case.event_ids})
    for case in corpus:
        if case.respelled is not None and seen[case.payload].stored_once():
            problems += [f"hostile {case.name}: stored, but {problem}"
                         for problem in respelling_problems(service.config, case.respelled)]
        elif not seen[case.payload].dead_lettered_once():
            problems.append(f"hostile {case.name}: {seen[case.payload].describe()}")
        elif leaked := stored.intersection(case.event_ids):
            problems.append(f"hostile {case.name}: dead-lettered, yet stored as {leaked}")
    problems += health(service)
    assert not problems, f"{len(problems)} problem(s):\n" + "\n".join(problems)


_serial = itertools.count()


def _event_ids(payload: bytes) -> set[str]:
    """Every text value of an `event_id` key anywhere in the payload, duplicates included."""
    found: set[str] = set()

    def collect(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        found.update(v for k, v in pairs if k == "event_id" and isinstance(v, str))
        return dict(pairs)

    with contextlib.suppress(ValueError, RecursionError):
        json.loads(payload, object_pairs_hook=collect)
    return found


@settings(max_examples=60, deadline=None, database=None, derandomize=True,
          phases=[Phase.explicit, Phase.generate], report_multiple_bugs=False,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_generated_payloads_each_end_as_one_event_or_one_dead_letter(
        service: Service, data: st.DataObject) -> None:
    count = data.draw(st.integers(4, 12), label="payloads")
    generated = []
    for _ in range(count):
        payload = data.draw(mutated_payload(f"g-{next(_serial):05d}"))
        ids = _event_ids(payload)
        # A repeated id is a duplicate, which is neither stored nor dead-lettered: not drawn.
        if payload not in service.taken and not ids & service.taken:
            service.taken.update({payload, *ids})
            generated.append(payload)
    sentinels = [encode(event) for event in
                 valid_events(f"s{next(_serial):05d}", len(generated) + 1, _now)]
    payloads = [sentinels[0]]
    for payload, after in zip(generated, sentinels[1:], strict=True):
        payloads += [payload, after]

    since = publish(service, payloads)
    seen = outcomes(service.config, since, payloads)

    problems = [f"valid event {payload[:200]!r}: {seen[payload].describe()}"
                for payload in sentinels if not seen[payload].stored_once()]
    problems += [f"payload {payload[:300]!r}: {seen[payload].describe()}"
                 for payload in generated
                 if not (seen[payload].stored_once() or seen[payload].dead_lettered_once())]
    process = service.daemon.process
    if process is None or process.poll() is not None:
        problems.append("the daemon exited")
    assert not problems, f"{len(problems)} problem(s):\n" + "\n".join(problems)


def test_daemon_survived_the_fuzzing_and_its_log_verifies(service: Service) -> None:
    """Runs last in the module: after everything above, intake still works and the chain holds."""
    canary = encode(valid_events("canary", 1, _now)[0])
    since = publish(service, [canary])
    seen = outcomes(service.config, since, [canary])[canary]
    problems = [] if seen.stored_once() else [f"a valid event published last: {seen.describe()}"]
    problems += health(service)
    assert not problems, "\n".join(problems)
