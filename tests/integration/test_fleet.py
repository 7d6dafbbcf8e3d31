"""Daemons sharing one PostgreSQL store: a provider's rate holds for all of them together, and a
job that must run once runs on one of them; SQLite, with one daemon, always may and always gets."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiomqtt
import pytest

from dispatcher.config.settings import PlannerSettings
from dispatcher.contact.learning import LEARNING_JOB, Learning
from dispatcher.domain.clock import VirtualClock
from dispatcher.domain.contact import Medium, Outcome, Role
from dispatcher.service.app import Dispatcher
from dispatcher.service.jobs import HeldJob, PeriodicJobs, last_daily, once_a_day
from dispatcher.service.metrics import Metrics
from dispatcher.store import AttemptRow, Store, open_store
from schedules.answer_model import AnswerModel, hour_of_week
from tests.fake_twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio
from tests.integration.inprocess import metrics_once, running, wait_for
from tests.integration.publish import publish_all
from tests.integration.test_answer_model import _calls
from tests.integration.test_twilio_crash import COUNTRIES, _number_in_daytime, _schedule_due_now
from tests.postgres import store_execute, store_rows
from tests.support import ROOT, Broker, Daemon, free_port, make_config

DUE = datetime(2026, 12, 7, 3, 30, tzinfo=UTC)
HOLD = timedelta(minutes=5)


async def test_a_store_no_other_daemon_shares_always_runs_and_always_grants(
        tmp_path: Path) -> None:
    async with open_store(tmp_path / "s.db") as one:
        assert await one.claim_job("retention", DUE, HOLD)
        assert await one.claim_job("retention", DUE, HOLD)
        assert [await one.take_token("k", 1.0, 1) for _ in range(50)] == [0.0] * 50
        await one.release_jobs()


async def test_a_run_is_claimed_by_one_store_and_a_held_job_stays_with_its_holder(
        postgres_url: str) -> None:
    async with open_store(postgres_url) as one, open_store(postgres_url) as two:
        claims = await asyncio.gather(*(store.claim_job("retention", DUE, HOLD)
                                        for store in (one, two)))
        assert sorted(claims) == [False, True]
        holder, other = (one, two) if claims[0] else (two, one)
        assert not await other.claim_job("retention", DUE, HOLD)
        assert await holder.claim_job("retention", DUE, HOLD)  # it has it: asking is harmless
        # The next day's run is free once the first run's hold is over (released here).
        tomorrow = DUE + timedelta(days=1)
        assert not await other.claim_job("retention", tomorrow, HOLD)
        await holder.release_jobs()
        assert await other.claim_job("retention", tomorrow, HOLD)
        assert not await holder.claim_job("retention", tomorrow, HOLD)  # never twice a run
        # A held job: its holder renews it at each run; the other waits out the hold.
        assert await one.claim_job("audit-head", DUE, timedelta(seconds=0.5))
        assert await one.claim_job("audit-head", DUE + timedelta(seconds=1), HOLD)
        assert not await two.claim_job("audit-head", DUE + timedelta(seconds=2), HOLD)
        store_execute(postgres_url, "UPDATE job_leases SET until = until - interval '1 hour' "
                                    "WHERE name = 'audit-head'")
        assert await two.claim_job("audit-head", DUE + timedelta(seconds=3), HOLD)
        assert not await one.claim_job("audit-head", DUE + timedelta(seconds=4), HOLD)


async def test_tokens_come_due_at_the_rate_after_the_burst_by_the_servers_clock(
        postgres_url: str) -> None:
    async with open_store(postgres_url) as store:
        waits = [await store.take_token("k", 10.0, 3) for _ in range(5)]
        assert waits[:3] == [0.0, 0.0, 0.0]
        assert 0.05 < waits[3] <= 0.1
        assert 0.15 < waits[4] <= 0.2
        # Another key is another bucket; a bucket left alone holds no more than its burst.
        assert await store.take_token("other", 10.0, 1) == 0.0
        await asyncio.sleep(0.5)
        assert [await store.take_token("k", 10.0, 3) > 0 for _ in range(4)] == [
            False, False, False, True]


async def _send_through(store: Store, rate: float, burst: int, until: float) -> list[float]:
    """Requests one daemon sends, each when its token is due, until `until` (monotonic): when."""
    sent = []
    while time.monotonic() < until:
        await asyncio.sleep(await store.take_token("k", rate, burst))
        sent.append(time.monotonic())
    return sent


def _most_in_a_second(sent: list[float]) -> int:
    return max(sum(1 for u in sent[i:] if u - t < 1.0) for i, t in enumerate(sent))


async def test_takers_on_several_connections_never_exceed_rate_times_t_plus_burst(
        postgres_url: str) -> None:
    rate, burst, seconds = 40.0, 4, 2.0
    async with open_store(postgres_url) as a, open_store(postgres_url) as b, \
            open_store(postgres_url) as c:
        start = time.monotonic()
        each = await asyncio.gather(*(_send_through(s, rate, burst, start + seconds)
                                      for s in (a, b, c)))
    sent = sorted(t for one in each for t in one if t <= start + seconds)
    assert len(sent) <= rate * seconds + burst
    assert _most_in_a_second(sent) <= rate + burst
    assert len(sent) >= rate * seconds * 0.9  # the rate is used, not wasted
    # Tokens go in the order asked: each daemon gets its share.
    assert min(len(one) for one in each) >= len(sent) / 3 - 2, [len(one) for one in each]


@pytest.mark.timeout(60)
async def test_three_daemon_processes_share_one_rate(postgres_url: str) -> None:
    async with open_store(postgres_url):
        pass
    rate, burst, seconds, takers = 20.0, 1, 3.0, 3
    start = time.time() + 2.0  # every process started and connected by then
    processes = [await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.integration.rate_taker", postgres_url, "twilio:sms:+1",
        str(rate), str(burst), str(start), str(seconds), cwd=ROOT,
        stdout=asyncio.subprocess.PIPE) for _ in range(takers)]
    each = [json.loads((await p.communicate())[0]) for p in processes]
    assert [p.returncode for p in processes] == [0] * takers
    sent = sorted(t for one in each for t in one if t <= start + seconds)
    assert len(sent) <= rate * seconds + burst
    # No second of it saw more than a second's rate and the burst (times read by each process
    # once its token came due: a few milliseconds of jitter, against 50 between tokens).
    assert _most_in_a_second(sent) <= rate + burst
    assert len(sent) >= rate * seconds * 0.9
    assert min(len(one) for one in each) >= len(sent) / takers - 2, [len(o) for o in each]


def test_a_daily_run_is_named_by_its_time_of_day() -> None:
    at = DUE.time()
    assert last_daily(DUE, at) == DUE
    assert last_daily(DUE + timedelta(hours=23), at) == DUE
    assert last_daily(DUE - timedelta(seconds=1), at) == DUE - timedelta(days=1)


async def test_a_held_job_asks_the_store_once_a_third_of_its_hold() -> None:
    asked: list[datetime] = []
    answers = [True, False]

    class Leases:
        async def claim_job(self, name: str, due: datetime, hold: timedelta) -> bool:
            asked.append(due)
            return answers[len(asked) - 1]

        async def release_jobs(self) -> None:
            return None

    ticks = [0.0]
    job = HeldJob(Leases(), "audit-outbox", timedelta(seconds=15), VirtualClock(DUE),
                  monotonic=lambda: ticks[0])
    assert await job.held()
    ticks[0] = 4.9
    assert await job.held()  # believed, not asked: its lease has 10 s left at least
    ticks[0] = 5.0
    assert not await job.held()  # asked again: another daemon has it now
    assert len(asked) == 2


async def test_a_daily_job_runs_once_for_two_schedulers_on_one_store(postgres_url: str) -> None:
    runs: list[str] = []
    at = (datetime.now(UTC) + timedelta(seconds=1.5)).time()
    async with open_store(postgres_url) as one, open_store(postgres_url) as two:
        metrics = [Metrics(), Metrics()]
        schedulers = [PeriodicJobs(m) for m in metrics]
        for name, (store, jobs) in zip("AB", zip((one, two), schedulers, strict=True),
                                       strict=True):
            async def body(name: str = name) -> None:
                runs.append(name)
            jobs.daily("retention", once_a_day(store, "retention", body, at), at)
            jobs.start()
        try:
            def results() -> list[str]:
                return sorted(result for m in metrics for result in ("ok", "elsewhere")
                              if m.job_runs.labels("retention", result)._value.get())  # noqa: SLF001
            await wait_for(lambda: results() == ["elsewhere", "ok"], 10,
                           "one run and one skipped")
        finally:
            for jobs in schedulers:
                jobs.stop()
    assert len(runs) == 1


async def test_the_answer_model_is_learned_by_one_daemon_and_taken_up_by_the_other(
        postgres_url: str) -> None:
    monday = datetime(2026, 12, 7, 6, 0, tzinfo=UTC)
    evening = hour_of_week(0, 18)
    async with open_store(postgres_url) as one, open_store(postgres_url) as two:
        await _calls(one, [(monday - timedelta(hours=12), evening,
                            Outcome.COMPLETED if n % 2 else Outcome.NO_ANSWER, Role.DEBTOR,
                            Medium.CALL) for n in range(80)])
        learner, other = Learning(one, PlannerSettings()), Learning(two, PlannerSettings())
        now = monday + timedelta(minutes=5)
        # The learner holds the job and has not saved yet: the other decides nothing meanwhile.
        assert await one.claim_job(LEARNING_JOB, now, HOLD)
        assert await other.current(now) is None
        learned = await learner.current(now)
        assert learned is not None
        model, changed = learned
        assert changed
        assert model.calls[evening] == 80
        # Saved: the other takes it up, and leaves planning again to the learner.
        assert await other.current(now + timedelta(seconds=1)) == (model, False)
        assert other.model == model != AnswerModel.prior()


def _runs(daemon: Dispatcher, job: str, result: str) -> float:
    return daemon.metrics.registry.get_sample_value(
        "dispatcher_job_runs_total", {"job": job, "result": result}) or 0.0


async def test_two_daemons_on_one_store_run_the_fleets_jobs_once_each(
        tmp_path: Path, broker: Broker, postgres_url: str) -> None:
    now = datetime.now(UTC)
    at = (now + timedelta(seconds=4)).strftime("%H:%M:%S")
    async with open_store(postgres_url) as store:
        # An attempt another daemon may be sending right now, and one silent for long.
        await store.record_decisions(attempts=[
            AttemptRow(name, "A-1", "debtor", Role.DEBTOR, "+15125550100", Medium.SMS, "early",
                       "morning", "r", "reminder_sms", now - age)
            for name, age in (("fresh", timedelta(0)), ("silent", timedelta(minutes=20)))],
            plans=[], audit=[], now=now, config_version="t")
        await store.append_audit([{"kind": "suppressed", "account_id": f"A-{n}",
                                   "reason": "test"} for n in range(30)], now=now)
    configs = [make_config(tmp_path / name, broker.url, client_id=f"disp-{name}",
                           store_url=postgres_url, extra=(
                               f'[retention]\nrun_at = "{at}"\n'
                               '[audit]\nhead_interval_seconds = 0.5\n'
                               'head_file = "heads.jsonl"\n[contact]\nsweep_seconds = 60\n'))
               for name in "ab"]
    seen: list[int] = []
    async with aiomqtt.Client("127.0.0.1", broker.port) as watcher:
        await watcher.subscribe("collections/attempts/+", qos=1)

        async def watch() -> None:
            async for message in watcher.messages:
                assert isinstance(message.payload, bytes)
                seen.append(json.loads(message.payload)["seq"])

        watching = asyncio.create_task(watch())
        async with running(configs[0]) as a, running(configs[1]) as b:
            daemons = (a, b)
            await wait_for(lambda: sum(_runs(d, "retention", r) for d in daemons
                                       for r in ("ok", "elsewhere")) == 2, 15, "retention")
            await wait_for(lambda: len(set(seen)) >= 31, 15, "every record published")
            def heads() -> list[tuple[bool, bool]]:
                return sorted((_runs(d, "audit-head", "ok") > 0,
                               _runs(d, "audit-head", "elsewhere") > 0) for d in daemons)

            await wait_for(lambda: heads() == [(False, True), (True, False)], 10,
                           "heads signed by one daemon, skipped by the other")
            retention = sorted((_runs(d, "retention", "ok"), _runs(d, "retention", "elsewhere"))
                               for d in daemons)
        watching.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watching
    assert retention == [(0.0, 1.0), (1.0, 0.0)]
    # One signer, one head file.
    assert sorted((c.parent / "heads.jsonl").exists() for c in configs) == [False, True]
    # Each record reached the broker once, from whichever daemon published the outbox.
    assert len(seen) == len(set(seen)) == 31
    assert dict(store_rows(postgres_url, "SELECT attempt_id, outcome FROM attempts")) == {
        "fresh": None, "silent": "unknown"}


def _twilio_config(folder: Path, broker: Broker, fake: FakeTwilio, postgres_url: str, *,
                   port: int, public_port: int, now: datetime, zone: str) -> Path:
    """A daemon of the fleet: its own webhook port; the public URL, the fleet's one address,
    leads to `public_port` (standing in for the load balancer)."""
    path = make_config(folder, broker.url, client_id=f"disp-{folder.name}",
                       store_url=postgres_url, log_format="text", extra=(
                           f'public_url = "http://127.0.0.1:{public_port}"\n'
                           '[channels]\nprovider = "twilio"\n'
                           f'[twilio]\napi_base = "{fake.base_url}"\n'
                           'from_number = "+15005550006"\n'
                           '[contact]\nschedule = "now"\nsweep_seconds = 0.2\n'
                           '[compliance.limits]\ncontact_on_holidays = true\n'
                           '[compliance.regions]\n' + "".join(
                               f'{country} = "us"\n' for country in COUNTRIES)))
    topics = 'topics = ["collections/events/#"]\n'
    # Each event goes to one daemon of the group, as in a fleet.
    path.write_text(path.read_text().replace("port = 0", f"port = {port}").replace(
        topics, f'{topics}shared_group = "fleet"\n'))
    _schedule_due_now(folder, zone, now)
    return path


async def _start(daemon: Daemon) -> None:
    daemon.start(wait_connected=False)
    await wait_for(lambda: "connected to broker" in daemon.new_log(), 20, "connected")


@pytest.mark.slow
# Real time: the first slot is one to two minutes away.
@pytest.mark.timeout(300)
async def test_a_callback_for_one_daemons_attempt_is_recorded_by_another(
        tmp_path: Path, broker: Broker, daemons: list[Daemon], postgres_url: str) -> None:
    now = datetime.now(UTC)
    number, zone = _number_in_daytime(now)
    # The provider calls back 15 s after taking the message: time for the receiver to start.
    async with FakeTwilio(callback_interval=5.0) as fake:
        sender_port, receiver_port = free_port(), free_port()
        sender, receiver = (
            Daemon(_twilio_config(tmp_path / name, broker, fake, postgres_url, port=port,
                                  public_port=receiver_port, now=now, zone=zone),
                   {**os.environ, "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
                    "TWILIO_AUTH_TOKEN": AUTH_TOKEN})
            for name, port in (("sender", sender_port), ("receiver", receiver_port)))
        daemons.extend((sender, receiver))
        await _start(sender)
        event = {"schema": 1, "event_id": "e-1", "type": "account.overdue",
                 "occurred_at": now.isoformat(), "account_id": "A-1",
                 "data": {"days_past_due": 3, "amount_due": "9.00", "currency": "USD",
                          "debtor": {"name": "Pat Doe", "timezone": zone,
                                     "phones": [{"number": number, "type": "mobile",
                                                 "sms_consent": True, "call_consent": True}]}}}
        await publish_all(broker.port, [json.dumps(event).encode()])
        await wait_for(lambda: len(fake.received("POST", "Messages")) == 1, 200,
                       "the message reached the provider")
        # The receiver joins once the attempt is the sender's: the fleet's public address (the
        # callback URL the sender gave) leads to the receiver alone.
        await _start(receiver)
        await wait_for(lambda: bool(store_rows(postgres_url, "SELECT 1 FROM attempts WHERE "
                                                             "outcome IS NOT NULL")),
                       30, "the outcome from the callback")
        [(attempt_id, outcome, sid, outcome_at)] = store_rows(
            postgres_url, "SELECT attempt_id, outcome, provider_sid, outcome_at FROM attempts")
        # Made due by the callback, and decided again by whichever daemon sweeps first.
        await wait_for(lambda: bool(store_rows(
            postgres_url, "SELECT 1 FROM accounts WHERE next_attempt_at > ? AND lease_owner IS "
                          "NULL AND plan_json IS NOT NULL", (outcome_at,))), 30,
            "the account planned again")
        metrics = await metrics_once(receiver_port, "dispatcher_outcomes_total{channel=\"sms\","
                                                    "outcome=\"delivered\"} 1.0")
        await fake.settle()
        callbacks = [c for c in fake.callbacks if "/twilio/sms/status" in c.url]
    assert (outcome, sid) == ("delivered", next(iter(fake.messages)))
    assert callbacks
    assert {(c.url.split("/twilio")[0], c.status) for c in callbacks} == {
        (f"http://127.0.0.1:{receiver_port}", 204)}
    # The sender's log has the decision to send it; the receiver's only its outcome.
    assert f"result=sent attempt={attempt_id}" in sender.new_log()
    assert "result=sent" not in receiver.new_log()
    assert f"outcome account=A-1 attempt={attempt_id}" in receiver.new_log()
    assert "dispatcher_webhooks_rejected_total{" not in metrics  # every signature was good
    assert [sender.terminate(), receiver.terminate()] == [0, 0]
    [record] = [json.loads(text) for (text,) in store_rows(
        postgres_url, "SELECT record FROM audit WHERE kind = 'outcome'")]
    assert (record["attempt_id"], record["status"], record["provider_sid"]) == (
        attempt_id, "delivered", sid)
    verify = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "dispatcher", "audit", "verify", "--config", str(sender.config),
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    said, _ = await asyncio.wait_for(verify.communicate(), 60)
    assert verify.returncode == 0, said.decode()
