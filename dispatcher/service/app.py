"""Wiring and lifecycle: store, webhook server and MQTT as one unit with a bounded shutdown."""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
from collections.abc import Callable, Mapping
from contextlib import AsyncExitStack
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Self

import aiomqtt
from aiohttp import web

from channels.base import Channel
from channels.sandbox import OutcomeScript, SandboxChannel, load_outcome_script
from channels.twilio import TwilioChannel, TwilioConfig
from dispatcher.audit.anchor import HeadAnchor
from dispatcher.audit.keys import KEY_VARIABLE, signer_from
from dispatcher.audit.outbox import AuditPublisher, TopicCheck, topic_level_problem
from dispatcher.audit.retention import run_retention
from dispatcher.config.reload import needs_restart, stamps
from dispatcher.config.settings import LoadedConfig, load_config, provider_secret_problem
from dispatcher.console.setup import console_enabled, console_problems, console_token
from dispatcher.console.sources import console_sources
from dispatcher.console.web import Console
from dispatcher.contact.account_facts import ContactPolicy, policy_of
from dispatcher.contact.engine import Engine
from dispatcher.contact.replan import replan_all
from dispatcher.contact.replies import handle_reply
from dispatcher.domain.clock import Clock, SystemClock
from dispatcher.domain.contact import Medium, Party
from dispatcher.errors import ConfigError
from dispatcher.ingest.intake import Ingestor
from dispatcher.ingest.isolate import is_store_failure
from dispatcher.ingest.mqtt import make_client
from dispatcher.ingest.writers import (
    WRITER_MODULE,
    InlineWriter,
    ProcessWriter,
    ResilientWriter,
    WriterError,
)
from dispatcher.service.aio import pause
from dispatcher.service.jobs import (
    ELSEWHERE,
    HEAD_JOB,
    OUTBOX_JOB,
    RECONCILE_JOB,
    RETENTION_JOB,
    HeldJob,
    PeriodicJobs,
    once_a_day,
)
from dispatcher.service.metrics import Metrics
from dispatcher.service.summary import Summary
from dispatcher.store import PruneResult, Store, check_writable, is_shared, open_store
from dispatcher.webhooks.server import Health, build_app, start_server
from dispatcher.webhooks.twilio import TwilioWebhooks

log = logging.getLogger("dispatcher.app")

RECONCILE_EVERY = timedelta(minutes=5)
SILENT_FOR = timedelta(minutes=15)  # a call lasts a while; a text's callback comes in seconds
# A job held by one daemon of a fleet is held for two of its periods and this much: a run that
# comes late still renews it, and another daemon takes over soon after its holder dies.
LEASE_SLACK = timedelta(seconds=30)
RECONCILE_HOLD = 2 * RECONCILE_EVERY + LEASE_SLACK
OUTBOX_HOLD = timedelta(seconds=15)


def backoff_delays(first: float, cap: float, rng: random.Random) -> list[float]:
    """Exponential delays with full jitter in the upper half, up to `cap` (enough for one run)."""
    delays, delay = [], first
    while delay < cap:
        delays.append(delay)
        delay *= 2
    delays.append(cap)
    return [d * (0.5 + rng.random() / 2) for d in delays]


