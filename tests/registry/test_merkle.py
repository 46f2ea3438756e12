"""RFC 9162 Merkle trees: published vectors, a literal reference, and O(log n) reads.

The module under test builds proofs from stored perfect-subtree nodes; everything here
checks it against things that share none of that machinery: the transparency-dev
known-answer vectors, and a literal recursive transcription of RFC 9162 §2.1 (MTH, PATH,
PROOF/SUBPROOF) written below.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import random
from functools import lru_cache
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from claimkit.errors import MalformedInputError, RegistryError, VerificationError
from claimkit.registry import merkle

VECTORS = Path(__file__).resolve().parents[2] / "protocol_spec" / "vectors" / "rfc9162-merkle"
FILES = sorted(VECTORS.rglob("*.json"))
REJECTED = (VerificationError, MalformedInputError)

# The leaves the transparency-dev (and RFC 6962 reference) test trees are built from.
RFC6962_LEAVES = [bytes.fromhex(h) for h in (
    "", "00", "10", "2021", "3031", "40414243", "5051525354555657",
    "606162636465666768696a6b6c6d6e6f")]


# -- a literal transcription of RFC 9162 §2.1.1-§2.1.4, on index ranges -------------------
def _k(n):
    """The largest power of two smaller than n, found the slow, obvious way."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


class Reference:
    """MTH, PATH and PROOF exactly as RFC 9162 defines them, over a fixed leaf list."""

    def __init__(self, leaves):
        self.hashes = [merkle.leaf_hash(x) for x in leaves]
        self.mth = lru_cache(maxsize=None)(self._mth)

    def _mth(self, lo, hi):
        n = hi - lo
        if n == 0:
            return merkle.EMPTY_ROOT
        if n == 1:
            return self.hashes[lo]
        k = _k(n)
        return merkle.node_hash(self.mth(lo, lo + k), self.mth(lo + k, hi))

    def path_ranges(self, m, lo, hi):
        """PATH(m, D[lo:hi]) as the ranges whose MTH it lists."""
        n = hi - lo
        if n == 1:
            return []
        k = _k(n)
        if m < k:
            return self.path_ranges(m, lo, lo + k) + [(lo + k, hi)]
        return self.path_ranges(m - k, lo + k, hi) + [(lo, lo + k)]

    def subproof_ranges(self, m, lo, hi, b):
        """SUBPROOF(m, D[lo:hi], b) as ranges."""
        n = hi - lo
        if m == n:
            return [] if b else [(lo, hi)]
        k = _k(n)
        if m <= k:
            return self.subproof_ranges(m, lo, lo + k, b) + [(lo + k, hi)]
        return self.subproof_ranges(m - k, lo + k, hi, False) + [(lo, lo + k)]

    def path(self, m, size):
        return [self.mth(a, b) for a, b in self.path_ranges(m, 0, size)]

    def proof(self, m, size):
        return [self.mth(a, b) for a, b in self.subproof_ranges(m, 0, size, True)]


def inclusion_trace(index, size):
    """Which side each PATH hash is combined on. Two (index, size) pairs with the same
    trace make the verifier compute the very same hashes: RFC 9162 proofs do not bind
    the size (the signed checkpoint does), so such a pair verifies with the other's proof."""
    return tuple(a > index for a, _ in Reference([]).path_ranges(index, 0, size))


def consistency_trace(size1, size2):
    """The operations the §2.1.4.2 verifier performs for (size1, size2), as above."""
    ranges = Reference([]).subproof_ranges(size1, 0, size2, True)
    pow2 = size1 & (size1 - 1) == 0
    return pow2, tuple(b <= size1 for _, b in (ranges if pow2 else ranges[1:]))


