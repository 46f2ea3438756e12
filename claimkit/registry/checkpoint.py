"""C2SP checkpoints (https://c2sp.org/tlog-checkpoint) and Ed25519 cosignatures
(https://c2sp.org/tlog-cosignature, ``cosignature/v1``).

A checkpoint is a signed note whose text is at least three non-empty lines: the
origin, the tree size in decimal without leading zeros, the base64 RFC 6962 root
hash, then optional non-empty extension lines::

    example.com/behind-the-sofa
    20852163
    CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=

A cosigner (a witness, or the registry's time key) signs
``cosignature/v1\\ntime <POSIX seconds>\\n`` followed by the whole checkpoint text; its
signature line carries the 4-byte key ID, the timestamp as 8 bytes big endian and the
64-byte Ed25519 signature. The cosigner's name is NOT in the signed message, which is
why one Ed25519 key must never serve two cosigner names.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

from ..errors import MalformedInputError, VerificationError
from ..wire import b64decode, b64encode
from .note import (ALG_COSIGNATURE_V1, ALG_ED25519, MAX_NOTE_BYTES, NoteSignature, NoteSigner,
                   SignedNote, VerifierKey, verify_note)

__all__ = ["Checkpoint", "SignedCheckpoint", "cosign", "verify_cosignature", "parse_decimal",
           "cosigned_message", "MAX_TREE_SIZE", "MAX_TIMESTAMP"]

MAX_TREE_SIZE = (1 << 64) - 1
"""Tree sizes are uint64, as in RFC 6962 and the Go implementations."""

MAX_TIMESTAMP = (1 << 63) - 1
"""A cosignature timestamp "MUST NOT exceed 2^63 - 1" (tlog-cosignature)."""

_DECIMAL = re.compile(r"0|[1-9][0-9]*")


def parse_decimal(text: str, *, what: str, hi: int) -> int:
    """ASCII decimal with no leading zeros (``0`` alone is zero), at most ``hi``.

    Python's int() would also take '+5', ' 5', '5_0' and non-ASCII digits; the
    formats allow none of these, and leading zeros would give two encodings of one
    number.
    """
    if not _DECIMAL.fullmatch(text) or len(text) > len(str(hi)):
        raise MalformedInputError(f"{what}: expected a decimal number without leading zeros")
    value = int(text)
    if value > hi:
        raise MalformedInputError(f"{what}: {text} is larger than {hi}")
    return value


def _check_line(line: object, what: str) -> str:
    if not isinstance(line, str) or not line:
        raise MalformedInputError(f"checkpoint {what}: must be a non-empty string")
    if any(ord(c) < 0x20 for c in line):
        raise MalformedInputError(f"checkpoint {what}: newline or control character")
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:
        raise MalformedInputError(f"checkpoint {what}: not valid UTF-8") from None
    return line


@dataclass(frozen=True)
class Checkpoint:
    """A log's tree head: origin, size and root hash, plus opaque extension lines.

    The origin is any non-empty line: the spec only RECOMMENDS a schema-less URL
    (sum.golang.org's is "go.sum database tree"), and clients must not assume more.
    """

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_line(self.origin, "origin")
        if not isinstance(self.size, int) or isinstance(self.size, bool) \
                or not 0 <= self.size <= MAX_TREE_SIZE:
            raise MalformedInputError("checkpoint size: expected an integer in [0, 2^64-1]")
        if not isinstance(self.root_hash, bytes) or len(self.root_hash) != 32:
            raise MalformedInputError("checkpoint root hash: expected 32 bytes")
        if not isinstance(self.extensions, tuple):
            raise MalformedInputError("checkpoint extensions: expected a tuple of lines")
        for i, line in enumerate(self.extensions):
            _check_line(line, f"extension line {i}")

    def to_text(self) -> str:
        """The note text (the exact bytes that the log signs), final newline included."""
        lines = [self.origin, str(self.size), b64encode(self.root_hash), *self.extensions]
        return "\n".join(lines) + "\n"

    @classmethod
    def from_text(cls, text: str) -> Checkpoint:
        """Strictly parse a checkpoint note text; ``from_text(t).to_text() == t``."""
        if not isinstance(text, str) or not text.endswith("\n"):
            raise MalformedInputError("checkpoint: must be text ending with a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise MalformedInputError("checkpoint: needs origin, size and root hash lines")
        if any(not line for line in lines):
            raise MalformedInputError("checkpoint: empty line in the checkpoint text")
        origin, size, root, *extensions = lines
        return cls(origin,
                   parse_decimal(size, what="checkpoint size", hi=MAX_TREE_SIZE),
                   b64decode(root, field="checkpoint root hash", size=32),
                   tuple(extensions))


@dataclass(frozen=True)
class SignedCheckpoint:
    """A checkpoint and the signed note that carries it (log signature, cosignatures).

    Parsing does not make it trusted: call :meth:`verify` with the log's key first.
    """

    checkpoint: Checkpoint
    note: SignedNote

    def __post_init__(self) -> None:
        if not isinstance(self.checkpoint, Checkpoint) or not isinstance(self.note, SignedNote):
            raise MalformedInputError("signed checkpoint: expected a Checkpoint and a SignedNote")
        if self.note.text != self.checkpoint.to_text():
            raise MalformedInputError("signed checkpoint: the note text is not the checkpoint")

    @classmethod
    def from_bytes(cls, data: bytes, *, max_bytes: int = MAX_NOTE_BYTES) -> SignedCheckpoint:
        note = SignedNote.from_bytes(data, max_bytes=max_bytes)
        return cls(Checkpoint.from_text(note.text), note)

    def to_bytes(self) -> bytes:
        return self.note.to_bytes()

    def with_signature(self, signature: NoteSignature) -> SignedCheckpoint:
        """Add (or replace, for the same key) a signature line, e.g. a cosignature."""
        return SignedCheckpoint(self.checkpoint, self.note.with_signature(signature))

    def verify(self, log_key: VerifierKey, *, origin: str | None = None) -> Checkpoint:
        """Check the log's signature and origin; return the now-trusted checkpoint.

        The expected origin is the log key's name (tlog-checkpoint: the key name
        SHOULD match the origin) unless ``origin`` is given, for logs whose key name
        differs (sum.golang.org signs "go.sum database tree"). A log key of type 0x04
        (logs MAY sign with a cosignature key) is checked as a cosignature.
        """
        expected = log_key.name if origin is None else origin
        if self.checkpoint.origin != expected:
            raise VerificationError(f"checkpoint origin {self.checkpoint.origin!r} is not the "
                                    f"expected {expected!r}")
        if log_key.alg == ALG_COSIGNATURE_V1:
            verify_cosignature(self, log_key)
        else:
            verify_note(self.note, log_key)
        return self.checkpoint

    def log_signature(self, log_key: VerifierKey) -> bytes:
        """The bytes of the log key's signature line, once :meth:`verify` passes: what
        the seeds drawn from the log mix in beside the root (challenge.md), since nobody
        without the log's private key can compute it before the checkpoint is signed,
        and the log cannot change it without changing the checkpoint (Ed25519 signing is
        deterministic, RFC 8032 §5.1.6; a log that deviates could choose among
        signatures, as it could choose entry times). Exactly one line by the key, and
        an Ed25519 note key (0x01): a cosignature-type key's line carries a timestamp the
        log picks, so one checkpoint would have many such signatures."""
        if log_key.alg != ALG_ED25519:
            raise VerificationError(f"{log_key.name}: a seed drawn from the log needs an "
                                    "Ed25519 (type 0x01) log key")
        self.verify(log_key)
        mine = self.note.signatures_by(log_key)
        if len(mine) != 1:
            raise VerificationError(f"checkpoint: {len(mine)} signature lines by {log_key.name}; "
                                    "a seed drawn from the log needs exactly one")
        return mine[0].signature


def cosigned_message(checkpoint_text: str, timestamp: int) -> bytes:
    """``cosignature/v1\\ntime <timestamp>\\n`` + the whole checkpoint note text."""
    return f"cosignature/v1\ntime {timestamp}\n{checkpoint_text}".encode("utf-8")


def cosign(checkpoint: Checkpoint, cosigner: NoteSigner, timestamp: int) -> NoteSignature:
    """A ``cosignature/v1`` line by ``cosigner`` (type 0x04) attesting ``checkpoint`` at
    ``timestamp`` (POSIX seconds). The caller must have checked consistency first."""
    key = cosigner.verifier_key
    if key.alg != ALG_COSIGNATURE_V1:
        raise MalformedInputError(f"{key.name} is not a cosignature/v1 key (NoteSigner.cosigner)")
    if not isinstance(timestamp, int) or isinstance(timestamp, bool) \
            or not 0 <= timestamp <= MAX_TIMESTAMP:
        raise MalformedInputError("cosignature timestamp: expected an integer in [0, 2^63-1]")
    signature = cosigner.raw_sign(cosigned_message(checkpoint.to_text(), timestamp))
    return NoteSignature(key.name, key.key_hash, struct.pack(">Q", timestamp) + signature)


def verify_cosignature(signed: SignedCheckpoint, cosigner: VerifierKey) -> int:
    """The POSIX time at which ``cosigner`` attested this checkpoint.

    Lines by other keys are ignored. Every line by this key (name and key ID) must be
    a valid timestamped signature, or the checkpoint is rejected; if there are
    several, the earliest time is returned (the strongest "seen by" bound).
    Raises VerificationError if there is none or one is bad.
    """
    if cosigner.alg != ALG_COSIGNATURE_V1:
        raise VerificationError(f"{cosigner.name} is not a cosignature/v1 (type 0x04) key")
    mine = signed.note.signatures_by(cosigner)
    if not mine:
        raise VerificationError(f"checkpoint: no cosignature by {cosigner.name}")
    times = []
    for sig in mine:
        if len(sig.signature) != 8 + 64:
            raise VerificationError(f"cosignature by {cosigner.name}: not 8 + 64 bytes")
        (timestamp,) = struct.unpack(">Q", sig.signature[:8])
        if timestamp > MAX_TIMESTAMP:
            raise VerificationError(f"cosignature by {cosigner.name}: timestamp beyond 2^63-1")
        cosigner.verify_raw(sig.signature[8:], cosigned_message(signed.note.text, timestamp))
        times.append(timestamp)
    return min(times)
