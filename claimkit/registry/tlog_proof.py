"""C2SP transparency log proofs (https://c2sp.org/tlog-proof), ``c2sp.org/tlog-proof@v1``::

    c2sp.org/tlog-proof@v1
    extra <base64>              (optional, NOT authenticated)
    index <decimal>
    <base64 inclusion proof hash, leaf's sibling first>
    ...
    <empty line>
    <signed checkpoint, verbatim, with its cosignatures>

This module parses and formats only. A proof is checked by the caller: the checkpoint
with the log key (:meth:`SignedCheckpoint.verify`), cosignatures by policy, then the
inclusion path of the leaf hash (``merkle.verify_inclusion``). The ``extra`` data is
unauthenticated by design; whoever uses it must bind it into the leaf.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import MalformedInputError
from ..wire import b64decode, b64encode
from .checkpoint import MAX_TREE_SIZE, SignedCheckpoint, parse_decimal

__all__ = ["TlogProof", "HEADER", "MAX_HASHES", "MAX_PROOF_BYTES"]

HEADER = "c2sp.org/tlog-proof@v1"

MAX_HASHES = 64
"""An inclusion path in a tree of at most 2^64 - 1 leaves has at most 64 hashes."""

MAX_PROOF_BYTES = 1 << 20
"""Default size limit of a parsed proof (the checkpoint note dominates)."""


@dataclass(frozen=True)
class TlogProof:
    """Index, inclusion path and signed checkpoint of one log entry, plus opaque extra data.

    ``extra`` is None when the line is absent and ``b""`` for an ``extra`` line with
    empty data (what Go's transparency-dev/formats writes for an empty non-nil value),
    so both round-trip exactly.
    """

    index: int
    hashes: tuple[bytes, ...]
    checkpoint: SignedCheckpoint
    extra: bytes | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.index, int) or isinstance(self.index, bool) \
                or not 0 <= self.index <= MAX_TREE_SIZE:
            raise MalformedInputError("tlog-proof index: expected an integer in [0, 2^64-1]")
        if not isinstance(self.hashes, tuple) or len(self.hashes) > MAX_HASHES:
            raise MalformedInputError(f"tlog-proof: expected a tuple of at most {MAX_HASHES} hashes")
        if any(not isinstance(h, bytes) or len(h) != 32 for h in self.hashes):
            raise MalformedInputError("tlog-proof: every inclusion proof hash is 32 bytes")
        if not isinstance(self.checkpoint, SignedCheckpoint):
            raise MalformedInputError("tlog-proof: expected a SignedCheckpoint")
        if self.extra is not None and not isinstance(self.extra, bytes):
            raise MalformedInputError("tlog-proof extra: expected bytes or None")

    def to_text(self) -> str:
        lines = [HEADER]
        if self.extra is not None:
            lines.append(f"extra {b64encode(self.extra)}")
        lines.append(f"index {self.index}")
        lines.extend(b64encode(h) for h in self.hashes)
        return "\n".join(lines) + "\n\n" + self.checkpoint.to_bytes().decode("utf-8")

    def to_bytes(self) -> bytes:
        return self.to_text().encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes, *, max_bytes: int = MAX_PROOF_BYTES) -> TlogProof:
        if not isinstance(data, (bytes, bytearray)):
            raise MalformedInputError("tlog-proof: expected bytes")
        if len(data) > max_bytes:
            raise MalformedInputError(f"tlog-proof: larger than {max_bytes} bytes")
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedInputError("tlog-proof: not valid UTF-8") from None
        return cls.from_text(text, max_bytes=max_bytes)

    @classmethod
    def from_text(cls, text: str, *, max_bytes: int = MAX_PROOF_BYTES) -> TlogProof:
        """Strictly parse a proof; ``from_text(t).to_text() == t`` for every accepted ``t``."""
        if not isinstance(text, str):
            raise MalformedInputError("tlog-proof: expected text")
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError:
            raise MalformedInputError("tlog-proof: not valid UTF-8") from None
        if len(data) > max_bytes:
            raise MalformedInputError(f"tlog-proof: larger than {max_bytes} bytes")
        # The header, extra, index and hash lines are all non-empty, so the first
        # empty line is the one before the checkpoint.
        head, sep, rest = text.partition("\n\n")
        if not sep:
            raise MalformedInputError("tlog-proof: no empty line before the checkpoint")
        lines = head.split("\n")
        if lines[0] != HEADER:
            raise MalformedInputError(f"tlog-proof: the first line must be {HEADER}")
        pos = 1
        extra = None
        if pos < len(lines) and lines[pos].startswith("extra "):
            extra = b64decode(lines[pos][len("extra "):], field="tlog-proof extra")
            pos += 1
        if pos >= len(lines) or not lines[pos].startswith("index "):
            raise MalformedInputError("tlog-proof: missing 'index <decimal>' line")
        index = parse_decimal(lines[pos][len("index "):], what="tlog-proof index", hi=MAX_TREE_SIZE)
        pos += 1
        if len(lines) - pos > MAX_HASHES:
            raise MalformedInputError(f"tlog-proof: more than {MAX_HASHES} inclusion proof hashes")
        hashes = tuple(b64decode(line, field=f"tlog-proof hash {i}", size=32)
                       for i, line in enumerate(lines[pos:]))
        checkpoint = SignedCheckpoint.from_bytes(rest.encode("utf-8"), max_bytes=max_bytes)
        return cls(index, hashes, checkpoint, extra)
