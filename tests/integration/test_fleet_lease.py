"""A daemon that dies while it holds claimed accounts: once `[store] claim_lease_seconds` has
passed, another daemon (or the same one restarted, under a new owner id) decides each of them,
once, and no attempt is sent twice."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import signal
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from dispatcher.contact.decide import StoredPlan, plan_to_json
from dispatcher.domain.clock import parse_rfc3339
from dispatcher.domain.contact import Medium, Role
from dispatcher.ingest.classify import classify
from dispatcher.service.metrics import Metrics
from dispatcher.store import AttemptRow, PlanRow, Store, StoreLocation, open_store
from schedules.planner import NoAttempt
from tests.integration.publish import publish_all
from tests.integration.test_twilio_crash import COUNTRIES, _number_in_daytime, _schedule_due_now
from tests.postgres import store_rows
from tests.support import ROOT, Broker, Daemon, encode, make_config, overdue_event, wait_until

ACCOUNTS = 40
LEASE_SECONDS = 30


async def test_claims_of_a_store_that_went_away_are_taken_again_when_its_lease_ends(
        store_at: StoreLocation) -> None:
    now = datetime(2026, 12, 1, 15, tzinfo=UTC)
    lease = timedelta(seconds=45)
    async with open_store(store_at, claim_lease=lease) as first:
        await first.record_batch([classify(encode(overdue_event(n, f"A-{n}")), "t", 65536)
                                  for n in range(5)], now=now, config_version="v")
        claimed = await first.claim_due(now, 10)
        assert len(claimed) == 5
    # A store opened afterwards is another process (PostgreSQL: another owner id); the claims
    # of the first, which never gave them back, hold for the first's lease, not its own.
    async with open_store(store_at, claim_lease=timedelta(minutes=5)) as second:
        assert await second.claim_due(now + lease - timedelta(seconds=1), 10) == []
        assert sorted(await second.claim_due(now + lease, 10)) == sorted(claimed)
        assert await second.claim_due(now + lease + timedelta(minutes=4), 10) == []


async def _decide(store: Store, accounts: list[str], now: datetime,
                  tag: str) -> list[dict[str, object]]:
    """Commit one attempt, a plan and an audit record for each account, as a sweep does."""
    attempts = [AttemptRow(f"at-{tag}-{a}", a, "debtor", Role.DEBTOR, "+13125550100",
                           Medium.SMS, "early", "morning", "r", "t", now) for a in accounts]
    plans = [PlanRow(a, plan_to_json(StoredPlan(NoAttempt(()))), now + timedelta(days=1))
             for a in accounts]
    audit = [{"kind": "attempt", "attempt_id": f"at-{tag}-{a}", "account_id": a}
             for a in accounts]
    return await store.record_decisions(attempts=attempts, plans=plans, audit=audit, now=now,
                                        config_version="v")


async def test_a_store_that_outlived_its_lease_commits_nothing_for_accounts_claimed_since(
        store_at: StoreLocation, caplog: pytest.LogCaptureFixture) -> None:
    now = datetime(2026, 12, 1, 15, tzinfo=UTC)
    lease = timedelta(seconds=45)
    accounts = [f"A-{n}" for n in range(5)]
    async with open_store(store_at, claim_lease=lease) as first, \
            open_store(store_at, claim_lease=lease) as second:
        await first.record_batch([classify(encode(overdue_event(n, a)), "t", 65536)
                                  for n, a in enumerate(accounts)], now=now, config_version="v")
        assert sorted(await first.claim_due(now, 10)) == accounts
        # The first store's lease runs out while it decides: the second takes three accounts.
        taken = await second.claim_due(now + lease, 3)
        assert len(taken) == 3
        kept = sorted(set(accounts) - set(taken))
        lost: list[str] = []
        metrics = Metrics()
        first.lost_claim_observers.extend([lost.extend, metrics.observe_lost_claims])
        with caplog.at_level(logging.WARNING, logger="dispatcher.store"):
            late = await _decide(first, accounts, now + lease + timedelta(seconds=1), "first")
        # Written only for the two accounts nobody took from it, expired lease or not.
        assert sorted(str(r["account_id"]) for r in late) == kept
        assert sorted(a.account_id for a in await first.open_attempts()) == kept
        assert lost == sorted(taken)
        assert metrics.registry.get_sample_value("dispatcher_claims_lost_total") == 3
        [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert warning.startswith("decisions for 3 account(s) not committed")
        assert all(a in warning for a in taken)
        assert not any(a in warning for a in kept)
        contexts = await second.contexts(accounts, now)
        assert [a for a in accounts if contexts[a].plan_json] == kept
        for account in taken:
            assert [r async for r in second.audit_records(account_id=account)
                    if r["kind"] == "attempt"] == []
        # The accounts are still the second store's: nobody else claims them meanwhile.
        async with open_store(store_at, claim_lease=lease) as third:
            assert await third.claim_due(now + lease + timedelta(seconds=2), 10) == []
        decided = await _decide(second, taken, now + lease + timedelta(seconds=2), "second")
        assert sorted(str(r["account_id"]) for r in decided) == sorted(taken)
        attempts = await second.open_attempts()
        assert sorted(a.account_id for a in attempts) == accounts
        assert {a.attempt_id for a in attempts} == {
            *(f"at-first-{a}" for a in kept), *(f"at-second-{a}" for a in taken)}
        assert all(c.plan_json for c in (await second.contexts(accounts, now)).values())


async def test_claims_of_a_commit_that_failed_are_given_back_at_once(
        store_at: StoreLocation) -> None:
    now = datetime(2026, 12, 1, 15, tzinfo=UTC)
    accounts = ["A-0", "A-1"]
    async with open_store(store_at, claim_lease=timedelta(minutes=5)) as store:
        await store.record_batch([classify(encode(overdue_event(n, a)), "t", 65536)
                                  for n, a in enumerate(accounts)], now=now, config_version="v")
        assert sorted(await store.claim_due(now, 10)) == accounts
        await _decide(store, ["A-0"], now, "x")  # A-0 decided, its claim ended
        assert await store.claim_due(now, 10) == []
        with pytest.raises(Exception, match=r"(?i)unique|duplicate"):
            # A-1's commit fails in its transaction (an attempt id already taken).
            await store.record_decisions(
                attempts=[AttemptRow("at-x-A-0", "A-1", "debtor", Role.DEBTOR, "+13125550100",
                                     Medium.SMS, "early", "morning", "r", "t", now)],
                plans=[], audit=[], now=now, config_version="v")
        await store.release_claims(["A-1"])  # as a failed sweep does
        assert await store.claim_due(now, 10) == ["A-1"]


def _events(now: datetime, number: str, zone: str) -> list[bytes]:
    """One overdue event per account, each account's debtor on a number of its own."""
    return [json.dumps({
        "schema": 1, "event_id": f"e-{n:04d}", "type": "account.overdue",
        "occurred_at": now.isoformat(), "account_id": f"A-{n:04d}",
        "data": {"days_past_due": 3, "amount_due": "9.00", "currency": "USD",
                 "debtor": {"name": "Pat Doe", "timezone": zone,
                            "phones": [{"number": f"{number[:-4]}{n:04d}", "type": "mobile",
                                        "sms_consent": True, "call_consent": True}]}},
    }).encode() for n in range(ACCOUNTS)]


