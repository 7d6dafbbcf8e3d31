"""Fleet benchmark: SQLite with one daemon beside PostgreSQL with 1, 2 and 3 daemons, in one run.

Five measurements, each against the SQLite figure (or another baseline) taken in the same run:

- ingest: events/s through real daemons (`python -m dispatcher run` subprocesses) on a
  Mosquitto of each configuration's own, from the first publish to the last event stored; the
  PostgreSQL fleet shares the events through `[mqtt] shared_group`, each daemon with its own
  client id;
- dispatch: texts/s through the Twilio channel to the local fake provider, each daemon's engine in
  its own process (a virtual clock decides when accounts fall due, sending runs in real time),
  unlimited, or with `--rate` a limit the PostgreSQL fleet shares through its store, and the
  busiest second of all daemons' requests together beside it;
- audit: commits/s of 1, 2 and 3 concurrent store connections each appending one audit record
  per transaction, beside the same inserts into a table without the chain's head-row lock;
- size: the store on disk after every account's first event (SQLite file, or the schema's
  tables), scaled to 100,000 accounts, and each daemon's RSS after the ingest run;
- memory: a real daemon over each store holding N accounts, all due, against one over the same
  store empty: its RSS once its sweep has decided every account, its peak, and its RSS after a
  start over the same store; the difference is what the accounts cost (per 100,000 accounts with
  `--memory-accounts 100000`: it is not linear, the daemon's caches are bounded).

Every PostgreSQL configuration gets a fresh schema in a database created for the run and dropped
at its end. Run: `.venv/bin/python -m bench.fleet [--events 20000] [--accounts 5000]
[--dispatch-accounts 2000] [--rate 0] [--audit-seconds 2] [--audit-rounds 3]
[--size-accounts 20000] [--memory-accounts 10000] [--daemons 1,2,3] [--rounds 1]
[--parts ingest,dispatch,audit,size,memory]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import cast

import asyncpg

from bench.dispatch import START, busiest_second
from bench.dispatch import make_events as dispatch_events
from bench.ingest import make_events as ingest_events
from channels.rate import SharedRate
from channels.twilio import TwilioChannel, TwilioConfig
from dispatcher.audit.chain import canonical_json
from dispatcher.config.settings import load_config
from dispatcher.contact.account_facts import policy_of
from dispatcher.contact.engine import Engine
from dispatcher.ingest.classify import classify
from dispatcher.store import Store, is_shared, open_store
from tests.fake_twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio
from tests.integration.publish import publish_all
from tests.support import ROOT, Broker, Daemon, make_config

ADMIN_URL = os.environ.get("DISPATCHER_BENCH_POSTGRES",
                           "postgresql://postgres@127.0.0.1:5432/postgres")
UNLIMITED = 1_000_000.0  # per-daemon SMS/s: far above what any configuration reaches


@dataclass
class Row:
    """One configuration's figures."""

    name: str
    daemons: int
    ingests: list[float] = field(default_factory=list)
    rss_mib: list[float] = field(default_factory=list)
    dispatches: list[float] = field(default_factory=list)
    busiest: int = 0
    sent: int = 0

    @property
    def ingest(self) -> float:
        """Median events/s over the rounds."""
        return statistics.median(self.ingests)

    @property
    def dispatch(self) -> float:
        """Median attempts/s over the rounds."""
        return statistics.median(self.dispatches)


# -- PostgreSQL: a database of the run's own, a schema per configuration --------------------------

