"""The web console over real HTTP, against a real daemon and its SQLite store."""

from __future__ import annotations

import io
import json
import os
import stat
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from markupsafe import escape
from yarl import URL

from dispatcher.config.settings import load_config
from dispatcher.store import AuditReader
from tests.integration.console_support import (
    HOSTILE,
    NUMBER,
    PASSWORD,
    REPLY_TEXT,
    TOKEN,
    USER,
    add_user,
    console_config,
    console_daemon,
    csrf_of,
    log_in,
    now_utc,
    seed,
    session,
)
from tests.integration.inprocess import running
from tests.support import Broker, make_config

# The tests that read or write the store's data run on both stores (store_url); the others,
# about logins and settings, on SQLite.


async def _console_records(store: AuditReader, status: str | None = None) -> list[dict[str, Any]]:
    records = []
    async for record in store.audit_records():
        if record["kind"] == "console" and (status is None or record["status"] == status):
            records.append(record)
    return records


@pytest.mark.sqlite
async def test_without_credentials_a_page_redirects_to_login_and_a_post_is_refused(
        tmp_path: Path, broker: Broker) -> None:
    config = console_config(tmp_path / "cfg", broker.url)
    async with console_daemon(config) as (_, base), session() as http:
        async with http.get(f"{base}/dead-letters?all=1", allow_redirects=False) as response:
            assert response.status == 303
            location = URL(response.headers["Location"])
            assert location.path == "/console/login"
            assert location.query["next"] == "/console/dead-letters?all=1"
        async with http.post(f"{base}/dead-letters/replay", data={"id": "1"},
                             allow_redirects=False) as response:
            assert response.status == 401
        async with http.get(f"{base}/", headers={"Authorization": "Bearer wrong"},
                            allow_redirects=False) as response:
            assert response.status == 401
            assert response.headers["WWW-Authenticate"] == "Bearer"


async def test_a_wrong_password_is_refused_and_audited_and_a_right_one_logs_in(
        tmp_path: Path, broker: Broker, store_url: str) -> None:
    config = console_config(tmp_path / "cfg", broker.url, store_url=store_url)
    async with console_daemon(config) as (daemon, base), session() as http:
        refused = await log_in(http, base, USER, "not the password at all")
        assert refused.status == 401
        assert not http.cookie_jar.filter_cookies(refused.url)
        unknown = await log_in(http, base, "mallory", PASSWORD)
        assert unknown.status == 401
        failures = await _console_records(daemon.store, "login_failed")
        assert [(r["user"], r["reason"]) for r in failures] == [
            (USER, "bad_password"), ("mallory", "unknown_user")]
        assert all(r["remote"] == "127.0.0.1" for r in failures)

        accepted = await log_in(http, base)
        assert accepted.status == 303
        assert accepted.headers["Location"] == "/console/"
        cookie = accepted.cookies["dispatcher_console"]
        assert cookie["httponly"]
        assert cookie["samesite"] == "Strict"
        assert cookie["path"] == "/console"
        async with http.get(f"{base}/") as page:
            assert page.status == 200
            assert 'id="user">alice<' in await page.text()
        assert [r["user"] for r in await _console_records(daemon.store, "login")] == [USER]


@pytest.mark.sqlite
async def test_repeated_failures_lock_the_name_and_the_lock_is_audited_once(
        tmp_path: Path, broker: Broker) -> None:
    config = console_config(tmp_path / "cfg", broker.url,
                            extra="max_failures = 3\nlockout_minutes = 5\n")
    async with console_daemon(config) as (daemon, base), session() as http:
        for _ in range(3):
            assert (await log_in(http, base, USER, "wrong password here")).status == 401
        # Locked now: even the right password is refused, and not checked.
        locked = await log_in(http, base)
        assert locked.status == 429
        assert len(await _console_records(daemon.store, "login_failed")) == 3
        assert [r["user"] for r in await _console_records(daemon.store, "locked")] == [USER]
        assert not await _console_records(daemon.store, "login")


