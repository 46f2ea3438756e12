"""RFC 9162 §2.1 Merkle trees over stored perfect-subtree hashes.

Node ``(level, index)`` is the hash of the perfect subtree over leaves
``[index·2^level, (index+1)·2^level)``: once the log holds that many leaves it never
changes, so a store keeps every such node and proofs *read* O(log n) of them instead of
rebuilding anything. Each element of an RFC 9162 proof is the hash of a range that is
either one perfect node or a ragged right edge that decomposes into O(log n) perfect
nodes, largest first, whose right fold is the range's hash::

    >>> tree = MemoryTree()
    >>> for word in (b"a", b"b", b"c"):
    ...     _ = tree.append(word)
    >>> proof = tree.inclusion_proof(2)
    >>> verify_inclusion(leaf_hash(b"c"), 2, 3, proof, tree.root())   # raises if wrong

Verification follows RFC 9162 §2.1.3.2 and §2.1.4.2 literally and is checked against
the published transparency-dev vectors (protocol_spec/vectors/rfc9162-merkle).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping, Sequence

from ..errors import MalformedInputError, VerificationError

__all__ = [
    "HASH_SIZE", "EMPTY_ROOT", "NodeId", "NodeReader", "leaf_hash", "node_hash", "range_nodes",
    "fold", "inclusion_ranges", "consistency_ranges", "inclusion_proof", "consistency_proof",
    "root_at", "verify_inclusion", "verify_consistency", "Frontier", "MemoryTree",
    "reference_root",
]

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
MAX_SIZE = 1 << 62

NodeId = tuple[int, int]
NodeReader = Callable[[Sequence[NodeId]], Mapping[NodeId, bytes]]


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than n (n > 1): RFC 9162's k."""
    return 1 << ((n - 1).bit_length() - 1)


def _check_size(size: int, what: str = "tree size") -> None:
    if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= MAX_SIZE:
        raise MalformedInputError(f"{what} must be an integer in [0, 2^62]")


def range_nodes(start: int, end: int) -> list[NodeId]:
    """The perfect nodes covering ``[start, end)``, largest first (RFC-aligned ranges only)."""
    if not 0 <= start < end:
        raise MalformedInputError(f"empty or negative range [{start}, {end})")
    out = []
    while start < end:
        width = 1 << ((end - start).bit_length() - 1)
        if start % width:
            raise MalformedInputError(f"range [{start}, {end}) is not aligned to the tree")
        level = width.bit_length() - 1
        out.append((level, start >> level))
        start += width
    return out


def fold(hashes: Sequence[bytes]) -> bytes:
    """Hash of a range from its perfect nodes, largest first (a right fold)."""
    h = hashes[-1]
    for x in reversed(hashes[:-1]):
        h = node_hash(x, h)
    return h


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """The ranges whose hashes make RFC 9162 PATH(index, D[0:size]), leaf upwards."""
    _check_size(size)
    if not 0 <= index < size:
        raise MalformedInputError(f"leaf index {index} is outside a tree of size {size}")
    out: list[tuple[int, int]] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _split(hi - lo)
        if index - lo < k:
            out.append((lo + k, hi))
            hi = lo + k
        else:
            out.append((lo, lo + k))
            lo += k
    out.reverse()
    return out


def consistency_ranges(size1: int, size2: int) -> list[tuple[int, int]]:
    """The ranges whose hashes make RFC 9162 PROOF(size1, D[0:size2])."""
    _check_size(size1, "first size")
    _check_size(size2, "second size")
    if size1 > size2:
        raise MalformedInputError(f"first size {size1} exceeds second size {size2}")
    if size1 == 0 or size1 == size2:
        return []
    out: list[tuple[int, int]] = []
    lo, hi, m, whole = 0, size2, size1, True
    while m != hi - lo:  # SUBPROOF(m, D[lo:hi], whole)
        k = _split(hi - lo)
        if m <= k:
            out.append((lo + k, hi))
            hi = lo + k
        else:
            out.append((lo, lo + k))
            lo, m, whole = lo + k, m - k, False
    if not whole:
        out.append((lo, hi))
    out.reverse()
    return out


def _hashes(ranges: list[tuple[int, int]], read: NodeReader) -> list[bytes]:
    per_range = [range_nodes(a, b) for a, b in ranges]
    got = read([n for nodes in per_range for n in nodes])
    return [fold([got[n] for n in nodes]) for nodes in per_range]


def inclusion_proof(index: int, size: int, read: NodeReader) -> list[bytes]:
    return _hashes(inclusion_ranges(index, size), read)


def consistency_proof(size1: int, size2: int, read: NodeReader) -> list[bytes]:
    return _hashes(consistency_ranges(size1, size2), read)