class Server:
    """A database created for this run on the local server, and dropped when it ends."""

    def __init__(self) -> None:
        self.name = f"fleet_bench_{secrets.token_hex(4)}"
        self.url = ADMIN_URL.rpartition("/")[0] + f"/{self.name}"

    async def _admin(self, url: str, statement: str) -> None:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    async def create(self) -> None:
        """Create the run's database."""
        await self._admin(ADMIN_URL, f"CREATE DATABASE {self.name}")

    async def drop(self) -> None:
        """Drop the run's database, whoever is still connected."""
        await self._admin(ADMIN_URL, f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")

    async def schema(self, label: str) -> str:
        """A fresh, empty schema; a store url whose search path is that schema."""
        await self._admin(self.url, f"CREATE SCHEMA {label}")
        return f"{self.url}?search_path={label}"

    async def fetchval(self, url: str, sql: str) -> int:
        """One value of one query on a store url."""
        conn = await asyncpg.connect(url)
        try:
            return int(await conn.fetchval(sql))
        finally:
            await conn.close()


SIZE_SQL = ("SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p', 'm')")


# -- ingest ----------------------------------------------------------------------------------------

def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def daemon_rss(daemon: Daemon) -> float:
    """MiB resident in the daemon process and its ingest writer (not the supervisor)."""
    pid = daemon.daemon_pid()
    return sum(_rss_mib(p) for p in (pid, *_children(pid)))


@contextmanager
def running(configs: list[Path]) -> Iterator[list[Daemon]]:
    """Daemons started on these configs (each connected to the broker), stopped afterwards."""
    daemons = [Daemon(config) for config in configs]
    try:
        for daemon in daemons:
            daemon.start()
        yield daemons
    finally:
        for daemon in daemons:
            if daemon.process and daemon.process.poll() is None:
                daemon.terminate(timeout=60)
            daemon.ensure_stopped()


def fleet_configs(folder: Path, broker: Broker, store_url: str, daemons: int) -> list[Path]:
    """One config per daemon: its own client id, one shared group when there are several."""
    configs = []
    for n in range(daemons):
        # The due sweep would plan contact for every account inside the timed window: this
        # measures ingest, so it runs once a minute (bench.simulate measures the engine).
        config = make_config(folder / f"daemon-{n}", broker.url, client_id=f"{folder.name}-{n}",
                             extra="[contact]\nsweep_seconds = 60\n", log_format="text",
                             store_url=store_url)
        if daemons > 1:
            text = config.read_text().replace("[mqtt]\n", '[mqtt]\nshared_group = "bench"\n', 1)
            config.write_text(text)
        configs.append(config)
    return configs


Count = Callable[[], Awaitable[int]]


async def wait_stored(count: Count, wanted: int, patience: float = 600) -> None:
    """Poll a store's event count until it holds `wanted` events."""
    deadline = time.monotonic() + patience
    while True:
        stored = await count()
        if stored >= wanted:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{stored} of {wanted} events stored")
        await asyncio.sleep(0.2)


async def sqlite_count(path: Path) -> int:
    """Events in a SQLite store (0 before its tables exist)."""
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10) as db:
            return int(db.execute("SELECT COUNT(*) FROM events").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


async def ingest(broker: Broker, folder: Path, store_url: str, *, daemons: int,
                 payloads: list[bytes], count: Count) -> tuple[float, list[float]]:
    """Events/s of a fleet from the first publish to the last event stored; each daemon's RSS."""
    with running(fleet_configs(folder, broker, store_url, daemons)) as fleet:
        await asyncio.sleep(0.5)  # every member subscribed before the first event
        started = time.perf_counter()
        await publish_all(broker.port, payloads, topic="collections/events/bench")
        await wait_stored(count, len(payloads))
        elapsed = time.perf_counter() - started
        rss = [daemon_rss(daemon) for daemon in fleet]
    return len(payloads) / elapsed, rss


# -- dispatch --------------------------------------------------------------------------------------

def dispatch_worker(where: str, api_base: str, rate: float) -> None:
    """One daemon's engine in this process: ready, then sweeps from the instant all fall due."""
    asyncio.run(_dispatch_worker(where, api_base, rate))


def twilio_at(api_base: str, rate: float = 0.0,
              shared: SharedRate | None = None) -> TwilioChannel:
    """The Twilio channel on the fake provider, limited to `rate` SMS/s (0: no limit to speak
    of), taken from the fleet's bucket when `shared` is given."""
    rate = rate or UNLIMITED
    channel = TwilioConfig(public_url="http://127.0.0.1:9", api_base=api_base,
                           from_number="+15005550006", messages_per_second=rate,
                           calls_per_second=rate)
    return TwilioChannel(channel, ACCOUNT_SID, AUTH_TOKEN, shared=shared)


async def _dispatch_worker(where: str, api_base: str, rate: float) -> None:
    config = load_config(ROOT / "config" / "dispatcher.toml", {})
    location: Path | str = where if where.startswith("postgres") else Path(where)
    async with open_store(location) as store:
        # As the daemon does: a limit shared through the store when the store can be shared.
        shared = cast("SharedRate", store) if rate and is_shared(location) else None
        twilio = twilio_at(api_base, rate, shared)
        engine = Engine(store, twilio, policy_of(config))
        moment = datetime.fromisoformat(sys.stdin.readline().strip())
        print("ready", flush=True)
        sys.stdin.readline()  # go
        stop = asyncio.create_task(asyncio.to_thread(sys.stdin.readline))
        sent = 0
        # Accounts fall due spread over the morning: the virtual clock follows the next one due,
        # as bench.dispatch does, until the parent has seen every account's first text.
        while not stop.done():
            stats = await engine.sweep(moment)
            sent += stats.sent
            moment = max(moment, await store.next_due_at() or moment)
            if not stats.decided:
                await asyncio.sleep(0.005)  # the others hold what is due
        print(json.dumps({"sent": sent}), flush=True)
        await twilio.close()


async def dispatch(store: Path | str, daemons: int, accounts: int,
                   rate: float) -> tuple[float, int, int]:
    """Attempts/s of `daemons` engines sharing one store, from the go to the provider's
    `accounts`-th request; the busiest second of those requests; attempts sent in all."""
    config = load_config(ROOT / "config" / "dispatcher.toml", {})
    async with FakeTwilio() as fake:
        fake.faults.drop_callbacks = True  # outcomes are not what is measured here
        async with open_store(store) as opened:
            await opened.record_batch([classify(p, "bench", 65536)
                                       for p in dispatch_events(accounts)],
                                      now=START, config_version=config.version)
            # Plans every account's first text, sending nothing: nothing is due yet at START.
            planner = twilio_at(fake.base_url)
            await Engine(opened, planner, policy_of(config)).sweep(START)
            await planner.close()
            due = await opened.next_due_at()
        assert due is not None
        workers = [await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.fleet", "--dispatch-worker", str(store),
            fake.base_url, str(rate),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=ROOT) for _ in range(daemons)]
        for worker in workers:
            assert worker.stdin
            assert worker.stdout
            worker.stdin.write(f"{due.isoformat()}\n".encode())
            await worker.stdin.drain()
            assert (await worker.stdout.readline()).strip() == b"ready"
        started = time.perf_counter()
        for worker in workers:
            assert worker.stdin
            worker.stdin.write(b"go\n")
            await worker.stdin.drain()
        while len(fake.received("POST", "Messages")) < accounts:  # noqa: ASYNC110 - its log
            await asyncio.sleep(0.01)
        elapsed = time.perf_counter() - started
        sent = 0
        for worker in workers:
            assert worker.stdin
            assert worker.stdout
            worker.stdin.write(b"stop\n")
            await worker.stdin.drain()
            sent += json.loads(await worker.stdout.readline())["sent"]
            await worker.wait()
        # A daemon whose share is done moves its clock on to the next account due, perhaps a
        # second attempt, while the others still send: the rate is that of the first `accounts`.
        times = sorted(r.at for r in fake.received("POST", "Messages"))[:accounts]
    return accounts / elapsed, busiest_second(times), sent