def first_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first real error inside nested task-group exception groups."""
    error: BaseException = group
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error


class Dispatcher:
    """The daemon: `async with Dispatcher(config) as d: await d.run()`."""

    def __init__(self, config: LoadedConfig, *, clock: Clock | None = None,
                 environ: Mapping[str, str] = os.environ,
                 listen_socket: socket.socket | None = None,
                 writer_module: str = WRITER_MODULE,
                 topic_problem: TopicCheck = topic_level_problem) -> None:
        self.config = config
        self.clock = clock or SystemClock()
        self.environ = environ
        # Other daemons may share the store: jobs for all of them run on one, under a lease.
        self._shared = is_shared(config.store_location)
        self.metrics = Metrics()
        self.health = Health()
        self.webhook_port: int | None = None
        # Bound by the supervisor when there is one; else the server binds host and port.
        self._listen_socket = listen_socket
        self._stop = asyncio.Event()
        self._stack = AsyncExitStack()
        self._store: Store | None = None
        self._writer: ResilientWriter | None = None
        self._contact_engine: Engine | None = None
        self._webhooks: TwilioWebhooks | None = None
        self._reload = asyncio.Event()
        # Held by each sweep and each reload: a reload changes the policy between two sweeps.
        self._deciding = asyncio.Lock()
        self._jobs = PeriodicJobs(self.metrics)
        self._heads: HeadAnchor | None = None
        # The writer process's module: tests stand in one that fails on purpose.
        self._writer_module = writer_module
        # How the outbox screens a record's topic before the MQTT client sees it.
        self._topic_problem = topic_problem
        # The periodic summary line, with the size of the work queue the store keeps.
        self.summary = Summary(self.metrics, queue_size=self._open_queue_items)

    async def _open_queue_items(self) -> int:
        return await self.store.open_queue_items()

    @property
    def store(self) -> Store:
        """The open store."""
        if self._store is None:
            raise RuntimeError("the dispatcher is not open")
        return self._store

    @property
    def jobs(self) -> PeriodicJobs:
        """The periodic jobs (retention)."""
        return self._jobs

    async def __aenter__(self) -> Self:
        """Open the store, audit the config in force, start the webhook server."""
        await self._stack.__aenter__()
        try:
            await asyncio.to_thread(check_writable, self.config.store_location)
            self._store = await self._stack.enter_async_context(
                open_store(self.config.store_location,
                           claim_lease=self.config.settings.store.claim_lease))
            self.store.audit_observers.append(self.metrics.observe_audit)
            self.store.lost_claim_observers.append(self.metrics.observe_lost_claims)
            self._heads = HeadAnchor(self.store, self.config.head_file,
                                     signer_from(self.environ))
            self._contact_engine = self._engine()
            self._stack.push_async_callback(self._contact_engine.channel.close)
            await self.store.append_audit([{
                "kind": "config", "status": "loaded", "config_version": self.config.version,
                "files": [str(p) for p in self.config.files]}], now=self.clock.now())
            self._writer = await self._start_writer()
            self.health.pending_seconds = self._writer.oldest_pending_seconds
            self.health.stall_seconds = self.config.settings.ingest.stall_seconds
            app = build_app(self.store, self.metrics, self.health,
                            self._more_routes(self._provider_routes(), self._console_routes()))
            webhook = self.config.settings.webhook
            runner, self.webhook_port = await start_server(app, webhook.host, webhook.port,
                                                           sock=self._listen_socket)
            if self._webhooks is not None:
                # Runs after the server has stopped (the stack unwinds in reverse order).
                self._stack.push_async_callback(self._webhooks.flush_all_refusals)
            self._stack.push_async_callback(runner.cleanup)
        except BaseException:
            await self._stack.__aexit__(None, None, None)
            raise
        if self.config.settings.retention.enabled and not self.environ.get(KEY_VARIABLE):
            log.warning("retention: %s is not set: records past the %d-year period will be "
                        "counted, not pruned", KEY_VARIABLE,
                        self.config.retention_years)
        log.info("dispatcher started", extra={
            "config_version": self.config.version, "store": str(self.config.store_location),
            "webhook": f"{webhook.host}:{self.webhook_port}",
            "mqtt": self.config.settings.mqtt.url})
        return self

    @staticmethod
    def _more_routes(*adders: Callable[[web.Application], None] | None,
                     ) -> Callable[[web.Application], None]:
        def add(app: web.Application) -> None:
            for adder in adders:
                if adder is not None:
                    adder(app)
        return add

    def _console_routes(self) -> Callable[[web.Application], None] | None:
        """The web console's routes, when it is on ([console]; docs/console.md)."""
        if not console_enabled(self.config, self.environ):
            return None  # nothing under /console: 404
        problems = console_problems(self.config, self.environ)
        if problems:
            raise ConfigError(problems)
        console = Console(store=self.store, config=lambda: self.config,
                          settings=self.config.settings.console, health=self.health,
                          metrics=self.metrics, clock=self.clock,
                          token=console_token(self.environ),
                          sources=console_sources(self.store,
                                                  lambda: self.config.version))
        return console.add_routes

    def _provider_routes(self) -> Callable[[web.Application], None] | None:
        token = self.environ.get("TWILIO_AUTH_TOKEN")
        if not token:
            return None  # without the token no callback could be verified: none is accepted
        settings = self.config.settings
        engine = self._running_engine()
        self._webhooks = TwilioWebhooks(
            token=token, public_url=str(settings.webhook.public_url), store=self.store,
            clock=self.clock, record_outcomes=engine.record_outcomes, policy=engine.policy,
            max_payload_bytes=settings.ingest.max_payload_bytes,
            count_refusal=self.metrics.count_webhook_refusal)
        return self._webhooks.add_routes

    def _running_engine(self) -> Engine:
        if self._contact_engine is None:
            raise RuntimeError("the dispatcher is not open")
        return self._contact_engine

    async def _start_writer(self) -> ResilientWriter:
        settings = self.config.settings
        max_future = timedelta(seconds=settings.ingest.max_future_seconds)
        if settings.ingest.writer == "inline":
            writer: InlineWriter | ProcessWriter = InlineWriter(
                self.store, settings.ingest.max_payload_bytes, max_future)
        else:
            writer = ProcessWriter(self.config.store_location, settings.ingest.max_payload_bytes,
                                   max_future, settings.service.log_level,
                                   settings.service.log_format, module=self._writer_module)
            await writer.start()
        resilient = ResilientWriter(writer, self.health.problems)
        self._stack.push_async_callback(resilient.close)
        return resilient

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        """Close everything opened in `__aenter__`, in reverse order."""
        await self._stack.__aexit__(exc_type, exc, tb)

    def request_reload(self) -> None:
        """Read the config files again (SIGHUP); a change of a file does it too."""
        self._reload.set()

    async def _config_watcher(self, every_seconds: float = 1.0) -> None:
        seen = stamps(self.config.files)
        while not self._stop.is_set():
            await pause(every_seconds, self._stop, self._reload)
            if self._stop.is_set():
                return
            now_seen = stamps(self.config.files)
            if self._reload.is_set() or now_seen != seen:
                self._reload.clear()
                # Stamped before reading: a file saved again while this reload runs is seen
                # next time (stamping after it would take that change as already loaded).
                seen = now_seen
                await self.reload()

    async def reload(self) -> bool:
        """Load the config files again; apply a valid new config, refuse (and audit) a bad one."""
        async with self._deciding:  # between two sweeps: each decides under one policy
            return await self._reload_between_sweeps()

    async def _reload_between_sweeps(self) -> bool:
        now = self.clock.now()
        try:
            new = load_config(self.config.path, self.environ)
            problems = needs_restart(self.config, new)
        except ConfigError as exc:
            problems = exc.problems
        if problems:
            for problem in problems:
                log.error("config reload refused: %s; keeping config %s", problem,
                          self.config.version)
            await self.store.append_audit([{
                "kind": "config", "status": "refused", "problems": [str(p) for p in problems],
                "config_version": self.config.version}], now=now)
            return False
        if new.version == self.config.version:
            return True
        replanned = await self._apply_policy(policy_of(new))
        record: dict[str, Any] = {"kind": "config", "status": "loaded",
                                  "config_version": new.version,
                                  "files": [str(p) for p in new.files]}
        if replanned is not None:
            record["replanned"] = replanned
        await self.store.append_audit([record], now=now)
        # The new version shows (and stamps events) once its policy is in force and audited.
        self.config = new
        self._schedule_jobs()
        logging.getLogger().setLevel(new.settings.service.log_level.upper())
        log.info("config reloaded", extra={"config_version": new.version})
        return True

    async def _apply_policy(self, policy: ContactPolicy) -> int | None:
        """Put `policy` in force; when it plans otherwise than the one it replaces, every stored
        plan is due for a fresh decision: how many, then."""
        changed = policy.digest != self._running_engine().policy.digest
        for holder in (self._contact_engine, self._webhooks):
            if holder is not None:
                holder.policy = policy
        if not changed:
            return None
        why = f"the contact policy changed (config {policy.config_version})"
        try:
            return await replan_all(self.store, self.clock.now(), why=why)
        except Exception as exc:  # the plans stay, and none made under the old policy is sent
            log.error("stored plans not made due: %s: %s; each is planned afresh when due",  # noqa: TRY400
                      type(exc).__name__, exc)
            return None

    def request_stop(self) -> None:
        """Begin a graceful shutdown (SIGTERM, SIGINT)."""
        if not self._stop.is_set():
            log.info("shutdown requested", extra={
                "grace_seconds": self.config.settings.service.shutdown_grace_seconds})
        self._stop.set()

    async def run(self) -> None:
        """Run every loop in one task group until a stop is requested and the work has drained."""
        self._schedule_jobs()
        self._jobs.start()
        # A head now, not one interval from now: a daemon that keeps dying early leaves heads too.
        await self._anchor_head_or_log()
        try:
            await self._run_loops()
        finally:
            self._jobs.stop()
            await self._anchor_head_or_log()  # the last head: a clean stop leaves no gap
            await self._release_jobs_or_log()
        log.info("dispatcher stopped")

    def _schedule_jobs(self) -> None:
        self._jobs.every(HEAD_JOB, self._head_job,
                         self.config.settings.audit.head_interval_seconds)
        retention = self.config.settings.retention
        if retention.enabled:
            self._jobs.daily(RETENTION_JOB, once_a_day(self.store, RETENTION_JOB, self.retain,
                                                       retention.run_at), retention.run_at)
        else:
            self._jobs.remove(RETENTION_JOB)

    async def anchor_head(self) -> dict[str, Any] | None:
        """Sign the audit chain's head, if it moved, into the head file."""
        return await self._heads.anchor(self.clock.now()) if self._heads else None

    async def _head_job(self) -> object:
        """The head job, on the one daemon of those sharing the store that holds it: one signer
        and one head file for the chain they all write."""
        interval = timedelta(seconds=self.config.settings.audit.head_interval_seconds)
        if not await self.store.claim_job(HEAD_JOB, self.clock.now(),
                                          2 * interval + LEASE_SLACK):
            return ELSEWHERE
        return await self.anchor_head()

    async def _anchor_head_or_log(self) -> None:
        try:
            await self._head_job()
        except Exception as exc:  # the periodic job tries again; the daemon carries on
            log.error("audit head not written: %s: %s", type(exc).__name__, exc)  # noqa: TRY400

    async def _release_jobs_or_log(self) -> None:
        try:
            await self.store.release_jobs()
        except Exception as exc:  # each lease runs out on its own a little later
            log.error("job leases not released: %s: %s", type(exc).__name__, exc)  # noqa: TRY400

    async def retain(self) -> PruneResult:
        """The retention job: prune audit records past the profile's period."""
        result = await run_retention(self.store, self.config, self.environ, self.clock.now())
        self.metrics.retention_pruned.inc(result.pruned)
        self.metrics.retention_due.set(result.due - result.pruned)
        return result

    async def _run_loops(self) -> None:
        async with asyncio.TaskGroup() as group:
            mqtt = group.create_task(self._mqtt_loop(), name="mqtt")
            group.create_task(self._bounded_shutdown(mqtt), name="shutdown-guard")
            group.create_task(self._config_watcher(), name="config-watcher")
            group.create_task(self.summary.run(
                lambda: self.config.settings.service.log_summary_seconds, self._stop),
                name="log-summary")
            sweeps = group.create_task(self._sweep_loop(self._running_engine()),
                                       name="due-sweep")
            group.create_task(self._bounded_shutdown(sweeps), name="sweep-guard")
            if self.config.settings.ingest.writer == "process":
                group.create_task(self._wal_checkpoints(), name="wal-checkpoint")
            if self._webhooks is not None:
                group.create_task(self._webhooks.flush_refusals_every(self._stop),
                                  name="webhook-refusals")

    def _engine(self) -> Engine:
        policy = policy_of(self.config)
        return Engine(self.store, self._channel(), policy, on_unsubscribed=self._unsubscribed,
                      clock=self.clock, on_sent=self._sent)

    def _channel(self) -> Channel:
        settings = self.config.settings
        if settings.channels.provider == "twilio":
            twilio = settings.twilio
            third_party = frozenset(t.template_id for t in self.config.templates.templates.values()
                                    if t.party is Party.THIRD_PARTY)
            config = TwilioConfig(
                public_url=str(settings.webhook.public_url), from_number=twilio.from_number,
                messaging_service_sid=twilio.messaging_service_sid,
                api_base=str(twilio.api_base).rstrip("/"),
                calls_per_second=twilio.calls_per_second,
                messages_per_second=twilio.messages_per_second,
                request_timeout=twilio.request_timeout_seconds,
                third_party_templates=third_party)
            missing = provider_secret_problem(self.config, self.environ)
            if missing is not None:
                raise ConfigError([missing])
            # Sharing the store, the daemons share the provider's rates through it too.
            return TwilioChannel(config, self.environ["TWILIO_ACCOUNT_SID"],
                                 self.environ["TWILIO_AUTH_TOKEN"],
                                 shared=self.store if self._shared else None)
        outcomes = settings.channels.sandbox_outcomes
        script = (load_outcome_script(self.config.path.parent / outcomes) if outcomes
                  else OutcomeScript.empty())
        # A daemon runs for months: the deliveries it made are in the store, not kept here too.
        return SandboxChannel(script, keep_sent=False)

    async def _measure_lag(self) -> None:
        due = await self.store.next_due_at()
        lag = max(0.0, (self.clock.now() - due).total_seconds()) if due else 0.0
        self.metrics.due_lag.set(lag)
        self.health.due_lag_seconds = lag

    def _sent(self, medium: Medium, seconds: float) -> None:
        self.metrics.provider_latency.labels(medium.value).observe(seconds)

    async def _unsubscribed(self, number: str, now: datetime) -> None:
        await handle_reply(self.store, number, "STOP", now, config_version=self.config.version,
                           max_payload_bytes=self.config.settings.ingest.max_payload_bytes,
                           message_id=f"unsubscribed:{number}:{now.isoformat()}")

    async def _sweep_loop(self, engine: Engine) -> None:
        # An attempt recorded but never answered (a crash between the two) is not sent again.
        # Another daemon's attempts may be on their way to the provider at this moment: with a
        # shared store only those long silent are looked up, as the loop below does.
        await self._reconcile(engine, SILENT_FOR if self._shared else None)
        reconciled = self.clock.now()
        while not self._stop.is_set():
            try:
                now = self.clock.now()
                if now - reconciled >= RECONCILE_EVERY:
                    # Status callbacks get lost: ask the provider about attempts long silent.
                    reconciled = now
                    await self._reconcile(engine, SILENT_FOR)
                async with self._deciding:
                    await engine.sweep(self.clock.now())  # not `now`: a reload may have run
            except Exception as exc:
                # Whatever was recorded stays recorded (an attempt without an outcome is never
                # resent); ingest and the webhooks keep running, and the next sweep tries again.
                # Said once per outage, not on every sweep; a bug's traceback once too.
                store = is_store_failure(exc)
                if not store and "sweep" not in self.health.problems.active():
                    log.exception("due sweep failed")
                self.health.problems.report("sweep", f"{'cannot write' if store else 'failed'}: "
                                                     f"{type(exc).__name__}: {exc}")
                await pause(self.config.settings.contact.sweep_seconds, self._stop)
                continue
            self.health.problems.clear("sweep")
            self.metrics.sweeps.inc()
            # Attempts, outcomes and suppressions are counted from the committed audit records.
            await self._measure_lag()
            await pause(self.config.settings.contact.sweep_seconds, self._stop)

    async def _reconcile(self, engine: Engine, older_than: timedelta | None) -> None:
        """Settle open attempts, on the one daemon of those sharing the store that holds the
        job: each attempt is looked up at the provider once, not once per daemon."""
        if await self.store.claim_job(RECONCILE_JOB, self.clock.now(), RECONCILE_HOLD):
            await engine.settle_open_attempts(self.clock.now(), older_than=older_than)

    async def _wal_checkpoints(self, every_seconds: float = 1.0,
                               max_seconds: float = 30.0) -> None:
        # The writer process leaves WAL checkpoints to us, so that its commits stay short.
        failures = 0
        while not self._stop.is_set():
            await pause(min(max_seconds, every_seconds * 2 ** failures), self._stop)
            try:
                await self.store.wal_checkpoint()
            except Exception as exc:  # a full disk: reported, retried with backoff
                # "checkpoint" is the /healthz problem's documented name: kept as it was.
                self.health.problems.report("checkpoint", f"WAL checkpoint failed: "
                                                          f"{type(exc).__name__}: {exc}")
                failures = min(failures + 1, 10)
            else:
                self.health.problems.clear("checkpoint")
                failures = 0

    async def _bounded_shutdown(self, work: asyncio.Task[None]) -> None:
        await self._stop.wait()
        grace = self.config.settings.service.shutdown_grace_seconds
        done, _ = await asyncio.wait({work}, timeout=grace)
        if not done:
            log.warning("work did not drain within the grace period; cancelling",
                        extra={"grace_seconds": grace})
            work.cancel()

    async def _mqtt_loop(self) -> None:
        settings = self.config.settings
        assert self._writer is not None, "opened in __aenter__"
        ingestor = Ingestor(self._writer, self.clock, self.metrics,
                            batch_max=settings.ingest.batch_max_events,
                            config_version=lambda: self.config.version)
        # One daemon of those sharing the store publishes the records; each publishes its heads.
        outbox = HeldJob(self.store, OUTBOX_JOB, OUTBOX_HOLD, self.clock)
        publisher = AuditPublisher(self.store, self.metrics, settings.mqtt.out_prefix,
                                   heads=self._heads, topic_problem=self._topic_problem,
                                   held=outbox.held)
        rng = random.Random()
        failures = 0
        while not self._stop.is_set():
            client = make_client(settings.mqtt, self.environ)
            try:
                async with client:
                    failures = 0
                    self._set_connected(True)
                    log.info("connected to broker", extra={"url": settings.mqtt.url})
                    await client.subscribe([(topic, 1) for topic in settings.mqtt.subscriptions])
                    async with asyncio.TaskGroup() as group:
                        group.create_task(ingestor.run(client, self._stop), name="ingest")
                        group.create_task(self._outbox(publisher, client), name="outbox")
            except* WriterError as group_error:
                # Its uncommitted batches were never acknowledged: the broker sends them again.
                log.error(  # noqa: TRY400 - one line; the writer logged its own traceback
                    f"ingest writer failed: {first_leaf(group_error)}; restarting it")
                await self._writer.restart()
            except* aiomqtt.MqttError as group_error:
                error = first_leaf(group_error)
                delays = backoff_delays(settings.mqtt.reconnect_min_seconds,
                                        settings.mqtt.reconnect_max_seconds, rng)
                delay = delays[min(failures, len(delays) - 1)]
                failures += 1
                log.warning(f"broker unreachable at {settings.mqtt.url}: {error}; "
                            f"retrying in {delay:.1f}s")
                await pause(delay, self._stop)
            finally:
                self._set_connected(False)

    async def _outbox(self, publisher: AuditPublisher, client: aiomqtt.Client,
                      max_seconds: float = 30.0) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                if failures:
                    await publisher.publish_pending(client)
                    self.health.problems.clear("outbox")
                    failures = 0
                await publisher.run(client, self._stop)
            except Exception as exc:
                if not is_store_failure(exc):
                    raise
                # Records published but not marked are published again: at least once.
                self.health.problems.report("outbox", f"cannot mark records published: "
                                                      f"{type(exc).__name__}: {exc}")
                failures = min(failures + 1, 10)
                await pause(min(max_seconds, 0.5 * 2 ** failures), self._stop)
            else:
                return

    def _set_connected(self, connected: bool) -> None:
        self.health.mqtt_connected = connected
        self.metrics.mqtt_connected.set(1 if connected else 0)
