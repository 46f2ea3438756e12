"""RFC 9162 §2.1 Merkle trees over stored perfect-subtree hashes.

Node ``(level, index)`` is the hash of the perfect subtree over leaves
``[index·2^level, (index+1)·2^level)``. It exists as soon as the log holds that many
leaves and never changes afterwards, so a store writes each node once (the
:class:`Frontier` hands them over as leaves are appended) and proof generation only
*reads* O(log n) of them; nothing ever rebuilds the tree.

Every element of an RFC 9162 proof is the hash of a leaf range ``[a, b)`` that is either
one perfect node or a ragged right edge. A ragged range decomposes, largest first, into
O(log n) perfect nodes (:func:`range_nodes`) whose right fold (:func:`fold`) is exactly
RFC 9162's MTH of the range, because MTH splits at the largest power of two below the
range's width, which is the first node of the decomposition::

    >>> tree = MemoryTree()
    >>> for word in (b"a", b"b", b"c"):
    ...     _ = tree.append(word)
    >>> proof = tree.inclusion_proof(2)
    >>> verify_inclusion(leaf_hash(b"c"), 2, 3, proof, tree.root())   # raises if wrong

Verification follows the bit-shifting algorithms of RFC 9162 §2.1.3.2 and §2.1.4.2
literally and accepts/rejects exactly as the transparency-dev vectors in
``protocol_spec/vectors/rfc9162-merkle`` require. Malformed arguments (wrong hash
length, index >= size, negative sizes) raise :class:`MalformedInputError`; well-formed
proofs that do not lead to the given roots raise :class:`VerificationError`.

Note that RFC 9162 proofs do not bind the tree size: a proof for one size can verify
for another size whose tree has the same shape along the path. The size is bound by
the signed checkpoint that carries the root, never by the proof.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping, Sequence

from ..errors import MalformedInputError, RegistryError, VerificationError

__all__ = [
    "HASH_SIZE",
    "EMPTY_ROOT",
    "MAX_SIZE",
    "NodeId",
    "NodeReader",
    "leaf_hash",
    "node_hash",
    "range_nodes",
    "fold",
    "inclusion_ranges",
    "consistency_ranges",
    "inclusion_proof",
    "consistency_proof",
    "root_at",
    "verify_inclusion",
    "verify_consistency",
    "Frontier",
    "MemoryTree",
    "reference_root",
]

HASH_SIZE = 32
"""SHA-256 output size; every leaf, node and root hash has exactly this length."""

EMPTY_ROOT = hashlib.sha256(b"").digest()
"""RFC 9162 MTH({}) = SHA-256 of the empty string: the root of the empty log."""

MAX_SIZE = (1 << 64) - 1
"""Largest tree size accepted: RFC 9162 and C2SP checkpoints carry sizes as uint64."""

NodeId = tuple[int, int]
"""``(level, index)``: the perfect subtree over leaves [index·2^level, (index+1)·2^level)."""

NodeReader = Callable[[Sequence[NodeId]], Mapping[NodeId, bytes]]
"""Batch read of stored nodes; must return a hash for every id asked (or raise)."""


def leaf_hash(data: bytes) -> bytes:
    """RFC 9162 leaf hash SHA-256(0x00 || data); the prefix keeps leaves and nodes apart."""
    return hashlib.sha256(b"\x00" + bytes(data)).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162 interior node hash SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


# -- argument checks ------------------------------------------------------------------------
def _check_int(value: object, what: str, upper: int = MAX_SIZE) -> int:
    """An int in [0, upper]; bools are refused because True would pass as leaf 1."""
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= upper:
        raise MalformedInputError(f"{what} must be an integer in [0, {upper}], got {value!r}")
    return value


def _check_hash(value: object, what: str) -> bytes:
    if not isinstance(value, (bytes, bytearray)) or len(value) != HASH_SIZE:
        got = len(value) if isinstance(value, (bytes, bytearray)) else type(value).__name__
        raise MalformedInputError(f"{what}: expected a {HASH_SIZE}-byte hash, got {got}")
    return bytes(value)


def _check_proof(proof: Sequence[bytes], what: str) -> list[bytes]:
    if not isinstance(proof, Sequence) or isinstance(proof, (bytes, bytearray, str)):
        # A bare hash would otherwise be iterated as a list of ints.
        raise MalformedInputError(f"{what}: expected a sequence of hashes")
    return [_check_hash(h, f"{what}[{i}]") for i, h in enumerate(proof)]


def _split(n: int) -> int:
    """RFC 9162's k for n > 1: the largest power of two strictly smaller than n."""
    return 1 << ((n - 1).bit_length() - 1)


