"""C2SP tlog-proof@v1: published layouts, exact round trips, strictness, tampering.

The inclusion check here is a literal RFC 6962 / RFC 9162 reference kept in this file,
so these tests do not depend on claimkit.registry.merkle.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from claimkit.errors import MalformedInputError, VerificationError
from claimkit.registry.checkpoint import (MAX_TREE_SIZE, Checkpoint, SignedCheckpoint, cosign,
                                          verify_cosignature)
from claimkit.registry.note import NoteSigner, VerifierKey, sign_note
from claimkit.registry.tlog_proof import HEADER, MAX_HASHES, TlogProof

VECTORS = json.loads((Path(__file__).resolve().parents[2] / "protocol_spec" / "vectors" / "c2sp"
                      / "tlog-proof.json").read_text(encoding="utf-8"))
# The real checkpoint inside every vector: sigsum-go pkg/checkpoint/checkpoint_test.go
# validCheckpointASCII (2224a397), signed with the Ed25519 seed 0x11 || 0^31.
SIGSUM_KEY = NoteSigner("sigsum.org/v1/tree/e796172b92befd62d9dc67e41c2f5bc9d3100a3023b20b1ca40288dd1c679e69",
                        bytes([17]) + bytes(31)).verifier_key


# -- a literal RFC 6962 tree (RFC 9162 §2.1) ----------------------------------------------

def _leaf(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def _root(leaves: list[bytes]) -> bytes:
    if len(leaves) == 1:
        return leaves[0]
    k = _split(len(leaves))
    return _node(_root(leaves[:k]), _root(leaves[k:]))


def _path(m: int, leaves: list[bytes]) -> list[bytes]:
    if len(leaves) == 1:
        return []
    k = _split(len(leaves))
    if m < k:
        return _path(m, leaves[:k]) + [_root(leaves[k:])]
    return _path(m - k, leaves[k:]) + [_root(leaves[:k])]


def _verify_inclusion(leaf: bytes, index: int, size: int, proof, root: bytes) -> None:
    """RFC 9162 §2.1.3.2, step by step."""
    if index >= size:
        raise VerificationError("index beyond the tree")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise VerificationError("proof too long")
        if fn & 1 or fn == sn:
            r = _node(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = _node(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0 or r != root:
        raise VerificationError("inclusion proof does not lead to the root")


LEAVES = [_leaf(f"entry {i}".encode()) for i in range(7)]
LOG = NoteSigner("example.org/log", bytes(range(32)))
WITNESS = NoteSigner.cosigner("example.org/witness", bytes(range(1, 33)))


def _proof(index: int = 5, extra: bytes | None = None, leaves=LEAVES) -> TlogProof:
    cp = Checkpoint(LOG.name, len(leaves), _root(leaves))
    signed = SignedCheckpoint(cp, sign_note(cp.to_text(), LOG)).with_signature(
        cosign(cp, WITNESS, 1_700_000_000))
    return TlogProof(index, tuple(_path(index, leaves)), signed, extra)


def _verify(proof: TlogProof, leaf: bytes) -> None:
    """What a tlog-proof verifier does (spec 'Verifying a tlog proof', steps 2 to 4)."""
    cp = proof.checkpoint.verify(LOG.verifier_key)
    verify_cosignature(proof.checkpoint, WITNESS.verifier_key)
    _verify_inclusion(leaf, proof.index, cp.size, proof.hashes, cp.root_hash)


def test_reference_tree_agrees_with_itself():
    for n in range(1, 12):
        leaves = [_leaf(bytes([i])) for i in range(n)]
        for m in range(n):
            _verify_inclusion(leaves[m], m, n, _path(m, leaves), _root(leaves))
            with pytest.raises(VerificationError):
                _verify_inclusion(leaves[m], m + 1, n, _path(m, leaves), _root(leaves))


# -- published layouts -----------------------------------------------------------------

@pytest.mark.parametrize("vector", VECTORS["round_trip"], ids=lambda v: v["name"])
def test_published_layouts_round_trip(vector):
    text = vector["text"]
    proof = TlogProof.from_text(text)
    assert proof.to_text() == text
    assert TlogProof.from_bytes(text.encode()).to_bytes() == text.encode()
    assert proof.index == vector["index"] and len(proof.hashes) == vector["hashes"]
    if vector["extra_prefix"] is None:
        assert proof.extra is None
    else:
        assert proof.extra.startswith(vector["extra_prefix"].encode())
    assert proof.checkpoint.verify(SIGSUM_KEY).size == 10


@pytest.mark.parametrize("vector", VECTORS["malformed"], ids=lambda v: v["source"].split("(")[-1])
def test_published_malformed_proofs(vector):
    with pytest.raises(MalformedInputError):
        TlogProof.from_text(vector["text"])


def test_formats_layout_for_go_interop():
    """transparency-dev/formats' Marshal: header, optional extra, index, hashes, blank, note."""
    p = _proof(extra=b"extra information")
    h = [base64.b64encode(x).decode() for x in p.hashes]
    assert p.to_text() == (f"{HEADER}\nextra ZXh0cmEgaW5mb3JtYXRpb24=\nindex 5\n" + "\n".join(h) + "\n\n"
                           + p.checkpoint.to_bytes().decode())