# -- audit serialisation ---------------------------------------------------------------------------

Write = Callable[[], Awaitable[object]]
RECORD = {"kind": "bench", "account_id": "A-000001", "detail": "x" * 200}


async def audit_appends(url: Path | str, writers: int, seconds: float) -> float:
    """Commits/s of `writers` stores (one connection each at a time) appending one record each."""
    async with AsyncExitStack() as stack:
        stores = [await stack.enter_async_context(open_store(url)) for _ in range(writers)]

        def appender(store: Store) -> Write:
            return lambda: store.append_audit([RECORD], now=datetime.now(UTC))

        return await _hammer([appender(store) for store in stores], seconds)


async def plain_inserts(url: str, writers: int, seconds: float) -> float:
    """Commits/s of the same rows inserted by `writers` connections, each in a transaction of its
    own, into a table with no lock shared between writers: the baseline."""
    conns = [await asyncpg.connect(url) for _ in range(writers)]
    try:
        await conns[0].execute("CREATE TABLE IF NOT EXISTS bench_plain(seq bigserial PRIMARY KEY, "
                               "at text, kind text, account_id text, record text)")
        body = canonical_json(RECORD)

        async def insert(conn: asyncpg.Connection) -> None:
            async with conn.transaction():
                await conn.execute("INSERT INTO bench_plain(at, kind, account_id, record) "
                                   "VALUES ($1, 'bench', 'A-000001', $2)",
                                   datetime.now(UTC).isoformat(), body)

        def inserter(conn: asyncpg.Connection) -> Write:
            return lambda: insert(conn)

        return await _hammer([inserter(conn) for conn in conns], seconds)
    finally:
        for conn in conns:
            await conn.close()