@pytest.mark.sqlite
async def test_a_post_without_the_csrf_token_is_refused_with_403(
        tmp_path: Path, broker: Broker) -> None:
    config = console_config(tmp_path / "cfg", broker.url)
    async with console_daemon(config) as (daemon, base), session() as http:
        letter = await seed(daemon, now_utc())
        assert (await log_in(http, base)).status == 303
        for data in ({"id": str(letter)}, {"id": str(letter), "csrf": "forged"}):
            async with http.post(f"{base}/dead-letters/replay", data=data) as response:
                assert response.status == 403
        assert (await daemon.store.dead_letters())[-1].replayed_at is None
        assert not await _console_records(daemon.store, "action")
        async with http.post(f"{base}/logout", data={}, allow_redirects=False) as response:
            assert response.status == 403  # still logged in
        async with http.get(f"{base}/") as page:
            assert page.status == 200


async def test_replaying_a_dead_letter_with_the_csrf_token_is_done_and_audited(
        tmp_path: Path, broker: Broker, store_url: str) -> None:
    config = console_config(tmp_path / "cfg", broker.url, store_url=store_url)
    async with console_daemon(config) as (daemon, base), session() as http:
        letter = await seed(daemon, now_utc())
        await log_in(http, base)
        async with http.get(f"{base}/dead-letters") as page:
            token = csrf_of(await page.text())
        async with http.post(f"{base}/dead-letters/replay",
                             data={"id": str(letter), "csrf": token}) as response:
            assert response.status == 200
            assert "accepted as event e-later" in await response.text()
        actions = await _console_records(daemon.store, "action")
        assert [(r["user"], r["action"], r["dead_letter_id"], r["account_id"], r["result"])
                for r in actions] == [(USER, "replay_dead_letter", letter, HOSTILE, "accepted")]
        assert (await daemon.store.dead_letters([letter]))[0].replay_event_id == "e-later"
        async with http.post(f"{base}/logout", data={"csrf": token},
                             allow_redirects=False) as response:
            assert response.status == 303
        async with http.get(f"{base}/", allow_redirects=False) as response:
            assert response.status == 303  # the session is over
        assert [r["user"] for r in await _console_records(daemon.store, "logout")] == [USER]


@pytest.mark.sqlite
async def test_the_bearer_token_reads_every_page_and_acts_without_a_csrf_token(
        tmp_path: Path, broker: Broker) -> None:
    config = console_config(tmp_path / "cfg", broker.url)
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    async with console_daemon(config) as (daemon, base), aiohttp.ClientSession() as http:
        letter = await seed(daemon, now_utc())
        for path in ("/", "/queue", "/dead-letters", "/health", "/report",
                     f"/account?id={quote(HOSTILE, safe='')}"):
            async with http.get(base + path, headers=bearer, allow_redirects=False) as page:
                assert page.status == 200, path
        async with http.get(f"{base}/report/view", headers=bearer,
                            params={"since": "2020-01-01", "until": "2099-01-01"}) as report:
            assert report.status == 200
            text = await report.text()
            assert "hash chain" in text.lower()
            assert NUMBER not in text
        async with http.get(f"{base}/report/view", headers=bearer,
                            params={"since": "2026-12-02", "until": "2026-12-01"}) as report:
            assert report.status == 400
            assert "until must be after since" in await report.text()
        async with http.post(f"{base}/dead-letters/replay", data={"id": str(letter)},
                             headers=bearer) as response:
            assert response.status == 200
        [action] = await _console_records(daemon.store, "action")
        assert (action["user"], action["via"]) == ("token", "token")


@pytest.mark.sqlite
async def test_without_the_token_bearer_is_refused(tmp_path: Path, broker: Broker) -> None:
    config = console_config(tmp_path / "cfg", broker.url)
    async with (console_daemon(config, token=None) as (_, base), aiohttp.ClientSession() as http,
                http.get(f"{base}/", headers={"Authorization": "Bearer "},
                         allow_redirects=False) as page):
        assert page.status == 401