def root_at(size: int, read: NodeReader) -> bytes:
    _check_size(size)
    return EMPTY_ROOT if size == 0 else _hashes([(0, size)], read)[0]


def _check_hashes(proof: Sequence[bytes], *roots: bytes) -> None:
    for h in (*proof, *roots):
        if not isinstance(h, (bytes, bytearray)) or len(h) != HASH_SIZE:
            raise MalformedInputError("every hash must be 32 bytes")


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> None:
    """RFC 9162 §2.1.3.2; raises :class:`VerificationError` unless the proof holds."""
    _check_size(size)
    _check_hashes(proof, leaf, root)
    if not 0 <= index < size:
        raise VerificationError(f"leaf index {index} is outside a tree of size {size}")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise VerificationError("inclusion proof is too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise VerificationError("inclusion proof is too short")
    if not hmac.compare_digest(r, root):
        raise VerificationError("inclusion proof does not lead to the root hash")


def verify_consistency(size1: int, size2: int, proof: Sequence[bytes], root1: bytes,
                       root2: bytes) -> None:
    """RFC 9162 §2.1.4.2; raises :class:`VerificationError` unless the proof holds."""
    _check_size(size1, "first size")
    _check_size(size2, "second size")
    if size1 > size2:
        raise VerificationError(f"first size {size1} exceeds second size {size2}")
    if size1 == 0:
        # As transparency-dev's verifier: the empty tree is a prefix of every tree, so a
        # proof from it proves nothing; callers treat size 0 themselves.
        raise VerificationError("a consistency proof from the empty tree is meaningless")
    if size1 == size2:
        if proof:
            raise VerificationError("equal sizes need an empty consistency proof")
        if not hmac.compare_digest(root1, root2):
            raise VerificationError("equal sizes but different roots")
        return
    if not proof:
        raise VerificationError("empty consistency proof")
    _check_hashes(proof, root1, root2)
    path = list(proof)
    if size1 & (size1 - 1) == 0:
        path.insert(0, root1)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise VerificationError("consistency proof is too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise VerificationError("consistency proof is too short")
    if not (hmac.compare_digest(fr, root1) and hmac.compare_digest(sr, root2)):
        raise VerificationError("consistency proof does not lead to both roots")


class Frontier:
    """The right edge of a growing tree: one perfect node per set bit of its size.

    Appending a leaf returns every perfect node it completes, so a store writes them
    without reading anything back.
    """

    def __init__(self, size: int = 0, nodes: Sequence[tuple[NodeId, bytes]] = ()) -> None:
        self.size = size
        self._stack: list[tuple[NodeId, bytes]] = list(nodes)

    @classmethod
    def load(cls, size: int, read: NodeReader) -> Frontier:
        if size == 0:
            return cls()
        ids = range_nodes(0, size)
        got = read(ids)
        return cls(size, [(n, got[n]) for n in ids])

    def append(self, leaf: bytes) -> list[tuple[NodeId, bytes]]:
        node: tuple[NodeId, bytes] = ((0, self.size), leaf)
        completed = [node]
        stack = self._stack
        while stack and stack[-1][0][0] == node[0][0]:
            (level, _), left = stack.pop()
            (_, index), right = node
            node = ((level + 1, index >> 1), node_hash(left, right))
            completed.append(node)
        stack.append(node)
        self.size += 1
        return completed

    def root(self) -> bytes:
        return fold([h for _, h in self._stack]) if self._stack else EMPTY_ROOT


class MemoryTree:
    """An in-memory log keeping every perfect node in a dict (tests, small trees)."""

    def __init__(self) -> None:
        self.nodes: dict[NodeId, bytes] = {}
        self._frontier = Frontier()

    @property
    def size(self) -> int:
        return self._frontier.size

    def append(self, data: bytes) -> int:
        return self.append_leaf_hash(leaf_hash(data))

    def append_leaf_hash(self, h: bytes) -> int:
        index = self.size
        self.nodes.update(self._frontier.append(h))
        return index

    def read(self, ids: Sequence[NodeId]) -> dict[NodeId, bytes]:
        return {n: self.nodes[n] for n in ids}

    def root(self, size: int | None = None) -> bytes:
        return root_at(self.size if size is None else size, self.read)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        return inclusion_proof(index, self.size if size is None else size, self.read)

    def consistency_proof(self, size1: int, size2: int | None = None) -> list[bytes]:
        return consistency_proof(size1, self.size if size2 is None else size2, self.read)


def reference_root(leaf_hashes: Sequence[bytes]) -> bytes:
    """RFC 9162's MTH, literally: the root of a list of leaf hashes (for tests and audits)."""
    n = len(leaf_hashes)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return leaf_hashes[0]
    k = _split(n)
    return node_hash(reference_root(leaf_hashes[:k]), reference_root(leaf_hashes[k:]))
