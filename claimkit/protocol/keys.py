"""Marking and verification keys (Adi et al. 2018, §3: KeyGen outputs (mk, vk)).

The **marking key** is the owner's secret: every item's value and commitment nonce,
plus any scheme secret that is not an item (a trigger pattern, seeds). It is sealed
under a passphrase at rest. The **verification key** is public: the scheme, its public
parameters, the number of items ℓ and the Merkle root of the item commitments. Its
digest is what the owner registers before release::

    mk = MarkingKey.create("trigger-set", params, item_values, rng=os.urandom)
    vk = mk.verification_key
    mk.save("keydir", passphrase)        # keydir/marking-key + keydir/verification-key.json
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from ..commitments import NONCE_SIZE, CommittedItems, ItemOpening, commit_items
from ..errors import MalformedInputError, VerificationError
from ..sealed import seal, unseal
from ..wire import (Digest, Fields, atomic_write, b64decode, b64encode, canonical_json, pretty_json,
                    ct_equal, load_json, read_json_file)

__all__ = ["VerificationKey", "MarkingKey", "VK_TYPE", "MK_TYPE", "VK_FILE", "MK_FILE"]

VK_TYPE = "claimkit/verification-key/v1"
MK_TYPE = "claimkit/marking-key/v1"
VK_FILE = "verification-key.json"
MK_FILE = "marking-key"
MAX_ITEMS = 1 << 20


@dataclass(frozen=True)
class VerificationKey:
    """Public: what a verifier needs to check openings and decide a claim."""

    scheme: str
    params: dict[str, Any]
    items: int
    commitment_root: bytes

    def __post_init__(self) -> None:
        if not 1 <= self.items <= MAX_ITEMS:
            raise MalformedInputError(f"verification key: items must be within [1, {MAX_ITEMS}]")
        if len(self.commitment_root) != 32:
            raise MalformedInputError("verification key: commitment_root must be 32 bytes")
        canonical_json(self.params)  # params must be plain JSON

    def to_dict(self) -> dict[str, Any]:
        return {"type": VK_TYPE, "scheme": self.scheme, "params": self.params,
                "items": self.items, "commitment_root": b64encode(self.commitment_root)}

    @property
    def digest(self) -> Digest:
        """SHA-256 of the canonical JSON: what the registry entry commits to."""
        return Digest.of_json(self.to_dict())

    @classmethod
    def from_dict(cls, obj: Any, where: str = "verification_key") -> VerificationKey:
        f = Fields(obj, where)
        f.str("type", choices=(VK_TYPE,))
        scheme = f.str("scheme", max_len=32)
        params = f.obj("params")
        items = f.int("items", lo=1, hi=MAX_ITEMS)
        root = f.bytes("commitment_root", size=32)
        f.done()
        return cls(scheme, params, items, root)

    @classmethod
    def from_file(cls, path: str | Path) -> VerificationKey:
        return cls.from_dict(read_json_file(path), str(path))

    def to_json(self) -> bytes:
        return pretty_json(self.to_dict())

    def check_opening(self, opening: ItemOpening) -> None:
        opening.verify(self.commitment_root, size=self.items)


@dataclass(frozen=True)
class MarkingKey:
    """Secret: the committed items with their nonces and the scheme's other secrets."""

    scheme: str
    params: dict[str, Any]
    items: CommittedItems
    secret: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:  # never print secrets
        return f"MarkingKey(scheme={self.scheme!r}, items={self.items.size})"

    @classmethod
    def create(cls, scheme: str, params: dict[str, Any], values: Sequence[Any], *,
               rng: Callable[[int], bytes] = os.urandom,
               secret: dict[str, Any] | None = None) -> MarkingKey:
        return cls(scheme, dict(params), commit_items(values, rng=rng), dict(secret or {}))

    @property
    def verification_key(self) -> VerificationKey:
        return VerificationKey(self.scheme, self.params, self.items.size, self.items.root)

    def open(self, indices: Sequence[int]) -> tuple[ItemOpening, ...]:
        return self.items.open_many(indices)

    def _plain(self) -> bytes:
        return canonical_json({
            "type": MK_TYPE, "scheme": self.scheme, "params": self.params,
            "secret": self.secret,
            "items": [{"value": v, "nonce": b64encode(n)}
                      for v, n in zip(self.items.values, self.items.nonces)],
        })

    def save(self, directory: str | Path, passphrase: str, *, strength: str = "interactive",
             overwrite: bool = False) -> Path:
        """Write ``marking-key`` (sealed, 0600) and ``verification-key.json`` (public)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        mk_path = directory / MK_FILE
        if mk_path.exists() and not overwrite:
            raise MalformedInputError(f"{mk_path} exists; refusing to overwrite a marking key")
        sealed = {"type": MK_TYPE + "+sealed", **seal(self._plain(), passphrase, strength=strength)}
        atomic_write(mk_path, canonical_json(sealed), mode=0o600)
        atomic_write(directory / VK_FILE, self.verification_key.to_json())
        return directory

    @classmethod
    def load(cls, directory: str | Path, passphrase: str) -> MarkingKey:
        """Open a key directory; checks the marking key against its verification key."""
        directory = Path(directory)
        path = directory / MK_FILE
        obj = read_json_file(path, max_bytes=1 << 31)
        f = Fields(obj, str(path))
        f.str("type", choices=(MK_TYPE + "+sealed",))
        sealed = {"kdf": f.raw("kdf"), "ciphertext": f.raw("ciphertext")}
        f.done()
        plain = load_json(unseal(sealed, passphrase, what=str(path)), what=str(path),
                          max_bytes=1 << 31)
        g = Fields(plain, "marking key")
        g.str("type", choices=(MK_TYPE,))
        scheme = g.str("scheme", max_len=32)
        params = g.obj("params")
        secret = g.obj("secret")
        raw = g.list("items", max_items=MAX_ITEMS)
        g.done()
        values, nonces = [], []
        for i, item in enumerate(raw):
            h = Fields(item, f"marking key.items[{i}]")
            values.append(h.raw("value"))
            nonces.append(b64decode(h.str("nonce"), field=h.path("nonce"), size=NONCE_SIZE))
            h.done()
        mk = cls(scheme, params, CommittedItems(tuple(values), tuple(nonces)), secret)
        vk_path = directory / VK_FILE
        if vk_path.exists():
            vk = VerificationKey.from_file(vk_path)
            if not ct_equal(canonical_json(vk.to_dict()),
                            canonical_json(mk.verification_key.to_dict())):
                raise VerificationError(f"{vk_path} does not match the marking key beside it")
        return mk
