"""The console's pages and actions under /console: login, sessions, CSRF, audit, rendering."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

import jinja2
from aiohttp import web
from yarl import URL

from dispatcher.audit.chain import AuditKind, canonical_json
from dispatcher.config.settings import ConsoleSettings, LoadedConfig
from dispatcher.console.passwords import DUMMY_HASH, verify_password
from dispatcher.console.sessions import LoginGuard, Session, Sessions, csrf_matches, token_matches
from dispatcher.console.sources import AGENDA_ROWS, QUEUE_SHOWN, QueueActionError, Sources
from dispatcher.console.users import TOKEN_USER, UsersFileError, read_users
from dispatcher.contact.explain import ExplainStore, explain
from dispatcher.domain.clock import Clock, parse_rfc3339, utc_rfc3339
from dispatcher.domain.events import HoldReason
from dispatcher.domain.phones import mask_number, mask_numbers_in
from dispatcher.ingest.replay import ReplayStore, replay_dead_letters
from dispatcher.service.metrics import Metrics
from dispatcher.store import AccountListStore, AuditReader, AuditWriter
from dispatcher.webhooks.server import Health

log = logging.getLogger("dispatcher.console")

COOKIE = "dispatcher_console"
PREFIX = "/console"
TRAIL_RECORDS = 200  # the account page shows the newest this many audit records
SEARCH_RESULTS = 50
DEAD_LETTERS_SHOWN = 500  # the newest; `dispatcher dead-letters list` has them all
MAX_FIELD_CHARS = 200  # search text, account ids and names read from a request
MAX_NOTE_CHARS = 500
REPORT_DAYS = 7
# Each check costs scrypt's memory: at most this many at once.
CONCURRENT_CHECKS = 2

SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'none'; style-src 'unsafe-inline'; "
                                "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # Not no-referrer: with it a browser sends `Origin: null` on the forms, refused as cross-site.
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class ConsoleStore(AuditWriter, AuditReader, AccountListStore, ReplayStore, ExplainStore,
                   Protocol):
    """What the console reads and writes."""


@dataclass(frozen=True)
class Identity:
    """Who is asking: a logged-in user (with their session), or the automation token."""

    user: str
    via: str  # `password` or `token`
    session: Session | None = None

    @property
    def csrf(self) -> str:
        """The session's CSRF token (empty for the token, which sends none)."""
        return self.session.csrf if self.session else ""


def shown_name(name: str) -> str:
    """A name as typed, fit for the audit log: cut short, unprintable characters replaced."""
    return "".join(c if c.isprintable() else "\ufffd" for c in name[:64])


def _clean(text: str) -> str:
    return text if text.isprintable() else ""


def same_origin(origin: str | None, host: str) -> bool:
    """Whether a request's `Origin` header names the site it was sent to (`Host`); a request
    without one (not from a browser, or an old one) passes: SameSite and CSRF still hold."""
    if origin is None:
        return True
    try:
        sent_from = URL(origin)
        sent_to = URL(f"{sent_from.scheme}://{host}")
    except ValueError:
        return False
    return (sent_from.scheme in ("http", "https") and sent_from.host is not None
            and (sent_from.host, sent_from.port) == (sent_to.host, sent_to.port))