def _member(folder: Path, broker: Broker, store_url: str, name: str, now: datetime,
            zone: str) -> Daemon:
    config = make_config(
        folder / name, broker.url, client_id=f"disp-{name}", store_url=store_url,
        log_format="text",
        extra=('[contact]\nschedule = "now"\nsweep_seconds = 0.2\n'
               '[compliance.limits]\ncontact_on_holidays = true\n'
               # Whichever country's number is in daytime now has a profile.
               '[compliance.regions]\n' + "".join(f'{c} = "us"\n' for c in COUNTRIES)))
    text = config.read_text().replace("[mqtt]\n", '[mqtt]\nshared_group = "fleet"\n', 1)
    # Debug: the line for each delivery the provider took, which _sends counts.
    text = text.replace('log_level = "info"', 'log_level = "debug"', 1)
    config.write_text(text.replace("[store]\n", f"[store]\nclaim_lease_seconds = "
                                                f"{LEASE_SECONDS}\n", 1))
    _schedule_due_now(config.parent, zone, now)
    return Daemon(config)


def _count(url: str, sql: str) -> int:
    return int(store_rows(url, sql)[0][0])


def _sends(*daemons: Daemon) -> Counter[str]:
    """How many times the sandbox took each attempt id, over the daemons' logs."""
    logs = {d.log for d in daemons if d.log.exists()}
    return Counter(re.findall(r"\bprovider took (at-[0-9a-f]{24}) ", "".join(
        log.read_text(errors="replace") for log in sorted(logs))))


