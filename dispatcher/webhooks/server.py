"""The HTTP server: health, metrics, and the provider's callbacks (dispatcher/webhooks/twilio)."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

from dispatcher.service.metrics import Metrics
from dispatcher.service.problems import Problems
from dispatcher.store import HealthStore

log = logging.getLogger("dispatcher.webhooks")

PING_SECONDS = 2.0  # how long /healthz waits for the store's write lock


@dataclass
class Health:
    """What `/healthz` reports; updated by the daemon's loops."""

    mqtt_connected: bool = False
    due_lag_seconds: float = 0.0  # how late the oldest due account is
    problems: Problems = field(default_factory=Problems)
    # How long the oldest received batch has waited to be committed, and how long is too long.
    pending_seconds: Callable[[], float] = lambda: 0.0
    stall_seconds: float = 60.0

    def reasons(self) -> dict[str, str]:
        """Why the daemon is not doing its work, by source; empty when it is."""
        reasons = self.problems.active()
        if not self.mqtt_connected:
            reasons["mqtt"] = "not connected to the broker"
        waited = self.pending_seconds()
        if waited > self.stall_seconds:
            reasons["intake"] = (f"a received batch has waited {waited:.0f}s to be committed "
                                 f"(limit {self.stall_seconds:g}s)")
        return reasons


def build_app(store: HealthStore, metrics: Metrics, health: Health,
              more_routes: Callable[[web.Application], None] | None = None) -> web.Application:
    """The aiohttp application with its routes (and a provider's, when given)."""

    pinging: asyncio.Task[None] | None = None

    async def store_writable() -> bool:
        nonlocal pinging
        # One check at a time, never cancelled: cut off while it waits for the write lock, it
        # could take the lock later with nobody left to release it. Its answer is waited for
        # only so long, so that a store locked by another process cannot hang the health check.
        if pinging is None or pinging.done():
            pinging = asyncio.create_task(store.ping())
            pinging.add_done_callback(lambda task: task.cancelled() or task.exception())
        try:
            await asyncio.wait_for(asyncio.shield(pinging), PING_SECONDS)
        except TimeoutError:
            health.problems.report("store check", f"no write lock within {PING_SECONDS:g}s: "
                                                  "the store is busy or stuck")
            return False
        except Exception as exc:  # the answer is the report (logged once)
            health.problems.report("store check", f"not writable: {type(exc).__name__}: {exc}")
            return False
        health.problems.clear("store check")
        return True

    async def healthz(_: web.Request) -> web.Response:
        store_ok = await store_writable()
        reasons = health.reasons()
        ok = not reasons
        body = {"status": "ok" if ok else "degraded", "mqtt_connected": health.mqtt_connected,
                "store_writable": store_ok, "due_lag_seconds": round(health.due_lag_seconds, 3),
                "problems": reasons}
        return web.json_response(body, status=200 if ok else 503)

    async def metrics_view(_: web.Request) -> web.Response:
        return web.Response(body=metrics.render(),
                            headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics_view)
    if more_routes is not None:
        more_routes(app)
    return app


async def start_server(app: web.Application, host: str, port: int,
                       sock: socket.socket | None = None) -> tuple[web.AppRunner, int]:
    """Start serving (on `sock` when given, already bound); return the runner (to clean up)
    and the bound port."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    if sock is not None:
        await web.SockSite(runner, sock).start()
        return runner, int(sock.getsockname()[1])
    site = web.TCPSite(runner, host, port)
    await site.start()
    server = site._server  # noqa: SLF001 - the only way to learn the port when 0 was asked for
    sockets = getattr(server, "sockets", None) or []
    bound = sockets[0].getsockname()[1] if sockets else port
    return runner, int(bound)
