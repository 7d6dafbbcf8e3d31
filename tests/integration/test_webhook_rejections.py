"""Requests the webhook server refuses, over real HTTP: counted, audited in aggregate, no traceback.

An unauthenticated caller must not be able to grow the audit log: every refusal is counted in
/metrics at once, and the audit log gets at most one record per route per minute, with the count
and a short sample. Malformed bodies are refused with 400 (413 over the size limit), never 500.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from multidict import MultiDict
from twilio.request_validator import RequestValidator

from dispatcher.config.settings import load_config
from dispatcher.domain.clock import VirtualClock
from dispatcher.service.app import Dispatcher
from dispatcher.store import open_store
from tests.integration.inprocess import wait_for
from tests.support import Broker, make_config, query, store_of

TOKEN = "test-auth-token-0123456789abcdef"
PUBLIC = "https://dispatcher.example.org"
ROUTES = ("/twilio/sms/status", "/twilio/call/status", "/twilio/sms/inbound",
          "/twilio/call/twiml")
START = datetime(2026, 12, 1, 15, 0, 10, tzinfo=UTC)
FORM = "application/x-www-form-urlencoded"


@dataclass
class Server:
    """A running daemon with a virtual clock and an HTTP client for its webhook server."""

    daemon: Dispatcher
    clock: VirtualClock
    http: aiohttp.ClientSession
    config: Path

    async def post(self, path: str, body: bytes | aiohttp.FormData | dict[str, str], *,
                   headers: dict[str, str] | None = None) -> int:
        """POST to the webhook server; the status code."""
        url = f"http://127.0.0.1:{self.daemon.webhook_port}{path}"
        if isinstance(body, bytes) and len(body) > 65536:
            body = io.BytesIO(body)  # type: ignore[assignment]  # streamed, as aiohttp asks
        async with self.http.post(url, data=body, headers=headers or {}) as response:
            await response.read()
            return response.status

    def audit_size(self) -> tuple[int, int]:
        """(records, bytes) of the audit log, read from outside the daemon."""
        [(count, size)] = query(self.config, "SELECT COUNT(*), COALESCE(SUM(LENGTH(record)), 0) "
                                             "FROM audit")
        return int(count), int(size)

    def webhook_records(self) -> list[dict[str, Any]]:
        """The `webhook` audit records so far."""
        return [json.loads(text) for (text,) in query(
            self.config, "SELECT record FROM audit WHERE kind = 'webhook' ORDER BY seq")]

    def rejected(self) -> dict[tuple[str, str], float]:
        """dispatcher_webhooks_rejected_total by (route, reason), from /metrics."""
        return rejected_counts(self.daemon.metrics.render().decode())


def rejected_counts(text: str) -> dict[tuple[str, str], float]:
    """Parse the rejection counter out of the Prometheus text."""
    found = {}
    for line in text.splitlines():
        if line.startswith("dispatcher_webhooks_rejected_total{"):
            labels = dict(re.findall(r'(\w+)="([^"]*)"', line))
            found[(labels["route"], labels["reason"])] = float(line.rsplit(" ", 1)[1])
    return found


@asynccontextmanager
async def serving(broker: Broker, folder: Path, store_url: str) -> AsyncIterator[Server]:
    """The real daemon with Twilio's routes, on a virtual clock; stopped at the end."""
    path = make_config(folder, broker.url, store_url=store_url,
                       extra=f'public_url = "{PUBLIC}"\n[contact]\nsweep_seconds = 60\n')
    config = load_config(path, {})
    clock = VirtualClock(START)
    async with Dispatcher(config, clock=clock, environ={"TWILIO_AUTH_TOKEN": TOKEN}) as daemon:
        task = asyncio.create_task(daemon.run())
        await wait_for(lambda: daemon.health.mqtt_connected, 10, "connected")
        try:
            async with aiohttp.ClientSession() as http:
                yield Server(daemon, clock, http, path)
        finally:
            daemon.request_stop()
            await task


@pytest.fixture
async def server(broker: Broker, tmp_path: Path, store_url: str) -> AsyncIterator[Server]:
    async with serving(broker, tmp_path / "cfg", store_url) as running:
        yield running


def no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert errors == []
    assert "Traceback" not in caplog.text


