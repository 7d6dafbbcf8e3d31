"""Helpers for the console's tests: a daemon with the console on, a user, and data to show."""

from __future__ import annotations

import io
import os
import re
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

from dispatcher.cli.main import main
from dispatcher.console.sources import PlannedAgenda
from dispatcher.service.app import Dispatcher
from dispatcher.store import Accepted, Rejected
from tests.integration.inprocess import running, wait_for_async
from tests.support import SQLITE_STORE_URL, encode, make_config, overdue_at

TOKEN = "t0ken-for-automation-" + "x" * 24
USER, PASSWORD = "alice", "correct horse battery staple"
# Valid as an account id (no '/', no whitespace), and HTML if a page failed to escape it.
HOSTILE = "<b>bold<i>x&amp;'\"acct"
REPLY_TEXT = "<script>document.title='pwned'</script> ring me on +15125550177"
NUMBER = "+15125550142"


def console_config(folder: Path, broker_url: str, extra: str = "",
                   store_url: str = SQLITE_STORE_URL) -> Path:
    """A config folder with `[console] users_file = "users"`, and USER in that file."""
    config = make_config(folder, broker_url, extra="[console]\nusers_file = \"users\"\n" + extra,
                         store_url=store_url)
    add_user(config, USER, PASSWORD)
    return config


def add_user(config: Path, name: str, password: str) -> tuple[int, str]:
    """`dispatcher console adduser NAME --password-stdin`, the password on standard input."""
    out = io.StringIO()
    stdin, sys.stdin = sys.stdin, io.StringIO(password + "\n")
    try:
        code = main(["console", "adduser", name, "--password-stdin", "--config", str(config)],
                    out=out)
    finally:
        sys.stdin = stdin
    return code, out.getvalue()


@asynccontextmanager
async def console_daemon(config: Path, *, token: str | None = TOKEN,
                         ) -> AsyncIterator[tuple[Dispatcher, str]]:
    """A running daemon (the token in its environment when given) and the console's base URL."""
    environ = {k: v for k, v in os.environ.items() if k != "DISPATCHER_CONSOLE_TOKEN"}
    if token is not None:
        environ["DISPATCHER_CONSOLE_TOKEN"] = token
    async with running(config, environ=environ) as daemon:
        yield daemon, f"http://127.0.0.1:{daemon.webhook_port}/console"


async def seed(daemon: Dispatcher, now: datetime) -> int:
    """The hostile account (planned, with a reply to read) and a dead letter of it; the dead
    letter's id."""
    event = overdue_at(now - timedelta(hours=1), HOSTILE, 10, NUMBER, "America/Chicago", "US-TX")
    store = daemon.store
    from dispatcher.ingest.classify import classify  # noqa: PLC0415 - the real intake check

    accepted = classify(encode(event), "collections/events/test", 65536)
    assert isinstance(accepted, Accepted), accepted
    await store.record_batch([accepted], now=now, config_version=daemon.config.version)
    await store.append_audit([{"kind": "reply", "to": NUMBER, "account_id": HOSTILE,
                               "status": "free_text", "detail": REPLY_TEXT,
                               "provider_sid": "SM0"}], now=now)
    # A later event of the account, refused as too large (the limit was lower then): valid
    # now, so that replaying it stores it.
    later = dict(event, event_id="e-later", type="account.hold",
                 occurred_at=now.isoformat(), data={"reason": "dispute"})
    await store.record_batch([Rejected(encode(later), "collections/events/test",
                                       "payload_too_large", "over the limit then",
                                       {"event_id": "e-later", "event_type": "account.hold",
                                        "account_id": HOSTILE})],
                             now=now, config_version=daemon.config.version)
    letters = await store.dead_letters()

    async def planned() -> bool:
        rows = await PlannedAgenda(store).agenda(now, 10)
        return HOSTILE in {row.account_id for row in rows}

    await wait_for_async(planned, 10, "the engine to plan the account")
    return letters[-1].id


def csrf_of(html: str) -> str:
    """The CSRF token of the first form of a page."""
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF field on the page"
    return found.group(1)


async def log_in(http: aiohttp.ClientSession, base: str, user: str = USER,
                 password: str = PASSWORD) -> aiohttp.ClientResponse:
    """POST the login form; the response, not followed."""
    async with http.post(f"{base}/login", data={"user": user, "password": password,
                                                "next": "/console/"},
                         allow_redirects=False) as response:
        await response.read()
        return response


def session() -> aiohttp.ClientSession:
    """A client that keeps the cookies of 127.0.0.1."""
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


def now_utc() -> datetime:
    """Now, UTC."""
    return datetime.now(UTC)


Json = dict[str, Any]