# -- our own proofs --------------------------------------------------------------------

@pytest.mark.parametrize("index", range(7))
def test_generated_proofs_verify_and_round_trip(index):
    for extra in (None, b"", b"\x00context"):
        proof = _proof(index, extra)
        text = proof.to_text()
        parsed = TlogProof.from_text(text)
        assert parsed == proof and parsed.to_text() == text
        _verify(parsed, LEAVES[index])
        with pytest.raises(VerificationError):
            _verify(parsed, LEAVES[(index + 1) % 7])


def test_empty_extra_is_kept_apart_from_no_extra():
    assert "\nextra \n" in _proof(extra=b"").to_text()
    assert TlogProof.from_text(_proof(extra=b"").to_text()).extra == b""
    assert TlogProof.from_text(_proof().to_text()).extra is None


def test_single_leaf_tree_has_no_hashes():
    proof = _proof(0, leaves=LEAVES[:1])
    assert proof.hashes == () and f"index 0\n\n{LOG.name}\n1\n" in proof.to_text()
    _verify(TlogProof.from_text(proof.to_text()), LEAVES[0])


# -- strictness ------------------------------------------------------------------------

GOOD = _proof().to_text()
HEAD, CHECKPOINT = GOOD.split("\n\n", 1)


@pytest.mark.parametrize("text", [
    GOOD.replace("index 5", "index 05"),
    GOOD.replace("index 5", "index +5"),
    GOOD.replace("index 5", "index  5"),
    GOOD.replace("index 5", "index 5 "),
    GOOD.replace("index 5", f"index {MAX_TREE_SIZE + 1}"),
    GOOD.replace("index 5", "index " + "9" * 5000),
    GOOD.replace("index 5", "Index 5"),
    GOOD.replace("index 5", "index\t5"),
    GOOD.replace(HEADER, "c2sp.org/tlog-proof@v2"),
    GOOD.replace(HEADER, HEADER + " "),
    HEAD.replace("index 5", "index 5\nextra AAAA") + "\n\n" + CHECKPOINT,     # extra after index
    HEAD.replace("index 5", "extra AAAA\nextra AAAA\nindex 5") + "\n\n" + CHECKPOINT,
    HEAD.replace("index 5", "extra AAB=\nindex 5") + "\n\n" + CHECKPOINT,         # non-canonical base64
    HEAD.replace("index 5", "extra AAAB=\nindex 5") + "\n\n" + CHECKPOINT,        # bad base64 length
    HEAD.replace("index 5", "extra\nindex 5") + "\n\n" + CHECKPOINT,
    GOOD.replace("\n", "\r\n"),                                                 # CRLF
    GOOD.replace("\n\n", "\n \n"),
    GOOD.replace("\n\n", "\n"),                                                 # no blank line
    GOOD.replace("\n\n", "\n\n\n"),                                             # two blank lines
    GOOD + "\n",                                                                # trailing blank line
    GOOD + "trailing\n",
    HEAD + "\n\n",                                                              # no checkpoint
    HEAD.split("\n", 2)[0] + "\n" + HEAD.split("\n", 2)[2] + "\n\n" + CHECKPOINT,  # no index line
    HEAD + "\n" + base64.b64encode(bytes(31)).decode() + "\n\n" + CHECKPOINT,  # 31-byte hash
    HEAD + "\n" + base64.b64encode(bytes(32)).decode()[:-1] + "\n\n" + CHECKPOINT,
    HEAD + "\n" + base64.b64encode(bytes(32)).decode().replace("=", "") + "\n\n" + CHECKPOINT,
    HEAD + "\n" + "\n".join([base64.b64encode(bytes(32)).decode()] * (MAX_HASHES + 1 - 3)) + "\n\n" + CHECKPOINT,
    "\ufeff" + GOOD,                                                            # BOM
    "",
])
def test_malformed_proofs(text):
    with pytest.raises(MalformedInputError):
        TlogProof.from_text(text)