def _kill(daemon: Daemon) -> None:
    """SIGKILL the supervisor (so that it starts nothing again), then the daemon it ran."""
    pid = daemon.daemon_pid()
    daemon.kill()
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not Path(f"/proc/{pid}").exists(), 20, "the daemon process gone")


def _audit_verifies(config: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "dispatcher", "audit", "verify", "--config",
                           str(config)], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("OK: "), done.stdout


@pytest.mark.slow
@pytest.mark.postgresql
# Real time: the first slot is one to two minutes away, then the lease runs its 30 s.
@pytest.mark.timeout(360)
@pytest.mark.parametrize("successor", ["another daemon", "the daemon restarted"])
async def test_accounts_a_killed_daemon_held_are_decided_once_after_its_lease(
        tmp_path: Path, broker: Broker, daemons: list[Daemon], postgres_url: str,
        successor: str) -> None:
    now = datetime.now(UTC)
    number, zone = _number_in_daytime(now)
    first = _member(tmp_path, broker, postgres_url, "one", now, zone)
    daemons.append(first)
    first.start()
    await publish_all(broker.port, _events(now, number, zone))
    # Ingested and planned for the slot one to two minutes away: nothing is due yet.
    wait_until(lambda: _count(postgres_url, "SELECT COUNT(*) FROM accounts WHERE plan_json IS "
                                            "NOT NULL AND lease_owner IS NULL") == ACCOUNTS,
               60, "every account planned", interval=0.3)
    assert _count(postgres_url, "SELECT COUNT(*) FROM attempts") == 0, "the slot came too soon"
    pid = first.daemon_pid()
    # A transaction of the test's own holds the audit chain's head row: the daemon claims the
    # accounts when they fall due (a claim does not take that lock), decides them, and waits to
    # commit, holding their leases, until it is killed.
    holder = await asyncpg.connect(postgres_url)
    try:
        lock = holder.transaction()
        await lock.start()
        await holder.execute("SELECT id FROM audit_head WHERE id = 1 FOR UPDATE")
        held = f"SELECT COUNT(*) FROM accounts WHERE lease_owner LIKE '%:{pid}:%'"
        wait_until(lambda: _count(postgres_url, held) == ACCOUNTS, 200,
                   "the daemon holding every account's lease", interval=0.3)
        _kill(first)
        await lock.rollback()
    finally:
        await holder.close()
    leases = {account: parse_rfc3339(until) for account, until in store_rows(
        postgres_url, "SELECT account_id, lease_until FROM accounts")}
    killed = datetime.now(UTC)
    assert all(until > killed for until in leases.values()), "the lease ran out before the kill"
    second = first if successor == "the daemon restarted" else _member(
        tmp_path, broker, postgres_url, "two", now, zone)
    if second is not first:
        daemons.append(second)
    second.start()
    wait_until(lambda: _count(postgres_url, "SELECT COUNT(DISTINCT account_id) FROM attempts "
                                            "WHERE outcome IS NOT NULL") == ACCOUNTS,
               120, "every account attempted after the lease", interval=0.5)
    wait_until(lambda: _count(postgres_url, "SELECT COUNT(*) FROM accounts WHERE lease_owner "
                                            "IS NOT NULL") == 0, 10, "no lease left")
    # Sweeps after the last attempt: none may decide or send again.
    await asyncio.sleep(3)
    assert second.terminate(timeout=30) == 0, second.new_log()[-2000:]
    attempts = store_rows(postgres_url, "SELECT account_id, attempt_id, at, outcome FROM attempts")
    assert len(attempts) == ACCOUNTS
    assert {a for a, *_ in attempts} == set(leases)
    # Decided after the lease the killed daemon held, not before.
    early = [(a, at) for a, _, at, _ in attempts if parse_rfc3339(at) < leases[a]]
    assert early == []
    assert {outcome for *_, outcome in attempts} == {"delivered"}
    sends = _sends(first, second)
    assert set(sends) == {attempt_id for _, attempt_id, *_ in attempts}
    assert set(sends.values()) == {1}
    _audit_verifies(second.config)
    print(f"\n{successor}: {ACCOUNTS} accounts held by the killed daemon until "
          f"{max(leases.values()):%H:%M:%S}, attempted from "
          f"{min(parse_rfc3339(at) for _, _, at, _ in attempts):%H:%M:%S}")


