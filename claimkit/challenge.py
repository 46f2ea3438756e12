"""Cut-and-choose challenges, Fiat–Shamir style (Adi et al. 2018, App. A).

The owner must not choose which committed items a claim opens, or a forger could open
only the items a stolen model happens to agree with. The challenge is therefore a hash
of everything the claim is bound to: the verification key, the registry tree head that
ends with the claim's own intent entry, the suspect model and the claim counter. The
tree head depends on the intent (and its registry time), so the owner learns the
challenge only after the attempt is public in the log.

The items opened by earlier claims on the same registration (``spent``) are excluded,
so each claim opens fresh items and a replayed opening is refused; the unopened items
stay secret for later claims::

    >>> seed = challenge_seed(vk=b"\\x01" * 32, origin="example.org/log", size=7,
    ...                       root=b"\\x02" * 32, suspect=b"\\x03" * 32, counter=0)
    >>> select_items(seed, items=100, spent=(), k=10)[:3]
    (6, 23, 29)
"""

from __future__ import annotations

import hashlib

from .errors import MalformedInputError
from .wire import b64encode, canonical_json

__all__ = ["CHALLENGE_DOMAIN", "challenge_seed", "select_items"]

CHALLENGE_DOMAIN = b"claimkit/challenge/v1\n"


def challenge_seed(*, vk: bytes, origin: str, size: int, root: bytes, suspect: bytes,
                   counter: int) -> bytes:
    """SHA-256(domain || JCS({counter, log: {origin, size, root}, suspect, verification_key}))."""
    body = {
        "verification_key": {"sha256": vk.hex()},
        "log": {"origin": origin, "size": size, "root": b64encode(root)},
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
