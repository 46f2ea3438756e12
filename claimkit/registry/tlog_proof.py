"""C2SP transparency log proofs (https://c2sp.org/tlog-proof), ``c2sp.org/tlog-proof@v1``:

    c2sp.org/tlog-proof@v1
    extra <base64>              (optional)
    index <decimal>
    <base64 inclusion proof hash>
    ...
    <blank line>
    <signed checkpoint>

Parsing and formatting only; the inclusion path is checked by the caller against the
entry (``Receipt.verify``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import MalformedInputError
from ..wire import b64decode, b64encode
from .checkpoint import SignedCheckpoint

__all__ = ["TlogProof", "HEADER"]

HEADER = "c2sp.org/tlog-proof@v1"
_INDEX = re.compile(r"index (0|[1-9][0-9]{0,18})")
MAX_HASHES = 64
MAX_EXTRA = 64 * 1024


@dataclass(frozen=True)
class TlogProof:
    index: int
    hashes: tuple[bytes, ...]
    checkpoint: SignedCheckpoint
    extra: bytes | None = None

    def __post_init__(self) -> None:
        if len(self.hashes) > MAX_HASHES or any(len(h) != 32 for h in self.hashes):
            raise MalformedInputError("tlog-proof: malformed inclusion proof")
        if self.extra is not None and (not self.extra or len(self.extra) > MAX_EXTRA):
            raise MalformedInputError("tlog-proof: malformed extra data")

    def to_text(self) -> str:
        lines = [HEADER]
        if self.extra is not None:
            lines.append(f"extra {b64encode(self.extra)}")
        lines.append(f"index {self.index}")
        lines.extend(b64encode(h) for h in self.hashes)
        return "\n".join(lines) + "\n\n" + self.checkpoint.to_bytes().decode("utf-8")

    @classmethod
    def from_text(cls, text: str) -> TlogProof:
        head, sep, rest = text.partition("\n\n")
        if not sep:
            raise MalformedInputError("tlog-proof: no blank line before the checkpoint")
        lines = head.split("\n")
        if lines[0] != HEADER:
            raise MalformedInputError(f"tlog-proof: must start with {HEADER}")
        lines = lines[1:]
        extra = None
        if lines and lines[0].startswith("extra "):
            extra = b64decode(lines[0][6:], field="tlog-proof extra")
            lines = lines[1:]
        if not lines or not _INDEX.fullmatch(lines[0]):
            raise MalformedInputError("tlog-proof: missing or malformed index line")
        index = int(lines[0][6:])
        if len(lines) - 1 > MAX_HASHES:
            raise MalformedInputError("tlog-proof: too many proof hashes")
        hashes = tuple(b64decode(h, field="tlog-proof hash", size=32) for h in lines[1:])
        checkpoint = SignedCheckpoint.from_bytes(rest.encode("utf-8"))
        return cls(index, hashes, checkpoint, extra)
