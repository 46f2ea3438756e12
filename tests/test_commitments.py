"""Item commitments and their openings."""

from __future__ import annotations

import os
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from claimkit.commitments import ITEM_DOMAIN, ItemOpening, commit, commit_items
from claimkit.errors import MalformedInputError, VerificationError


def test_commitment_is_length_prefixed_and_domain_separated():
    nonce = bytes(range(32))
    a = commit(ITEM_DOMAIN, nonce, {"label": 1})
    assert a != commit("other", nonce, {"label": 1})
    assert a != commit(ITEM_DOMAIN, bytes(32), {"label": 1})
    assert a != commit(ITEM_DOMAIN, nonce, {"label": 2})
    assert commit(ITEM_DOMAIN, nonce, {"label": 1}) == a
    with pytest.raises(MalformedInputError):
        commit(ITEM_DOMAIN, b"short", 1)


@settings(max_examples=50, deadline=None)
@given(n=st.integers(1, 70), seed=st.integers(0, 2**32))
def test_every_opening_verifies_and_no_other(n, seed):
    rnd = random.Random(seed)
    items = commit_items([{"x": i, "label": rnd.randrange(10)} for i in range(n)],
                         rng=lambda k: rnd.randbytes(k))
    for i in {0, n - 1, rnd.randrange(n)}:
        opening = items.open(i)
        opening.verify(items.root, size=n)
        assert ItemOpening.from_dict(opening.to_dict()) == opening
        wrong_value = ItemOpening(i, {"x": i, "label": 99}, opening.nonce, opening.proof)
        wrong_nonce = ItemOpening(i, opening.value, os.urandom(32), opening.proof)
        for bad in (wrong_value, wrong_nonce):
            with pytest.raises(VerificationError):
                bad.verify(items.root, size=n)
        if n > 1:
            moved = ItemOpening((i + 1) % n, opening.value, opening.nonce, opening.proof)
            with pytest.raises((VerificationError, MalformedInputError)):
                moved.verify(items.root, size=n)


def test_nonces_hide_equal_values():
    items = commit_items([{"label": 1}, {"label": 1}], rng=os.urandom)
    assert items.open(0).commitment != items.open(1).commitment


def test_malformed_openings():
    with pytest.raises(MalformedInputError):
        ItemOpening.from_dict({"index": -1, "value": 1, "nonce": "", "proof": []})
    with pytest.raises(MalformedInputError, match="unknown field"):
        ItemOpening.from_dict({"index": 0, "value": 1, "nonce": "A" * 43 + "=", "proof": [], "x": 1})


def test_repr_shows_only_the_count():
    """The items are the owner's secret: a repr in a log or traceback must not leak them."""
    nonce = bytes(range(32))
    items = commit_items([{"label": "secret-value-7"}, {"label": 3}], rng=lambda k: nonce)
    for text in (repr(items), str(items), f"{items!r}"):
        assert text == "CommittedItems(size=2)"


def test_one_nonce_per_value():
    from claimkit.commitments import CommittedItems
    nonce = os.urandom(32)
    assert CommittedItems(("a", "b"), (nonce, nonce)).size == 2
    for nonces in [(nonce,), (nonce, nonce, nonce)]:
        with pytest.raises(MalformedInputError, match="one nonce per value"):
            CommittedItems(("a", "b"), nonces)
