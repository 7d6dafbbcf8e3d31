"""The console's credentials: password hashes, the users file, sessions, CSRF, bearer, lockout."""

from __future__ import annotations

import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dispatcher.console.passwords import (
    DUMMY_HASH,
    Cost,
    PasswordHashError,
    hash_password,
    parse_hash,
    password_problem,
    verify_password,
)
from dispatcher.console.sessions import LoginGuard, Sessions, csrf_matches, token_matches
from dispatcher.console.users import UsersFileError, read_users, write_user
from dispatcher.console.web import same_origin

CHEAP = Cost(n=2**4, r=1, p=1)  # a few microseconds: the parameters travel in the hash
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def test_a_hash_verifies_its_password_only_and_each_has_its_own_salt() -> None:
    first, second = hash_password("correct horse battery"), hash_password("correct horse battery")
    assert first != second
    assert first.startswith("scrypt$65536$8$1$")
    assert verify_password("correct horse battery", first)
    assert verify_password("correct horse battery", second)
    assert not verify_password("correct horse batterY", first)
    assert not verify_password("", first)


@settings(max_examples=40, deadline=None)
@given(password=st.text(max_size=40), other=st.text(max_size=40))
def test_any_text_verifies_only_against_its_own_hash(password: str, other: str) -> None:
    stored = hash_password(password, CHEAP)
    assert verify_password(password, stored)
    assert verify_password(other, stored) == (other == password)


def test_huge_and_surrogate_passwords_are_refused_not_crashed_on() -> None:
    stored = hash_password("a perfectly fine one", CHEAP)
    assert not verify_password("x" * 10_000_000, stored)
    assert not verify_password("\ud800", stored)
    assert password_problem("x" * 2000) == "must be at most 1024 bytes"
    assert password_problem("short") == "must be at least 12 characters"
    assert password_problem("twelve chars\x00!") == "must not contain control characters"
    assert password_problem("twelve chars!") is None


@pytest.mark.parametrize("stored", [
    "", "plain", "bcrypt$1$2$3$4$5", "scrypt$abc$8$1$AAAAAAAAAAA$" + "A" * 43,
    "scrypt$65537$8$1$AAAAAAAAAAAAAAAAAAAAAA$" + "A" * 43,  # not a power of two
    "scrypt$1073741824$8$1$AAAAAAAAAAAAAAAAAAAAAA$" + "A" * 43,  # would take gigabytes
    "scrypt$16$1$1$AAAA$" + "A" * 43,  # salt too short
    "scrypt$16$1$1$AAAAAAAAAAAAAAAAAAAAAA$AAAA",  # key too short
])
def test_unreadable_or_dangerous_hashes_are_refused(stored: str) -> None:
    with pytest.raises(PasswordHashError):
        parse_hash(stored)


def test_the_dummy_hash_is_readable_and_matches_nothing() -> None:
    parse_hash(DUMMY_HASH)
    assert not verify_password("", DUMMY_HASH)


def test_the_users_file_is_written_owner_only_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "users"
    assert write_user(path, "alice", hash_password("alice's password", CHEAP))
    assert write_user(path, "bob", hash_password("bob's password!", CHEAP))
    assert not write_user(path, "alice", hash_password("a new password", CHEAP))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    users = read_users(path)
    assert list(users) == ["alice", "bob"]
    assert verify_password("a new password", users["alice"])
    assert not list(tmp_path.glob(".users.*"))  # no temporary file left behind


@pytest.mark.parametrize(("text", "says"), [
    ("alice\n", "line 1: not `name:hash`"),
    ("bad name:x\n", "line 1: user name must be"),
    (f"Token:{DUMMY_HASH}\n", "line 1: user name 'Token' is how the audit log names the"),
    (f"a:{DUMMY_HASH}\na:{DUMMY_HASH}\n", "line 2: user 'a' is listed twice"),
    ("# comment\n\nalice:scrypt$1$1\n", "line 3: not a scrypt hash"),
])
def test_a_bad_users_file_names_the_file_the_line_and_why(tmp_path: Path, text: str,
                                                          says: str) -> None:
    path = tmp_path / "users"
    path.write_text(text)
    path.chmod(0o600)
    with pytest.raises(UsersFileError) as raised:
        read_users(path)
    assert str(raised.value).startswith(f"{path}: ")
    assert says in str(raised.value)


def test_a_users_file_others_can_read_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "users"
    write_user(path, "alice", hash_password("alice's password", CHEAP))
    os.chmod(path, 0o640)
    with pytest.raises(UsersFileError, match=r"readable or writable by others \(mode 0640\)"):
        read_users(path)
    with pytest.raises(UsersFileError, match="no such file"):
        read_users(tmp_path / "missing")


