"""Ed25519 keys that sign retention checkpoints: the private key from the environment only."""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dispatcher.audit.chain import canonical_json

# cryptography is imported where a key is used: the command line names KEY_VARIABLE in its
# help, and loading a config without keys needs none of it.
if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

KEY_VARIABLE = "DISPATCHER_CHECKPOINT_KEY"
_KEY_BYTES = 32  # an Ed25519 public key, and the seed of a private one


class CheckpointKeyError(ValueError):
    """A key in the environment or the config is not a base64 Ed25519 key."""


def _raw(text: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise CheckpointKeyError(f"{what} is not base64") from None
    if len(raw) != _KEY_BYTES:
        raise CheckpointKeyError(
            f"{what} must be {_KEY_BYTES} bytes (base64 of an Ed25519 key), not {len(raw)}")
    return raw


def key_id(public_key: str) -> str:
    """A short, stable name for a public key: `ed25519:` and 16 hex digits of its SHA-256."""
    return "ed25519:" + hashlib.sha256(_raw(public_key, "public key")).hexdigest()[:16]


def public_key_of(private: Ed25519PrivateKey) -> str:
    """The base64 public key that verifies what `private` signs."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat  # noqa: PLC0415

    raw = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.b64encode(raw).decode()


@dataclass(frozen=True)
class CheckpointSigner:
    """Signs checkpoint statements with the key from DISPATCHER_CHECKPOINT_KEY."""

    private: Ed25519PrivateKey

    @classmethod
    def from_text(cls, text: str) -> CheckpointSigner:
        """A signer from a base64 private key; raise CheckpointKeyError on a bad one."""
        from cryptography.hazmat.primitives.asymmetric.ed25519 import (  # noqa: PLC0415
            Ed25519PrivateKey,
        )

        return cls(Ed25519PrivateKey.from_private_bytes(_raw(text, KEY_VARIABLE)))

    @property
    def public_key(self) -> str:
        """The base64 public key (listed in `[retention] checkpoint_public_keys`)."""
        return public_key_of(self.private)

    @property
    def key_id(self) -> str:
        """The public key's short name, stored in each checkpoint."""
        return key_id(self.public_key)

    def sign(self, statement: Mapping[str, object]) -> str:
        """Base64 Ed25519 signature over the statement's canonical JSON."""
        return base64.b64encode(self.private.sign(canonical_json(statement).encode())).decode()


def signer_from(environ: Mapping[str, str]) -> CheckpointSigner | None:
    """The signer from the environment, None when the variable is unset; raise on a bad value."""
    text = environ.get(KEY_VARIABLE)
    if not text:
        return None
    return CheckpointSigner.from_text(text)


def new_private_key() -> str:
    """A fresh base64 private key (for DISPATCHER_CHECKPOINT_KEY)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (  # noqa: PLC0415
        Ed25519PrivateKey,
    )

    seed = Ed25519PrivateKey.generate().private_bytes_raw()
    return base64.b64encode(seed).decode()


def signature_valid(statement: Mapping[str, object], signature: str,
                    public_keys: Iterable[str]) -> str | None:
    """The id of the trusted public key that made `signature` over `statement`, or None."""
    from cryptography.exceptions import InvalidSignature  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (  # noqa: PLC0415
        Ed25519PublicKey,
    )

    try:
        raw_signature = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        return None
    message = canonical_json(statement).encode()
    for public in public_keys:
        try:
            Ed25519PublicKey.from_public_bytes(_raw(public, "public key")).verify(
                raw_signature, message)
        except (InvalidSignature, CheckpointKeyError):
            continue
        return key_id(public)
    return None
