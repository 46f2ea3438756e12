"""Randomness from the log: cut-and-choose challenges (Adi et al. 2018, App. A,
Fiat–Shamir style) and drawn triggers.

The owner must not choose which committed items a claim opens, or a forger could open
only the items a stolen model happens to agree with. The challenge is therefore a hash
of everything the claim is bound to: the verification key, the registry tree head that
ends with the claim's own intent entry, the log key's signature on that tree head, the
suspect model and the claim counter. The tree head depends on the intent (its registry
time, the owner's signature), but an owner who can predict the registry's time can
compute the root before asking and vary what the intent leaves free (its owner name,
``open``) until the items suit them; the log's signature cannot be computed without the
log's private key, so the owner learns the challenge only after the attempt is public in
the log.

The items opened by earlier claims on the same registration (``spent``) are excluded,
so each claim opens fresh items and a replayed opening is refused; the unopened items
stay secret for later claims::

    >>> seed = challenge_seed(vk=b"\\x01" * 32, origin="example.org/log", size=7,
    ...                       root=b"\\x02" * 32, signature=b"\\x04" * 64,
    ...                       suspect=b"\\x03" * 32, counter=0)
    >>> select_items(seed, items=100, spent=(), k=10)[:3]
    (1, 16, 18)

A **drawn trigger** (protocol_spec/ubw.md, "Drawn triggers") comes from randomness of
the same kind. The owner's key commits to a secret ``s`` (:func:`trigger_commitment`)
and the owner logs a trigger-draw entry naming the key, once per key; the tree head
that ends with that entry and the log's signature on it fix the trigger seed
(:func:`trigger_seed`). The owner cannot re-draw in private, and nobody else learns the
trigger before ``s`` is opened::

    >>> trigger_seed(b"\\x04" * 32, size=5, root=b"\\x05" * 32,
    ...              signature=b"\\x06" * 64).hex()[:16]
    '369fab9b2e431469'
"""

from __future__ import annotations

import hashlib

from .errors import MalformedInputError
from .wire import b64encode, canonical_json

__all__ = ["CHALLENGE_DOMAIN", "TRIGGER_COMMITMENT_DOMAIN", "TRIGGER_DOMAIN", "TRIGGER_SECRET_SIZE",
           "challenge_seed", "select_items", "trigger_commitment", "trigger_seed"]

CHALLENGE_DOMAIN = b"claimkit/challenge/v2\n"
TRIGGER_COMMITMENT_DOMAIN = b"claimkit/trigger-commitment/v1\n"
TRIGGER_DOMAIN = b"claimkit/trigger/v1\n"
TRIGGER_SECRET_SIZE = 32


def challenge_seed(*, vk: bytes, origin: str, size: int, root: bytes, signature: bytes,
                   suspect: bytes, counter: int) -> bytes:
    """SHA-256(domain || JCS({counter, log: {origin, size, root, signature}, suspect,
    verification_key})), ``signature`` the log key's on the checkpoint of that tree head."""
    body = {
        "verification_key": {"sha256": vk.hex()},
        "log": {"origin": origin, "size": size, "root": b64encode(root),
                "signature": b64encode(signature)},
        "suspect": {"sha256": suspect.hex()},
        "counter": counter,
    }
    return hashlib.sha256(CHALLENGE_DOMAIN + canonical_json(body)).digest()


class _Stream:
    """Uniform integers from SHA-256(seed || block counter), by rejection sampling."""

    def __init__(self, seed: bytes) -> None:
        self._seed = seed
        self._block = 0
        self._buf = b""

    def _u64(self) -> int:
        if len(self._buf) < 8:
            self._buf += hashlib.sha256(self._seed + self._block.to_bytes(8, "big")).digest()
            self._block += 1
        value, self._buf = int.from_bytes(self._buf[:8], "big"), self._buf[8:]
        return value

    def below(self, n: int) -> int:
        limit = (1 << 64) - (1 << 64) % n
        while True:
            value = self._u64()
            if value < limit:
                return value % n


def select_items(seed: bytes, *, items: int, spent: tuple[int, ...] | list[int], k: int) -> tuple[int, ...]:
    """The ``k`` item indices a claim must open, sorted: a seeded partial Fisher–Yates
    shuffle of the unspent indices ``[0, items) \\ spent`` in increasing order."""
    spent_set = set(spent)
    if any(not 0 <= i < items for i in spent_set):
        raise MalformedInputError("spent item index outside the key")
    pool = [i for i in range(items) if i not in spent_set]
    if not 1 <= k <= len(pool):
        raise MalformedInputError(
            f"cannot open {k} items: {len(pool)} of {items} remain unopened")
    stream = _Stream(seed)
    for i in range(k):
        j = i + stream.below(len(pool) - i)
        pool[i], pool[j] = pool[j], pool[i]
    return tuple(sorted(pool[:k]))


def _secret(secret: bytes) -> bytes:
    if not isinstance(secret, bytes) or len(secret) != TRIGGER_SECRET_SIZE:
        raise MalformedInputError(f"a trigger secret is {TRIGGER_SECRET_SIZE} bytes")
    return secret


def trigger_commitment(secret: bytes) -> bytes:
    """SHA-256(domain || s): what a key whose trigger is drawn publishes of its secret."""
    return hashlib.sha256(TRIGGER_COMMITMENT_DOMAIN + _secret(secret)).digest()


def trigger_seed(secret: bytes, *, size: int, root: bytes, signature: bytes) -> bytes:
    """SHA-256(domain || s || uint64_be(size) || root || signature): the seed a drawn
    trigger comes from; ``size`` and ``root`` the tree head that ends with the key's
    trigger-draw entry and ``signature`` the log key's signature on it. ``s`` was fixed
    (committed in the key) before that tree head existed, and the signature cannot be
    computed without the log's private key, so the owner cannot pick the trigger by
    timing the draw or varying the request; the log could only by signing otherwise
    than deterministically or choosing entry times (protocol_spec/ubw.md)."""
    if not 1 <= size < 1 << 64 or len(root) != 32 or not 1 <= len(signature) <= 1024:
        raise MalformedInputError("a trigger seed needs a tree size in [1, 2^64), a 32-byte "
                                  "root and the log's signature")
    return hashlib.sha256(TRIGGER_DOMAIN + _secret(secret) + size.to_bytes(8, "big") + root
                          + signature).digest()