async def _hammer(writers: list[Write], seconds: float) -> float:
    done = 0
    deadline = time.perf_counter() + seconds

    async def loop(write: Write) -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await write()
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(loop(w) for w in writers))
    return done / (time.perf_counter() - started)


# -- size ------------------------------------------------------------------------------------------

def first_events(accounts: int) -> list[bytes]:
    """One overdue event per account (the 100,000-account store's contents)."""
    return dispatch_events(accounts)


async def fill(where: Path | str, accounts: int,
               events: Callable[[int], list[bytes]] = first_events) -> None:
    """Commit every account's first event, 1,000 per batch (intake's own batches), as the
    daemon's ingest writer commits them: parsed by intake's `classify`, then `record_batch`."""
    payloads = events(accounts)
    async with open_store(where) as store:
        for start in range(0, len(payloads), 1000):
            await store.record_batch([classify(p, "bench", 65536)
                                      for p in payloads[start:start + 1000]],
                                     now=datetime.now(UTC), config_version="bench")


def sqlite_bytes(path: Path) -> int:
    """The SQLite store's file with its WAL, after a checkpoint."""
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*")
               if not p.name.endswith(".jsonl"))


# -- daemon memory ---------------------------------------------------------------------------------

# After start, the daemon's first sweep has run (nothing is due) and its jobs have started.
SETTLE_SECONDS = 5.0


@dataclass
class Memory:
    """A daemon's resident memory (MiB, with its ingest writer) over one store."""

    accounts: int
    started: float = 0.0  # VmRSS a while after a start over the store (nothing due)
    swept: float = 0.0  # VmRSS once every due account has been decided
    peak: float = 0.0  # VmHWM at that moment: the most resident at once since the start
    sweep_seconds: float = 0.0  # from the start to every account decided


def own_number_events(accounts: int) -> list[bytes]:
    """`first_events`, but each debtor on a number of their own (contacts are paced per number:
    accounts sharing a few numbers would make each account's context carry the others'), and
    dated now (intake takes no event dated in the future)."""
    payloads = []
    now = datetime.now(UTC).isoformat()
    for raw in first_events(accounts):
        event = json.loads(raw)
        event["occurred_at"] = now
        n = int(event["account_id"].removeprefix("A-"))
        number = f"+1512{200 + n // 10_000 % 800}{n % 10_000:04d}"
        event["data"]["debtor"]["phones"][0]["number"] = number
        payloads.append(json.dumps(event).encode())
    return payloads


def _status_mib(pid: int, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) / 1024
    return 0.0


def daemon_memory(daemon: Daemon, key: str) -> float:
    """`VmRSS` or `VmHWM` (MiB) of the daemon process plus its ingest writer."""
    pid = daemon.daemon_pid()
    return sum(_status_mib(p, key) for p in (pid, *_children(pid)))


async def measure_memory(folder: Path, broker: Broker, store_url: str, accounts: int,
                         decided: Count) -> Memory:
    """A real daemon over a store holding `accounts` accounts, all due: its memory once its
    sweep has decided every one of them; then, restarted over the same store, after start."""
    config = make_config(folder, broker.url, client_id=folder.name, log_format="text",
                         store_url=store_url, extra="[contact]\nsweep_seconds = 1\n")
    memory = Memory(accounts)
    started = time.perf_counter()
    with running([config]) as [daemon]:
        deadline = time.monotonic() + 3600
        while await decided() < accounts:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{await decided()} of {accounts} accounts decided")
            await asyncio.sleep(0.5)
        memory.sweep_seconds = time.perf_counter() - started
        if not accounts:
            await asyncio.sleep(SETTLE_SECONDS)
        memory.swept = daemon_memory(daemon, "VmRSS")
        memory.peak = daemon_memory(daemon, "VmHWM")
    with running([config]) as [daemon]:
        await asyncio.sleep(SETTLE_SECONDS)
        memory.started = daemon_memory(daemon, "VmRSS")
    return memory


