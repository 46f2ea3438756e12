"""Hash commitments to the items of a marking key (Adi et al. 2018, §2.2 and App. A).

A commitment to a JSON value is SHA-256 over a domain-separated, length-prefixed
encoding of (domain tag, 32-byte random nonce, canonical value). The nonce makes it
hiding, SHA-256's collision resistance makes it binding, and the length prefixes make
the encoding injective, so no two (tag, nonce, value) triples hash the same bytes.

A verification key commits to its ℓ items at once through the RFC 9162 Merkle root of
the item commitments, so a claim can open any subset item by item (cut-and-choose)
while the unopened items stay hidden::

    >>> import os
    >>> items = commit_items([{"label": 3}, {"label": 7}], rng=os.urandom)
    >>> opening = items.open(1)
    >>> opening.verify(items.root, size=2)   # raises VerificationError if tampered
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

from .errors import MalformedInputError, VerificationError
from .registry import merkle
from .wire import Fields, b64encode, b64hash, canonical_json, sha256

__all__ = [
    "NONCE_SIZE",
    "ITEM_DOMAIN",
    "commit",
    "ItemOpening",
    "CommittedItems",
    "commit_items",
]

NONCE_SIZE = 32
ITEM_DOMAIN = "claimkit/item-commitment/v1"
MAX_ITEMS = 1 << 20


def _lp(data: bytes) -> bytes:
    return len(data).to_bytes(8, "big") + data


def commit(domain: str, nonce: bytes, value: Any) -> bytes:
    """SHA-256(LP(domain) || LP(nonce) || LP(JCS(value))), LP = 8-byte big-endian length."""
    if len(nonce) != NONCE_SIZE:
        raise MalformedInputError(f"commitment nonce must be {NONCE_SIZE} bytes")
    return sha256(_lp(domain.encode("utf-8")) + _lp(nonce) + _lp(canonical_json(value)))


@dataclass(frozen=True)
class ItemOpening:
    """One opened item: its value and nonce, with the inclusion path to the key's root."""

    index: int
    value: Any
    nonce: bytes
    proof: tuple[bytes, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.index, int) or isinstance(self.index, bool) or self.index < 0:
            raise MalformedInputError("opening.index: expected a non-negative integer")
        if len(self.nonce) != NONCE_SIZE:
            raise MalformedInputError(f"opening.nonce: expected {NONCE_SIZE} bytes")
        if any(len(h) != merkle.HASH_SIZE for h in self.proof):
            raise MalformedInputError("opening.proof: every hash must be 32 bytes")

    @property
    def commitment(self) -> bytes:
        return commit(ITEM_DOMAIN, self.nonce, self.value)

    def verify(self, root: bytes, *, size: int) -> None:
        """Check that this opening is item ``index`` of the ``size`` items under ``root``."""
        if self.index >= size:
            raise VerificationError(f"opening of item {self.index}: the key has only {size} items")
        try:
            merkle.verify_inclusion(merkle.leaf_hash(self.commitment), self.index, size,
                                    self.proof, root)
        except VerificationError:
            raise VerificationError(f"opening of item {self.index} does not match the "
                                    "verification key's commitment") from None

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "value": self.value,
            "nonce": b64encode(self.nonce),
            "proof": [b64encode(h) for h in self.proof],
        }

    @classmethod
    def from_dict(cls, obj: Any, where: str = "opening") -> ItemOpening:
        f = Fields(obj, where)
        index = f.int("index", hi=MAX_ITEMS - 1)
        value = f.raw("value")
        nonce = f.bytes("nonce", size=NONCE_SIZE)
        proof = f.each("proof", b64hash, max_items=64)
        f.done()
        return cls(index, value, nonce, proof)


@dataclass(frozen=True)
class CommittedItems:
    """The owner's side: every item's value and nonce, and the Merkle root over them."""

    values: tuple[Any, ...]
    nonces: tuple[bytes, ...]

    def __post_init__(self) -> None:
        if not 1 <= len(self.values) <= MAX_ITEMS:
            raise MalformedInputError(f"a key needs between 1 and {MAX_ITEMS} items")
        if len(self.values) != len(self.nonces):
            raise MalformedInputError("items: one nonce per value is required")
        tree = merkle.MemoryTree()
        for value, nonce in zip(self.values, self.nonces):
            tree.append_leaf_hash(merkle.leaf_hash(commit(ITEM_DOMAIN, nonce, value)))
        object.__setattr__(self, "_tree", tree)

    def __repr__(self) -> str:  # values and nonces are the owner's secret: never print them
        return f"CommittedItems(size={self.size})"

    @property
    def size(self) -> int:
        return len(self.values)

    @property
    def root(self) -> bytes:
        return self._tree.root()  # type: ignore[attr-defined]

    def open(self, index: int) -> ItemOpening:
        if not 0 <= index < self.size:
            raise MalformedInputError(f"item {index} does not exist (the key has {self.size})")
        proof = tuple(self._tree.inclusion_proof(index))  # type: ignore[attr-defined]
        return ItemOpening(index, self.values[index], self.nonces[index], proof)

    def open_many(self, indices: Sequence[int]) -> tuple[ItemOpening, ...]:
        return tuple(self.open(i) for i in indices)


def commit_items(values: Sequence[Any], *, rng: Callable[[int], bytes]) -> CommittedItems:
    """Commit to ``values`` with fresh nonces drawn from ``rng(n) -> n random bytes``."""
    nonces = tuple(rng(NONCE_SIZE) for _ in values)
    return CommittedItems(tuple(values), nonces)