async def test_hostile_account_ids_and_reply_texts_are_escaped_and_numbers_masked(
        tmp_path: Path, broker: Broker, store_url: str) -> None:
    config = console_config(tmp_path / "cfg", broker.url, store_url=store_url)
    async with console_daemon(config) as (daemon, base), session() as http:
        await seed(daemon, now_utc())
        await log_in(http, base)
        pages = {}
        for path in ("/", "/dead-letters", f"/accounts?q={quote('<b>', safe='')}",
                     f"/account?id={quote(HOSTILE, safe='')}"):
            async with http.get(base + path) as page:
                assert page.status == 200, path
                pages[path] = await page.text()
        for path, text in pages.items():
            assert "<b>bold" not in text, path
            assert "<script>document" not in text, path
            assert NUMBER not in text, path
            assert str(escape(HOSTILE)) in text, path
        account = pages[f"/account?id={quote(HOSTILE, safe='')}"]
        assert str(escape(REPLY_TEXT.replace("+15125550177", "+15*******77"))) in account
        assert "+15*******77" in account
        assert "+15125550177" not in account
        assert "+15*******42" in account
        async with http.get(f"{base}/account",
                            params={"id": "<img src=x onerror=alert(1)>"}) as missing:
            assert missing.status == 404
            assert "<img" not in await missing.text()


async def test_the_search_box_goes_to_an_exact_account_and_lists_by_prefix(
        tmp_path: Path, broker: Broker, store_url: str) -> None:
    config = console_config(tmp_path / "cfg", broker.url, store_url=store_url)
    async with console_daemon(config) as (daemon, base), session() as http:
        await seed(daemon, now_utc())
        await log_in(http, base)
        async with http.get(f"{base}/accounts", params={"q": HOSTILE},
                            allow_redirects=False) as found:
            assert found.status == 303
            assert found.headers["Location"].startswith("/console/account?id=%3Cb%3E")
        async with http.get(f"{base}/accounts", params={"q": "<b>bo"}) as listing:
            assert str(escape(HOSTILE)) in await listing.text()
        async with http.get(f"{base}/accounts", params={"q": "nobody\x00"}) as none:
            assert none.status == 200


@pytest.mark.sqlite
async def test_a_disabled_console_is_not_found(tmp_path: Path, broker: Broker) -> None:
    config = console_config(tmp_path / "cfg", broker.url, extra="enabled = false\n")
    async with console_daemon(config) as (_, base), aiohttp.ClientSession() as http:
        for path in ("", "/", "/login"):
            async with http.get(base + path, headers={"Authorization": f"Bearer {TOKEN}"},
                                allow_redirects=False) as page:
                assert page.status == 404, path


@pytest.mark.sqlite
async def test_without_users_file_or_token_the_console_is_off(tmp_path: Path,
                                                               broker: Broker) -> None:
    config = make_config(tmp_path / "cfg", broker.url)
    async with (console_daemon(config, token=None) as (_, base), aiohttp.ClientSession() as http,
                http.get(f"{base}/login") as page):
        assert page.status == 404