@pytest.mark.slow
@pytest.mark.postgresql
# Real time: the first slot is one to two minutes away, then the lease runs its 30 s.
@pytest.mark.timeout(420)
async def test_a_daemon_that_outlived_its_lease_commits_nothing_another_daemon_claimed_since(
        tmp_path: Path, broker: Broker, daemons: list[Daemon], postgres_url: str) -> None:
    now = datetime.now(UTC)
    number, zone = _number_in_daytime(now)
    first = _member(tmp_path, broker, postgres_url, "one", now, zone)
    second = _member(tmp_path, broker, postgres_url, "two", now, zone)
    daemons.extend([first, second])
    # Both running (a start writes to the audit chain), before anything is due.
    first.start()
    second.start()
    await publish_all(broker.port, _events(now, number, zone))
    wait_until(lambda: _count(postgres_url, "SELECT COUNT(*) FROM accounts WHERE plan_json IS "
                                            "NOT NULL AND lease_owner IS NULL") == ACCOUNTS,
               60, "every account planned", interval=0.3)
    assert _count(postgres_url, "SELECT COUNT(*) FROM attempts") == 0, "the slot came too soon"
    one, two = first.daemon_pid(), second.daemon_pid()
    held_by = "SELECT COUNT(*) FROM accounts WHERE lease_owner LIKE '%:{}:%'"
    holder = await asyncpg.connect(postgres_url)
    # The second daemon is frozen (a paused machine) until the first holds every account.
    os.kill(two, signal.SIGSTOP)
    try:
        lock = holder.transaction()
        await lock.start()
        await holder.execute("SELECT id FROM audit_head WHERE id = 1 FOR UPDATE")
        # The first claims the accounts when they fall due, decides them, and waits to commit
        # (behind the test's hold on the audit chain's head) past its lease.
        wait_until(lambda: _count(postgres_url, held_by.format(one)) == ACCOUNTS, 200,
                   "the first daemon holding every account's lease", interval=0.3)
        leases = {account: parse_rfc3339(until) for account, until in store_rows(
            postgres_url, "SELECT account_id, lease_until FROM accounts")}
        os.kill(two, signal.SIGCONT)
        # Once the first's lease has run out, the second claims and decides the same accounts,
        # and waits to commit too.
        wait_until(lambda: _count(postgres_url, held_by.format(two)) == ACCOUNTS, 120,
                   "the second daemon holding every account's lease", interval=0.3)
        await lock.rollback()
    finally:
        os.kill(two, signal.SIGCONT)
        await holder.close()
    wait_until(lambda: _count(postgres_url, "SELECT COUNT(DISTINCT account_id) FROM attempts "
                                            "WHERE outcome IS NOT NULL") == ACCOUNTS,
               60, "every account attempted", interval=0.5)
    wait_until(lambda: _count(postgres_url, "SELECT COUNT(*) FROM accounts WHERE lease_owner "
                                            "IS NOT NULL") == 0, 10, "no lease left")
    # Sweeps after the last attempt: none may decide or send again.
    await asyncio.sleep(3)
    assert first.terminate(timeout=30) == 0, first.new_log()[-2000:]
    assert second.terminate(timeout=30) == 0, second.new_log()[-2000:]
    attempts = store_rows(postgres_url, "SELECT account_id, attempt_id, at, outcome FROM attempts")
    assert sorted(a for a, *_ in attempts) == sorted(leases)  # one attempt per account
    # Each decided after the first's lease, by the second.
    assert [(a, at) for a, _, at, _ in attempts if parse_rfc3339(at) < leases[a]] == []
    assert {outcome for *_, outcome in attempts} == {"delivered"}
    assert _sends(first) == Counter()
    sends = _sends(second)
    assert set(sends) == {attempt_id for _, attempt_id, *_ in attempts}
    assert set(sends.values()) == {1}
    assert f"decisions for {ACCOUNTS} account(s) not committed" in first.log.read_text()
    assert "not committed" not in second.log.read_text()
    _audit_verifies(second.config)
