"""Dispatch benchmark: the engine sending through the Twilio channel to a local fake provider.

N accounts fall due at the same instant (a virtual clock decides when; sending runs in real time),
the channel is configured for R SMS/s, and the fake provider records when each request arrived.
It prints the sustained rate next to the configured limit, and the most requests seen in any one
second, which must never exceed the limit.
Run: `.venv/bin/python -m bench.dispatch [--accounts 2000] [--rate 100] [--daemons 1,2,3]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from channels.twilio import TwilioChannel, TwilioConfig
from dispatcher.config.settings import load_config
from dispatcher.contact.account_facts import policy_of
from dispatcher.contact.engine import Engine
from dispatcher.ingest.classify import classify
from dispatcher.store import open_store
from tests.fake_twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio

ROOT = Path(__file__).resolve().parents[1]
START = datetime(2026, 12, 7, 6, 0, tzinfo=UTC)  # a Monday morning, before 08:00 in Chicago
# Central-time area codes, a hundred numbers each (555-0100 to 555-0199 are valid everywhere).
AREAS = ("512", "214", "713", "210", "817", "469", "972", "281", "832", "312", "773", "630",
         "847", "612", "651", "314", "816", "504", "615", "205")


def make_events(accounts: int) -> list[bytes]:
    """One early-stage account each (its first attempt is a text), all in Chicago."""
    payloads = []
    for n in range(accounts):
        number = f"+1{AREAS[n // 100 % len(AREAS)]}555{100 + n % 100:04d}"
        event: dict[str, Any] = {
            "schema": 1, "event_id": f"e-{n}", "type": "account.overdue",
            "occurred_at": START.isoformat(), "account_id": f"A-{n:06d}",
            "data": {"days_past_due": 2, "amount_due": "20.00", "currency": "USD",
                     "debtor": {"name": "Pat Doe", "timezone": "America/Chicago",
                                "phones": [{"number": number, "type": "mobile",
                                            "sms_consent": True, "call_consent": True}]}}}
        payloads.append(json.dumps(event).encode())
    return payloads


def busiest_second(times: list[float]) -> int:
    """The most request arrivals within any window of one second."""
    most, left = 0, 0
    for right, moment in enumerate(times):
        while moment - times[left] >= 1.0:
            left += 1
        most = max(most, right - left + 1)
    return most


async def main() -> None:
    """Run and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--accounts", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--daemons", metavar="N,N,...",
                        help="measure daemons sharing one PostgreSQL store instead, e.g. 1,2,3: "
                             "every daemon's channel at --rate, the fleet taking its tokens from "
                             "one bucket, beside one daemon on SQLite (bench.fleet's dispatch)")
    args = parser.parse_args()
    if args.daemons:
        from bench import fleet  # noqa: PLC0415 - needs PostgreSQL and Mosquitto; only here

        await fleet.main(["--parts", "dispatch", "--daemons", args.daemons, "--rate",
                          str(args.rate), "--dispatch-accounts", str(args.accounts)])
        return
    config = load_config(ROOT / "config" / "dispatcher.toml", {})
    async with FakeTwilio() as fake:
        fake.faults.drop_callbacks = True  # outcomes are not what is measured here
        channel = TwilioConfig(public_url="http://127.0.0.1:9", api_base=fake.base_url,
                               from_number="+15005550006", messages_per_second=args.rate,
                               calls_per_second=args.rate)
        twilio = TwilioChannel(channel, ACCOUNT_SID, AUTH_TOKEN)
        with tempfile.TemporaryDirectory() as folder:
            async with open_store(Path(folder) / "dispatch.db") as store:
                await store.record_batch([classify(p, "bench", 65536)
                                          for p in make_events(args.accounts)],
                                         now=START, config_version=config.version)
                engine = Engine(store, twilio, policy_of(config))
                await engine.sweep(START)  # plans every account's first text
                due = await store.next_due_at()
                assert due is not None
                started = time.perf_counter()
                sent = 0
                moment = due
                while sent < args.accounts:
                    stats = await engine.sweep(moment)
                    sent += stats.sent
                    moment = max(moment, await store.next_due_at() or moment)
                elapsed = time.perf_counter() - started
        await twilio.close()
        times = sorted(r.at for r in fake.received("POST", "Messages"))
    sustained = (len(times) - 1) / (times[-1] - times[0])
    print(f"accounts (texts sent):        {len(times):,}")
    print(f"configured limit:             {args.rate:,.1f} SMS/s")
    print(f"sustained dispatch rate:      {sustained:,.1f} SMS/s  "
          f"({sustained / args.rate:.1%} of the limit; target >= 95%)")
    print(f"most in any one second:       {busiest_second(times)}  (must never exceed "
          f"{args.rate:g})")
    print(f"wall time including decisions: {elapsed:.1f} s")


if __name__ == "__main__":
    asyncio.run(main())
