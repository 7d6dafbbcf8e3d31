"""`dispatcher simulate`: the real engine on a virtual clock, the sandbox answering.

Events from a JSONL file are delivered at their `occurred_at` (those before `--start` at the
start), the engine sweeps whenever something is due, scripted replies arrive at their time, and
the audit records produced are printed. Same inputs, byte-identical output.
"""

from __future__ import annotations

import gc
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import orjson

from channels.sandbox import OutcomeScript, SandboxChannel
from dispatcher.audit.chain import canonical_json
from dispatcher.config.settings import LoadedConfig
from dispatcher.contact.account_facts import policy_of
from dispatcher.contact.engine import Engine
from dispatcher.contact.replies import handle_reply
from dispatcher.domain.clock import VirtualClock, parse_rfc3339
from dispatcher.domain.phones import mask_number
from dispatcher.ingest.classify import classify_batch
from dispatcher.store import ContactStore, DueStore, ReplyStore, keepable, open_store

TOPIC = "simulate"
# The virtual clock moves in whole ticks: what falls due within one is decided together, as the
# daemon decides everything due at each sweep. Slots are whole minutes, so a minute loses nothing.
TICK = timedelta(minutes=1)
# The garbage collector's thresholds while a simulation runs (see `fewer_collections`).
SIMULATION_GC_THRESHOLDS = (50_000, 20, 100)


@dataclass(frozen=True)
class _Timed:
    at: datetime
    order: int
    payload: bytes


