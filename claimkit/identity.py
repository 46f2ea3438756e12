"""Ed25519 identities (PyNaCl) with passphrase-encrypted key files.

Owners sign registrations and claim bundles, arbiters sign verdicts, witnesses cosign
checkpoints. The private key file is sealed with Argon2id + XSalsa20-Poly1305
(:mod:`claimkit.sealed`), written atomically with mode 0600; the public half goes
beside it as ``.pub``::

    alice = Identity.generate("alice")
    alice.save("alice.key", passphrase)          # alice.key (0600) + alice.pub (0644)
    again = Identity.load("alice.key", passphrase)
    again.public.verify(again.sign(b"hi"), b"hi")   # raises VerificationError if bad

Key file (``claimkit/identity/v1``, RFC 8785 JSON)::

    {"type": "claimkit/identity/v1", "name": "alice", "public_key": "<b64>",
     "kdf": {"alg": "argon2id13", "opslimit": 2, "memlimit": 67108864, "salt": "<b64>"},
     "ciphertext": "<b64 SecretBox(seed || UTF-8 name)>"}

SecretBox has no associated data, so the clear ``name`` and ``public_key`` are bound
the way OpenSSH binds its key comment: the name is sealed with the seed, and after
decryption the seed must derive the stated public key and the sealed name must equal
the stated one (both compared in constant time). Editing either makes the file fail
to load with the same message as a wrong passphrase.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nacl.exceptions
import nacl.signing

from .errors import KeyFileError, MalformedInputError, VerificationError
from .sealed import seal, unseal
from .wire import (Fields, atomic_write, b64encode, canonical_json, ct_equal, load_json, pretty_json,
                   read_json_file, read_regular_file)

__all__ = ["PublicIdentity", "Identity", "passphrase_from_env", "PASSPHRASE_ENV"]

KEY_TYPE = "claimkit/identity/v1"
PUBLIC_TYPE = "claimkit/identity-public/v1"
PASSPHRASE_ENV = "CLAIMKIT_PASSPHRASE"
SEED_BYTES = 32
MAX_KEY_FILE_BYTES = 64 * 1024
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
        """Return on a valid signature of ``message``; raise ``VerificationError`` otherwise."""
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
        name = f.str("name", max_len=64)
        public_key = f.bytes("public_key", size=32)
        key_id = f.str("key_id", max_len=64)
        f.done()
        try:
            identity = cls(name, public_key)
        except MalformedInputError as e:
            raise MalformedInputError(f"{where}.name: {e}") from None
        if key_id != identity.key_id:
            raise MalformedInputError(f"{where}.key_id: does not match the public key")
        return identity

    def to_json(self) -> bytes:
        return pretty_json(self.to_dict())

    @classmethod
    def from_json(cls, data: bytes | str) -> PublicIdentity:
        return cls.from_dict(load_json(data, what="public identity", max_bytes=MAX_KEY_FILE_BYTES))

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> PublicIdentity:
        """Read a ``.pub`` file; its ``key_id`` must match its public key."""
        return cls.from_dict(read_json_file(path, max_bytes=MAX_KEY_FILE_BYTES), str(path))


class Identity:
    """An Ed25519 signing key with a name. Not a wire object; never prints its secret."""

    __slots__ = ("_key", "public")

    def __init__(self, name: str, seed: bytes) -> None:
        if not isinstance(seed, bytes) or len(seed) != SEED_BYTES:
            raise MalformedInputError("an Ed25519 seed is 32 bytes")
        self._key = nacl.signing.SigningKey(seed)
        self.public = PublicIdentity(_check_name(name), bytes(self._key.verify_key))

    def __repr__(self) -> str:
        return f"Identity(name={self.public.name!r}, key_id={self.public.key_id[:16]}…)"

    @property
    def name(self) -> str:
        return self.public.name

    @classmethod
    def generate(cls, name: str, *, seed: bytes | None = None) -> Identity:
        """A new random identity; ``seed`` is for tests and vectors only (Ed25519 is deterministic)."""
        return cls(name, seed if seed is not None else secrets.token_bytes(SEED_BYTES))

    @property
    def seed(self) -> bytes:
        """The 32-byte private seed (for deriving note signers; handle as a secret)."""
        return bytes(self._key)

    def sign(self, message: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``message``."""
        return self._key.sign(message).signature

    def save(self, path: str | os.PathLike[str], passphrase: str, *,
             strength: str = "interactive", overwrite: bool = False) -> None:
        """Write the sealed key to ``path`` (mode 0600) and the public identity beside it.

        The public half goes to ``path`` with its suffix replaced by ``.pub`` (mode
        0644). Both are written atomically; unless ``overwrite``, an existing file at
        either place is an error and nothing is written.

        ``strength`` picks libsodium's Argon2id limits: ``"interactive"`` (default,
        64 MiB), ``"moderate"`` (256 MiB), ``"sensitive"`` (1 GiB), or ``"min"`` —
        INSECURE, the library minimum (8 KiB, one pass), for tests only.
        """
        path = Path(path)
        pub = path.with_suffix(".pub")
        if pub == path:
            raise KeyFileError(f"{path}: a key file must not be named .pub (that name is for "
                               f"the public half)")
        if not overwrite:
            for target in (path, pub):
                if os.path.lexists(target):
                    raise KeyFileError(f"{target} exists; refusing to overwrite a key")
        sealed = seal(self.seed + self.public.name.encode("ascii"), passphrase, strength=strength)
        body = {"type": KEY_TYPE, "name": self.public.name,
                "public_key": b64encode(self.public.public_key), **sealed}
        write_key_file(path, canonical_json(body), 0o600, overwrite)
        write_key_file(pub, self.public.to_json(), 0o644, overwrite)

    @classmethod
    def load(cls, path: str | os.PathLike[str], passphrase: str) -> Identity:
        """Open a key file written by :meth:`save`.

        Raises ``KeyFileError`` for a missing or unreadable file, a file that others can
        read or write (like ssh), one that is not a claimkit key, KDF limits a hostile
        file could use to exhaust memory, and — with one message for all of them — a
        wrong passphrase or any change to the file's contents.
        """
        path = Path(path)
        try:
            data = read_private_file(path)
        except KeyFileError:    # "chmod 600" is the wrong advice for what is no private key
            kind = _peek_type(path) if _open_to_others(path) else KEY_TYPE
            if kind == PUBLIC_TYPE:
                raise KeyFileError(f"{path} is a public identity; load the private key file")
            if kind != KEY_TYPE:
                raise KeyFileError(f"{path}: not a claimkit identity key") from None
            raise
        try:
            f = Fields(load_json(data, what=str(path), max_bytes=MAX_KEY_FILE_BYTES), str(path))
            kind = f.str("type", max_len=64)
            if kind == PUBLIC_TYPE:
                raise KeyFileError(f"{path} is a public identity; load the private key file")
            if kind != KEY_TYPE:
                raise KeyFileError(f"{path}: not a claimkit identity key (type {kind!r})")
            name = f.str("name", max_len=64)
            public_key = f.bytes("public_key", size=32)
            sealed = {"kdf": f.raw("kdf"), "ciphertext": f.raw("ciphertext")}
            f.done()
            plain = unseal(sealed, passphrase, what=str(path), max_bytes=1024)
        except KeyFileError:  # already says what is wrong with the file
            raise
        except MalformedInputError as e:
            raise KeyFileError(f"not a usable claimkit key file: {e}") from None
        corrupted = KeyFileError(f"wrong passphrase or corrupted key file: {path}")
        seed, sealed_name = plain[:SEED_BYTES], plain[SEED_BYTES:]
        if len(seed) != SEED_BYTES:
            raise corrupted
        derived = bytes(nacl.signing.SigningKey(seed).verify_key)
        name_ok = ct_equal(sealed_name, name.encode("utf-8", "surrogatepass"))
        key_ok = ct_equal(derived, public_key)
        if not (name_ok and key_ok):
            raise corrupted
        try:
            return cls(name, seed)
        except MalformedInputError:
            raise corrupted from None


