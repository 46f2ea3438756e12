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

from ..challenge import TRIGGER_SECRET_SIZE
from ..dsse import sign_envelope
from ..errors import MalformedInputError
from ..identity import Identity
from ..protocol.keys import MarkingKey, VerificationKey
from ..protocol.scheme import decider_for
from ..registry.entries import (ClaimIntent, Registration, claim_challenge, opened_items,
                                sign_request)
from ..registry.log import Registry
from ..registry.receipt import Receipt
from ..wire import Digest, b64decode, canonical_json
from .drawn import TriggerDrawOpening, draw_seed, is_drawn
from .bundle import (CLAIM_PREDICATE, PAYLOAD_TYPE, Answers, ClaimBundle, ClaimPredicate,
                     Statement, check_payload_size)

__all__ = ["DEFAULT_OPEN", "check_claim_size", "default_open", "make_claim"]

DEFAULT_OPEN = 50

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
    check_claim_size(mk, k)
    drawn = _draw(registry, mk, registration) if is_drawn(vk) else None   # before any is spent
    intent = ClaimIntent(identity.public, registration.index, registration.entry.digest,
                         suspect, registry.claims_made(registration.index), k)
    intent_receipt = registry.announce_claim(intent, sign_request(intent, identity))
    cp = intent_receipt.checkpoint
    signed = intent_receipt.proof.checkpoint
    opened = opened_items(reg, intent_receipt.entry, signed, registry.log_key)
    openings = mk.open(opened)
    decider = decider_for(vk.scheme)
    challenge = claim_challenge(reg, intent_receipt.entry, signed, registry.log_key)
    draw = trigger = None
    if drawn is not None:
        receipt, secret, trigger = drawn
        draw = TriggerDrawOpening(receipt, secret, tuple(
            registry.consistency_proof(receipt.checkpoint.size, cp.size)))
    queries = decider.queries(vk, openings, challenge=challenge, trigger=trigger)
    answers = Answers("owner", tuple(ask(queries)))
    evidence = decider.decide(vk, openings, list(answers.values))
    consistency = registry.consistency_proof(registration.checkpoint.size, cp.size)
    predicate = ClaimPredicate(vk, registration, intent_receipt, tuple(consistency), openings,
                               tuple(queries), answers, evidence.to_dict(), draw)
    statement = Statement(subject_name, suspect, CLAIM_PREDICATE, predicate.to_dict())
    payload = canonical_json(statement.to_dict())
    # The estimate leaves out the answers; should they tip the bundle over, say so
    # rather than write a bundle no verifier reads.
    check_payload_size(len(payload), "the bundle's payload (the claim intent is already "
                                     "logged and its items spent)")
    envelope = sign_envelope(payload, PAYLOAD_TYPE, identity)
    return ClaimBundle(envelope, statement, predicate)


def _draw(registry: Registry, mk: MarkingKey,
          registration: Receipt) -> tuple[Receipt, bytes, bytes]:
    """A drawn key's trigger-draw receipt (kept in the key), the secret its claims open
    and the trigger seed, refused before the intent if a verifier would refuse them: a
    draw of another key or log, by another owner, not in this registry's history, or
    after the registration."""
    if "draw" not in mk.secret or "trigger_secret" not in mk.secret:
        raise MalformedInputError("this key's trigger is drawn from the log and has not been "
                                  "drawn yet: claimkit draw KEYDIR --registry DIR --identity KEY")
    receipt = Receipt.from_dict(mk.secret["draw"], "marking key.secret.draw")
    secret = b64decode(mk.secret["trigger_secret"], field="marking key.secret.trigger_secret",
                       size=TRIGGER_SECRET_SIZE)
    seed = draw_seed(receipt, mk.verification_key, secret, registry.log_key)
    checkpoint = receipt.checkpoint
    if registry.root_at(checkpoint.size) != checkpoint.root_hash:
        raise MalformedInputError("the key's trigger draw is not in this registry's history")
    if receipt.entry.request.owner.public_key != registration.entry.request.owner.public_key:
        raise MalformedInputError("the key's trigger was drawn by another owner than the one "
                                  "who registered it")
    if receipt.index >= registration.index:
        raise MalformedInputError(f"the key was registered (entry {registration.index}) before "
                                  f"its trigger was drawn (entry {receipt.index}): register it "
                                  "again, after the draw and before the release")
    return receipt, secret, seed


def default_open(vk: VerificationKey) -> int:
    """Items a claim opens when its owner does not say: UBW's ``m`` (the pairs a claim
    should open, App. C.2); otherwise 50, or the key's minimum where that is larger
    (MOVE's and EWE's ``min_queries``: a floor, not a recommendation, so it never lowers
    the default and the power that comes with it)."""
    def count(name: str) -> int:
        value = vk.params.get(name)
        return value if isinstance(value, int) and not isinstance(value, bool) and value >= 1 else 0
    return count("m") or max(DEFAULT_OPEN, count("min_queries"))


def check_claim_size(mk: MarkingKey, k: int) -> None:
    """Refuse, before the intent spends any item, a claim opening ``k`` items that its
    decider would refuse (too few for the scheme's test: MOVE's m, EWE's 30, UBW's 2) or
    whose bundle would be too large for a verifier. :func:`make_claim` asks it first; a
    caller may ask earlier, before reaching the suspect."""
    vk = mk.verification_key
    decider_for(vk.scheme).check_claim_size(vk, k)
    check_payload_size(estimated_payload(mk, k), f"a claim opening {k} items: the bundle's payload")


def estimated_payload(mk: MarkingKey, k: int) -> int:
    """Bytes of a bundle payload opening ``k`` items, at most (the answers aside, but for
    UBW-C's K fresh triggers, whose K + 2 probabilities an item, recorded twice, can
    outweigh the items): the challenge is not known before the intent is logged, so the
    ``k`` largest items, each twice (its opening and its query), with each opening's
    nonce and proof and a margin for the key, receipts and evidence."""
    values = mk.items.values
    sizes = sorted((len(canonical_json(v)) for v in values), reverse=True)[:max(k, 0)]
    per_opening = 128 + 48 * len(values).bit_length()       # index, nonce, proof hashes
    fresh = mk.verification_key.params.get("fresh", 0) if mk.scheme == "ubw-c" else 0
    if isinstance(fresh, int) and fresh > 0:
        per_opening += 128 + 2 * 24 * (fresh + 2)   # the query's seed; answers and observations
    fixed = 64 * 1024 + 8 * len(values) + len(canonical_json(mk.verification_key.to_dict()))
    return fixed + sum(2 * size + per_opening for size in sizes)
