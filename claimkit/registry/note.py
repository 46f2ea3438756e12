"""C2SP signed notes (https://c2sp.org/signed-note), byte-compatible with Go's sumdb/note.

A signed note is UTF-8 text ending in a newline, a blank line, then one or more
signature lines ``— <key name> <base64(key ID || signature)>`` (U+2014, a space, the
name, a space, the base64, a newline). The key ID is the first four bytes of
SHA-256(name || 0x0A || signature type || public key); plain Ed25519 note signatures
use type 0x01, C2SP ``cosignature/v1`` cosignatures type 0x04 (see
:mod:`.checkpoint`). Verifier keys travel as
``<name>+<hex key ID>+<base64(type || public key)>``::

    signer = NoteSigner("example.org/log", seed)
    note = sign_note("hello\\n", signer)
    verify_note(SignedNote.from_bytes(note.to_bytes()), signer.verifier_key)

Parsing is strict so that every accepted note has exactly one encoding and
``SignedNote.from_bytes(b).to_bytes() == b``. In particular base64 must be canonical
(Go's decoder also accepts non-zero padding bits): otherwise two byte strings would
carry "the same" signature and a flipped bit could go unnoticed. Signatures by keys
the verifier does not know are kept (for round trips and relaying) but never trusted,
as the specification requires.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass

import nacl.exceptions
import nacl.signing

from ..errors import MalformedInputError, VerificationError
from ..wire import b64decode, b64encode

__all__ = [
    "ALG_ED25519",
    "ALG_COSIGNATURE_V1",
    "MAX_NOTE_BYTES",
    "MAX_SIGNATURES",
    "check_key_name",
    "key_hash",
    "VerifierKey",
    "NoteSigner",
    "NoteSignature",
    "SignedNote",
    "sign_note",
    "verify_note",
]

ALG_ED25519 = 0x01
"""Signature type of plain Ed25519 note signatures over the note text."""

ALG_COSIGNATURE_V1 = 0x04
"""Signature type of timestamped Ed25519 ``cosignature/v1`` checkpoint cosignatures."""

SUPPORTED_ALGS = (ALG_ED25519, ALG_COSIGNATURE_V1)

SIG_PREFIX = "\u2014 "
"""Em dash and space: how every signature line starts."""

MAX_NOTE_BYTES = 1 << 20
"""Default size limit of a parsed note: 100 post-quantum signatures (~3.3 kB each) fit."""

MAX_SIGNATURES = 100
"""Most signature lines accepted, as Go's note.Open (the spec requires at least 16)."""

# Unicode White_Space (PropList.txt), the set Go's unicode.IsSpace tests: the spec
# forbids "Unicode spaces" in key names. Python's str.isspace() differs (it also
# counts U+001C..U+001F), so the set is spelled out.
_UNICODE_SPACES = frozenset(
    "\t\n\v\f\r \x85\xa0\u1680" + "".join(chr(c) for c in range(0x2000, 0x200B))
    + "\u2028\u2029\u202f\u205f\u3000")


def _valid_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates
        return False
    return True


_CONTROL = re.compile("[\x00-\x1f]")
_CONTROL_BUT_NEWLINE = re.compile("[\x00-\x09\x0b-\x1f]")


def _has_control(text: str, *, allow_newline: bool) -> bool:
    return (_CONTROL_BUT_NEWLINE if allow_newline else _CONTROL).search(text) is not None


def check_key_name(name: object, *, what: str = "note key name") -> str:
    """A key name: non-empty UTF-8 without Unicode spaces or '+' (and no control
    characters, which could never appear in a signed note)."""
    if not isinstance(name, str) or not name:
        raise MalformedInputError(f"{what}: must be a non-empty string")
    if "+" in name or any(ch in _UNICODE_SPACES for ch in name):
        raise MalformedInputError(f"{what} {name!r}: must not contain spaces or '+'")
    if _has_control(name, allow_newline=False) or not _valid_utf8(name):
        raise MalformedInputError(f"{what} {name!r}: control characters or invalid UTF-8")
    return name


def key_hash(name: str, alg: int, public_key: bytes) -> bytes:
    """The 4-byte key ID: SHA-256(name || 0x0A || type || public key)[:4]."""
    return hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([alg]) + public_key).digest()[:4]


