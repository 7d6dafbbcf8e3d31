"""Console sessions and failed-login lockout, kept in memory: a restart logs everyone out."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections import OrderedDict, deque
from dataclasses import dataclass
from datetime import datetime, timedelta

MAX_SESSIONS = 10_000  # past this the oldest session ends: memory stays bounded
MAX_TRACKED_NAMES = 10_000
THROTTLE_WINDOW = timedelta(minutes=1)


@dataclass(frozen=True)
class Session:
    """A logged-in user: the cookie's value is known only to the browser."""

    user: str
    csrf: str
    expires: datetime


def _key(token: str) -> str:
    # Kept by digest: a memory dump or a timing of the dict does not give a usable cookie.
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


class Sessions:
    """Random session tokens with an absolute expiry."""

    def __init__(self, lifetime: timedelta, max_sessions: int = MAX_SESSIONS) -> None:
        self.lifetime = lifetime
        self._max = max_sessions
        self._by_key: OrderedDict[str, Session] = OrderedDict()

    def create(self, user: str, now: datetime) -> tuple[str, Session]:
        """A new session for `user`: the cookie value and the session."""
        token = secrets.token_urlsafe(32)
        session = Session(user, secrets.token_urlsafe(32), now + self.lifetime)
        self._by_key[_key(token)] = session
        while len(self._by_key) > self._max:
            self._by_key.popitem(last=False)
        return token, session

    def get(self, token: str | None, now: datetime) -> Session | None:
        """The live session of a cookie value; an expired one is forgotten."""
        if not token or len(token) > 256:
            return None
        key = _key(token)
        session = self._by_key.get(key)
        if session is None:
            return None
        if now >= session.expires:
            del self._by_key[key]
            return None
        return session

    def end(self, token: str | None) -> None:
        """Forget a session (logout)."""
        if token and len(token) <= 256:
            self._by_key.pop(_key(token), None)

    def __len__(self) -> int:
        return len(self._by_key)


def csrf_matches(session: Session, given: str | None) -> bool:
    """Whether a form's CSRF token is the session's, compared in constant time."""
    if not given:
        return False
    return hmac.compare_digest(session.csrf.encode(), given.encode("utf-8", "surrogatepass"))


def token_matches(expected: str | None, authorization: str | None) -> bool:
    """Whether an `Authorization: Bearer ...` header carries `expected` (constant time);
    never when no token is configured."""
    if not expected or not authorization:
        return False
    scheme, _, given = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(expected.encode("utf-8", "surrogatepass"),
                               given.strip().encode("utf-8", "surrogatepass"))


@dataclass(frozen=True)
class Verdict:
    """What the guard says about a login attempt before the password is checked."""

    allowed: bool
    reason: str = ""  # `locked` or `throttled` when not allowed


class LoginGuard:
    """Locks a name after `max_failures` failed logins within `lockout`, for `lockout`; and
    refuses every login while more than `throttle` failed in the last minute, whatever names."""

    def __init__(self, max_failures: int, lockout: timedelta, throttle: int | None = None) -> None:
        self.max_failures = max_failures
        self.lockout = lockout
        self.throttle = throttle if throttle is not None else 4 * max_failures
        self._failures: OrderedDict[str, deque[datetime]] = OrderedDict()
        self._locked: dict[str, datetime] = {}
        self._recent: deque[datetime] = deque()

    def check(self, name: str, now: datetime) -> Verdict:
        """Whether a login for `name` may be tried now."""
        until = self._locked.get(name)
        if until is not None:
            if now < until:
                return Verdict(False, "locked")
            del self._locked[name]
            self._failures.pop(name, None)
        self._forget_before(now - THROTTLE_WINDOW)
        if len(self._recent) >= self.throttle:
            return Verdict(False, "throttled")
        return Verdict(True)

    def failed(self, name: str, now: datetime) -> bool:
        """Count a failed login; True when it locks the name."""
        self._recent.append(now)
        times = self._failures.pop(name, deque())
        times.append(now)
        while times and times[0] <= now - self.lockout:
            times.popleft()
        self._failures[name] = times
        while len(self._failures) > MAX_TRACKED_NAMES:
            self._failures.popitem(last=False)
        if len(times) >= self.max_failures:
            self._locked[name] = now + self.lockout
            if len(self._locked) > MAX_TRACKED_NAMES:
                self._locked = {n: t for n, t in self._locked.items() if t > now}
            return True
        return False

    def succeeded(self, name: str) -> None:
        """Forget a name's failures after a good login."""
        self._failures.pop(name, None)

    def throttling(self, now: datetime) -> bool:
        """Whether every login is refused at the moment."""
        self._forget_before(now - THROTTLE_WINDOW)
        return len(self._recent) >= self.throttle

    def _forget_before(self, cutoff: datetime) -> None:
        while self._recent and self._recent[0] <= cutoff:
            self._recent.popleft()