async def sqlite_decided(path: Path) -> int:
    """Accounts in a SQLite store with a stored plan (0 before its tables exist)."""
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10) as db:
            return int(db.execute("SELECT COUNT(*) FROM accounts WHERE plan_json IS NOT NULL")
                       .fetchone()[0])
    except sqlite3.OperationalError:
        return 0


# -- the run ---------------------------------------------------------------------------------------

PARTS = ("ingest", "dispatch", "audit", "size", "memory")

def _args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=20_000, help="events ingested per config")
    parser.add_argument("--accounts", type=int, default=5_000, help="accounts they are about")
    parser.add_argument("--dispatch-accounts", type=int, default=2_000,
                        help="accounts falling due at once in the dispatch run")
    parser.add_argument("--rate", type=float, default=0.0,
                        help="SMS/s limit of the dispatch run, shared by the PostgreSQL fleet "
                             "(0: unlimited)")
    parser.add_argument("--audit-seconds", type=float, default=2.0,
                        help="length of each audit append run")
    parser.add_argument("--audit-rounds", type=int, default=3,
                        help="rounds of the audit runs (each figure is their median)")
    parser.add_argument("--size-accounts", type=int, default=20_000,
                        help="accounts stored for the size figure (scaled to 100,000)")
    parser.add_argument("--memory-accounts", type=int, default=10_000,
                        help="accounts in the store of the daemon memory run")
    parser.add_argument("--parts", default=",".join(PARTS),
                        help=f"which measurements to run, of {','.join(PARTS)}")
    parser.add_argument("--daemons", default="1,2,3", help="PostgreSQL fleet sizes")
    parser.add_argument("--rounds", type=int, default=1,
                        help="rounds of the ingest and dispatch runs (figures are medians)")
    args = parser.parse_args(argv)
    unknown = set(args.parts.split(",")) - set(PARTS)
    if unknown:
        parser.error(f"--parts: unknown {', '.join(sorted(unknown))} (known: {', '.join(PARTS)})")
    return args


async def main(argv: list[str] | None = None) -> None:
    """Run every measurement (or those of `--parts`) and print them side by side."""
    args = _args(argv)
    sizes = [int(n) for n in args.daemons.split(",")]
    payloads = ingest_events(args.events, args.accounts)
    server = Server()
    await server.create()
    rows = [Row("sqlite, 1 daemon", 1),
            *(Row(f"postgresql, {n} daemon(s)", n) for n in sizes)]
    audit: list[tuple[str, float]] = []
    disk: list[tuple[str, int]] = []
    memory: list[tuple[str, Memory, Memory]] = []
    parts = args.parts.split(",")
    load = os.getloadavg()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            if "ingest" in parts:
                await _ingest_all(server, folder, payloads=payloads, rows=rows,
                                  rounds=args.rounds)
            if "dispatch" in parts:
                await _dispatch_all(server, folder, rows, accounts=args.dispatch_accounts,
                                    rounds=args.rounds, rate=args.rate)
            if "audit" in parts:
                await _audit_all(server, folder, args.audit_seconds, args.audit_rounds, audit)
            if "size" in parts:
                await _size_all(server, folder, args.size_accounts, disk)
            if "memory" in parts:
                await _memory_all(server, folder, args.memory_accounts, memory)
    finally:
        await server.drop()
    _print(args, rows, audit=audit, disk=disk, memory=memory, before=load,
           after=os.getloadavg())


def rotated(rows: list[Row], round_: int) -> list[Row]:
    """The configurations in the order of one round: the machine's speed drifts within minutes,
    so each round starts with another configuration."""
    shift = round_ % len(rows)
    return rows[shift:] + rows[:shift]


