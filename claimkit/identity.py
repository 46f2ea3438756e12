"""Ed25519 identities (PyNaCl) with passphrase-encrypted key files.

Owners sign registrations and claim bundles, arbiters sign verdicts, witnesses cosign
checkpoints. The private key file is sealed with Argon2id + XSalsa20-Poly1305
(:mod:`claimkit.sealed`), written atomically with mode 0600; the public half goes
beside it as ``.pub``::

    alice = Identity.generate("alice")
    alice.save("alice.key", passphrase)          # alice.key (0600) + alice.pub
    again = Identity.load("alice.key", passphrase)
    again.public.verify(again.sign(b"hi"), b"hi")   # raises VerificationError if bad
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nacl.exceptions
import nacl.signing

from .errors import KeyFileError, MalformedInputError, VerificationError
from .sealed import seal, unseal
from .wire import Fields, atomic_write, b64encode, canonical_json, load_json, read_json_file

__all__ = ["PublicIdentity", "Identity", "passphrase_from_env"]

KEY_TYPE = "claimkit/identity/v1"
PUBLIC_TYPE = "claimkit/identity-public/v1"
_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise MalformedInputError(f"identity name {name!r}: use 1-64 of [A-Za-z0-9._-]")
    return name


@dataclass(frozen=True)
class PublicIdentity:
    """A name and an Ed25519 public key; verifies signatures, never returns False."""

    name: str
    public_key: bytes

    def __post_init__(self) -> None:
        _check_name(self.name)
        if not isinstance(self.public_key, bytes) or len(self.public_key) != 32:
            raise MalformedInputError("public key: expected 32 bytes of Ed25519")

    @property
    def key_id(self) -> str:
        """Lowercase hex SHA-256 of the raw public key (the DSSE ``keyid``)."""
        return hashlib.sha256(self.public_key).hexdigest()

    def verify(self, signature: bytes, message: bytes) -> None:
        try:
            nacl.signing.VerifyKey(self.public_key).verify(message, signature)
        except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, ValueError, TypeError):
            raise VerificationError(f"bad signature for {self.name} ({self.key_id[:16]})") from None

    def to_dict(self) -> dict[str, Any]:
        return {"type": PUBLIC_TYPE, "name": self.name, "public_key": b64encode(self.public_key),
                "key_id": self.key_id}

    @classmethod
    def from_dict(cls, obj: Any, where: str = "public identity") -> PublicIdentity:
        f = Fields(obj, where)
        f.str("type", choices=(PUBLIC_TYPE,))
        identity = cls(_check_name(f.str("name", max_len=64)), f.bytes("public_key", size=32))
        key_id = f.str("key_id", max_len=64)
        f.done()
        if not hmac.compare_digest(key_id, identity.key_id):
            raise MalformedInputError(f"{where}.key_id does not match the public key")
        return identity

    def to_json(self) -> bytes:
        return (json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n").encode()

    @classmethod
    def from_json(cls, data: bytes | str) -> PublicIdentity:
        return cls.from_dict(load_json(data, what="public identity"))

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> PublicIdentity:
        return cls.from_dict(read_json_file(path), str(path))


class Identity:
    """An Ed25519 signing key with a name. Not a wire object; never prints its secret."""

    def __init__(self, name: str, seed: bytes) -> None:
        if len(seed) != 32:
            raise MalformedInputError("an Ed25519 seed is 32 bytes")
        self._key = nacl.signing.SigningKey(seed)
        self.public = PublicIdentity(_check_name(name), bytes(self._key.verify_key))

    def __repr__(self) -> str:
        return f"Identity(name={self.public.name!r}, key_id={self.public.key_id[:16]}…)"

    @classmethod
    def generate(cls, name: str, *, seed: bytes | None = None) -> Identity:
        """A new identity; ``seed`` only for tests and vectors (Ed25519 is deterministic)."""
        return cls(name, seed if seed is not None else os.urandom(32))

    @property
    def seed(self) -> bytes:
        """The 32-byte private seed (for deriving note signers; handle as a secret)."""
        return bytes(self._key)

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message).signature

    def save(self, path: str | os.PathLike[str], passphrase: str, *,
             strength: str = "interactive", overwrite: bool = False) -> None:
        """Write the sealed key (mode 0600) and ``.pub`` beside it; refuses to overwrite."""
        path = Path(path)
        if path.exists() and not overwrite:
            raise KeyFileError(f"{path} exists; refusing to overwrite a key")
        body = {"type": KEY_TYPE, "name": self.public.name,
                "public_key": b64encode(self.public.public_key),
                **seal(self.seed, passphrase, strength=strength)}
        atomic_write(path, canonical_json(body), mode=0o600)
        atomic_write(path.with_suffix(".pub"), self.public.to_json())

    @classmethod
    def load(cls, path: str | os.PathLike[str], passphrase: str) -> Identity:
        path = Path(path)
        try:
            mode = os.stat(path).st_mode
        except FileNotFoundError:
            raise KeyFileError(f"{path}: no such key file") from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise KeyFileError(f"{path} is readable by others (mode {stat.S_IMODE(mode):04o}); "
                               f"chmod 600 {path}")
        try:
            obj = read_json_file(path, max_bytes=64 * 1024)
            f = Fields(obj, str(path))
            f.str("type", choices=(KEY_TYPE,))
            name = f.str("name", max_len=64)
            public_key = f.bytes("public_key", size=32)
            sealed = {"kdf": f.raw("kdf"), "ciphertext": f.raw("ciphertext")}
            f.done()
        except MalformedInputError as e:
            raise KeyFileError(f"not a claimkit key file: {e}") from None
        seed = unseal(sealed, passphrase, what=str(path), max_bytes=1024)
        if len(seed) != 32:
            raise KeyFileError(f"wrong passphrase or corrupted key file: {path}")
        identity = cls(name, seed)
        if not hmac.compare_digest(identity.public.public_key, public_key):
            raise KeyFileError(f"wrong passphrase or corrupted key file: {path}")
        return identity


def passphrase_from_env(var: str = "CLAIMKIT_PASSPHRASE") -> str | None:
    return os.environ.get(var) or None