@dataclass(frozen=True)
class VerifierKey:
    """A note verifier key: name, signature type (0x01 or 0x04) and Ed25519 public key.

    The key ID is derived, never stored, so a key cannot claim another key's ID.
    """

    name: str
    alg: int
    public_key: bytes

    def __post_init__(self) -> None:
        check_key_name(self.name)
        if not isinstance(self.alg, int) or isinstance(self.alg, bool) or self.alg not in SUPPORTED_ALGS:
            raise MalformedInputError(
                f"note key {self.name}: unsupported signature type {self.alg!r} "
                f"(supported: 0x01 Ed25519, 0x04 cosignature/v1)")
        if not isinstance(self.public_key, bytes) or len(self.public_key) != 32:
            raise MalformedInputError(f"note key {self.name}: expected a 32-byte Ed25519 key")

    @property
    def key_hash(self) -> bytes:
        return key_hash(self.name, self.alg, self.public_key)

    def to_vkey(self) -> str:
        """``<name>+<8 lowercase hex key ID>+<base64(type || public key)>``."""
        return f"{self.name}+{self.key_hash.hex()}+{b64encode(bytes([self.alg]) + self.public_key)}"

    @classmethod
    def from_vkey(cls, text: str) -> VerifierKey:
        """Parse a vkey and check that its key ID is the one its name and key give.

        The base64 part may itself contain '+', so only the first two '+' split.
        """
        if not isinstance(text, str):
            raise MalformedInputError("verifier key: expected a string")
        parts = text.split("+", 2)
        if len(parts) != 3:
            raise MalformedInputError("verifier key: expected <name>+<key ID>+<key>")
        name, id_hex, key_b64 = parts
        check_key_name(name, what="verifier key name")
        if len(id_hex) != 8 or any(c not in "0123456789abcdef" for c in id_hex):
            raise MalformedInputError(f"verifier key {name}: key ID must be 8 lowercase hex digits")
        raw = b64decode(key_b64, field=f"verifier key {name}")
        if not raw:
            raise MalformedInputError(f"verifier key {name}: empty key")
        if raw[0] not in SUPPORTED_ALGS:
            raise MalformedInputError(f"verifier key {name}: unsupported signature type {raw[0]:#04x}")
        if len(raw) != 33:
            raise MalformedInputError(f"verifier key {name}: expected a 32-byte Ed25519 key")
        key = cls(name, raw[0], raw[1:])
        if id_hex != key.key_hash.hex():
            raise MalformedInputError(f"verifier key {name}: key ID does not match the key")
        return key

    def verify_raw(self, signature: bytes, message: bytes) -> None:
        """Raise VerificationError unless ``signature`` is this key's Ed25519 signature."""
        try:
            nacl.signing.VerifyKey(self.public_key).verify(message, signature)
        except (nacl.exceptions.BadSignatureError, ValueError, TypeError):
            raise VerificationError(f"bad signature by note key {self.name}") from None

    def matches(self, signature: NoteSignature) -> bool:
        """Whether a signature line claims to be by this key (same name AND key ID)."""
        return signature.name == self.name and hmac.compare_digest(signature.key_hash, self.key_hash)

    def __str__(self) -> str:
        return self.to_vkey()


