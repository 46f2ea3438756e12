"""RFC 9162 Merkle trees: published vectors, a literal reference, and O(log n) reads."""

from __future__ import annotations

import base64
import json
import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from claimkit.errors import ClaimkitError, MalformedInputError, VerificationError
from claimkit.registry import merkle

VECTORS = Path(__file__).resolve().parents[2] / "protocol_spec" / "vectors" / "rfc9162-merkle"
FILES = sorted(VECTORS.rglob("*.json"))


def _b64(value):
    return None if value is None else base64.b64decode(value)


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(VECTORS)))
def test_published_vectors(path):
    v = json.loads(path.read_text())
    proof = [_b64(p) for p in v.get("proof") or []]
    try:
        if path.parts[-3] == "inclusion" or "inclusion" in path.parts:
            merkle.verify_inclusion(_b64(v["leafHash"]), v["leafIdx"], v["treeSize"], proof,
                                    _b64(v["root"]))
        else:
            merkle.verify_consistency(v["size1"], v["size2"], proof, _b64(v["root1"]), _b64(v["root2"]))
        failed = False
    except ClaimkitError:
        failed = True
    assert failed == v["wantErr"], v.get("desc")


def test_vectors_are_there():
    assert len(FILES) > 150
    assert sum(json.loads(p.read_text())["wantErr"] for p in FILES) > 100


# -- a literal transcription of RFC 9162 §2.1.1-2.1.4 to compare against -------------------
def mth(leaves):
    n = len(leaves)
    if n == 0:
        return merkle.EMPTY_ROOT
    if n == 1:
        return merkle.leaf_hash(leaves[0])
    k = 1 << ((n - 1).bit_length() - 1)
    return merkle.node_hash(mth(leaves[:k]), mth(leaves[k:]))


def path(m, leaves):
    n = len(leaves)
    if n == 1:
        return []
    k = 1 << ((n - 1).bit_length() - 1)
    if m < k:
        return path(m, leaves[:k]) + [mth(leaves[k:])]
    return path(m - k, leaves[k:]) + [mth(leaves[:k])]


def subproof(m, leaves, b):
    n = len(leaves)
    if m == n:
        return [] if b else [mth(leaves)]
    k = 1 << ((n - 1).bit_length() - 1)
    if m <= k:
        return subproof(m, leaves[:k], b) + [mth(leaves[k:])]
    return subproof(m - k, leaves[k:], False) + [mth(leaves[:k])]


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 140), data=st.data())
def test_proofs_equal_the_rfc_definitions_and_verify(n, data):
    leaves = [i.to_bytes(4, "big") for i in range(n)]
    tree = merkle.MemoryTree()
    for leaf in leaves:
        tree.append(leaf)
    assert tree.root() == mth(leaves) == merkle.reference_root([merkle.leaf_hash(x) for x in leaves])
    size = data.draw(st.integers(1, n))
    index = data.draw(st.integers(0, size - 1))
    proof = tree.inclusion_proof(index, size)
    assert proof == path(index, leaves[:size])
    merkle.verify_inclusion(merkle.leaf_hash(leaves[index]), index, size, proof, mth(leaves[:size]))
    m = data.draw(st.integers(1, size))
    cproof = tree.consistency_proof(m, size)
    assert cproof == (subproof(m, leaves[:size], True) if m < size else [])
    merkle.verify_consistency(m, size, cproof, mth(leaves[:m]), mth(leaves[:size]))


@settings(max_examples=200, deadline=None)
@given(n=st.integers(2, 70), data=st.data())
def test_any_change_breaks_a_proof(n, data):
    tree = merkle.MemoryTree()
    for i in range(n):
        tree.append(bytes([i]))
    index = data.draw(st.integers(0, n - 1))
    m = data.draw(st.integers(1, n - 1))
    leaf, root = merkle.leaf_hash(bytes([index])), tree.root()
    proof, cproof = tree.inclusion_proof(index), tree.consistency_proof(m)
    # The tree size is not among the mutations: RFC 9162 proofs do not bind it (a proof can
    # hold for several sizes); the signed checkpoint does.
    which = data.draw(st.sampled_from(["proof", "index", "root", "cproof", "croot"]))
    bit = data.draw(st.integers(0, 255))
    flip = lambda h: h[:bit // 8] + bytes([h[bit // 8] ^ (1 << bit % 8)]) + h[bit // 8 + 1:]
    with pytest.raises((VerificationError, MalformedInputError)):
        if which == "proof" and proof:
            i = data.draw(st.integers(0, len(proof) - 1))
            merkle.verify_inclusion(leaf, index, n, proof[:i] + [flip(proof[i])] + proof[i + 1:], root)
        elif which == "index":
            merkle.verify_inclusion(leaf, (index + 1) % n, n, proof, root)
        elif which == "root":
            merkle.verify_inclusion(leaf, index, n, proof, flip(root))
        elif which == "cproof":
            i = data.draw(st.integers(0, len(cproof) - 1))
            merkle.verify_consistency(m, n, cproof[:i] + [flip(cproof[i])] + cproof[i + 1:],
                                      tree.root(m), root)
        else:
            merkle.verify_consistency(m, n, cproof, flip(tree.root(m)), root)
        if which == "proof" and not proof:
            raise VerificationError("no proof to change")


def test_frontier_emits_exactly_the_stored_nodes_and_reloads():
    tree = merkle.MemoryTree()
    frontier = merkle.Frontier()
    emitted = {}
    for i in range(1000):
        tree.append(str(i).encode())
        emitted.update(frontier.append(merkle.leaf_hash(str(i).encode())))
        if i in (0, 1, 6, 511, 998):
            again = merkle.Frontier.load(frontier.size, tree.read)
            assert again.root() == frontier.root() == tree.root()
    assert emitted == tree.nodes


def test_proofs_read_only_log_n_nodes():
    frontier = merkle.Frontier()
    nodes = {}
    n = 100_000
    for i in range(n):
        nodes.update(frontier.append(merkle.leaf_hash(i.to_bytes(4, "big"))))
    reads = []

    def read(ids):
        reads.append(len(ids))
        return {k: nodes[k] for k in ids}

    bound = 2 * math.ceil(math.log2(n)) + 2
    for index in (0, 1, 4_097, n // 2, n - 1):
        merkle.inclusion_proof(index, n, read)
        assert len(reads) == 1 and reads.pop() <= bound
    for m in (1, 3, 65_536, 99_999):
        merkle.consistency_proof(m, n, read)
        assert len(reads) == 1 and reads.pop() <= bound
    assert merkle.root_at(n, read) == frontier.root()


@pytest.mark.parametrize("call", [
    lambda: merkle.inclusion_ranges(5, 5),
    lambda: merkle.inclusion_ranges(-1, 5),
    lambda: merkle.consistency_ranges(6, 5),
    lambda: merkle.range_nodes(3, 3),
    lambda: merkle.range_nodes(1, 4),
    lambda: merkle.verify_inclusion(b"short", 0, 1, [], b"\x00" * 32),
    lambda: merkle.verify_inclusion(b"\x00" * 32, 0, -1, [], b"\x00" * 32),
])
def test_malformed_arguments(call):
    with pytest.raises((MalformedInputError, VerificationError)):
        call()