def flip(h: bytes, bit: int) -> bytes:
    return h[:bit // 8] + bytes([h[bit // 8] ^ (1 << bit % 8)]) + h[bit // 8 + 1:]


def build(leaves):
    tree = merkle.MemoryTree()
    for x in leaves:
        tree.append(x)
    return tree


@st.composite
def leaf_lists(draw, min_size=1, max_size=300):
    """Random, pairwise distinct leaves (a random salt before a counter)."""
    n = draw(st.integers(min_size, max_size))
    salt = draw(st.binary(max_size=12))
    return [salt + i.to_bytes(3, "big") for i in range(n)]


# -- (1) published vectors ------------------------------------------------------------------
def _b64(value):
    return base64.b64decode(value or "", validate=True)


def _run_vector(kind, v):
    proof = [_b64(p) for p in (v.get("proof") or [])]
    if kind == "inclusion":
        merkle.verify_inclusion(_b64(v.get("leafHash")), v["leafIdx"], v["treeSize"], proof,
                                _b64(v.get("root")))
    else:
        merkle.verify_consistency(v["size1"], v["size2"], proof, _b64(v.get("root1")),
                                  _b64(v.get("root2")))


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.relative_to(VECTORS).as_posix())
def test_published_vector(path):
    v = json.loads(path.read_text())
    kind = path.relative_to(VECTORS).parts[0]
    try:
        _run_vector(kind, v)
    except REJECTED:
        assert v["wantErr"], f"rejected a valid proof: {v.get('desc')}"
    except (binascii.Error, ValueError):  # undecodable base64 is a rejection too
        assert v["wantErr"]
    else:
        assert not v["wantErr"], f"accepted an invalid proof: {v.get('desc')}"


def test_vectors_are_all_there():
    kinds = {p.relative_to(VECTORS).parts[0] for p in FILES}
    assert kinds == {"inclusion", "consistency"}
    assert len(FILES) == 196
    assert sum(json.loads(p.read_text())["wantErr"] for p in FILES) == 184


@pytest.mark.parametrize("path", [p for p in FILES if p.name == "happy-path.json"],
                         ids=lambda p: p.relative_to(VECTORS).as_posix())
def test_happy_path_vectors_are_what_we_generate(path):
    """The happy paths are proofs over the RFC 6962 test leaves: we produce them byte for byte."""
    v = json.loads(path.read_text())
    tree = build(RFC6962_LEAVES)
    proof = [_b64(p) for p in (v["proof"] or [])]
    if path.relative_to(VECTORS).parts[0] == "inclusion":
        size = v["treeSize"]
        assert tree.root(size) == _b64(v["root"])
        assert merkle.leaf_hash(RFC6962_LEAVES[v["leafIdx"]]) == _b64(v["leafHash"])
        assert tree.inclusion_proof(v["leafIdx"], size) == proof
    else:
        assert tree.root(v["size1"]) == _b64(v["root1"])
        assert tree.root(v["size2"]) == _b64(v["root2"])
        assert tree.consistency_proof(v["size1"], v["size2"]) == proof


