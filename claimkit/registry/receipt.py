"""Registry receipts: an entry plus the C2SP ``tlog-proof@v1`` that it is in the log.

A receipt is checked offline with the log's public key (``log.vkey``) alone: the
checkpoint's signature, the entry's inclusion path to the checkpoint's root, and the
owner's signature on the request inside the entry. Kept apart from the SQLite store so
that checking a claim never loads the storage stack.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import MalformedInputError, VerificationError
from ..wire import Fields, load_json, pretty_json, read_json_file, read_regular_file
from . import merkle
from .checkpoint import Checkpoint
from .entries import LogEntry
from .note import VerifierKey
from .tlog_proof import TlogProof

__all__ = ["Receipt", "RECEIPT_TYPE", "load_vkey"]

RECEIPT_TYPE = "claimkit/receipt/v1"
MAX_VKEY_BYTES = 4096       # a C2SP verifier key is one line of about 100 bytes


def load_vkey(path: str | Path) -> VerifierKey:
    """Read a one-line C2SP verifier key file (``log.vkey``, ``time.vkey``, a witness's)."""
    try:     # a few hundred bytes: /dev/zero or a FIFO given as a key must not hang
        text = read_regular_file(path, max_bytes=MAX_VKEY_BYTES).decode("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise MalformedInputError(f"{path}: cannot read verifier key ({e})") from None
    return VerifierKey.from_vkey(text.strip())


@dataclass(frozen=True)
class Receipt:
    """An entry with the proof that it is in the log: verifiable offline with ``log.vkey``."""

    entry: LogEntry
    proof: TlogProof

    @property
    def index(self) -> int:
        return self.proof.index

    @property
    def checkpoint(self) -> Checkpoint:
        return self.proof.checkpoint.checkpoint

    def verify(self, log_key: VerifierKey) -> Checkpoint:
        """Check the checkpoint's signature, the inclusion path and the owner's signature."""
        checkpoint = self.proof.checkpoint.verify(log_key)
        try:
            merkle.verify_inclusion(self.entry.leaf_hash, self.proof.index, checkpoint.size,
                                    self.proof.hashes, checkpoint.root_hash)
        except (VerificationError, MalformedInputError):
            raise VerificationError(
                f"receipt: entry {self.proof.index} is not included in the checkpoint "
                f"of size {checkpoint.size}") from None
        self.entry.verify_signature()
        return checkpoint

    def to_dict(self) -> dict[str, Any]:
        return {"type": RECEIPT_TYPE, "entry": self.entry.to_dict(),
                "tlog_proof": self.proof.to_text()}

    @classmethod
    def from_dict(cls, obj: Any, where: str = "receipt") -> Receipt:
        f = Fields(obj, where)
        f.str("type", choices=(RECEIPT_TYPE,))
        entry = LogEntry.from_dict(f.obj("entry"), f.path("entry"))
        proof = TlogProof.from_text(f.str("tlog_proof", max_len=1 << 20))
        f.done()
        return cls(entry, proof)

    def to_json(self) -> bytes:
        return pretty_json(self.to_dict())

    @classmethod
    def from_json(cls, data: bytes | str) -> Receipt:
        return cls.from_dict(load_json(data, what="receipt"))

    @classmethod
    def from_file(cls, path: str | Path) -> Receipt:
        return cls.from_dict(read_json_file(path, what=str(path)), str(path))
