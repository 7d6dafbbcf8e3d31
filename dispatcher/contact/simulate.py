"""`dispatcher simulate`: the real engine on a virtual clock, the sandbox answering.

Events from a JSONL file are delivered at their `occurred_at` (those before `--start` at the
start), the engine sweeps whenever something is due, scripted replies arrive at their time, and
the audit records produced are printed. Same inputs, byte-identical output.
"""

from __future__ import annotations

import gc
import os
import tempfile
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
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
from dispatcher.store import (
    THROWAWAY_GROUP_COMMIT,
    AuditReader,
    ContactStore,
    DueStore,
    ReplyStore,
    keepable,
    open_store,
)

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


class SimulatedStore(ContactStore, ReplyStore, DueStore, AuditReader, Protocol):
    """What a simulation drives (the engine, inbound events and replies, and its clock) and
    reads back."""


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
    async with simulated(config, events_path, start, days, script, keep=keep) as run:
        with no_collections():
            return [record async for record in run.records()]


@dataclass(frozen=True)
class SimulationRun:
    """A finished simulation whose store is still open: its audit records can be read."""

    store: SimulatedStore
    decisions: int  # how many decisions the engine made

    def records(self) -> AsyncIterator[dict[str, Any]]:
        """Every audit record the simulation produced, oldest first, read one at a time."""
        return self.store.audit_records()


@asynccontextmanager
async def simulated(config: LoadedConfig, events_path: Path, start: datetime, days: int,
                    script: OutcomeScript, *, keep: Path | None = None
                    ) -> AsyncIterator[SimulationRun]:
    """Run a simulation in a temporary store and yield it still open, so that its audit records
    can be read, as often as needed, without holding them all (a month of thousands of accounts
    makes millions); on leaving, the store is kept at `keep` if given (see `check_keep`), else
    removed."""
    events = read_events(events_path, start)
    # A kept store is written beside its final path and moved there whole once the run ends, so
    # that an interrupted run leaves nothing half-written at `keep`.
    where = keep.parent if keep is not None else None
    with tempfile.TemporaryDirectory(prefix="dispatcher-simulate-", dir=where) as folder:
        path = Path(folder) / "simulate.db"
        async with open_store(path, durable=False, inline=True,
                              group_commit=THROWAWAY_GROUP_COMMIT) as store:
            # The audit records say what was sent: the sandbox need not keep the deliveries.
            simulation = Simulation(config, store, script, start, keep_sent=False)
            with fewer_collections():
                await simulation.run(events, days)
            yield SimulationRun(store, simulation.decisions)
        if keep is not None:
            keepable(path)
            _replace(path, keep)


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


_TABLE_KINDS = ("attempt", "suppressed", "promise", "reply")


def _local(record: dict[str, Any]) -> str:
    times: dict[str, str] = record.get("local_times") or {}
    if not times:
        return "-"
    zone, text = next(iter(times.items()))
    more = f" (+{len(times) - 1})" if len(times) > 1 else ""
    return f"{text[:16].replace('T', ' ')} {zone}{more}"


_TABLE_HEADER = (f"{'UTC':20} {'LOCAL':40} {'ACCOUNT':12} {'PARTY':11} {'CH':4} {'NUMBER':14} "
                 f"{'STAGE':7} RESULT")


async def output_lines(run: SimulationRun, form: str) -> AsyncIterator[str]:
    """What `dispatcher simulate` prints, read from the run's store record by record: `jsonl`,
    one canonical JSON line per record, as `audit export` writes them; `table`, attempts (with
    their outcome), suppressions, broken promises and replies, one line each."""
    if form == "jsonl":
        async for record in run.records():
            yield canonical_json(record)
        return
    outcomes = {r["attempt_id"]: r["status"] async for r in run.records()
                if r["kind"] == "outcome"}
    yield _TABLE_HEADER
    shown = 0
    async for record in run.records():
        if record["kind"] in _TABLE_KINDS:
            shown += 1
            yield _table_row(record, outcomes)
    yield f"{shown} row(s)"


def _table_row(r: dict[str, Any], outcomes: Mapping[str, str]) -> str:
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
    return (f"{r['at'][:19].replace('T', ' '):20} {_local(r):40} {r['account_id'] or '-':12} "
            f"{party:11} {r.get('channel', '-'):4} {number:14} {r.get('stage', '-'):7} "
            f"{result}")
