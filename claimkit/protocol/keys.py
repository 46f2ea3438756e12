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

from nacl.secret import SecretBox

from ..commitments import NONCE_SIZE, CommittedItems, ItemOpening, commit_items
from ..errors import KeyFileError, MalformedInputError
from ..identity import read_private_file, write_key_file
from ..sealed import seal, strength_of, unseal
from ..wire import (Digest, Fields, b64decode, b64encode, canonical_json, pretty_json, ct_equal,
                    load_json, read_json_file)

__all__ = ["VerificationKey", "MarkingKey", "VK_TYPE", "MK_TYPE", "VK_FILE", "MK_FILE"]

VK_TYPE = "claimkit/verification-key/v1"
MK_TYPE = "claimkit/marking-key/v1"
VK_FILE = "verification-key.json"
MK_FILE = "marking-key"
MAX_ITEMS = 1 << 20
# A marking key holds its items' images: 100 000 items (the schemes' largest ℓ) of a
# 3×32×32 image and its triggered twin (ubw) are 0.6 GB raw, about 0.8 GB as base64 JSON.
# 1 GiB of plaintext leaves room for the scheme secret; the file holds that sealed
# (nonce and MAC) and base64 again, plus a short header.
MAX_MARKING_KEY_BYTES = 1 << 30
_MAX_SEALED_BYTES = MAX_MARKING_KEY_BYTES + SecretBox.NONCE_SIZE + SecretBox.MACBYTES
MAX_MARKING_KEY_FILE_BYTES = 4 * -(-_MAX_SEALED_BYTES // 3) + 4096


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
        """Write ``marking-key`` (sealed, 0600) and ``verification-key.json`` (public).

        Unless ``overwrite``, an existing file (or symlink) at either name is an error
        and nothing is written; the secret file is linked into place, so one created
        meanwhile is never replaced either.
        """
        directory = Path(directory)
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise KeyFileError(f"{directory}: cannot create key directory "
                               f"({e.strerror or e})") from None
        mk_path, vk_path = directory / MK_FILE, directory / VK_FILE
        if not overwrite:
            for target in (mk_path, vk_path):
                if os.path.lexists(target):
                    raise KeyFileError(f"{target} exists; refusing to overwrite a key")
        plain = self._plain()
        if len(plain) > MAX_MARKING_KEY_BYTES:  # load would refuse it: fail before writing
            raise MalformedInputError(f"marking key: {len(plain)} bytes, more than the "
                                      f"{MAX_MARKING_KEY_BYTES} a key file may hold")
        sealed = {"type": MK_TYPE + "+sealed", **seal(plain, passphrase, strength=strength)}
        write_key_file(mk_path, canonical_json(sealed), 0o600, overwrite)
        write_key_file(vk_path, self.verification_key.to_json(), 0o644, overwrite)
        return directory

    @staticmethod
    def sealed_strength(directory: str | Path) -> str:
        """The strength the directory's marking key was sealed at (:data:`~claimkit.sealed.
        STRENGTHS`), so that a key re-saved (a drawn key completed) is sealed no weaker."""
        path = Path(directory) / MK_FILE
        data = read_private_file(path, max_bytes=MAX_MARKING_KEY_FILE_BYTES)
        return strength_of(load_json(data, what=str(path), max_bytes=MAX_MARKING_KEY_FILE_BYTES))

    @classmethod
    def load(cls, directory: str | Path, passphrase: str) -> MarkingKey:
        """Open a key directory; checks the marking key against its verification key.

        The marking key is read like an identity key: refused if others may read or
        write it (``chmod 600``), if it is not a regular file, or if it is too large.
        """
        directory = Path(directory)
        path = directory / MK_FILE
        data = read_private_file(path, max_bytes=MAX_MARKING_KEY_FILE_BYTES)
        f = Fields(load_json(data, what=str(path), max_bytes=MAX_MARKING_KEY_FILE_BYTES), str(path))
        f.str("type", choices=(MK_TYPE + "+sealed",))
        sealed = {"kdf": f.raw("kdf"), "ciphertext": f.raw("ciphertext")}
        f.done()
        plain = load_json(unseal(sealed, passphrase, what=str(path), max_bytes=_MAX_SEALED_BYTES),
                          what=str(path), max_bytes=MAX_MARKING_KEY_BYTES)
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
                raise KeyFileError(f"{vk_path} does not match the marking key beside it")
        return mk