# -- ranges and perfect nodes ---------------------------------------------------------------
def range_nodes(start: int, end: int) -> list[NodeId]:
    """The perfect nodes covering ``[start, end)``, largest first.

    Greedy: each step takes the largest power of two that fits in what is left, which is
    also where MTH splits, so ``fold`` over these nodes is MTH of the range. The range must
    be aligned like the ranges RFC 9162 proofs use (each chunk starts at a multiple of its
    width); an unaligned range has no such decomposition and is refused rather than
    silently hashed into something that is no subtree of the log.
    """
    _check_int(start, "range start")
    _check_int(end, "range end")
    if start >= end:
        raise MalformedInputError(f"empty range [{start}, {end})")
    out: list[NodeId] = []
    while start < end:
        level = (end - start).bit_length() - 1
        if start & ((1 << level) - 1):
            raise MalformedInputError(f"range [{start}, {end}) is not aligned to the tree")
        out.append((level, start >> level))
        start += 1 << level
    return out


def fold(hashes: Sequence[bytes]) -> bytes:
    """Hash of a range from its perfect nodes, largest first: a right fold.

    ``h = last; for x in reversed(rest): h = node_hash(x, h)``: the ragged right edge
    hangs under the larger, complete left subtrees exactly as MTH builds it.
    """
    if not hashes:
        raise MalformedInputError("fold of no hashes")
    h = hashes[-1]
    for x in reversed(hashes[:-1]):
        h = node_hash(x, h)
    return h


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """The ranges whose hashes form RFC 9162 PATH(index, D[0:size]), leaf upwards.

    PATH(m, D[n]) = PATH(m, D[0:k]) : MTH(D[k:n]) if m < k, else
    PATH(m-k, D[k:n]) : MTH(D[0:k]); walking down from the root collects the siblings
    top-down, so the list is reversed at the end.
    """
    _check_int(size, "tree size")
    _check_int(index, "leaf index")
    if index >= size:
        raise MalformedInputError(f"leaf index {index} is outside a tree of size {size}")
    out: list[tuple[int, int]] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            out.append((lo + k, hi))
            hi = lo + k
        else:
            out.append((lo, lo + k))
            lo += k
    out.reverse()
    return out


def consistency_ranges(size1: int, size2: int) -> list[tuple[int, int]]:
    """The ranges whose hashes form RFC 9162 PROOF(size1, D[0:size2]) = SUBPROOF(.., true).

    SUBPROOF(m, D[n], b) is [] if m = n and b, [MTH(D[n])] if m = n and not b, else
    SUBPROOF(m, D[0:k], b) : MTH(D[k:n]) for m <= k and SUBPROOF(m-k, D[k:n], false) :
    MTH(D[0:k]) otherwise. Empty for size1 = 0 (nothing to prove) and size1 = size2.
    """
    _check_int(size1, "first tree size")
    _check_int(size2, "second tree size")
    if size1 > size2:
        raise MalformedInputError(f"first tree size {size1} exceeds second size {size2}")
    if size1 == 0 or size1 == size2:
        return []
    out: list[tuple[int, int]] = []
    lo, hi, m, whole = 0, size2, size1, True
    while m != hi - lo:
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


# -- proof generation from stored nodes -----------------------------------------------------
def _range_hashes(ranges: Sequence[tuple[int, int]], read: NodeReader) -> list[bytes]:
    """Hashes of ``ranges`` from ONE batched read of their perfect nodes.

    One call matters for a SQLite store: a proof costs one query, not one per node.
    The reader's answer is checked, so a damaged store cannot slip a short or missing
    hash into a proof.
    """
    per_range = [range_nodes(a, b) for a, b in ranges]
    ids = [n for nodes in per_range for n in nodes]
    if not ids:
        return []
    got = read(ids)
    out = []
    for nodes in per_range:
        hashes = []
        for n in nodes:
            h = got.get(n)
            if not isinstance(h, (bytes, bytearray)) or len(h) != HASH_SIZE:
                raise RegistryError(f"tree node {n} is missing or damaged in the store")
            hashes.append(bytes(h))
        out.append(fold(hashes))
    return out


def inclusion_proof(index: int, size: int, read: NodeReader) -> list[bytes]:
    """RFC 9162 inclusion proof of leaf ``index`` in the tree of ``size`` (one read)."""
    return _range_hashes(inclusion_ranges(index, size), read)


def consistency_proof(size1: int, size2: int, read: NodeReader) -> list[bytes]:
    """RFC 9162 consistency proof from ``size1`` to ``size2`` (one read)."""
    return _range_hashes(consistency_ranges(size1, size2), read)


def root_at(size: int, read: NodeReader) -> bytes:
    """Root of the tree of ``size`` leaves from popcount(size) stored nodes (one read)."""
    _check_int(size, "tree size")
    return EMPTY_ROOT if size == 0 else _range_hashes([(0, size)], read)[0]