async def _ingest_all(server: Server, folder: Path, *, payloads: list[bytes],
                      rows: list[Row], rounds: int) -> None:
    for round_ in range(rounds):
        for row in rotated(rows, round_):
            label = f"ingest_{row.daemons}_{round_}"
            if row.name.startswith("sqlite"):
                url = "sqlite://data/dispatcher.db"
                count = _sqlite_count(folder / label / "daemon-0" / "data" / "dispatcher.db")
            else:
                label = f"{label}_pg"
                url = await server.schema(label)
                count = _pg_count(server, url)
            # A broker of its own: sessions that earlier configurations left on a shared one
            # would be given shares of the events (and queue all of them) while offline.
            broker = Broker(folder / label / "broker")
            broker.start()
            try:
                rate, row.rss_mib = await ingest(broker, folder / label, url,
                                                 daemons=row.daemons, payloads=payloads,
                                                 count=count)
            finally:
                broker.stop()
            row.ingests.append(rate)


def _sqlite_count(path: Path) -> Count:
    return lambda: sqlite_count(path)


def _pg_count(server: Server, url: str) -> Count:
    return lambda: server.fetchval(url, "SELECT COUNT(*) FROM events")


async def _dispatch_all(server: Server, folder: Path, rows: list[Row], *, accounts: int,
                        rounds: int, rate: float) -> None:
    for round_ in range(rounds):
        for row in rotated(rows, round_):
            label = f"dispatch_{row.daemons}_{round_}"
            store: Path | str = (folder / f"{label}.db" if row.name.startswith("sqlite")
                                 else await server.schema(f"{label}_pg"))
            sent_rate, row.busiest, row.sent = await dispatch(store, row.daemons, accounts, rate)
            row.dispatches.append(sent_rate)


async def _audit_all(server: Server, folder: Path, seconds: float, rounds: int,
                     audit: list[tuple[str, float]]) -> None:
    url = await server.schema("audit")
    runs: list[tuple[str, Callable[[], Awaitable[float]]]] = [
        ("sqlite, 1 writer, append_audit", partial(audit_appends, folder / "audit.db", 1, seconds))]
    for n in (1, 2, 3):
        runs.append((f"postgresql, {n} writer(s), append_audit (chain lock)",
                     partial(audit_appends, url, n, seconds)))
        runs.append((f"postgresql, {n} writer(s), plain insert (no shared lock)",
                     partial(plain_inserts, url, n, seconds)))
    # The machine's speed drifts within minutes: each round runs every case, in an order
    # rotated by one each round, and each figure is the median of its rounds.
    rates: dict[str, list[float]] = {name: [] for name, _ in runs}
    for round_ in range(rounds):
        for name, run in runs[round_ % len(runs):] + runs[:round_ % len(runs)]:
            rates[name].append(await run())
    audit.extend((name, statistics.median(rates[name])) for name, _ in runs)


