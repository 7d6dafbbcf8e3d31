"""The daemon's side of supervision: the inherited webhook socket, the status pipe to the
supervisor, and dying together with the supervisor."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass

# The supervisor starts the daemon with these set; their presence marks a supervised daemon.
SUPERVISOR_PID = "DISPATCHER_SUPERVISOR_PID"
LISTEN_FD = "DISPATCHER_LISTEN_FD"
STATUS_FD = "DISPATCHER_STATUS_FD"
ATTEMPT = "DISPATCHER_START_ATTEMPT"
VARIABLES = (SUPERVISOR_PID, LISTEN_FD, STATUS_FD, ATTEMPT)

# The store cannot be written (EX_TEMPFAIL): the supervisor tries again later.
EXIT_UNAVAILABLE = 75
READY, UNAVAILABLE = "ready", "unavailable"
PR_SET_PDEATHSIG = 1


def is_supervised(environ: Mapping[str, str]) -> bool:
    """Whether this process is a daemon started by the supervisor."""
    return SUPERVISOR_PID in environ


def die_with_supervisor(environ: Mapping[str, str]) -> None:
    """Have the kernel SIGKILL this process when the supervisor dies (Linux); exit if it has."""
    with contextlib.suppress(OSError, AttributeError):  # not Linux: no such guarantee
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != int(environ[SUPERVISOR_PID]):
        raise SystemExit(1)  # it died before the request above took effect


@dataclass(frozen=True)
class Supervision:
    """What the supervisor handed this daemon."""

    listen_fd: int
    status_fd: int
    attempt: int  # 0 for the first start, then one more for each restart

    @classmethod
    def take(cls, environ: MutableMapping[str, str]) -> Supervision | None:
        """Read (and remove, so that no grandchild sees them) the supervisor's variables."""
        if not is_supervised(environ):
            return None
        values = {name: environ.pop(name, "") for name in VARIABLES}
        return cls(int(values[LISTEN_FD]), int(values[STATUS_FD]), int(values[ATTEMPT] or 0))

    def listen_socket(self) -> socket.socket:
        """The webhook socket the supervisor bound and listens on."""
        return socket.socket(fileno=self.listen_fd)

    def report_ready(self) -> None:
        """Tell the supervisor the daemon is up."""
        self._say(READY)

    def report_unavailable(self, detail: str) -> None:
        """Tell the supervisor why the daemon cannot start right now."""
        self._say(f"{UNAVAILABLE} {detail}")

    def _say(self, message: str) -> None:
        line = " ".join(message.split())[:1000] + "\n"
        with contextlib.suppress(OSError):  # the supervisor is gone: nobody to tell
            os.write(self.status_fd, line.encode("utf-8", "replace"))