# -- verification (RFC 9162 §2.1.3.2, §2.1.4.2) ---------------------------------------------
def verify_inclusion(leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes],
                     root: bytes) -> None:
    """Check that ``leaf_hash`` is leaf ``index`` of the tree of ``size`` with ``root``.

    RFC 9162 §2.1.3.2 step by step. The algorithm itself rejects proofs that are too
    long (sn reaches 0 with hashes left) or too short (sn not 0 at the end), so no
    proof is ever truncated or padded. Raises :class:`MalformedInputError` for wrong-length
    hashes and ``index >= size``, :class:`VerificationError` when the proof fails.
    """
    _check_int(size, "tree size")
    _check_int(index, "leaf index")
    leaf = _check_hash(leaf_hash, "leaf hash")
    expected = _check_hash(root, "root hash")
    path = _check_proof(proof, "inclusion proof")
    # 1. leaf_index >= tree_size fails.
    if index >= size:
        raise MalformedInputError(f"leaf index {index} is outside a tree of size {size}")
    # 2.-3.
    fn, sn, r = index, size - 1, leaf
    # 4.
    for p in path:
        if sn == 0:  # a.
            raise VerificationError("inclusion proof is too long")
        if fn & 1 or fn == sn:  # b.
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1  # c.
        sn >>= 1
    # 5.
    if sn != 0:
        raise VerificationError("inclusion proof is too short")
    if not hmac.compare_digest(r, expected):
        raise VerificationError("inclusion proof does not lead to the root hash")


def verify_consistency(size1: int, size2: int, proof: Sequence[bytes], root1: bytes,
                       root2: bytes) -> None:
    """Check that the tree of ``size2`` with ``root2`` extends the one of ``size1``, ``root1``.

    RFC 9162 §2.1.4.2 step by step for 0 < size1 < size2. The edge cases are decided as
    the transparency-dev verifier (and its published vectors) decide them:

    * ``size1 > size2`` fails (a rollback, not a growth);
    * ``size1 == size2`` needs an empty proof and equal roots, compared as given: the
      vectors accept equal roots of any length here, since nothing is hashed;
    * ``size1 == 0`` needs an empty proof and ``root1`` must be the empty tree's root
      (so size 0 with any other "root" fails); the empty tree is a prefix of every tree,
      so with that the check passes for any well-formed ``root2`` (for ``size2 == 0`` it
      must be ``EMPTY_ROOT`` as well).

    Raises :class:`MalformedInputError` for wrong-length hashes, :class:`VerificationError`
    when the proof fails.
    """
    _check_int(size1, "first tree size")
    _check_int(size2, "second tree size")
    path = _check_proof(proof, "consistency proof")
    if size1 > size2:
        raise VerificationError(f"first tree size {size1} exceeds second size {size2}")
    if size1 == 0:
        if path:
            raise VerificationError("a consistency proof from the empty tree must be empty")
        first = _check_hash(root1, "first root hash")
        second = _check_hash(root2, "second root hash")
        if not hmac.compare_digest(first, EMPTY_ROOT):
            raise VerificationError("tree of size 0 with a root other than the empty root")
        if size2 == 0 and not hmac.compare_digest(second, EMPTY_ROOT):
            raise VerificationError("tree of size 0 with a root other than the empty root")
        return
    if size1 == size2:
        if path:
            raise VerificationError("equal tree sizes need an empty consistency proof")
        if not (isinstance(root1, (bytes, bytearray)) and isinstance(root2, (bytes, bytearray))):
            raise MalformedInputError("root hashes must be bytes")
        if not hmac.compare_digest(bytes(root1), bytes(root2)):
            raise VerificationError("equal tree sizes but different root hashes")
        return
    first = _check_hash(root1, "first root hash")
    second = _check_hash(root2, "second root hash")
    # 1.
    if not path:
        raise VerificationError("empty consistency proof")
    # 2.
    if size1 & (size1 - 1) == 0:
        path.insert(0, first)
    # 3.
    fn, sn = size1 - 1, size2 - 1
    # 4.
    while fn & 1:
        fn >>= 1
        sn >>= 1
    # 5.
    fr = sr = path[0]
    # 6.
    for c in path[1:]:
        if sn == 0:  # a.
            raise VerificationError("consistency proof is too long")
        if fn & 1 or fn == sn:  # b.
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1  # c.
        sn >>= 1
    # 7.
    if sn != 0:
        raise VerificationError("consistency proof is too short")
    ok1 = hmac.compare_digest(fr, first)
    ok2 = hmac.compare_digest(sr, second)
    if not ok1:
        raise VerificationError("consistency proof does not lead to the first root hash")
    if not ok2:
        raise VerificationError("consistency proof does not lead to the second root hash")


