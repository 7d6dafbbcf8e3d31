"""Driving headless Chromium over the Chrome DevTools Protocol, with aiohttp's websocket client."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

LISTENING = re.compile(rb"DevTools listening on (ws://\S+)")


def chromium() -> str:
    """Debian's chromium, or the test fails saying how to get it."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail("Debian's `chromium` is needed for the console's browser test: "
                    "apt-get install -y chromium (bash scripts/test installs it when missing)")
    return found


class Page:
    """One tab, attached through the browser's websocket with a session of its own."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, session_id: str | None) -> None:
        self._ws = ws
        self._session = session_id
        self._ids = itertools.count(1)

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one command and wait for its answer (events on the way are skipped)."""
        number = next(self._ids)
        message: dict[str, Any] = {"id": number, "method": method, "params": params}
        if self._session:
            message["sessionId"] = self._session
        await self._ws.send_str(json.dumps(message))
        async with asyncio.timeout(30):
            while True:
                answer = json.loads((await self._ws.receive()).data)
                if answer.get("id") == number and answer.get("sessionId") == self._session:
                    if "error" in answer:
                        raise AssertionError(f"{method}: {answer['error']}")
                    result: dict[str, Any] = answer["result"]
                    return result

    async def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (awaited when a promise)."""
        result = await self.send("Runtime.evaluate", expression=expression,
                                 returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, what: str, seconds: float = 20) -> Any:
        """Poll an expression until it is truthy; its value."""
        deadline = asyncio.get_running_loop().time() + seconds
        while True:
            try:
                value = await self.evaluate(expression)
            except AssertionError:  # the page is between two documents
                value = None
            if value:
                return value
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"timed out after {seconds}s waiting for {what}")
            await asyncio.sleep(0.05)

    async def goto(self, url: str) -> None:
        """Navigate and wait until the new document has loaded."""
        await self.evaluate("window.__before = true")
        await self.send("Page.navigate", url=url)
        await self.wait_for("!window.__before && document.readyState === 'complete'",
                            f"{url} to load")

    async def submit(self, form_expression: str, expected_path: str) -> None:
        """Submit a form and wait for the page at `expected_path` to load."""
        await self.evaluate("window.__before = true")
        await self.evaluate(f"({form_expression}).requestSubmit()")
        await self.wait_for(f"!window.__before && location.pathname === "
                            f"{json.dumps(expected_path)} && document.readyState === 'complete'",
                            f"{expected_path} after submitting")


@asynccontextmanager
async def browser(profile: Path) -> AsyncIterator[Page]:
    """A headless Chromium of the test's own and one blank tab in it; closed at the end."""
    process = await asyncio.create_subprocess_exec(
        chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--disable-extensions", "--disable-background-networking", "--disable-sync",
        "--no-proxy-server", "--remote-debugging-address=127.0.0.1",
        "--remote-debugging-port=0", f"--user-data-dir={profile}", "about:blank",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    try:
        assert process.stderr is not None
        url = None
        async with asyncio.timeout(60):
            while url is None:
                line = await process.stderr.readline()
                if not line:
                    raise AssertionError("chromium exited before it listened")
                if found := LISTENING.search(line):
                    url = found.group(1).decode()
        async with aiohttp.ClientSession() as http, http.ws_connect(
                url, max_msg_size=64 * 1024 * 1024) as ws:
            root = Page(ws, None)
            target = await root.send("Target.createTarget", url="about:blank")
            attached = await root.send("Target.attachToTarget", targetId=target["targetId"],
                                       flatten=True)
            page = Page(ws, attached["sessionId"])
            await page.send("Page.enable")
            await page.send("Runtime.enable")
            yield page
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()