async def _size_all(server: Server, folder: Path, accounts: int,
                    disk: list[tuple[str, int]]) -> None:
    path = folder / "size" / "size.db"
    path.parent.mkdir()
    await fill(path, accounts)
    disk.append(("sqlite", sqlite_bytes(path)))
    url = await server.schema("size")
    await fill(url, accounts)
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("VACUUM ANALYZE")  # settles the visibility maps the sizes include
        disk.append(("postgresql", int(await conn.fetchval(SIZE_SQL))))
    finally:
        await conn.close()
    for name, size in list(disk):
        disk[disk.index((name, size))] = (name, size * 100_000 // accounts)


async def _memory_all(server: Server, folder: Path, accounts: int,
                      memory: list[tuple[str, Memory, Memory]]) -> None:
    """Each store empty (the baseline), then holding `accounts` accounts, under one daemon."""
    for kind in ("sqlite", "postgresql"):
        measured = []
        for count in (0, accounts):
            label = f"memory_{kind}_{count}"
            if kind == "sqlite":
                url = "sqlite://data/dispatcher.db"
                path = folder / label / "data" / "dispatcher.db"
                path.parent.mkdir(parents=True)
                where: Path | str = path
                decided: Count = partial(sqlite_decided, path)
            else:
                url = where = await server.schema(label)
                decided = partial(server.fetchval, url,
                                  "SELECT COUNT(*) FROM accounts WHERE plan_json IS NOT NULL")
            await fill(where, count, own_number_events)
            broker = Broker(folder / label / "broker")
            broker.start()
            try:
                measured.append(await measure_memory(folder / label, broker, url, count,
                                                     decided))
            finally:
                broker.stop()
        memory.append((kind, measured[0], measured[1]))


def _print_memory(memory: list[tuple[str, Memory, Memory]]) -> None:
    accounts = memory[0][2].accounts
    # Not scaled: the daemon's caches are bounded, so the cost is not linear in the accounts.
    print(f"daemon memory, MiB (daemon process + ingest writer, from /proc): each store empty, "
          f"then holding {accounts:,} accounts all due; the difference is what they cost"
          + ("" if accounts == 100_000 else " (per 100,000 accounts: --memory-accounts 100000)")
          + ":")
    print(f"  {'store':24} {'RSS after start':>15} {'RSS after sweep':>15} "
          f"{'peak (VmHWM)':>12} {'sweep s':>8}")
    for kind, empty, full in memory:
        for name, m in ((f"{kind}, empty", empty), (f"{kind}, {accounts:,}", full)):
            print(f"  {name:24} {m.started:15.1f} {m.swept:15.1f} {m.peak:12.1f} "
                  f"{m.sweep_seconds:8.1f}")
        print(f"  {kind + ', difference':24} {full.started - empty.started:15.1f} "
              f"{full.swept - empty.swept:15.1f} {full.peak - empty.peak:12.1f}")

def _print(args: argparse.Namespace, rows: list[Row], *, audit: list[tuple[str, float]],
           disk: list[tuple[str, int]], memory: list[tuple[str, Memory, Memory]],
           before: tuple[float, float, float], after: tuple[float, float, float]) -> None:
    print(f"load average before / after: {before[0]:.2f} / {after[0]:.2f}  "
          f"({os.cpu_count()} cores)")
    parts = args.parts.split(",")
    if "ingest" in parts or "dispatch" in parts:
        _print_rows(args, rows)
    if "audit" in parts:
        print("audit appends, one record per commit, median of "
              f"{args.audit_rounds} rounds of {args.audit_seconds:g} s:")
        for name, rate in audit:
            print(f"  {name:55} {rate:9,.0f} commits/s")
    if "size" in parts:
        print(f"store on disk per 100,000 accounts (one overdue event each; measured on "
              f"{args.size_accounts:,}):")
        for name, size in disk:
            print(f"  {name:10} {size / 2**20:9,.1f} MiB")
    if "memory" in parts:
        _print_memory(memory)


def _print_rows(args: argparse.Namespace, rows: list[Row]) -> None:
    """Ingest and dispatch, each configuration against SQLite's ("-" for a part not run)."""
    base = rows[0]
    print(f"rounds: {args.rounds} (ingest and dispatch figures are medians; RSS and busiest "
          "second from the last round)")
    limit = (f"limit {args.rate:g} SMS/s (shared by the PostgreSQL fleet)" if args.rate
             else "no rate limit")
    print(f"ingest: {args.events:,} events, {args.accounts:,} accounts; dispatch: "
          f"{args.dispatch_accounts:,} accounts due at once, {limit}")
    print(f"{'configuration':26} {'ingest ev/s':>11} {'x sqlite':>8} {'RSS MiB/daemon':>16} "
          f"{'attempts/s':>10} {'x sqlite':>8} {'busiest 1 s':>11} {'attempts':>8}")
    for row in rows:
        rss = "/".join(f"{r:.0f}" for r in row.rss_mib) or "-"
        ingest = (f"{row.ingest:11,.0f} {row.ingest / base.ingest:8.2f}" if row.ingests
                  else f"{'-':>11} {'-':>8}")
        dispatch = (f"{row.dispatch:10,.0f} {row.dispatch / base.dispatch:8.2f} "
                    f"{row.busiest:11,} {row.sent:8,}" if row.dispatches
                    else f"{'-':>10} {'-':>8} {'-':>11} {'-':>8}")
        print(f"{row.name:26} {ingest} {rss:>16} {dispatch}")

if __name__ == "__main__":
    if sys.argv[1:2] == ["--dispatch-worker"]:
        dispatch_worker(sys.argv[2], sys.argv[3], float(sys.argv[4]))
    else:
        asyncio.run(main())