def test_hash_count_limit():
    zero = base64.b64encode(bytes(32)).decode()
    head = f"{HEADER}\nindex 0\n"
    TlogProof.from_text(head + "\n".join([zero] * MAX_HASHES) + "\n\n" + CHECKPOINT)
    with pytest.raises(MalformedInputError):
        TlogProof.from_text(head + "\n".join([zero] * (MAX_HASHES + 1)) + "\n\n" + CHECKPOINT)


def test_index_bounds_and_types():
    signed = _proof().checkpoint
    assert TlogProof.from_text(GOOD.replace("index 5", f"index {MAX_TREE_SIZE}")).index == MAX_TREE_SIZE
    for bad in (-1, MAX_TREE_SIZE + 1, True):
        with pytest.raises(MalformedInputError):
            TlogProof(bad, (), signed)  # type: ignore[arg-type]
    with pytest.raises(MalformedInputError):
        TlogProof(0, [bytes(32)], signed)  # type: ignore[arg-type]
    with pytest.raises(MalformedInputError):
        TlogProof(0, (bytes(33),), signed)
    with pytest.raises(MalformedInputError):
        TlogProof(0, (), signed, "x")  # type: ignore[arg-type]


def test_bytes_input_checks():
    data = GOOD.encode()
    assert TlogProof.from_bytes(data).to_bytes() == data
    for bad in (b"\xff" + data, data.replace(b"example", b"ex\xc3ample")):
        with pytest.raises(MalformedInputError):
            TlogProof.from_bytes(bad)
    with pytest.raises(MalformedInputError):
        TlogProof.from_bytes(data, max_bytes=len(data) - 1)
    with pytest.raises(MalformedInputError):
        TlogProof.from_text(GOOD, max_bytes=len(data) - 1)
    with pytest.raises(MalformedInputError):
        TlogProof.from_text(GOOD.replace("example", "ex\ud800ample"))
    with pytest.raises(MalformedInputError):
        TlogProof.from_bytes(GOOD)  # type: ignore[arg-type]


def test_truncations_never_verify():
    data = GOOD
    for cut in range(len(data)):
        try:
            proof = TlogProof.from_text(data[:cut])
        except MalformedInputError:
            continue
        with pytest.raises(VerificationError):  # a whole signature line cut off
            _verify(proof, LEAVES[5])


# -- tampering -------------------------------------------------------------------------

def _tampered_fails(data: bytes, original: TlogProof) -> None:
    """A tampered proof must fail to parse or to verify, except that the ``extra`` data
    alone may change: the spec says it is not authenticated."""
    try:
        proof = TlogProof.from_bytes(data)
    except MalformedInputError:
        return
    try:
        _verify(proof, LEAVES[original.index])
    except VerificationError:
        return
    assert original.extra is not None and proof.extra != original.extra, \
        f"tampered proof still verifies: {data!r}"
    assert proof.to_text().split("\n", 2)[2] == original.to_text().split("\n", 2)[2]


PLAIN = _proof()
WITH_EXTRA = _proof(extra=b"application context")


def _flip(raw: bytes, pos: int, mask: int) -> bytes:
    tampered = bytearray(raw)
    tampered[pos] ^= mask
    return bytes(tampered)


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_flipping_any_byte_never_verifies(data):
    raw = PLAIN.to_bytes()
    pos, mask = data.draw(st.integers(0, len(raw) - 1)), data.draw(st.integers(1, 255))
    _tampered_fails(_flip(raw, pos, mask), PLAIN)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_flipping_bytes_of_a_proof_with_extra_changes_at_most_the_extra(data):
    raw = WITH_EXTRA.to_bytes()
    pos, mask = data.draw(st.integers(0, len(raw) - 1)), data.draw(st.integers(1, 255))
    _tampered_fails(_flip(raw, pos, mask), WITH_EXTRA)


def test_flipping_each_byte_exhaustively():
    for original in (PLAIN, WITH_EXTRA):
        raw = original.to_bytes()
        for pos in range(len(raw)):
            for mask in (0x01, 0x08, 0x20, 0x80, 0xFF):
                _tampered_fails(_flip(raw, pos, mask), original)


def test_swapping_or_dropping_path_hashes_fails():
    p = PLAIN
    for hashes in (p.hashes[::-1], p.hashes[:-1], p.hashes + (bytes(32),), ()):
        with pytest.raises(VerificationError):
            _verify(TlogProof(p.index, hashes, p.checkpoint), LEAVES[5])
    other_key = VerifierKey.from_vkey(NoteSigner(LOG.name, bytes(32)).vkey)
    with pytest.raises(VerificationError):
        p.checkpoint.verify(other_key)
