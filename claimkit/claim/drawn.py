"""Keys whose trigger is drawn from the registry log, in claims.

A drawn key (protocol_spec/ubw.md, "Drawn triggers") publishes only a commitment to a
secret ``s`` (``trigger_commitment`` in its verification key); the owner's trigger-draw
entry, logged once per key, fixes the trigger seed
``SHA-256("claimkit/trigger/v1\\n" || s || uint64_be(size) || root || signature)`` with
``size`` and ``root`` the tree head that ends with that entry and ``signature`` the log
key's on it (:func:`claimkit.challenge.trigger_seed`).
A claim opens ``s`` beside its items, with the draw's receipt and a consistency proof
from the draw's checkpoint to the intent's, so the verifier re-derives the trigger
instead of taking the owner's word for it::

    opening = TriggerDrawOpening(draw_receipt, secret, tuple(consistency))
    seed = draw_seed(opening.receipt, vk, opening.secret, log_key)
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any

from ..challenge import TRIGGER_SECRET_SIZE, trigger_commitment, trigger_seed
from ..errors import VerificationError
from ..protocol.keys import VerificationKey
from ..registry.checkpoint import Checkpoint
from ..registry.entries import TriggerDraw
from ..registry.note import VerifierKey
from ..registry.receipt import Receipt
from ..wire import Fields, b64encode, b64hash

__all__ = ["TriggerDrawOpening", "check_draw", "draw_seed", "is_drawn"]

COMMITMENT = "trigger_commitment"


def is_drawn(vk: VerificationKey) -> bool:
    """Whether ``vk``'s trigger is drawn from the log: its params name a commitment."""
    return COMMITMENT in vk.params


def check_draw(receipt: Receipt, vk: VerificationKey, log_key: VerifierKey) -> Checkpoint:
    """Raise unless ``receipt`` is valid under ``log_key`` (its checkpoint's signature,
    the draw's inclusion, the owner's signature), is a trigger draw of this very key, and
    its checkpoint ends with the draw (the tree head the seed is defined by)."""
    draw = receipt.entry.request
    if not isinstance(draw, TriggerDraw):
        raise VerificationError("the trigger-draw receipt is not for a trigger draw")
    if not draw.verification_key.matches(vk.digest) or draw.scheme != vk.scheme:
        raise VerificationError("the trigger draw names another verification key")
    checkpoint = receipt.verify(log_key)
    if checkpoint.size != receipt.index + 1:
        raise VerificationError("the trigger draw's checkpoint must end with the draw entry "
                                f"(a receipt of entry {receipt.index} under the checkpoint of "
                                f"size {receipt.index + 1})")
    return checkpoint


def draw_seed(receipt: Receipt, vk: VerificationKey, secret: bytes, log_key: VerifierKey) -> bytes:
    """The trigger seed of drawn key ``vk`` from its trigger-draw ``receipt``
    (:func:`check_draw`) and the opened ``secret``, which must open the key's commitment."""
    checkpoint = check_draw(receipt, vk, log_key)
    committed = vk.params.get(COMMITMENT)       # trigger_commitment checks the secret's size
    # Bytes, not str: compare_digest refuses a str with non-ASCII characters (a TypeError).
    if not isinstance(committed, str) or not hmac.compare_digest(
            trigger_commitment(secret).hex().encode(), committed.encode()):
        raise VerificationError("the opened trigger secret does not match the key's commitment")
    return trigger_seed(secret, size=checkpoint.size, root=checkpoint.root_hash,
                        signature=receipt.proof.checkpoint.log_signature(log_key))


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