class NoteSigner:
    """A named Ed25519 note signing key of one signature type.

    ``key`` is a ``nacl.signing.SigningKey`` or its 32-byte seed. The same seed gives
    a different key ID per type, so a log key and a cosigner key never collide.
    """

    def __init__(self, name: str, key: nacl.signing.SigningKey | bytes, *,
                 alg: int = ALG_ED25519) -> None:
        if isinstance(key, nacl.signing.SigningKey):
            self._key = key
        elif isinstance(key, bytes) and len(key) == 32:
            self._key = nacl.signing.SigningKey(key)
        else:
            raise MalformedInputError("note signer: expected a SigningKey or a 32-byte seed")
        self.verifier_key = VerifierKey(check_key_name(name), alg, bytes(self._key.verify_key))

    @classmethod
    def cosigner(cls, name: str, key: nacl.signing.SigningKey | bytes) -> NoteSigner:
        """The ``cosignature/v1`` (type 0x04) signer for a witness or time key."""
        return cls(name, key, alg=ALG_COSIGNATURE_V1)

    @classmethod
    def from_skey(cls, text: str) -> NoteSigner:
        """Go's private signer key ``PRIVATE+KEY+<name>+<key ID>+<base64(type || seed)>``.

        Checked like Go's note.NewSigner: the key ID must match the derived public key.
        """
        if not isinstance(text, str):
            raise MalformedInputError("signer key: expected a string")
        parts = text.split("+", 4)
        if len(parts) != 5 or parts[0] != "PRIVATE" or parts[1] != "KEY":
            raise MalformedInputError("signer key: expected PRIVATE+KEY+<name>+<key ID>+<key>")
        _, _, name, id_hex, key_b64 = parts
        check_key_name(name, what="signer key name")
        if len(id_hex) != 8 or any(c not in "0123456789abcdef" for c in id_hex):
            raise MalformedInputError("signer key: key ID must be 8 lowercase hex digits")
        raw = b64decode(key_b64, field="signer key")
        if len(raw) != 33 or raw[0] not in SUPPORTED_ALGS:
            raise MalformedInputError("signer key: expected a type byte and a 32-byte seed")
        signer = cls(name, raw[1:], alg=raw[0])
        if signer.verifier_key.key_hash.hex() != id_hex:
            raise MalformedInputError("signer key: key ID does not match the key")
        return signer

    @property
    def name(self) -> str:
        return self.verifier_key.name

    @property
    def alg(self) -> int:
        return self.verifier_key.alg

    @property
    def vkey(self) -> str:
        """The public verifier key string to hand to verifiers."""
        return self.verifier_key.to_vkey()

    def raw_sign(self, message: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``message`` (no key ID, no framing)."""
        return self._key.sign(message).signature

    def __repr__(self) -> str:
        return f"NoteSigner({self.vkey})"


@dataclass(frozen=True)
class NoteSignature:
    """One signature line: key name, 4-byte key ID, and the signature bytes after the ID.

    For type 0x01 the bytes are a 64-byte Ed25519 signature; for ``cosignature/v1``
    an 8-byte big-endian timestamp then 64 signature bytes; unknown types are opaque.
    """

    name: str
    key_hash: bytes
    signature: bytes

    def __post_init__(self) -> None:
        check_key_name(self.name, what="note signature name")
        if not isinstance(self.key_hash, bytes) or len(self.key_hash) != 4:
            raise MalformedInputError(f"note signature by {self.name}: key ID must be 4 bytes")
        if not isinstance(self.signature, bytes) or not self.signature:
            raise MalformedInputError(f"note signature by {self.name}: empty signature")

    def to_line(self) -> str:
        """The signature line, newline included."""
        return f"{SIG_PREFIX}{self.name} {b64encode(self.key_hash + self.signature)}\n"

    @classmethod
    def from_line(cls, line: str) -> NoteSignature:
        """Parse one signature line (with or without its final newline).

        Also how a witness's ``add-checkpoint`` response lines are read.
        """
        if not isinstance(line, str):
            raise MalformedInputError("note signature line: expected a string")
        if line.endswith("\n"):
            line = line[:-1]
        if "\n" in line or _has_control(line, allow_newline=False) or not _valid_utf8(line):
            raise MalformedInputError("note signature line: control characters or invalid UTF-8")
        if not line.startswith(SIG_PREFIX):
            raise MalformedInputError("note signature line: must start with an em dash and a space")
        name, sep, b64 = line[len(SIG_PREFIX):].partition(" ")
        if not sep or not b64:
            raise MalformedInputError("note signature line: expected '— <name> <base64>'")
        check_key_name(name, what="note signature name")
        raw = b64decode(b64, field=f"note signature by {name}")
        if len(raw) < 5:
            raise MalformedInputError(f"note signature by {name}: shorter than a key ID and a byte")
        return cls(name, raw[:4], raw[4:])


def _check_text(text: object) -> str:
    if not isinstance(text, str) or not text.endswith("\n"):
        raise MalformedInputError("note text: must be a string ending with a newline")
    if _has_control(text, allow_newline=True) or not _valid_utf8(text):
        raise MalformedInputError("note text: control characters other than newline, or invalid UTF-8")
    return text


@dataclass(frozen=True)
class SignedNote:
    """A note text (ending in a newline; empty lines allowed) and its signature lines.

    The text is separated from the signatures by the LAST blank line, so any text that
    ends in a newline round-trips, even one with blank lines of its own.
    """

    text: str
    signatures: tuple[NoteSignature, ...]

    def __post_init__(self) -> None:
        _check_text(self.text)
        if not isinstance(self.signatures, tuple) or not all(
                isinstance(s, NoteSignature) for s in self.signatures):
            raise MalformedInputError("note: signatures must be a tuple of NoteSignature")
        if not self.signatures:
            raise MalformedInputError("note: at least one signature line is required")
        if len(self.signatures) > MAX_SIGNATURES:
            raise MalformedInputError(f"note: more than {MAX_SIGNATURES} signatures")

    def to_bytes(self) -> bytes:
        return (self.text + "\n" + "".join(s.to_line() for s in self.signatures)).encode("utf-8")

    def with_signature(self, signature: NoteSignature) -> SignedNote:
        """Add a signature line, replacing any earlier line by the same key (name and ID),
        as Go's note.Sign does, so re-signing never piles up stale lines."""
        kept = tuple(s for s in self.signatures
                     if not (s.name == signature.name and s.key_hash == signature.key_hash))
        return SignedNote(self.text, kept + (signature,))

    def signatures_by(self, key: VerifierKey) -> tuple[NoteSignature, ...]:
        """The lines that claim to be by ``key``: same name AND key ID (the spec's
        definition of a known key; matching only one of the two means unknown)."""
        return tuple(s for s in self.signatures if key.matches(s))

    @classmethod
    def from_bytes(cls, data: bytes, *, max_bytes: int = MAX_NOTE_BYTES) -> SignedNote:
        """Strictly parse a signed note; any deviation raises MalformedInputError."""
        if not isinstance(data, (bytes, bytearray)):
            raise MalformedInputError("note: expected bytes")
        if len(data) > max_bytes:
            raise MalformedInputError(f"note: larger than {max_bytes} bytes")
        try:
            msg = bytes(data).decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedInputError("note: not valid UTF-8") from None
        if _has_control(msg, allow_newline=True):
            raise MalformedInputError("note: control characters other than newline (CR included)")
        split = msg.rfind("\n\n")
        if split < 0:
            raise MalformedInputError("note: no blank line before the signatures")
        text, block = msg[:split + 1], msg[split + 2:]
        if not block or not block.endswith("\n"):
            raise MalformedInputError("note: the signature block must be non-empty and end with a newline")
        lines = block[:-1].split("\n")
        if len(lines) > MAX_SIGNATURES:
            raise MalformedInputError(f"note: more than {MAX_SIGNATURES} signatures")
        return cls(text, tuple(NoteSignature.from_line(line) for line in lines))


def sign_note(text: str, signer: NoteSigner) -> SignedNote:
    """``text`` signed with an Ed25519 (type 0x01) note key."""
    _check_text(text)
    if signer.alg != ALG_ED25519:
        raise MalformedInputError(
            f"{signer.name} is a cosignature/v1 key: cosign checkpoints with checkpoint.cosign")
    key = signer.verifier_key
    return SignedNote(text, (NoteSignature(key.name, key.key_hash,
                                           signer.raw_sign(text.encode("utf-8"))),))


def verify_note(note: SignedNote, key: VerifierKey) -> NoteSignature:
    """Check ``note`` against a trusted Ed25519 (type 0x01) key; return its signature.

    Lines by other keys are ignored, even if they share the name or the key ID (not
    both). Every line that does match the key must verify: one failing line from a
    known key rejects the whole note (the spec's SHOULD), and so does having none.
    """
    if key.alg != ALG_ED25519:
        raise VerificationError(
            f"{key.name} is a cosignature/v1 key, not a note signing key (use verify_cosignature)")
    mine = note.signatures_by(key)
    if not mine:
        raise VerificationError(f"note: no signature by {key.name}")
    message = note.text.encode("utf-8")
    for sig in mine:
        key.verify_raw(sig.signature, message)
    return mine[0]
