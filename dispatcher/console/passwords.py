"""Password hashes for console users: scrypt with a salt of each user's own."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

SCHEME = "scrypt"
# RFC 7914's interactive-login figures, raised: about 64 MiB and a fraction of a second a check.
COST_N, BLOCK_R, PARALLEL_P = 2**16, 8, 1
SALT_BYTES, KEY_BYTES = 16, 32
MAX_PASSWORD_BYTES = 1024  # a longer one is refused, not hashed: no megabyte costs a check
MAX_COST_N = 2**20


class PasswordHashError(ValueError):
    """A stored hash that cannot be read."""


@dataclass(frozen=True)
class Cost:
    """scrypt's parameters."""

    n: int = COST_N
    r: int = BLOCK_R
    p: int = PARALLEL_P

    @property
    def maxmem(self) -> int:
        """Memory scrypt may use for these parameters, with room to spare."""
        return 256 * self.n * self.r * self.p + 1024 * 1024


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _derive(password: str, salt: bytes, cost: Cost) -> bytes:
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=cost.n, r=cost.r, p=cost.p,
                          maxmem=cost.maxmem, dklen=KEY_BYTES)


def password_problem(password: str) -> str | None:
    """Why `password` cannot be set, or None."""
    if len(password) < 12:
        return "must be at least 12 characters"
    if len(password.encode("utf-8", "surrogatepass")) > MAX_PASSWORD_BYTES:
        return f"must be at most {MAX_PASSWORD_BYTES} bytes"
    if any(ord(c) < 32 or ord(c) == 127 for c in password):
        return "must not contain control characters"
    return None


def hash_password(password: str, cost: Cost = Cost()) -> str:
    """`scrypt$N$r$p$salt$key`, with a fresh random salt."""
    salt = secrets.token_bytes(SALT_BYTES)
    key = _derive(password, salt, cost)
    return f"{SCHEME}${cost.n}${cost.r}${cost.p}${_b64(salt)}${_b64(key)}"


def parse_hash(stored: str) -> tuple[Cost, bytes, bytes]:
    """The parameters, salt and key of a stored hash; PasswordHashError saying why not."""
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != SCHEME:
        raise PasswordHashError(f"not a {SCHEME} hash (scrypt$N$r$p$salt$key)")
    try:
        cost = Cost(int(parts[1]), int(parts[2]), int(parts[3]))
        salt, key = _unb64(parts[4]), _unb64(parts[5])
    except ValueError:
        raise PasswordHashError("a parameter, the salt or the key cannot be read") from None
    if (cost.n < 2 or cost.n > MAX_COST_N or cost.n & (cost.n - 1) or not 1 <= cost.r <= 32
            or not 1 <= cost.p <= 16):
        raise PasswordHashError("scrypt parameters out of range")
    if len(salt) < 8 or len(key) != KEY_BYTES:
        raise PasswordHashError("salt or key of the wrong length")
    return cost, salt, key


def verify_password(password: str, stored: str) -> bool:
    """Whether `password` matches `stored`, compared in constant time."""
    cost, salt, key = parse_hash(stored)
    if len(password.encode("utf-8", "surrogatepass")) > MAX_PASSWORD_BYTES:
        _derive("", salt, cost)  # the same work as a real check: length tells nothing
        return False
    try:
        derived = _derive(password, salt, cost)
    except UnicodeEncodeError:  # a lone surrogate can never have been set
        _derive("", salt, cost)
        return False
    return hmac.compare_digest(derived, key)


# Checked against when the name is unknown, so that a wrong name costs what a wrong password does.
DUMMY_HASH = (f"{SCHEME}${COST_N}${BLOCK_R}${PARALLEL_P}${_b64(bytes(SALT_BYTES))}"
              f"${_b64(bytes(KEY_BYTES))}")
