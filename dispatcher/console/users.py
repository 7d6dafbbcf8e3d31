"""The console's users file: one `name:hash` line per user, readable by its owner only."""

from __future__ import annotations

import os
import re
import stat
import tempfile
from pathlib import Path

from dispatcher.console.passwords import PasswordHashError, parse_hash

USER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")
TOKEN_USER = "token"  # how the audit log names the automation token: no person may be called so
MAX_FILE_BYTES = 1024 * 1024


class UsersFileError(ValueError):
    """The users file cannot be used; the message names the file, the line and why."""


def name_problem(name: str) -> str | None:
    """Why `name` cannot be a user name, or None."""
    if not USER_NAME.fullmatch(name):
        return ("must be 1-64 letters, digits, '_', '.', '@' or '-', starting with a letter or "
                "a digit")
    if name.lower() == TOKEN_USER:
        return f"{name!r} is how the audit log names the automation token"
    return None


def _check_mode(path: Path, mode: int) -> None:
    if stat.S_IMODE(mode) & 0o077:
        raise UsersFileError(f"{path}: readable or writable by others (mode "
                             f"{stat.S_IMODE(mode):04o}); it holds password hashes: "
                             f"chmod 600 {path}")


def read_users(path: Path) -> dict[str, str]:
    """Name -> password hash; UsersFileError saying what is wrong (a missing file is one)."""
    try:
        with path.open("rb") as handle:
            _check_mode(path, os.fstat(handle.fileno()).st_mode)
            raw = handle.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise UsersFileError(f"{path}: no such file (create it with `dispatcher console "
                             "adduser NAME`)") from None
    except OSError as exc:
        raise UsersFileError(f"{path}: {exc.strerror or exc}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise UsersFileError(f"{path}: larger than {MAX_FILE_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise UsersFileError(f"{path}: not UTF-8 text") from None
    users: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        name, sep, stored = line.partition(":")
        where = f"{path}: line {number}"
        if not sep:
            raise UsersFileError(f"{where}: not `name:hash`")
        if problem := name_problem(name):
            raise UsersFileError(f"{where}: user name {problem}")
        if name in users:
            raise UsersFileError(f"{where}: user {name!r} is listed twice")
        try:
            parse_hash(stored)
        except PasswordHashError as exc:
            raise UsersFileError(f"{where}: {exc}") from None
        users[name] = stored
    return users


def write_user(path: Path, name: str, password_hash: str) -> bool:
    """Add or replace `name` in the users file (created 0600); True when the name was new."""
    users = read_users(path) if path.exists() else {}
    added = name not in users
    users[name] = password_hash
    text = "".join(f"{n}:{h}\n" for n, h in users.items())
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return added
