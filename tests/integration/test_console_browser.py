"""The console in headless Chromium: log in, find an account, act on it (replay its dead letter,
resolve its work-queue item), and see each act audited with the person's name."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote

import pytest

from dispatcher.contact.replies import handle_reply
from dispatcher.domain.queue import Reason, State
from dispatcher.queue.items import list_items
from tests.integration.cdp import browser
from tests.integration.console_support import (
    HOSTILE,
    NUMBER,
    PASSWORD,
    USER,
    console_config,
    console_daemon,
    now_utc,
    seed,
)
from tests.support import Broker

pytestmark = pytest.mark.sqlite


async def test_log_in_find_an_account_act_on_it_and_see_each_act_audited(
        tmp_path: Path, broker: Broker) -> None:
    config = console_config(tmp_path / "cfg", broker.url)
    async with console_daemon(config) as (daemon, base), browser(tmp_path / "profile") as page:
        letter = await seed(daemon, now_utc())

        await page.goto(f"{base}/dead-letters")
        assert await page.evaluate("location.pathname") == "/console/login"
        await page.evaluate(f"document.querySelector('input[name=user]').value = "
                            f"{json.dumps(USER)}; document.querySelector('input[name=password]')"
                            f".value = {json.dumps(PASSWORD)}")
        await page.submit("document.querySelector('form.login')", "/console/dead-letters")
        assert await page.evaluate("document.getElementById('user').textContent") == USER
        # Read by a script, the cookie is not there: HttpOnly.
        assert await page.evaluate("document.cookie") == ""

        # Find the account by the search box, typed as a person would.
        await page.evaluate(f"document.querySelector('input[name=q]').value = "
                            f"{json.dumps(HOSTILE)}")
        await page.submit("document.querySelector('form[role=search]')", "/console/account")
        assert await page.evaluate("document.getElementById('account-id').textContent") \
            == HOSTILE
        # The hostile id and the reply text are text, not markup; the script never ran.
        assert await page.evaluate("document.querySelectorAll('main b, main i, main script')"
                                   ".length") == 0
        assert "pwned" not in await page.evaluate("document.title")
        trail = await page.evaluate("document.getElementById('trail').innerText")
        assert "<script>document.title='pwned'</script>" in trail
        assert "+15*******77" in trail
        assert "console" not in trail

        # Replay the account's dead letter.
        await page.goto(f"{base}/dead-letters")
        await page.submit(f"document.getElementById('replay-{letter}').form",
                          "/console/dead-letters/replay")
        assert "accepted as event e-later" in await page.evaluate(
            "document.getElementById('message').textContent")

        # The account page shows who did it.
        await page.evaluate("document.querySelector('#message + p a').click()")
        await page.wait_for("location.pathname === '/console/account' && "
                            "document.readyState === 'complete' && "
                            "document.getElementById('trail') !== null", "the account page")
        rows = await page.evaluate(
            "[...document.querySelectorAll('#trail tbody tr')].map("
            "r => [...r.cells].map(c => c.textContent))")
        console_rows = [r for r in rows if r[2] == "console"]
        assert len(console_rows) == 1
        _, _, kind, status, user, _, detail = console_rows[0]
        assert (kind, status, user) == ("console", "action", USER)
        assert '"action":"replay_dead_letter"' in detail
        assert f'"dead_letter_id":{letter}' in detail
        assert any(r[2] == "event" and '"replay_of":' in r[6] for r in rows)

        # The debtor texts that they dispute the debt: contact is held at once, and the work
        # queue asks a person. Resolve it in the browser, as a person would.
        await handle_reply(daemon.store, NUMBER, "I dispute this debt", now_utc(),
                           config_version=daemon.config.version, max_payload_bytes=65536,
                           message_id="SM-dispute")
        await page.goto(f"{base}/queue")
        row = await page.evaluate(
            "[...document.querySelectorAll('#queue tbody tr')].findIndex(r => "
            f"r.cells[1].textContent === 'dispute' && r.cells[3].textContent === "
            f"{json.dumps(HOSTILE)})")
        assert row >= 0, await page.evaluate("document.getElementById('queue').innerText")
        form = f"document.querySelectorAll('#queue tbody tr')[{row}].querySelector('form')"
        await page.evaluate(f"{form}.querySelector('select[name=action]').value = 'resume'; "
                            f"{form}.querySelector('input[name=note]').value = "
                            "'statement and proof of debt sent'")
        await page.submit(form, "/console/queue/resolve")
        assert "resolved: resume" in await page.evaluate(
            "document.getElementById('message').textContent")
        [item] = await list_items(daemon.store, state=State.RESOLVED, reason=Reason.DISPUTE)
        assert item.account_id == HOSTILE

        # The account's trail shows the person's decision, by name.
        await page.goto(f"{base}/account?id={quote(HOSTILE)}")
        rows = await page.evaluate(
            "[...document.querySelectorAll('#trail tbody tr')].map("
            "r => [...r.cells].map(c => c.textContent))")
        decided = [r for r in rows if r[2] == "queue" and '"action":"resume"' in r[6]]
        assert len(decided) == 1, rows
        assert decided[0][4] == USER
        assert "statement and proof of debt sent" in decided[0][6]

        # Log out: the next page asks to log in again.
        await page.submit("document.querySelector('header form.inline')", "/console/login")
        await page.goto(f"{base}/health")
        assert await page.evaluate("location.pathname") == "/console/login"
        logout = [r async for r in daemon.store.audit_records()
                  if r["kind"] == "console" and r["status"] == "logout"]
        assert [r["user"] for r in logout] == [USER]