def test_known_hashes():
    assert merkle.EMPTY_ROOT.hex() == (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    assert merkle.leaf_hash(b"").hex() == (
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d")
    assert merkle.reference_root([]) == merkle.MemoryTree().root() == merkle.EMPTY_ROOT
    # RFC 6962 reference tree of 8 leaves.
    assert build(RFC6962_LEAVES).root().hex() == (
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328")


# -- (2) against the literal definitions ----------------------------------------------------
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(leaves=leaf_lists(), data=st.data())
def test_proofs_equal_the_rfc_definitions_and_verify(leaves, data):
    n = len(leaves)
    ref = Reference(leaves)
    tree = build(leaves)
    assert tree.size == n
    assert tree.root() == ref.mth(0, n) == merkle.reference_root(ref.hashes)
    size = data.draw(st.integers(1, n), label="size")
    root = ref.mth(0, size)
    assert tree.root(size) == root
    for index in range(size):
        assert merkle.inclusion_ranges(index, size) == ref.path_ranges(index, 0, size)
        proof = tree.inclusion_proof(index, size)
        assert proof == ref.path(index, size)
        merkle.verify_inclusion(ref.hashes[index], index, size, proof, root)
    for m in range(1, size + 1):
        expected = ref.subproof_ranges(m, 0, size, True) if m < size else []
        assert merkle.consistency_ranges(m, size) == expected
        proof = tree.consistency_proof(m, size)
        assert proof == [ref.mth(a, b) for a, b in expected]
        merkle.verify_consistency(m, size, proof, ref.mth(0, m), root)
    for _ in range(10):
        s2 = data.draw(st.integers(1, n), label="s2")
        s1 = data.draw(st.integers(0, s2), label="s1")
        proof = tree.consistency_proof(s1, s2)
        assert proof == (ref.proof(s1, s2) if 0 < s1 < s2 else [])
        merkle.verify_consistency(s1, s2, proof, ref.mth(0, s1), ref.mth(0, s2))


def _check_inclusion_rejected(leaf, index, size, proof, root):
    with pytest.raises(REJECTED):
        merkle.verify_inclusion(leaf, index, size, proof, root)


def _check_consistency_rejected(s1, s2, proof, r1, r2):
    with pytest.raises(REJECTED):
        merkle.verify_consistency(s1, s2, proof, r1, r2)


@settings(max_examples=150, deadline=None)
@given(leaves=leaf_lists(min_size=2, max_size=200), data=st.data())
def test_any_change_breaks_an_inclusion_proof(leaves, data):
    n = len(leaves)
    ref = Reference(leaves)
    size = data.draw(st.integers(1, n), label="size")
    index = data.draw(st.integers(0, size - 1), label="index")
    leaf, root, proof = ref.hashes[index], ref.mth(0, size), ref.path(index, size)
    merkle.verify_inclusion(leaf, index, size, proof, root)

    for i, h in enumerate(proof):  # every element, a random bit of it
        bit = data.draw(st.integers(0, 255), label="bit")
        _check_inclusion_rejected(leaf, index, size, proof[:i] + [flip(h, bit)] + proof[i + 1:],
                                  root)
    bit = data.draw(st.integers(0, 255), label="bit")
    _check_inclusion_rejected(flip(leaf, bit), index, size, proof, root)
    _check_inclusion_rejected(leaf, index, size, proof, flip(root, bit))
    # Too long or too short, wherever the change is: never truncated or padded.
    extra = data.draw(st.sampled_from([leaf, root, bytes(32)] + proof), label="extra")
    at = data.draw(st.integers(0, len(proof)), label="at")
    _check_inclusion_rejected(leaf, index, size, proof[:at] + [extra] + proof[at:], root)
    if proof:
        at = data.draw(st.integers(0, len(proof) - 1), label="at")
        _check_inclusion_rejected(leaf, index, size, proof[:at] + proof[at + 1:], root)
    # Another index in the same tree never verifies (leaves are distinct).
    other = data.draw(st.integers(0, size - 1).filter(lambda j: j != index) if size > 1
                      else st.just(size), label="other index")
    _check_inclusion_rejected(leaf, other, size, proof, root)
    _check_inclusion_rejected(leaf, size + data.draw(st.integers(0, 5)), size, proof, root)
    # Another size verifies exactly when the verifier would compute the same hashes.
    size2 = data.draw(st.integers(index + 1, 2 * n).filter(lambda s: s != size), label="size2")
    if inclusion_trace(index, size2) == inclusion_trace(index, size):
        merkle.verify_inclusion(leaf, index, size2, proof, root)
    else:
        _check_inclusion_rejected(leaf, index, size2, proof, root)


@settings(max_examples=150, deadline=None)
@given(leaves=leaf_lists(min_size=2, max_size=200), data=st.data())
def test_any_change_breaks_a_consistency_proof(leaves, data):
    n = len(leaves)
    ref = Reference(leaves)
    s2 = data.draw(st.integers(2, n), label="s2")
    s1 = data.draw(st.integers(1, s2 - 1), label="s1")
    r1, r2, proof = ref.mth(0, s1), ref.mth(0, s2), ref.proof(s1, s2)
    merkle.verify_consistency(s1, s2, proof, r1, r2)

    for i, h in enumerate(proof):
        bit = data.draw(st.integers(0, 255), label="bit")
        _check_consistency_rejected(s1, s2, proof[:i] + [flip(h, bit)] + proof[i + 1:], r1, r2)
    bit = data.draw(st.integers(0, 255), label="bit")
    _check_consistency_rejected(s1, s2, proof, flip(r1, bit), r2)
    _check_consistency_rejected(s1, s2, proof, r1, flip(r2, bit))
    _check_consistency_rejected(s1, s2, proof, r2, r1)
    extra = data.draw(st.sampled_from([r1, r2, bytes(32)] + proof), label="extra")
    at = data.draw(st.integers(0, len(proof)), label="at")
    _check_consistency_rejected(s1, s2, proof[:at] + [extra] + proof[at:], r1, r2)
    at = data.draw(st.integers(0, len(proof) - 1), label="at")
    _check_consistency_rejected(s1, s2, proof[:at] + proof[at + 1:], r1, r2)
    _check_consistency_rejected(s1, s2, [], r1, r2)
    # Other sizes verify exactly when the verifier would compute the same hashes.
    t1 = data.draw(st.integers(0, 2 * n), label="t1")
    t2 = data.draw(st.integers(0, 2 * n), label="t2")
    if (t1, t2) == (s1, s2):
        return
    if 0 < t1 < t2 and consistency_trace(t1, t2) == consistency_trace(s1, s2):
        merkle.verify_consistency(t1, t2, proof, r1, r2)
    else:
        _check_consistency_rejected(t1, t2, proof, r1, r2)


def test_sizes_are_not_bound_by_proofs():
    """Documented RFC 9162 behaviour the checkpoint signature has to make up for."""
    ref = Reference(RFC6962_LEAVES)
    proof = ref.path(0, 3)
    merkle.verify_inclusion(ref.hashes[0], 0, 4, proof, ref.mth(0, 3))
    merkle.verify_consistency(2, 4, ref.proof(2, 3), ref.mth(0, 2), ref.mth(0, 3))


def test_consistency_edge_cases():
    tree = build(RFC6962_LEAVES)
    r = [tree.root(s) for s in range(9)]
    merkle.verify_consistency(0, 0, [], merkle.EMPTY_ROOT, merkle.EMPTY_ROOT)
    merkle.verify_consistency(0, 5, [], merkle.EMPTY_ROOT, r[5])
    merkle.verify_consistency(5, 5, [], r[5], r[5])
    _check_consistency_rejected(0, 5, [r[1]], merkle.EMPTY_ROOT, r[5])
    _check_consistency_rejected(0, 5, [], r[1], r[5])
    _check_consistency_rejected(0, 0, [], r[1], r[1])
    _check_consistency_rejected(0, 0, [], merkle.EMPTY_ROOT, r[1])
    _check_consistency_rejected(5, 5, [], r[5], r[4])
    _check_consistency_rejected(5, 5, [r[2]], r[5], r[5])
    _check_consistency_rejected(5, 4, tree.consistency_proof(4, 5), r[5], r[4])
    assert tree.consistency_proof(0, 5) == tree.consistency_proof(5, 5) == []
    with pytest.raises(VerificationError):
        merkle.verify_consistency(5, 4, [], r[5], r[4])



def test_a_proof_longer_than_its_path_is_refused():
    """RFC 9162 §2.1.3.2 step a: once sn is 0 the proof must have ended. Hashing on would
    let leaf 1 and its sibling pass as leaf 0 of a one-leaf tree whose "root" is the
    two-leaf root (the size is what a checkpoint signs, so this is no harmless slack)."""
    ref = Reference(RFC6962_LEAVES)
    a, b = ref.hashes[0], ref.hashes[1]
    merkle.verify_inclusion(b, 1, 2, [a], ref.mth(0, 2))       # the honest proof
    with pytest.raises(VerificationError, match="too long"):
        merkle.verify_inclusion(b, 0, 1, [a], ref.mth(0, 2))


def test_a_rollback_is_refused_even_with_a_proof_that_would_fit():
    """size1 > size2 fails before any hashing: for (3, 2) the RFC algorithm run anyway
    accepts proof [r1, c] for root2 = H(r1, c), so without the check any signed
    "second" root of that form would pass as a tree that shrank."""
    tree = build(RFC6962_LEAVES)
    r3, c = tree.root(3), tree.root(1)
    with pytest.raises(VerificationError, match="exceeds"):
        merkle.verify_consistency(3, 2, [r3, c], r3, merkle.node_hash(r3, c))

# -- (3) the frontier -----------------------------------------------------------------------
def test_frontier_emits_exactly_the_stored_nodes_and_reloads():
    n = 1100
    leaves = [i.to_bytes(2, "big") for i in range(n)]
    ref = Reference(leaves)
    tree = merkle.MemoryTree()
    frontier = merkle.Frontier()
    emitted = {}
    for i, x in enumerate(leaves):
        tree.append(x)
        out = frontier.append(merkle.leaf_hash(x))
        # The leaf, then one parent per trailing 1-bit of i, each exactly once.
        assert [node for node, _ in out] == [(lvl, i >> lvl) for lvl in range(len(out))]
        assert len(out) == 1 + ((i + 1) & -(i + 1)).bit_length() - 1
        assert not set(dict(out)) & set(emitted)
        emitted.update(out)
        size = i + 1
        assert frontier.size == size
        assert [node for node, _ in frontier.nodes] == merkle.range_nodes(0, size)
        calls = []

        def read(ids):
            calls.append(list(ids))
            return tree.read(ids)

        again = merkle.Frontier.load(size, read)
        assert len(calls) == 1 and len(calls[0]) == bin(size).count("1")
        assert again.size == size and again.nodes == frontier.nodes
        assert again.root() == frontier.root() == tree.root() == ref.mth(0, size)
    assert emitted == tree.nodes
    # Every perfect subtree, and nothing else, is stored, with its RFC 9162 hash.
    assert len(emitted) == sum(n >> lvl for lvl in range(n.bit_length()))
    for (lvl, idx), h in emitted.items():
        assert h == ref.mth(idx << lvl, (idx + 1) << lvl)


@settings(max_examples=30, deadline=None)
@given(leaves=leaf_lists(max_size=300), data=st.data())
def test_a_loaded_frontier_carries_on_like_the_original(leaves, data):
    n = len(leaves)
    cut = data.draw(st.integers(0, n), label="cut")
    tree = build(leaves[:cut])
    loaded = merkle.Frontier.load(cut, tree.read)
    full = build(leaves)
    for x in leaves[cut:]:
        for node, h in loaded.append(merkle.leaf_hash(x)):
            assert full.nodes[node] == h
    assert loaded.root() == full.root()


# -- (4) O(log n) reads ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def big_log():
    n = 100_000
    frontier = merkle.Frontier()
    nodes: dict = {}
    roots = {0: merkle.EMPTY_ROOT}
    rng = random.Random(9)
    keep = {1, 2, 3, 4, 5, 1023, 1024, 1025, 65_535, 65_536, 65_537, 99_999, n}
    keep.update(rng.randrange(1, n) for _ in range(30))
    for i in range(n):
        nodes.update(frontier.append(merkle.leaf_hash(i.to_bytes(4, "big"))))
        if i + 1 in keep:
            roots[i + 1] = frontier.root()
    return n, nodes, roots


def test_proofs_read_only_log_n_existing_nodes(big_log):
    n, nodes, roots = big_log
    calls = []

    def read(ids):
        calls.append(list(ids))
        return {k: nodes[k] for k in ids}

    def one_call(size):
        assert len(calls) == 1, "one batched read per proof"
        ids = calls.pop()
        assert len(ids) == len(set(ids)) <= 2 * math.ceil(math.log2(size)) + 2
        # Only nodes that exist at this size: a store never needs newer ones.
        assert all((idx + 1) << lvl <= size for lvl, idx in ids)
        return ids

    sizes = sorted(roots)[1:]
    rng = random.Random(3)
    for size in sizes:
        assert merkle.root_at(size, read) == roots[size]
        assert len(one_call(size)) == bin(size).count("1")
        for index in {0, size - 1, size // 2, rng.randrange(size)}:
            proof = merkle.inclusion_proof(index, size, read)
            if proof:
                one_call(size)
            merkle.verify_inclusion(merkle.leaf_hash(index.to_bytes(4, "big")), index, size,
                                    proof, roots[size])
        for s1 in sizes:
            if s1 < size:
                proof = merkle.consistency_proof(s1, size, read)
                one_call(size)
                merkle.verify_consistency(s1, size, proof, roots[s1], roots[size])
    assert not calls


def test_a_damaged_store_is_reported():
    tree = build(RFC6962_LEAVES)
    del tree.nodes[(1, 1)]
    with pytest.raises(RegistryError):
        tree.inclusion_proof(0)
    with pytest.raises(RegistryError):
        merkle.inclusion_proof(0, 8, lambda ids: {k: b"short" for k in ids})
    with pytest.raises(RegistryError):
        merkle.Frontier.load(3, lambda ids: {})


# -- (5) malformed arguments ----------------------------------------------------------------
H = bytes(32)


def _tree8():
    return build(RFC6962_LEAVES)


@pytest.mark.parametrize("call", [
    lambda: merkle.range_nodes(3, 3),
    lambda: merkle.range_nodes(5, 2),
    lambda: merkle.range_nodes(1, 4),
    lambda: merkle.range_nodes(-1, 2),
    lambda: merkle.range_nodes(0, 2.0),
    lambda: merkle.fold([]),
    lambda: merkle.inclusion_ranges(5, 5),
    lambda: merkle.inclusion_ranges(-1, 5),
    lambda: merkle.inclusion_ranges(0, 0),
    lambda: merkle.inclusion_ranges(True, 5),
    lambda: merkle.consistency_ranges(6, 5),
    lambda: merkle.consistency_ranges(-1, 5),
    lambda: merkle.consistency_ranges(1, 2 ** 64),
    lambda: merkle.inclusion_proof(8, 8, _tree8().read),
    lambda: merkle.consistency_proof(9, 8, _tree8().read),
    lambda: merkle.root_at(-1, _tree8().read),
    lambda: merkle.verify_inclusion(b"short", 0, 1, [], H),
    lambda: merkle.verify_inclusion(H, 0, 1, [], H + b"\x00"),
    lambda: merkle.verify_inclusion(H, 0, 2, [H[:31]], H),
    lambda: merkle.verify_inclusion(H, 0, 2, [H + b"\x00"], H),
    lambda: merkle.verify_inclusion(H, 0, 2, ["not bytes" * 4], H),
    lambda: merkle.verify_inclusion(H, 0, 2, H, H),
    lambda: merkle.verify_inclusion(H, 0, 2, None, H),
    lambda: merkle.verify_inclusion(H, 0, 1, b"", H),           # bytes are no list of hashes
    lambda: merkle.verify_consistency(3, 3, "", H, H),
    lambda: merkle.verify_inclusion(H, 2, 2, [H], H),
    lambda: merkle.verify_inclusion(H, 7, 2, [H], H),
    lambda: merkle.verify_inclusion(H, -1, 2, [H], H),
    lambda: merkle.verify_inclusion(H, 0, -2, [H], H),
    lambda: merkle.verify_consistency(1, 2, [H[:16]], H, H),
    lambda: merkle.verify_consistency(1, 2, [H], H[:16], H),
    lambda: merkle.verify_consistency(1, 2, [H], H, H[:16]),
    lambda: merkle.verify_consistency(-1, 2, [], H, H),
    lambda: merkle.verify_consistency(1, "2", [H], H, H),
    lambda: merkle.Frontier().append(b"short"),
    lambda: merkle.Frontier(3, []),
    lambda: merkle.Frontier.load(-1, _tree8().read),
    lambda: _tree8().root(9),
    lambda: _tree8().inclusion_proof(3, 9),
    lambda: _tree8().inclusion_proof(8),
])
def test_malformed_arguments(call):
    with pytest.raises(MalformedInputError):
        call()


def test_which_other_sizes_a_proof_verifies_for_exhaustively():
    """For all small size pairs: a proof verifies for other sizes iff the trace matches."""
    ref = Reference([i.to_bytes(2, "big") for i in range(40)])
    for size in range(1, 17):
        for index in range(size):
            proof, root = ref.path(index, size), ref.mth(0, size)
            for other in range(index + 1, 41):
                ok = inclusion_trace(index, other) == inclusion_trace(index, size)
                try:
                    merkle.verify_inclusion(ref.hashes[index], index, other, proof, root)
                    assert ok, (index, size, other)
                except VerificationError:
                    assert not ok, (index, size, other)
    for s2 in range(2, 17):
        for s1 in range(1, s2):
            proof, r1, r2 = ref.proof(s1, s2), ref.mth(0, s1), ref.mth(0, s2)
            for t2 in range(2, 33):
                for t1 in range(1, t2):
                    ok = consistency_trace(t1, t2) == consistency_trace(s1, s2)
                    try:
                        merkle.verify_consistency(t1, t2, proof, r1, r2)
                        assert ok, (s1, s2, t1, t2)
                    except VerificationError:
                        assert not ok, (s1, s2, t1, t2)
