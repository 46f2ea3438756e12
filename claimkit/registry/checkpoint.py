"""C2SP checkpoints (https://c2sp.org/tlog-checkpoint) and cosignatures
(https://c2sp.org/tlog-cosignature, ``cosignature/v1``).

A checkpoint body is the origin line, the tree size in decimal and the base64 root
hash, optionally followed by extension lines; it is the text of a signed note whose
log signature is by the key named like the origin. A cosigner (a witness, or the
registry's time key) signs ``cosignature/v1\\ntime <unix seconds>\\n`` followed by the
checkpoint body; its signature line carries the key hash, the timestamp as 8 bytes big
endian, and the 64-byte Ed25519 signature.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

from ..errors import MalformedInputError, VerificationError
from ..wire import b64decode, b64encode
from .note import (ALG_COSIGNATURE_V1, NoteSignature, NoteSigner, SignedNote, VerifierKey,
                   signatures_by, verify_note)

__all__ = ["Checkpoint", "SignedCheckpoint", "cosign", "verify_cosignature"]

_SIZE = re.compile(r"0|[1-9][0-9]{0,18}")
MAX_EXTENSIONS = 16


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.origin or any(ord(c) < 0x20 for c in self.origin):
            raise MalformedInputError("checkpoint: the origin must be one non-empty line")
        if not 0 <= self.size < 1 << 63:
            raise MalformedInputError("checkpoint: size out of range")
        if len(self.root_hash) != 32:
            raise MalformedInputError("checkpoint: root hash must be 32 bytes")
        if any(not e or "\n" in e for e in self.extensions) or len(self.extensions) > MAX_EXTENSIONS:
            raise MalformedInputError("checkpoint: malformed extension lines")

    def to_text(self) -> str:
        lines = [self.origin, str(self.size), b64encode(self.root_hash), *self.extensions]
        return "\n".join(lines) + "\n"

    @classmethod
    def from_text(cls, text: str) -> Checkpoint:
        if not text.endswith("\n"):
            raise MalformedInputError("checkpoint: must end with a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise MalformedInputError("checkpoint: needs origin, size and root hash lines")
        origin, size, root, *extensions = lines
        if not _SIZE.fullmatch(size):
            raise MalformedInputError("checkpoint: size must be decimal without leading zeros")
        return cls(origin, int(size), b64decode(root, field="checkpoint root hash", size=32),
                   tuple(extensions))


@dataclass(frozen=True)
class SignedCheckpoint:
    checkpoint: Checkpoint
    note: SignedNote

    def __post_init__(self) -> None:
        if self.note.text != self.checkpoint.to_text():
            raise MalformedInputError("signed checkpoint: note text is not the checkpoint")

    @classmethod
    def from_bytes(cls, data: bytes) -> SignedCheckpoint:
        note = SignedNote.from_bytes(data)
        return cls(Checkpoint.from_text(note.text), note)

    def to_bytes(self) -> bytes:
        return self.note.to_bytes()

    def with_signature(self, signature: NoteSignature) -> SignedCheckpoint:
        return SignedCheckpoint(self.checkpoint, self.note.with_signature(signature))

    def verify(self, log_key: VerifierKey) -> Checkpoint:
        """Check the log's signature; the key's name must be the checkpoint's origin."""
        if log_key.name != self.checkpoint.origin:
            raise VerificationError(f"checkpoint of {self.checkpoint.origin!r} checked with the "
                                    f"key of {log_key.name!r}")
        verify_note(self.note, log_key)
        return self.checkpoint


def _cosigned_message(checkpoint: Checkpoint, timestamp: int) -> bytes:
    return f"cosignature/v1\ntime {timestamp}\n{checkpoint.to_text()}".encode("utf-8")


def cosign(checkpoint: Checkpoint, cosigner: NoteSigner, timestamp: int) -> NoteSignature:
    key = cosigner.verifier_key
    if key.alg != ALG_COSIGNATURE_V1:
        raise MalformedInputError("cosign needs a cosignature/v1 key (NoteSigner.cosigner)")
    if not 0 <= timestamp < 1 << 63:
        raise MalformedInputError("cosignature timestamp out of range")
    signature = cosigner.raw_sign(_cosigned_message(checkpoint, timestamp))
    return NoteSignature(key.name, key.key_hash, struct.pack(">Q", timestamp) + signature)


def verify_cosignature(signed: SignedCheckpoint, cosigner: VerifierKey) -> int:
    """The UNIX time ``cosigner`` attested for this checkpoint; raises if it did not."""
    if cosigner.alg != ALG_COSIGNATURE_V1:
        raise MalformedInputError(f"{cosigner.name} is not a cosignature/v1 key")
    for sig in signatures_by(signed.note, cosigner):
        if len(sig.signature) != 8 + 64:
            continue
        (timestamp,) = struct.unpack(">Q", sig.signature[:8])
        try:
            cosigner.verify(sig.signature[8:], _cosigned_message(signed.checkpoint, timestamp))
        except VerificationError:
            continue
        return timestamp
    raise VerificationError(f"checkpoint: no valid cosignature by {cosigner.name}")