def test_a_session_lives_until_its_expiry_and_not_after() -> None:
    sessions = Sessions(timedelta(minutes=30))
    token, session = sessions.create("alice", T0)
    assert session.expires == T0 + timedelta(minutes=30)
    assert sessions.get(token, T0 + timedelta(minutes=29, seconds=59)) == session
    assert sessions.get(token, T0 + timedelta(minutes=30)) is None
    assert len(sessions) == 0  # forgotten once expired
    assert sessions.get(token, T0) is None


def test_sessions_end_at_logout_and_unknown_cookies_find_none() -> None:
    sessions = Sessions(timedelta(hours=1))
    token, _ = sessions.create("alice", T0)
    other, _ = sessions.create("alice", T0)
    assert token != other
    for cookie in (None, "", "nope", "x" * 100_000, token + "x"):
        assert sessions.get(cookie, T0) is None
    sessions.end(token)
    assert sessions.get(token, T0) is None
    assert sessions.get(other, T0) is not None


def test_the_oldest_session_ends_when_there_are_too_many() -> None:
    sessions = Sessions(timedelta(hours=1), max_sessions=3)
    tokens = [sessions.create("u", T0)[0] for _ in range(4)]
    assert sessions.get(tokens[0], T0) is None
    assert all(sessions.get(t, T0) for t in tokens[1:])


def test_csrf_must_be_the_sessions_own() -> None:
    sessions = Sessions(timedelta(hours=1))
    _, session = sessions.create("alice", T0)
    _, other = sessions.create("alice", T0)
    assert csrf_matches(session, session.csrf)
    for given_token in (None, "", other.csrf, session.csrf[:-1], session.csrf + "x", "\ud800"):
        assert not csrf_matches(session, given_token)


def test_bearer_needs_the_configured_token_exactly() -> None:
    token = "s3cret-" + "t" * 30
    assert token_matches(token, f"Bearer {token}")
    assert token_matches(token, f"bearer {token}")
    for header in (None, "", token, f"Basic {token}", f"Bearer {token}x", "Bearer ",
                   f"Bearer {token[:-1]}", "Bearer \ud800"):
        assert not token_matches(token, header)
    # Unset: Bearer is off, whatever is sent.
    assert not token_matches(None, "Bearer ")
    assert not token_matches("", "Bearer ")


def test_failures_lock_a_name_for_the_lockout_then_it_may_try_again() -> None:
    guard = LoginGuard(max_failures=3, lockout=timedelta(minutes=10), throttle=100)
    assert not guard.failed("alice", T0)
    assert not guard.failed("alice", T0 + timedelta(minutes=1))
    assert guard.check("alice", T0 + timedelta(minutes=2)).allowed
    assert guard.failed("alice", T0 + timedelta(minutes=2))
    locked = guard.check("alice", T0 + timedelta(minutes=3))
    assert (locked.allowed, locked.reason) == (False, "locked")
    assert guard.check("bob", T0 + timedelta(minutes=3)).allowed
    assert guard.check("alice", T0 + timedelta(minutes=12)).allowed
    assert not guard.failed("alice", T0 + timedelta(minutes=12))  # counting starts again


def test_failures_older_than_the_lockout_do_not_count() -> None:
    guard = LoginGuard(max_failures=2, lockout=timedelta(minutes=10), throttle=100)
    guard.failed("alice", T0)
    assert not guard.failed("alice", T0 + timedelta(minutes=11))
    guard.succeeded("alice")
    assert not guard.failed("alice", T0 + timedelta(minutes=12))


def test_many_failures_across_names_throttle_every_login_for_a_minute() -> None:
    guard = LoginGuard(max_failures=5, lockout=timedelta(minutes=10), throttle=4)
    for n in range(4):
        guard.failed(f"name-{n}", T0)
    refused = guard.check("alice", T0 + timedelta(seconds=30))
    assert (refused.allowed, refused.reason) == (False, "throttled")
    assert guard.check("alice", T0 + timedelta(seconds=61)).allowed


@pytest.mark.parametrize(("origin", "host", "same"), [
    (None, "127.0.0.1:8080", True),
    ("http://127.0.0.1:8080", "127.0.0.1:8080", True),
    ("https://console.example", "console.example", True),
    ("https://console.example:443", "console.example", True),
    ("http://[::1]:8080", "[::1]:8080", True),
    ("http://127.0.0.1:8081", "127.0.0.1:8080", False),
    ("https://evil.example", "console.example", False),
    ("http://console.example", "console.example:443", False),
    ("null", "console.example", False),
    ("", "console.example", False),
    ("file://", "console.example", False),
    ("http://a\x00b", "console.example", False),
])
def test_a_post_from_another_site_is_told_apart(origin: str | None, host: str,
                                                same: bool) -> None:
    assert same_origin(origin, host) is same
