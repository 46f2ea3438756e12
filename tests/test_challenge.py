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
    base = dict(vk=b"\x01" * 32, origin="o", size=3, root=b"\x02" * 32, suspect=b"\x03" * 32, counter=0)
    seeds = {challenge_seed(**base)}
    for key, value in [("vk", b"\x09" * 32), ("origin", "p"), ("size", 4), ("root", b"\x09" * 32),
                       ("suspect", b"\x09" * 32), ("counter", 1)]:
        seeds.add(challenge_seed(**{**base, key: value}))
    assert len(seeds) == 7


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
