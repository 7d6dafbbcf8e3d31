"""What answers on the webhook socket while the daemon process is not running: 503 to all."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import Callable
from typing import Any

MAX_HEAD_BYTES = 16 * 1024
READ_SECONDS = 10.0


def response(request_line: bytes, health: dict[str, Any]) -> bytes:
    """The HTTP response to a request: `health` for GET /healthz, a short note otherwise."""
    method, _, rest = request_line.decode("latin-1").partition(" ")
    path = rest.split(" ", 1)[0].split("?", 1)[0]
    body = health if path == "/healthz" else {"status": "unavailable",
                                             "problems": health.get("problems", {})}
    payload = json.dumps(body).encode()
    head = ("HTTP/1.1 503 Service Unavailable\r\n"
            "Content-Type: application/json; charset=utf-8\r\n"
            f"Content-Length: {len(payload)}\r\n"
            "Retry-After: 5\r\n"
            "Connection: close\r\n\r\n").encode()
    return head if method == "HEAD" else head + payload


async def serve_unavailable(sock: socket.socket,
                            health: Callable[[], dict[str, Any]]) -> asyncio.Server:
    """Answer every request on `sock` with 503 until the returned server is closed (which
    closes `sock`: pass a duplicate of a socket that must stay open)."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(READ_SECONDS):
                head = await reader.readuntil(b"\r\n\r\n")
            writer.write(response(head.split(b"\r\n", 1)[0], health()))
            await writer.drain()
        except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # a client that left, or sent no request worth answering
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    return await asyncio.start_server(answer, sock=sock, limit=MAX_HEAD_BYTES)
