"""Fiat–Shamir challenges and item selection."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from claimkit.challenge import challenge_seed, select_items
from claimkit.errors import MalformedInputError

VECTORS = Path(__file__).resolve().parents[1] / "protocol_spec" / "vectors" / "challenge.json"


def test_known_answer_vectors():
    for case in json.loads(VECTORS.read_text()):
        seed = challenge_seed(vk=bytes.fromhex(case["vk"]), origin=case["origin"],
                              size=case["size"], root=bytes.fromhex(case["root"]),
                              signature=bytes.fromhex(case["signature"]),
                              suspect=bytes.fromhex(case["suspect"]), counter=case["counter"])
        assert seed.hex() == case["seed"]
        assert list(select_items(seed, items=case["items"], spent=case["spent"], k=case["k"])) == \
            case["selected"]


@given(seed=st.binary(min_size=32, max_size=32), items=st.integers(1, 300), data=st.data())
def test_selection_is_k_distinct_unspent_items(seed, items, data):
    spent = sorted(data.draw(st.sets(st.integers(0, items - 1), max_size=items - 1)))
    k = data.draw(st.integers(1, items - len(spent)))
    chosen = select_items(seed, items=items, spent=spent, k=k)
    assert len(set(chosen)) == k and list(chosen) == sorted(chosen)
    assert not set(chosen) & set(spent)
    assert select_items(seed, items=items, spent=spent, k=k) == chosen


def test_each_input_changes_the_seed():
    base = dict(vk=b"\x01" * 32, origin="o", size=3, root=b"\x02" * 32, signature=b"\x04" * 64,
                suspect=b"\x03" * 32, counter=0)
    seeds = {challenge_seed(**base)}
    for key, value in [("vk", b"\x09" * 32), ("origin", "p"), ("size", 4), ("root", b"\x09" * 32),
                       ("signature", b"\x09" * 64), ("suspect", b"\x09" * 32), ("counter", 1)]:
        seeds.add(challenge_seed(**{**base, key: value}))
    assert len(seeds) == 8


def test_selection_is_close_to_uniform():
    counts = Counter()
    for i in range(3000):
        counts.update(select_items(i.to_bytes(32, "big"), items=10, spent=(), k=1))
    assert all(250 <= counts[j] <= 350 for j in range(10)), counts


def test_too_many_items_requested():
    with pytest.raises(MalformedInputError, match="remain unopened"):
        select_items(b"\x00" * 32, items=5, spent=[0, 1], k=4)
    with pytest.raises(MalformedInputError):
        select_items(b"\x00" * 32, items=5, spent=[7], k=1)


def test_the_log_signature_makes_the_challenge_unpredictable(tmp_path):
    """Two registries that log byte-identical registration and intent entries (same
    owner, same fixed clock, so the same roots) differ only in their log keys: the
    challenges differ, so an owner who can predict the registry's time still cannot
    compute which items a claim opens before the log signs (challenge.md, "Why it cannot
    be ground"). The registry's spent rows follow its own challenge (audit agrees)."""
    import sys

    from claimkit.identity import Identity
    from claimkit.registry.entries import ClaimIntent, Registration, opened_items, sign_request
    from claimkit.registry.log import Registry
    from claimkit.wire import Digest

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from conftest import PASSPHRASE, FakeClock

    owner = Identity.generate("alice", seed=b"\x11" * 32)
    request = Registration(owner.public, "trigger-set", Digest(b"\x01" * 32), 1000)
    opened, roots = [], []
    for name in ("a", "b"):
        registry = Registry.init(tmp_path / name, origin="test.example/claimkit",
                                 passphrase=PASSPHRASE, clock=FakeClock(), key_strength="min",
                                 log_seed=name.encode() * 32)
        registration = registry.register(request, sign_request(request, owner))
        intent = ClaimIntent(owner.public, registration.index, registration.entry.digest,
                             Digest(b"\x02" * 32), 0, 20)
        receipt = registry.announce_claim(intent, sign_request(intent, owner))
        roots.append(receipt.checkpoint.root_hash)
        opened.append(opened_items(request, receipt.entry, receipt.proof.checkpoint,
                                   registry.log_key))
        assert registry.store.spent(registration.index) == opened[-1]
        assert registry.audit().ok
        registry.close()
    assert roots[0] == roots[1] and opened[0] != opened[1]


def test_seeds_need_an_ed25519_log_key():
    """A cosignature-type (0x04) log key's line carries a timestamp the log picks, so one
    checkpoint would have many signatures to draw seeds from: refused."""
    from claimkit.errors import VerificationError
    from claimkit.registry.checkpoint import Checkpoint, SignedCheckpoint, cosign
    from claimkit.registry.note import NoteSigner, sign_note

    checkpoint = Checkpoint("example.org/log", 3, b"\x02" * 32)
    signer = NoteSigner("example.org/log", b"\x07" * 32)
    signed = SignedCheckpoint(checkpoint, sign_note(checkpoint.to_text(), signer))
    assert len(signed.log_signature(signer.verifier_key)) == 64
    cosigner = NoteSigner.cosigner("example.org/log", b"\x08" * 32)
    cosigned = signed.with_signature(cosign(checkpoint, cosigner, 1_700_000_000))
    with pytest.raises(VerificationError, match="Ed25519"):
        cosigned.log_signature(cosigner.verifier_key)


def test_a_claim_must_open_at_least_one_item():
    seed = bytes(32)
    assert len(select_items(seed, items=5, spent=[], k=1)) == 1
    for k in (0, -1):
        with pytest.raises(MalformedInputError, match="cannot open"):
            select_items(seed, items=5, spent=[], k=k)


def test_rejection_sampling_skips_the_biased_top_of_the_range():
    """below(n) takes a 64-bit block value v only if v < 2^64 - (2^64 mod n); v mod n of a
    larger v would favour small results. For n = 2^63 + 1 about half the values are
    skipped, so seeds whose first value is skipped are easy to find."""
    import hashlib

    from claimkit.challenge import _Stream
    n = (1 << 63) + 1
    limit = (1 << 64) - (1 << 64) % n

    def values(seed):
        for block in range(8):
            digest = hashlib.sha256(seed + block.to_bytes(8, "big")).digest()
            yield from (int.from_bytes(digest[i:i + 8], "big") for i in range(0, 32, 8))

    seeds = [bytes([i]) * 32 for i in range(64)]
    skipping = [s for s in seeds if next(values(s)) >= limit]
    assert skipping and len(skipping) < len(seeds)
    for seed in seeds:
        assert _Stream(seed).below(n) == next(v % n for v in values(seed) if v < limit)
