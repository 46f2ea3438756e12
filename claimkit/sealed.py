"""Passphrase-sealed secrets: Argon2id key derivation + XSalsa20-Poly1305 (libsodium).

Marking keys and identity keys are secrets at rest. A sealed box is a small JSON object
that carries its own KDF parameters, so a file sealed with stronger limits opens with
the same code; limits a hostile file could use to exhaust memory are refused::

    >>> box = seal(b"secret", "correct horse", strength="min")
    >>> unseal(box, "correct horse", what="example")
    b'secret'
"""

from __future__ import annotations

import unicodedata
from typing import Any

import nacl.exceptions
import nacl.pwhash
import nacl.secret
import nacl.utils

from .errors import KeyFileError, MalformedInputError
from .wire import Fields, b64encode

__all__ = ["STRENGTHS", "seal", "strength_of", "unseal"]

_ARGON = nacl.pwhash.argon2id
STRENGTHS: dict[str, tuple[int, int]] = {
    "interactive": (_ARGON.OPSLIMIT_INTERACTIVE, _ARGON.MEMLIMIT_INTERACTIVE),
    "moderate": (_ARGON.OPSLIMIT_MODERATE, _ARGON.MEMLIMIT_MODERATE),
    "sensitive": (_ARGON.OPSLIMIT_SENSITIVE, _ARGON.MEMLIMIT_SENSITIVE),
    # Insecure: the library minimum, for tests only.
    "min": (_ARGON.OPSLIMIT_MIN, _ARGON.MEMLIMIT_MIN),
}
# A hostile file must not make us burn minutes or gigabytes: nothing above "sensitive".
MAX_MEMLIMIT = _ARGON.MEMLIMIT_SENSITIVE
MAX_OPSLIMIT = _ARGON.OPSLIMIT_SENSITIVE
KDF_ALG = "argon2id13"


def _derive(passphrase: str, salt: bytes, opslimit: int, memlimit: int) -> bytes:
    if not isinstance(passphrase, str):  # bytes would be a second, unnormalised spelling
        raise KeyFileError(f"a passphrase must be text (str), not {type(passphrase).__name__}")
    # NFC, so the same passphrase typed on systems that compose accents differently works.
    secret = unicodedata.normalize("NFC", passphrase).encode("utf-8")
    return _ARGON.kdf(nacl.secret.SecretBox.KEY_SIZE, secret, salt,
                      opslimit=opslimit, memlimit=memlimit)


def seal(plaintext: bytes, passphrase: str, *, strength: str = "interactive") -> dict[str, Any]:
    """Encrypt ``plaintext`` under a key derived from ``passphrase``; returns JSON data."""
    if strength not in STRENGTHS:
        raise MalformedInputError(f"unknown key strength {strength!r}")
    if passphrase == "":
        raise KeyFileError("an empty passphrase is not allowed")
    opslimit, memlimit = STRENGTHS[strength]
    salt = nacl.utils.random(_ARGON.SALTBYTES)
    box = nacl.secret.SecretBox(_derive(passphrase, salt, opslimit, memlimit))
    return {
        "kdf": {"alg": KDF_ALG, "opslimit": opslimit, "memlimit": memlimit,
                "salt": b64encode(salt)},
        "ciphertext": b64encode(bytes(box.encrypt(plaintext))),
    }


def strength_of(obj: Any, default: str = "interactive") -> str:
    """The name of the strength a sealed box was made with, for sealing it again no
    weaker; ``default`` for a box whose limits are none of :data:`STRENGTHS`."""
    kdf = obj.get("kdf") if isinstance(obj, dict) else None
    limits = (kdf.get("opslimit"), kdf.get("memlimit")) if isinstance(kdf, dict) else None
    return next((name for name, pair in STRENGTHS.items() if pair == limits), default)


def unseal(obj: Any, passphrase: str, *, what: str, max_bytes: int = 1 << 30) -> bytes:
    """Decrypt a sealed box; any failure is one vague ``KeyFileError`` naming ``what``."""
    f = Fields(obj, what)
    kdf = Fields(f.obj("kdf"), f.path("kdf"))
    kdf.str("alg", choices=(KDF_ALG,))
    opslimit = kdf.int("opslimit", lo=_ARGON.OPSLIMIT_MIN, hi=MAX_OPSLIMIT)
    memlimit = kdf.int("memlimit", lo=_ARGON.MEMLIMIT_MIN, hi=MAX_MEMLIMIT)
    if memlimit % 1024:     # libsodium takes whole KiB: an edit below one would still open
        raise KeyFileError(f"{kdf.path('memlimit')}: not a whole number of KiB")
    salt = kdf.bytes("salt", size=_ARGON.SALTBYTES)
    kdf.done()
    ciphertext = f.bytes("ciphertext", max_size=max_bytes)
    f.done()
    try:
        box = nacl.secret.SecretBox(_derive(passphrase, salt, opslimit, memlimit))
        return bytes(box.decrypt(ciphertext))
    except (nacl.exceptions.CryptoError, ValueError, TypeError):
        raise KeyFileError(f"wrong passphrase or corrupted key file: {what}") from None