def _safe_next(target: str | None) -> str:
    """Where to go after login: a console path only, never another site."""
    if target and target.startswith(f"{PREFIX}/") and not target.startswith("//") \
            and "\\" not in target and target.isprintable():
        return target
    return f"{PREFIX}/"


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("dispatcher.console", "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined)
    env.filters["mask"] = _masked
    env.filters["masktext"] = lambda t: mask_numbers_in(str(t))
    env.filters["q"] = lambda t: quote(str(t), safe="")
    env.filters["when"] = lambda t: utc_rfc3339(t) if isinstance(t, datetime) else (t or "-")
    return env


def _masked(number: object) -> str:
    """A number masked, once: a source may hand over numbers masked already."""
    text = str(number or "")
    return text if not text or "*" in text else mask_number(text)


def _trail_row(record: Mapping[str, Any]) -> dict[str, str]:
    """One audit record as the account page shows it, its numbers masked."""
    hidden = {"seq", "at", "kind", "status", "reason", "hash", "prev_hash", "config_version",
              "account_id", "to", "user", "by"}
    rest = {k: v for k, v in record.items() if k not in hidden}
    return {"seq": str(record.get("seq", "")), "at": str(record.get("at", "")),
            "kind": str(record.get("kind", "")),
            "status": " / ".join(str(record[k]) for k in ("status", "reason") if record.get(k)),
            "user": str(record.get("user") or record.get("by") or ""),
            "to": mask_number(str(record["to"])) if record.get("to") else "",
            "detail": mask_numbers_in(canonical_json(rest)) if rest else ""}


class Console:
    """The console's routes, on the daemon's HTTP server."""

    def __init__(self, *, store: ConsoleStore, config: Callable[[], LoadedConfig],
                 settings: ConsoleSettings, health: Health, metrics: Metrics, clock: Clock,
                 token: str | None, sources: Sources,
                 report: Callable[[LoadedConfig, datetime, datetime, datetime],
                                  Awaitable[str]] | None = None) -> None:
        self.store = store
        self._config = config
        self.settings = settings
        self.health = health
        self.metrics = metrics
        self.clock = clock
        self._token = token
        self.sources = sources
        self.sessions = Sessions(timedelta(minutes=settings.session_minutes))
        self.guard = LoginGuard(settings.max_failures, timedelta(minutes=settings.lockout_minutes))
        self._env = _environment()
        self._checks = asyncio.Semaphore(CONCURRENT_CHECKS)
        self._reporting = asyncio.Lock()
        self._throttle_audited_at: datetime | None = None
        self._report = report or _render_report

    # -- wiring -------------------------------------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        """Register every console route."""
        r = app.router
        r.add_get(PREFIX, self._to_home)
        r.add_get(f"{PREFIX}/login", self._login_page)
        r.add_post(f"{PREFIX}/login", self._login)
        r.add_post(f"{PREFIX}/logout", self._guarded(self._logout, writes=True))
        r.add_get(f"{PREFIX}/", self._guarded(self._agenda))
        r.add_get(f"{PREFIX}/accounts", self._guarded(self._search))
        r.add_get(f"{PREFIX}/account", self._guarded(self._account))
        r.add_get(f"{PREFIX}/queue", self._guarded(self._queue))
        r.add_post(f"{PREFIX}/queue/resolve", self._guarded(self._resolve, writes=True))
        r.add_get(f"{PREFIX}/dead-letters", self._guarded(self._dead_letters))
        r.add_post(f"{PREFIX}/dead-letters/replay", self._guarded(self._replay, writes=True))
        r.add_get(f"{PREFIX}/report", self._guarded(self._report_page))
        r.add_get(f"{PREFIX}/report/view", self._guarded(self._report_view))
        r.add_get(f"{PREFIX}/health", self._guarded(self._health))

    def _guarded(self, handler: Callable[[web.Request, Identity], Awaitable[web.StreamResponse]],
                 *, writes: bool = False) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def guarded(request: web.Request) -> web.StreamResponse:
            if writes and not same_origin(request.headers.get("Origin"), request.host):
                return self._cross_site()
            identity = self._identity(request)
            if identity is None:
                if request.headers.get("Authorization") or request.method != "GET":
                    return self._page("message.html", None, status=401,
                                      headers={"WWW-Authenticate": "Bearer"},
                                      title="Not logged in",
                                      message="Log in first, or send a valid bearer token.")
                raise web.HTTPSeeOther(URL(f"{PREFIX}/login").with_query(next=request.path_qs))
            if writes and identity.session is not None:
                form = await request.post()
                given = form.get("csrf")
                if not csrf_matches(identity.session, given if isinstance(given, str) else None):
                    return self._page("message.html", identity, status=403,
                                      title="Refused",
                                      message="The form's CSRF token is missing or wrong: "
                                              "reload the page and try again.")
            return await handler(request, identity)
        return guarded

    def _identity(self, request: web.Request) -> Identity | None:
        authorization = request.headers.get("Authorization")
        if authorization is not None:
            ok = token_matches(self._token, authorization)
            return Identity(TOKEN_USER, "token") if ok else None
        session = self.sessions.get(request.cookies.get(COOKIE), self.clock.now())
        return Identity(session.user, "password", session) if session else None

    def _page(self, template: str, identity: Identity | None, *, status: int = 200,
              headers: Mapping[str, str] | None = None, **context: Any) -> web.Response:
        html = self._env.get_template(template).render(me=identity, prefix=PREFIX, **context)
        return web.Response(text=html, content_type="text/html", status=status,
                            headers={**SECURITY_HEADERS, **(headers or {})})

    async def _audit(self, record: dict[str, Any], request: web.Request) -> None:
        record = {"kind": AuditKind.CONSOLE.value, **record}
        if request.remote:
            record["remote"] = request.remote
        await self.store.append_audit([{k: v for k, v in record.items() if v is not None}],
                                      now=self.clock.now())

    # -- logging in and out -------------------------------------------------------------------

    async def _to_home(self, _: web.Request) -> web.StreamResponse:
        raise web.HTTPSeeOther(f"{PREFIX}/")

    async def _login_page(self, request: web.Request) -> web.StreamResponse:
        return self._page("login.html", None, next=_safe_next(request.query.get("next")),
                          error="", passwords=self._users_path() is not None)

    def _users_path(self) -> Path | None:
        return self._config().console_users_file

    def _cross_site(self) -> web.Response:
        return self._page("message.html", None, status=403, title="Refused",
                          message="The form was sent from another site.")

    async def _login(self, request: web.Request) -> web.StreamResponse:
        if not same_origin(request.headers.get("Origin"), request.host):
            return self._cross_site()  # another site logging a browser in as someone else
        form = await request.post()
        name = form.get("user")
        password = form.get("password")
        target = form.get("next")
        target = _safe_next(target if isinstance(target, str) else None)
        name = name if isinstance(name, str) else ""
        password = password if isinstance(password, str) else ""
        shown = shown_name(name)
        now = self.clock.now()
        verdict = self.guard.check(shown, now)
        if not verdict.allowed:
            if verdict.reason == "throttled":
                await self._audit_throttle(request, now)
            # A locked name was audited when it was locked; each refused try is not.
            return self._refuse_login(target, 429, "Too many failed logins: try again later.")
        path = self._users_path()
        try:
            users = await asyncio.to_thread(read_users, path) if path is not None else {}
        except UsersFileError as exc:
            log.error("console login refused: %s", exc)  # noqa: TRY400 - the reason is the line
            await self._audit({"status": "login_failed", "user": shown,
                               "reason": "users_file_unreadable"}, request)
            return self._refuse_login(target, 503, "Logins are not possible right now: the "
                                                   "users file cannot be read (see the log).")
        stored = users.get(name)
        async with self._checks:
            ok = await asyncio.to_thread(verify_password, password, stored or DUMMY_HASH)
        if not ok or stored is None:
            reason = "unknown_user" if stored is None else "bad_password"
            await self._audit({"status": "login_failed", "user": shown, "reason": reason},
                              request)
            if self.guard.failed(shown, now):
                until = now + self.guard.lockout
                await self._audit({"status": "locked", "user": shown,
                                   "until": utc_rfc3339(until)}, request)
            return self._refuse_login(target, 401, "Wrong user name or password.")
        self.guard.succeeded(shown)
        token, session = self.sessions.create(name, now)
        await self._audit({"status": "login", "user": name}, request)
        response = web.HTTPSeeOther(target)
        response.set_cookie(COOKIE, token, path=PREFIX, httponly=True, samesite="Strict",
                            secure=self.settings.secure_cookie,
                            max_age=int((session.expires - now).total_seconds()))
        raise response

    async def _audit_throttle(self, request: web.Request, now: datetime) -> None:
        # One record per minute of throttling, however many tries it refuses.
        last = self._throttle_audited_at
        if last is None or now - last >= timedelta(minutes=1):
            self._throttle_audited_at = now
            await self._audit({"status": "throttled",
                               "reason": "too many failed logins in the last minute"}, request)

    def _refuse_login(self, target: str, status: int, error: str) -> web.Response:
        return self._page("login.html", None, status=status, next=target, error=error,
                          passwords=self._users_path() is not None)

    async def _logout(self, request: web.Request, me: Identity) -> web.StreamResponse:
        if me.session is not None:
            self.sessions.end(request.cookies.get(COOKIE))
            await self._audit({"status": "logout", "user": me.user}, request)
        response = web.HTTPSeeOther(f"{PREFIX}/login")
        response.del_cookie(COOKIE, path=PREFIX)
        raise response

    # -- pages -------------------------------------------------------------------------------

    async def _agenda(self, _: web.Request, me: Identity) -> web.StreamResponse:
        now = self.clock.now()
        rows = await self.sources.agenda.agenda(now, AGENDA_ROWS)
        return self._page("agenda.html", me, rows=rows, now=now, limit=AGENDA_ROWS)

    async def _search(self, request: web.Request, me: Identity) -> web.StreamResponse:
        text = _clean(request.query.get("q", "").strip()[:MAX_FIELD_CHARS])
        found = await self.store.accounts_from(text, SEARCH_RESULTS) if text else []
        if text and found and found[0] == text:
            raise web.HTTPSeeOther(f"{PREFIX}/account?id={quote(text, safe='')}")
        return self._page("search.html", me, q=text, found=found, limit=SEARCH_RESULTS)

    async def _account(self, request: web.Request, me: Identity) -> web.StreamResponse:
        account_id = request.query.get("id", "")
        if not account_id or len(account_id) > MAX_FIELD_CHARS or not _clean(account_id):
            return self._page("message.html", me, status=404, title="No such account",
                              message="No account has that id.")
        now = self.clock.now()
        text, found = await explain(self.store, self._config(), account_id, now)
        trail: deque[dict[str, str]] = deque(maxlen=TRAIL_RECORDS)
        count = 0
        async for record in self.store.audit_records(account_id=account_id):
            trail.append(_trail_row(record))
            count += 1
        if not found and not count:
            return self._page("message.html", me, status=404, title="No such account",
                              message=f"No account {account_id!r} is stored.")
        return self._page("account.html", me, account_id=account_id, explained=text,
                          found=found, trail=list(reversed(trail)), count=count)

    async def _queue(self, _: web.Request, me: Identity) -> web.StreamResponse:
        queue = self.sources.queue
        items = await queue.items(self.clock.now()) if queue.available else []
        return self._page("queue.html", me, available=queue.available, items=items,
                          holds=[h.value for h in HoldReason], shown=QUEUE_SHOWN)

    async def _resolve(self, request: web.Request, me: Identity) -> web.StreamResponse:
        form = await request.post()
        item, action, note, hold = (str(form.get(k, ""))[:MAX_NOTE_CHARS]
                                    for k in ("item", "action", "note", "hold"))
        try:
            done = await self.sources.queue.resolve(item, action, user=me.user, note=note,
                                                    now=self.clock.now(), hold=hold or None)
        except QueueActionError as exc:
            return self._page("message.html", me, status=409, title="Not done",
                              message=str(exc))
        return self._page("message.html", me, title="Done", message=done)

    async def _dead_letters(self, request: web.Request, me: Identity) -> web.StreamResponse:
        everything = request.query.get("all") == "1"
        letters = await self.store.dead_letters(include_replayed=everything)
        return self._page("dead_letters.html", me, letters=letters[-DEAD_LETTERS_SHOWN:],
                          count=len(letters), everything=everything)

    async def _replay(self, request: web.Request, me: Identity) -> web.StreamResponse:
        form = await request.post()
        given = str(form.get("id", ""))
        if not given.isascii() or not given.isdigit() or len(given) > 18:
            return self._page("message.html", me, status=400, title="Not done",
                              message="Which dead letter? The id must be a number.")
        config = self._config()
        ingest = config.settings.ingest
        result = await replay_dead_letters(
            self.store, [int(given)], now=self.clock.now(),
            max_payload_bytes=ingest.max_payload_bytes,
            max_future=timedelta(seconds=ingest.max_future_seconds),
            config_version=config.version)
        if result.missing:
            return self._page("message.html", me, status=404, title="Not done",
                              message=f"No dead letter {given}.")
        fate = result.replayed[0]
        said = {"accepted": f"accepted as event {fate.event_id}",
                "already": f"already replayed as event {fate.event_id}",
                "rejected": f"still rejected: {fate.reason}: {fate.detail}"}[fate.status]
        await self._audit({"status": "action", "user": me.user, "via": me.via,
                           "action": "replay_dead_letter", "dead_letter_id": fate.id,
                           "account_id": fate.account_id, "result": fate.status,
                           "detail": said[:MAX_NOTE_CHARS]}, request)
        return self._page("message.html", me, title=f"Dead letter {fate.id}",
                          message=mask_numbers_in(said), account_id=fate.account_id)

    async def _report_page(self, _: web.Request, me: Identity) -> web.StreamResponse:
        today = self.clock.now().date()
        return self._page("report.html", me, since=today - timedelta(days=REPORT_DAYS),
                          until=today + timedelta(days=1), error="")

    async def _report_view(self, request: web.Request, me: Identity) -> web.StreamResponse:
        try:
            since, until = _window(request.query.get("since", ""),
                                   request.query.get("until", ""))
        except ValueError as exc:
            today = self.clock.now().date()
            return self._page("report.html", me, status=400, error=str(exc),
                              since=today - timedelta(days=REPORT_DAYS),
                              until=today + timedelta(days=1))
        async with self._reporting:  # one at a time: each reads the whole log
            html = await self._report(self._config(), since, until, self.clock.now())
        return web.Response(text=html, content_type="text/html", headers=SECURITY_HEADERS)

    async def _health(self, _: web.Request, me: Identity) -> web.StreamResponse:
        reasons = self.health.reasons()
        counters = []
        for family in self.metrics.registry.collect():
            for sample in family.samples:
                if sample.name.endswith(("_created", "_bucket")):
                    continue
                labels = ", ".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
                counters.append((sample.name, labels, f"{sample.value:g}"))
        return self._page("health.html", me, ok=not reasons, reasons=reasons,
                          mqtt=self.health.mqtt_connected,
                          due_lag=round(self.health.due_lag_seconds, 3), counters=counters)


def _instant(text: str) -> datetime:
    if len(text) == 10:
        return datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC)
    return parse_rfc3339(text)


def _window(since_text: str, until_text: str) -> tuple[datetime, datetime]:
    since, until = _instant(since_text), _instant(until_text)
    if until <= since:
        raise ValueError("until must be after since")
    return since, until


async def _render_report(config: LoadedConfig, since: datetime, until: datetime,
                         now: datetime) -> str:
    from dispatcher.report.build import build_page  # noqa: PLC0415 - read only when asked
    from dispatcher.report.html import render  # noqa: PLC0415

    return render(await build_page(config, since, until, now))