def _delivery_time(payload: bytes, start: datetime) -> datetime:
    try:
        when = parse_rfc3339(orjson.loads(payload)["occurred_at"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return start  # it becomes a dead letter at the start, like a bad event on the broker
    return max(when, start)


def read_events(path: Path, start: datetime) -> list[_Timed]:
    """The events file's lines, each with the instant it is delivered, in delivery order."""
    lines = [line for line in path.read_bytes().splitlines() if line.strip()]
    timed = [_Timed(_delivery_time(line, start), n, line) for n, line in enumerate(lines)]
    return sorted(timed, key=lambda t: (t.at, t.order))


class SimulatedStore(ContactStore, ReplyStore, DueStore, Protocol):
    """What a simulation drives: the engine, inbound events and replies, and its clock."""


class Simulation:
    """One run: a fresh store, the sandbox channel, a virtual clock."""

    def __init__(self, config: LoadedConfig, store: SimulatedStore, script: OutcomeScript,
                 start: datetime, *, keep_sent: bool = True) -> None:
        self.config = config
        self.store = store
        self.clock = VirtualClock(start)
        self.channel = SandboxChannel(script, keep_sent=keep_sent)
        self.engine = Engine(store, self.channel, policy_of(config))
        self.decisions = 0

    async def _deliver(self, payloads: list[bytes], now: datetime) -> None:
        ingest = self.config.settings.ingest
        items = classify_batch([(TOPIC, p) for p in payloads], max_bytes=ingest.max_payload_bytes,
                               now=now, max_future=timedelta(seconds=ingest.max_future_seconds))
        await self.store.record_batch(items, now=now, config_version=self.config.version)

    async def _replies(self, now: datetime) -> None:
        for reply in self.channel.replies_until(now):
            await handle_reply(self.store, reply.from_number, reply.body, now,
                               config_version=self.config.version,
                               max_payload_bytes=self.config.settings.ingest.max_payload_bytes,
                               statements=self.engine.policy.statements)

    async def run(self, events: list[_Timed], days: int) -> None:
        """Deliver events and replies and sweep, until `days` have passed on the virtual clock."""
        end = self.clock.now() + timedelta(days=days)
        index = 0
        while True:
            due = await self.store.next_due_at()
            upcoming = [t for t in (events[index].at if index < len(events) else None, due,
                                    self.channel.next_reply_at()) if t is not None]
            if not upcoming:
                break
            moment = max(_ceil(min(upcoming), TICK), self.clock.now())
            if moment >= end:
                break
            self.clock.set(moment)
            batch = []
            while index < len(events) and events[index].at <= moment:
                batch.append(events[index].payload)
                index += 1
            if batch:
                await self._deliver(batch, moment)
            await self._replies(moment)
            stats = await self.engine.sweep(moment)
            self.decisions += stats.decided


@contextmanager
def fewer_collections() -> Iterator[None]:
    """The garbage collector runs less often inside, and as before after.

    A sweep's batch (hundreds of accounts, their histories and plans) outlives the collector's
    young generations, so under the default thresholds every batch is promoted and the whole
    heap, the run's account states included, is scanned again and again: a tenth of a month's
    simulation. Nothing a simulation makes depends on when the collector runs.
    """
    before = gc.get_threshold()
    gc.set_threshold(*SIMULATION_GC_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*before)


@contextmanager
def no_collections() -> Iterator[None]:
    """The garbage collector does not run inside, and runs as before after.

    Reading a simulation's audit back makes hundreds of thousands of records: each collection
    they set off scans the whole heap the run left, and none of them is part of a cycle.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _ceil(moment: datetime, tick: timedelta) -> datetime:
    """`moment` rounded up to a whole tick since the Unix epoch."""
    epoch = datetime(1970, 1, 1, tzinfo=moment.tzinfo)
    ticks = -((moment - epoch) // -tick)
    return epoch + ticks * tick


async def run_simulation(config: LoadedConfig, events_path: Path, start: datetime, days: int,
                         script: OutcomeScript, *, keep: Path | None = None
                         ) -> list[dict[str, Any]]:
    """Run a simulation in a temporary store (kept at `keep` if given) and return every audit
    record it produced."""
    records, _ = await run_simulation_counted(config, events_path, start, days, script,
                                              keep=keep)
    return records


async def run_simulation_counted(config: LoadedConfig, events_path: Path, start: datetime,
                                 days: int, script: OutcomeScript, *, keep: Path | None = None
                                 ) -> tuple[list[dict[str, Any]], int]:
    """`run_simulation`, with the number of decisions the engine made; with `keep`, the store
    is left at that path as a SQLite file (replacing what is there: see `check_keep`)."""
    events = read_events(events_path, start)
    # A kept store is written beside its final path and moved there whole once the run ends, so
    # that an interrupted run leaves nothing half-written at `keep`.
    where = keep.parent if keep is not None else None
    with tempfile.TemporaryDirectory(prefix="dispatcher-simulate-", dir=where) as folder:
        path = Path(folder) / "simulate.db"
        async with open_store(path, durable=False, inline=True) as store:
            # The audit records say what was sent: the sandbox need not keep the deliveries.
            simulation = Simulation(config, store, script, start, keep_sent=False)
            with fewer_collections():
                await simulation.run(events, days)
            with no_collections():
                records = [record async for record in store.audit_records()]
        if keep is not None:
            keepable(path)
            _replace(path, keep)
        return records, simulation.decisions


def check_keep(keep: Path, *, force: bool) -> None:
    """Refuse (ValueError) to keep a simulation's store where a store or other data lies,
    unless `force`."""
    if keep.is_dir():
        raise ValueError(f"--store: {keep} is a folder; give the path of a file")
    if not keep.parent.is_dir():
        raise ValueError(f"--store: no folder {keep.parent}")
    if keep.exists() and keep.stat().st_size > 0 and not force:
        raise ValueError(f"--store: {keep} exists and is not empty; give --force to replace it")


def _replace(made: Path, keep: Path) -> None:
    # A write-ahead log left beside the old file would be read as part of the new one.
    for suffix in ("-wal", "-shm", "-journal"):
        keep.with_name(keep.name + suffix).unlink(missing_ok=True)
    os.replace(made, keep)


def jsonl(records: list[dict[str, Any]]) -> Iterator[str]:
    """One canonical JSON line per record, as `audit export` writes them."""
    for record in records:
        yield canonical_json(record)


_TABLE_KINDS = ("attempt", "suppressed", "promise", "reply")


def _local(record: dict[str, Any]) -> str:
    times: dict[str, str] = record.get("local_times") or {}
    if not times:
        return "-"
    zone, text = next(iter(times.items()))
    more = f" (+{len(times) - 1})" if len(times) > 1 else ""
    return f"{text[:16].replace('T', ' ')} {zone}{more}"


def table(records: list[dict[str, Any]]) -> Iterator[str]:
    """Attempts (with their outcome), suppressions and broken promises, one line each."""
    outcomes = {r["attempt_id"]: r["status"] for r in records if r["kind"] == "outcome"}
    header = (f"{'UTC':20} {'LOCAL':40} {'ACCOUNT':12} {'PARTY':11} {'CH':4} {'NUMBER':14} "
              f"{'STAGE':7} RESULT")
    yield header
    shown = 0
    for r in records:
        if r["kind"] not in _TABLE_KINDS:
            continue
        shown += 1
        if r["kind"] == "attempt":
            result = outcomes.get(r["attempt_id"], "(no outcome yet)")
            result += f"  [{r['rule']}]"
        elif r["kind"] == "suppressed":
            result = f"suppressed: {r['reason']}: {r['detail']}"
        elif r["kind"] == "promise":
            result = f"promise due {r['due_on']} broken; contact resumes"
        else:
            result = f"reply: {r['status']}"
        party = r.get("role") or r.get("party") or "-"
        number = mask_number(r["to"]) if r.get("to") else "-"
        yield (f"{r['at'][:19].replace('T', ' '):20} {_local(r):40} {r['account_id'] or '-':12} "
               f"{party:11} {r.get('channel', '-'):4} {number:14} {r.get('stage', '-'):7} "
               f"{result}")
    yield f"{shown} row(s)"