@pytest.mark.sqlite
def test_adduser_writes_an_owner_only_file_and_refuses_bad_input(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from dispatcher.cli.main import main  # noqa: PLC0415

    config = console_config(tmp_path / "cfg", "mqtt://127.0.0.1:1")
    users = tmp_path / "cfg" / "users"
    assert stat.S_IMODE(users.stat().st_mode) == 0o600
    assert users.read_text().startswith("alice:scrypt$")
    assert add_user(config, "bob", "short") == (2, "")
    assert add_user(config, "bad name", "long enough password") == (2, "")
    code, out = add_user(config, "alice", "another long password")
    assert code == 0
    assert "changed the password of alice" in out
    assert len(users.read_text().splitlines()) == 1
    # Without --password-stdin the password is asked on a terminal: there is none here.
    monkeypatch.setattr(sys, "stdin", io.StringIO("a long enough password\n"))
    assert main(["console", "adduser", "carol", "--config", str(config)]) == 2
    assert "no terminal to ask for the password on: use --password-stdin" in (
        capsys.readouterr().err)
    assert "carol" not in users.read_text()


@pytest.mark.sqlite
async def test_a_users_file_readable_by_others_stops_the_daemon_with_a_clear_problem(
        tmp_path: Path, broker: Broker) -> None:
    config = console_config(tmp_path / "cfg", broker.url)
    users = tmp_path / "cfg" / "users"
    os.chmod(users, 0o644)
    from dispatcher.errors import ConfigError  # noqa: PLC0415

    with pytest.raises(ConfigError) as raised:
        async with running(config):
            pass
    [problem] = raised.value.problems
    assert problem.key == "console.users_file"
    assert "chmod 600" in problem.reason


@pytest.mark.sqlite
def test_the_console_section_is_checked_with_file_key_and_reason(tmp_path: Path) -> None:
    config = make_config(tmp_path / "cfg", "mqtt://127.0.0.1:1883",
                         extra="[console]\nsession_minutes = 0\nusers_filee = \"x\"\n")
    from dispatcher.errors import ConfigError  # noqa: PLC0415

    with pytest.raises(ConfigError) as raised:
        load_config(config)
    found = {(p.key, p.reason) for p in raised.value.problems}
    assert ("console.users_filee", "unknown key") in found
    assert any(key == "console.session_minutes" for key, _ in found)
    assert json.dumps(sorted(found))  # every problem names its key


@pytest.mark.sqlite
def test_run_and_check_config_name_a_console_nobody_could_use(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str],
                                                              ) -> None:
    from dispatcher.cli.main import main  # noqa: PLC0415

    config = make_config(tmp_path / "cfg", "mqtt://127.0.0.1:1",
                         extra="[console]\nenabled = true\n")
    monkeypatch.delenv("DISPATCHER_CONSOLE_TOKEN", raising=False)
    assert main(["run", "--config", str(config)]) == 2
    said = capsys.readouterr().err
    assert f"dispatcher: cannot run: {config}: console.enabled: is true, but neither" in said
    monkeypatch.setenv("DISPATCHER_CONSOLE_TOKEN", "short")
    assert main(["run", "--config", str(config)]) == 2
    assert "DISPATCHER_CONSOLE_TOKEN must be at least 32" in capsys.readouterr().err
    out = io.StringIO()
    assert main(["check-config", "--config", str(config)], out=out) == 0
    assert "note: `dispatcher run` will refuse here: " in out.getvalue()
    assert "console.enabled: DISPATCHER_CONSOLE_TOKEN must be at least 32" in out.getvalue()


@pytest.mark.sqlite
async def test_forms_sent_from_another_site_are_refused(tmp_path: Path, broker: Broker) -> None:
    config = console_config(tmp_path / "cfg", broker.url)
    async with console_daemon(config) as (daemon, base), session() as http:
        letter = await seed(daemon, now_utc())
        evil = {"Origin": "https://evil.example"}
        async with http.post(f"{base}/login", data={"user": USER, "password": PASSWORD},
                             headers=evil, allow_redirects=False) as response:
            assert response.status == 403
        assert not await _console_records(daemon.store)
        await log_in(http, base)
        async with http.get(f"{base}/dead-letters") as page:
            token = csrf_of(await page.text())
        async with http.post(f"{base}/dead-letters/replay", headers=evil,
                             data={"id": str(letter), "csrf": token}) as response:
            assert response.status == 403
        assert not await _console_records(daemon.store, "action")
        same = {"Origin": base.removesuffix("/console")}
        async with http.post(f"{base}/dead-letters/replay", headers=same,
                             data={"id": str(letter), "csrf": token}) as response:
            assert response.status == 200
        assert len(await _console_records(daemon.store, "action")) == 1
