"""The supervisor's decisions: what the daemon process's end means, and when to start it again."""

from __future__ import annotations

import random
import signal
from dataclasses import dataclass

from dispatcher.service.supervised import EXIT_UNAVAILABLE

EXIT_OK, EXIT_USAGE = 0, 2
# Stopping signals the supervisor forwards: the daemon dying of one of them was asked for.
STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT})
FIRST_DELAY, MAX_DELAY = 0.5, 30.0


@dataclass(frozen=True)
class Verdict:
    """Exit the supervisor with `exit_code`, or (None) start the daemon again."""

    exit_code: int | None
    reason: str = ""  # why the daemon is not running: logged once, reported on /healthz
    store_unwritable: bool = False

    def log_line(self) -> str:
        """The one line logged when an outage starts, or its reason changes."""
        return f"{self.reason}; restarting it with backoff"


def judge(returncode: int, *, stopping: bool, detail: str | None = None) -> Verdict:
    """What the supervisor does when the daemon process ended with `returncode` (negative: the
    signal that killed it, as subprocess reports it); `detail` is what the daemon said."""
    if stopping:
        if returncode < 0:
            # Killed by the stop signal before it could handle it: stopped, as was asked.
            return Verdict(EXIT_OK if -returncode in STOP_SIGNALS else 128 - returncode)
        return Verdict(EXIT_OK if returncode == EXIT_UNAVAILABLE else returncode)
    if returncode in (EXIT_OK, EXIT_USAGE):  # stopped by itself; or an invalid config
        return Verdict(returncode)
    if returncode == EXIT_UNAVAILABLE:
        return Verdict(None, f"the daemon cannot start: the store is not writable"
                             f"{': ' + detail if detail else ''}", store_unwritable=True)
    if returncode < 0:
        name = _signal_name(-returncode)
        if -returncode == signal.SIGBUS:
            return Verdict(None, f"the daemon process died of {name} (the store's files may "
                                 f"have become unwritable: a full or read-only file system)",
                           store_unwritable=True)
        return Verdict(None, f"the daemon process died of {name}")
    return Verdict(None, f"the daemon process exited with status {returncode}")


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def restart_delay(failures: int, rng: random.Random, first: float = FIRST_DELAY,
                  cap: float = MAX_DELAY) -> float:
    """Seconds before the next start after `failures` failed ones: exponential, jittered."""
    delay: float = min(cap, first * 2.0 ** min(failures, 32))
    return delay * (0.5 + rng.random() / 2)
