"""Making a claim (the owner's side): announce, open the challenged items, ask, sign.

    bundle = make_claim(registry, mk, registration_receipt, suspect_digest,
                        ask=lambda queries: model_answers(queries), identity=owner, k=30)
    Path("bundle.json").write_bytes(bundle.to_json())

``ask`` is the owner's access to the suspect model: it gets the queries the opened
items define and returns one answer per query. The ML layer supplies it for real
models; the protocol never sees the model itself.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from ..dsse import sign_envelope
from ..errors import MalformedInputError
from ..identity import Identity
from ..protocol.keys import MarkingKey
from ..protocol.scheme import decider_for
from ..registry.entries import ClaimIntent, Registration, opened_items, sign_request
from ..registry.log import Registry
from ..registry.receipt import Receipt
from ..wire import Digest, canonical_json
from .bundle import (CLAIM_PREDICATE, PAYLOAD_TYPE, Answers, ClaimBundle, ClaimPredicate,
                     Statement)

__all__ = ["make_claim"]

Ask = Callable[[Sequence[Any]], Sequence[Any]]


def make_claim(registry: Registry, mk: MarkingKey, registration: Receipt, suspect: Digest, *,
               ask: Ask, identity: Identity, k: int,
               subject_name: str = "suspect-model") -> ClaimBundle:
    """Announce a claim in ``registry``, open the challenged items and sign the bundle."""
    vk = mk.verification_key
    reg = registration.entry.request
    if not isinstance(reg, Registration):
        raise MalformedInputError("the receipt is not for a registration")
    if not vk.digest.matches(reg.verification_key):
        raise MalformedInputError("the receipt registers another verification key")
    registration.verify(registry.log_key)
    intent = ClaimIntent(identity.public, registration.index, registration.entry.digest,
                         suspect, registry.claims_made(registration.index), k)
    intent_receipt = registry.announce_claim(intent, sign_request(intent, identity))
    cp = intent_receipt.checkpoint
    opened = opened_items(reg, intent_receipt.entry, cp.origin, cp.size, cp.root_hash)
    openings = mk.open(opened)
    decider = decider_for(vk.scheme)
    queries = decider.queries(vk, openings)
    answers = Answers("owner", tuple(ask(queries)))
    evidence = decider.decide(vk, openings, list(answers.values))
    consistency = registry.consistency_proof(registration.checkpoint.size, cp.size)
    predicate = ClaimPredicate(vk, registration, intent_receipt, tuple(consistency), openings,
                               tuple(queries), answers, evidence.to_dict())
    statement = Statement(subject_name, suspect, CLAIM_PREDICATE, predicate.to_dict())
    envelope = sign_envelope(canonical_json(statement.to_dict()), PAYLOAD_TYPE, identity)
    return ClaimBundle(envelope, statement, predicate)