async def flood(server: Server, route: str, count: int) -> list[int]:
    """`count` unauthenticated POSTs with ~8,000-character query strings: half unsigned, half
    with a made-up signature."""
    gate = asyncio.Semaphore(16)

    async def one(n: int) -> int:
        headers = {"X-Twilio-Signature": "bm90IGEgc2lnbmF0dXJl"} if n % 2 else {}
        async with gate:
            return await server.post(f"{route}?attempt=at-{n}&pad={'x' * 8000}",
                                     {"From": "+15125550100", "Body": f"STOP {n}"},
                                     headers=headers)

    return list(await asyncio.gather(*(one(n) for n in range(count))))


async def test_a_flood_of_unsigned_requests_is_counted_and_audited_once_per_route_per_minute(
        server: Server, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    records_before, bytes_before = server.audit_size()
    sent = 500
    for route in ROUTES:
        assert set(await flood(server, route, sent)) == {403}
    assert server.rejected() == {
        **{(route, "missing_signature"): sent // 2 for route in ROUTES},
        **{(route, "bad_signature"): sent // 2 for route in ROUTES}}
    # Within the minute nothing more than one record per route can have been written.
    assert server.audit_size()[0] - records_before <= len(ROUTES)

    # The minute ends and no request follows: the aggregate is written all the same.
    server.clock.advance(timedelta(minutes=1))
    await wait_for(lambda: len(server.webhook_records()) == len(ROUTES), 10, "aggregates")
    records_after, bytes_after = server.audit_size()
    assert records_after - records_before == len(ROUTES)
    assert bytes_after - bytes_before < len(ROUTES) * 2000  # the flood sent 16 MB
    by_route = {r["route"]: r for r in server.webhook_records()}
    assert set(by_route) == set(ROUTES)
    for route, record in by_route.items():
        assert record["status"] == "rejected"
        assert record["count"] == sent
        assert record["reasons"] == {"bad_signature": sent // 2, "missing_signature": sent // 2}
        assert record["window_start"] == "2026-12-01T15:00:00.000Z"
        sample = record["sample"]
        assert sample["path"].startswith(f"{route}?attempt=at-")
        assert len(sample["path"]) <= 200
        assert sample["remote"] == "127.0.0.1"
    # The application log, too, got a bounded number of lines, not one per request.
    lines = [r for r in caplog.records if r.name == "dispatcher.twilio_webhooks"]
    assert len(lines) <= 2 * len(ROUTES)
    # Nothing an attacker sent was acted on.
    kinds = {r["kind"] for r in (await _all_records(server))}
    assert not kinds & {"opt_out", "outcome", "reply"}
    no_tracebacks(caplog)


async def _all_records(server: Server) -> list[dict[str, Any]]:
    return [r async for r in server.daemon.store.audit_records()]


async def test_each_minute_gets_its_own_aggregate_and_quiet_minutes_none(
        server: Server) -> None:
    route = "/twilio/sms/status"
    for minute, count in enumerate((3, 0, 0, 5)):
        for n in range(count):
            assert await server.post(f"{route}?attempt=m{minute}-{n}", {"a": "b"}) == 403
        server.clock.advance(timedelta(minutes=1))
    await wait_for(lambda: len(server.webhook_records()) == 2, 10, "two aggregates")
    first, second = server.webhook_records()
    assert (first["count"], first["window_start"]) == (3, "2026-12-01T15:00:00.000Z")
    assert (second["count"], second["window_start"]) == (5, "2026-12-01T15:03:00.000Z")
    assert first["sample"]["path"] == f"{route}?attempt=m0-0"
    assert server.rejected() == {(route, "missing_signature"): 8}


async def test_an_open_minute_is_written_at_shutdown(broker: Broker, tmp_path: Path,
                                                     store_url: str) -> None:
    async with serving(broker, tmp_path / "cfg", store_url) as server:
        for n in range(7):
            assert await server.post(f"/twilio/call/twiml?attempt=a{n}", {"a": "b"},
                                     headers={"X-Twilio-Signature": "forged"}) == 403
    async with open_store(store_of(server.config), create=False) as store:
        [record] = [r async for r in store.audit_records() if r["kind"] == "webhook"]
    assert (record["route"], record["count"], record["reasons"]) == (
        "/twilio/call/twiml", 7, {"bad_signature": 7})


def signed_headers(path: str, form: dict[str, str] | list[tuple[str, str]]) -> dict[str, str]:
    params = MultiDict(form)
    return {"X-Twilio-Signature": RequestValidator(TOKEN).compute_signature(PUBLIC + path,
                                                                             params),
            "Content-Type": FORM}


def multipart_with_a_file() -> aiohttp.FormData:
    data = aiohttp.FormData()
    data.add_field("From", "+15125550100")
    data.add_field("Body", b"\x00\xff binary", filename="evil.bin",
                   content_type="application/octet-stream")
    return data


MALFORMED: list[tuple[str, bytes | aiohttp.FormData, dict[str, str], int, str]] = [
    ("raw bytes that are not UTF-8", b"From=%2B15125550100&Body=\xff\xfe\xfd",
     {"Content-Type": FORM}, 400, "malformed_body"),
    ("percent-encoded bytes that are not UTF-8", b"From=%2B15125550100&Body=%FF%FE",
     {"Content-Type": FORM}, 400, "malformed_body"),
    ("a NUL byte", b"From=%2B15125550100&Body=STOP%00", {"Content-Type": FORM}, 400,
     "malformed_body"),
    ("thousands of fields", b"&".join(b"k%d=v" % n for n in range(5000)),
     {"Content-Type": FORM}, 400, "malformed_body"),
    ("a multipart body with a file", multipart_with_a_file(), {}, 400, "unsupported_content_type"),
    ("a JSON body", b'{"From": "+15125550100", "Body": "STOP"}',
     {"Content-Type": "application/json"}, 400, "unsupported_content_type"),
    ("plain text", b"STOP", {"Content-Type": "text/plain"}, 400, "unsupported_content_type"),
    ("no content type", b"From=%2B15125550100", {"Content-Type": ""}, 400,
     "unsupported_content_type"),
    ("a body over client_max_size", b"Body=" + b"x" * (1024 * 1024 + 10),
     {"Content-Type": FORM}, 413, "too_large"),
]


@pytest.mark.parametrize(("case", "body", "headers", "status", "reason"), MALFORMED,
                         ids=[case[0] for case in MALFORMED])
async def test_a_malformed_body_is_refused_counted_and_logs_no_traceback(
        server: Server, caplog: pytest.LogCaptureFixture, case: str,
        body: bytes | aiohttp.FormData, headers: dict[str, str], status: int,
        reason: str) -> None:
    caplog.set_level(logging.INFO)
    path = "/twilio/sms/inbound"
    # A signature is sent, but it can only be checked against a body that parses.
    assert await server.post(path, body, headers={"X-Twilio-Signature": "c2lnbmVk",
                                                  **headers}) == status, case
    assert server.rejected() == {(path, reason): 1}
    server.clock.advance(timedelta(minutes=1))
    await wait_for(lambda: len(server.webhook_records()) == 1, 10, "the aggregate")
    [record] = server.webhook_records()
    assert record["reasons"] == {reason: 1}
    assert record["status"] == "rejected"
    assert not [r async for r in server.daemon.store.audit_records()
                if r["kind"] in ("opt_out", "reply")]
    no_tracebacks(caplog)


async def test_duplicate_keys_in_a_signed_form_are_read_as_twilio_signs_them(
        server: Server, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    path = "/twilio/sms/inbound"
    form = [("MessageSid", "SMdup"), ("From", "+15125550100"), ("Body", "hello"),
            ("Body", "there")]
    body = "&".join(f"{k}={v}".replace("+", "%2B") for k, v in form).encode()
    assert await server.post(path, body, headers=signed_headers(path, form)) == 200
    # Unsigned, the same body is only counted.
    assert await server.post(path, body, headers={"Content-Type": FORM}) == 403
    assert server.rejected() == {(path, "missing_signature"): 1}
    no_tracebacks(caplog)


async def test_a_well_formed_signed_request_still_works(server: Server) -> None:
    path = "/twilio/sms/inbound"
    form = {"MessageSid": "SMok", "From": "+15125550100", "Body": "HELP"}
    assert await server.post(path, form, headers=signed_headers(path, form)) == 200
    assert server.rejected() == {}


async def test_a_query_that_is_not_utf8_is_only_counted(
        server: Server, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    path = "/twilio/sms/status?attempt=%FF%FE%00&x=%E2%28%A1"
    assert await server.post(path, {"MessageStatus": "delivered"},
                             headers={"X-Twilio-Signature": "forged"}) == 403
    assert server.rejected() == {("/twilio/sms/status", "bad_signature"): 1}
    server.clock.advance(timedelta(minutes=1))
    await wait_for(lambda: len(server.webhook_records()) == 1, 10, "the aggregate")
    [record] = server.webhook_records()
    assert record["sample"]["path"].startswith("/twilio/sms/status?attempt=%FF%FE%00&x=")
    no_tracebacks(caplog)
