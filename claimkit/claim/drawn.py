"""Keys whose trigger is drawn from the registry log, in claims.

A drawn key (protocol_spec/ubw.md, "Drawn triggers") publishes only a commitment to a
secret ``s`` (``trigger_commitment`` in its verification key); the owner's trigger-draw
entry, logged once per key, fixes the trigger seed
``SHA-256("claimkit/trigger/v1\\n" || s || uint64_be(size) || root)`` with ``size`` and
``root`` the tree head that ends with that entry (:func:`claimkit.challenge.trigger_seed`).
A claim opens ``s`` beside its items, with the draw's receipt and a consistency proof
from the draw's checkpoint to the intent's, so the verifier re-derives the trigger
instead of taking the owner's word for it::

    opening = TriggerDrawOpening(draw_receipt, secret, tuple(consistency))
    seed = draw_seed(opening.receipt, vk, opening.secret)
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any

from ..challenge import TRIGGER_SECRET_SIZE, trigger_commitment, trigger_seed
from ..errors import MalformedInputError, VerificationError
from ..protocol.keys import VerificationKey
from ..registry import merkle
from ..registry.entries import TriggerDraw
from ..registry.receipt import Receipt
from ..wire import Fields, b64encode, b64hash

__all__ = ["TriggerDrawOpening", "draw_seed", "is_drawn"]

COMMITMENT = "trigger_commitment"


def is_drawn(vk: VerificationKey) -> bool:
    """Whether ``vk``'s trigger is drawn from the log: its params name a commitment."""
    return COMMITMENT in vk.params


def draw_seed(receipt: Receipt, vk: VerificationKey, secret: bytes) -> bytes:
    """The trigger seed of drawn key ``vk`` from its trigger-draw ``receipt`` and the
    opened ``secret``, after checking that the receipt is a draw of this very key, that
    its checkpoint ends with the draw (the tree head the seed is defined by) and includes
    it, that the owner signed it, and that ``secret`` opens the key's commitment. The
    checkpoint's signature is the caller's to check (:meth:`Receipt.verify`), with the
    log key an owner may not have at hand when completing the key."""
    draw = receipt.entry.request
    if not isinstance(draw, TriggerDraw):
        raise VerificationError("the trigger-draw receipt is not for a trigger draw")
    if not draw.verification_key.matches(vk.digest) or draw.scheme != vk.scheme:
        raise VerificationError("the trigger draw names another verification key")
    checkpoint = receipt.checkpoint
    if checkpoint.size != receipt.index + 1:
        raise VerificationError("the trigger draw's checkpoint must end with the draw entry")
    try:
        merkle.verify_inclusion(receipt.entry.leaf_hash, receipt.index, checkpoint.size,
                                receipt.proof.hashes, checkpoint.root_hash)
    except (VerificationError, MalformedInputError):
        raise VerificationError("the trigger draw is not included in its checkpoint") from None
    receipt.entry.verify_signature()
    if len(secret) != TRIGGER_SECRET_SIZE:
        raise MalformedInputError(f"a trigger secret is {TRIGGER_SECRET_SIZE} bytes")
    committed = vk.params.get(COMMITMENT)
    if not isinstance(committed, str) or not hmac.compare_digest(
            trigger_commitment(secret).hex(), committed):
        raise VerificationError("the opened trigger secret does not match the key's commitment")
    return trigger_seed(secret, size=checkpoint.size, root=checkpoint.root_hash)


@dataclass(frozen=True)
class TriggerDrawOpening:
    """A claim's ``trigger_draw`` member: the draw's receipt, the opened secret and the
    consistency proof from the draw's checkpoint to the claim intent's."""

    receipt: Receipt
    secret: bytes
    consistency: tuple[bytes, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"receipt": self.receipt.to_dict(), "secret": b64encode(self.secret),
                "consistency": [b64encode(h) for h in self.consistency]}

    @classmethod
    def from_dict(cls, obj: Any, where: str = "trigger_draw") -> TriggerDrawOpening:
        f = Fields(obj, where)
        receipt = Receipt.from_dict(f.obj("receipt"), f.path("receipt"))
        secret = f.bytes("secret", size=TRIGGER_SECRET_SIZE)
        consistency = f.each("consistency", b64hash, max_items=128)
        f.done()
        assert consistency is not None
        return cls(receipt, secret, consistency)