def passphrase_from_env(var: str = PASSPHRASE_ENV) -> str | None:
    """The passphrase in environment variable ``var``, or None when unset or empty."""
    return os.environ.get(var) or None


def _open_to_others(path: Path) -> bool:
    """A regular file whose mode lets others in: the case read_private_file refuses
    with "chmod 600"."""
    try:
        st = os.stat(path)
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and os.name == "posix" and bool(st.st_mode & 0o077)


def _peek_type(path: Path) -> str | None:
    """The ``type`` of a claimkit JSON key file, or None for anything else (unreadable,
    not JSON, no type): only to choose an error message."""
    try:
        value = load_json(read_regular_file(path, max_bytes=MAX_KEY_FILE_BYTES), what=str(path))
    except (OSError, MalformedInputError):
        return None
    kind = value.get("type") if isinstance(value, dict) else None
    return kind if isinstance(kind, str) else None


def read_private_file(path: Path, *, max_bytes: int = MAX_KEY_FILE_BYTES) -> bytes:
    """Read a private key file, refusing (like ssh) one that others may read or write.

    Shared by identity and marking keys, through :func:`claimkit.wire.read_regular_file`
    (a regular file, opened without blocking, at most ``max_bytes``), with the mode checked
    on the open descriptor before anything is read.
    """
    def private(st: os.stat_result) -> None:
        mode = stat.S_IMODE(st.st_mode)
        if os.name == "posix" and mode & 0o077:
            how = "readable" if mode & 0o044 else "writable" if mode & 0o022 else "accessible"
            raise KeyFileError(f"{path} is {how} by others (mode {mode:04o}); chmod 600 {path}")

    try:
        return read_regular_file(path, max_bytes=max_bytes, check=private)
    except FileNotFoundError:
        raise KeyFileError(f"{path}: no such key file") from None
    except KeyFileError:
        raise
    except MalformedInputError as e:     # not a regular file, too large, unreadable
        raise KeyFileError(f"{e}; not a key file") from None


def write_key_file(path: Path, data: bytes, mode: int, overwrite: bool) -> None:
    """``atomic_write``, but without ``overwrite`` an existing file is never replaced.

    The bytes are first written atomically under a temporary name, then hard-linked to
    ``path``: ``link`` fails if ``path`` exists (a dangling symlink included), so a file
    created meanwhile survives. I/O errors name ``path``, never the temporary file.
    """
    try:
        if overwrite:
            atomic_write(path, data, mode=mode)
            return
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.new")
        atomic_write(tmp, data, mode=mode)
        try:
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise KeyFileError(f"{path} exists; refusing to overwrite a key") from None
            except OSError:  # no hard links here (FAT, some network file systems)
                if os.path.lexists(path):
                    raise KeyFileError(f"{path} exists; refusing to overwrite a key") from None
                os.replace(tmp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError as e:
        raise KeyFileError(f"{path}: cannot write ({e.strerror or e})") from None