# -- growing a tree -------------------------------------------------------------------------
class Frontier:
    """The right edge of a growing tree: the perfect nodes not yet paired, one per set bit
    of ``size``, largest (leftmost) first.

    Appending a leaf returns the perfect nodes it completes, so a store writes them
    without reading anything back. Restore it from a store with
    ``Frontier.load(size, read)``, which reads popcount(size) nodes in one call.
    """

    def __init__(self, size: int = 0, nodes: Sequence[tuple[NodeId, bytes]] = ()) -> None:
        _check_int(size, "tree size")
        stack: list[tuple[NodeId, bytes]] = [
            ((n[0], n[1]), _check_hash(h, f"frontier node {n}")) for n, h in nodes]
        want = range_nodes(0, size) if size else []
        if [n for n, _ in stack] != want:
            raise MalformedInputError(f"frontier of size {size} must hold exactly nodes {want}")
        self.size = size
        self._stack = stack

    @classmethod
    def load(cls, size: int, read: NodeReader) -> Frontier:
        """The frontier of the stored tree of ``size`` leaves (one read of popcount nodes)."""
        _check_int(size, "tree size")
        if size == 0:
            return cls()
        ids = range_nodes(0, size)
        got = read(ids)
        nodes = []
        for n in ids:
            h = got.get(n)
            if not isinstance(h, (bytes, bytearray)) or len(h) != HASH_SIZE:
                raise RegistryError(f"tree node {n} is missing or damaged in the store")
            nodes.append((n, bytes(h)))
        return cls(size, nodes)

    @property
    def nodes(self) -> list[tuple[NodeId, bytes]]:
        """The unpaired perfect nodes, largest first (a copy)."""
        return list(self._stack)

    def append(self, leaf_hash: bytes) -> list[tuple[NodeId, bytes]]:
        """Add one leaf; return ``((0, size), leaf)`` then each parent it completes.

        A leaf at index i completes one parent per trailing 1-bit of i, so on average
        one extra node per leaf is written.
        """
        node: tuple[NodeId, bytes] = ((0, self.size), _check_hash(leaf_hash, "leaf hash"))
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
        """Root of the tree so far: the right fold of the frontier (EMPTY_ROOT when empty)."""
        return fold([h for _, h in self._stack]) if self._stack else EMPTY_ROOT

    def __repr__(self) -> str:
        return f"Frontier(size={self.size}, nodes={[n for n, _ in self._stack]})"


class MemoryTree:
    """An in-memory log: leaves appended, all perfect nodes kept in a dict.

    ``read`` is a :data:`NodeReader`, so the same proof code runs against it as against
    the SQLite store. For tests and small trees (e.g. the Merkle root over a
    verification key's items).
    """

    def __init__(self) -> None:
        self.nodes: dict[NodeId, bytes] = {}
        self._frontier = Frontier()

    @property
    def size(self) -> int:
        return self._frontier.size

    def append(self, data: bytes) -> int:
        """Append a leaf by its data; returns its index."""
        return self.append_leaf_hash(leaf_hash(data))

    def append_leaf_hash(self, h: bytes) -> int:
        """Append a leaf by its (already computed) leaf hash; returns its index."""
        index = self.size
        self.nodes.update(self._frontier.append(h))
        return index

    def read(self, ids: Sequence[NodeId]) -> dict[NodeId, bytes]:
        try:
            return {n: self.nodes[n] for n in ids}
        except KeyError as e:
            raise RegistryError(f"tree node {e.args[0]} is not in the tree") from None

    def _size(self, size: int | None) -> int:
        if size is None:
            return self.size
        _check_int(size, "tree size")
        if size > self.size:
            raise MalformedInputError(f"tree size {size} exceeds the {self.size} leaves held")
        return size

    def root(self, size: int | None = None) -> bytes:
        return root_at(self._size(size), self.read)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        return inclusion_proof(index, self._size(size), self.read)

    def consistency_proof(self, size1: int, size2: int | None = None) -> list[bytes]:
        return consistency_proof(size1, self._size(size2), self.read)


def reference_root(leaf_hashes: Sequence[bytes]) -> bytes:
    """RFC 9162's MTH, literally (recursing on index ranges): for tests and audits.

    Deliberately independent of the stored-node machinery above, so comparing the two
    checks that machinery.
    """

    def mth(lo: int, hi: int) -> bytes:
        n = hi - lo
        if n == 1:
            return leaf_hashes[lo]
        k = _split(n)
        return node_hash(mth(lo, lo + k), mth(lo + k, hi))

    return EMPTY_ROOT if not leaf_hashes else mth(0, len(leaf_hashes))
