"""Checking a claim bundle: offline, without torch, recomputing every number.

``verify_claim`` raises :class:`~claimkit.errors.VerificationError` when the bundle is
not what it says (a bad signature, receipt, challenge or opening, or evidence that
differs from what its answers give) and returns a :class:`ClaimReport` otherwise; the
report's ``accepted`` says whether the recomputed statistics support ownership::

    report = verify_claim(ClaimBundle.from_file("bundle.json"),
                          log_key=load_vkey("registry/log.vkey"))
    print(report.accepted, report.evidence.result.p_value)

Checks, in order (the procedure of protocol_spec/bundle.md, §Verify, grouped here):
1. both receipts verify under the log key (checkpoint signature, inclusion, the owner's
   request signature); both entries come from the same log origin;
2. the registration commits to this verification key, whose parameters are well formed
   for its scheme; the intent names this registration, this suspect and the same owner;
   its checkpoint ends with the intent;
3. the consistency proof links the registration's checkpoint to the intent's; for a
   key whose trigger is drawn from the log, the bundle's trigger draw is checked (its
   receipt, that it precedes the registration, its consistency with the intent's
   checkpoint, the opened secret against the key's commitment; :func:`_trigger_seed`);
4. the envelope is signed by the registered owner;
5. the opened items are exactly the challenge's selection, and each opening matches the
   verification key's commitment root;
6. the queries are the ones the openings (and, for UBW-C's fresh triggers, the
   challenge seed) define; the evidence is recomputed from the
   answers and must equal the bundle's (:func:`same_evidence`);
7. with ``oracle`` (the arbiter re-queries the suspect), the arbiter's answers decide,
   and the report counts the queries on which the owner's recorded answers differ from
   them (:func:`same_answer`).
The report also counts the claims announced under the registration before this one
(each a try at level α; the log names their suspects).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from ..dsse import verify_envelope
from ..errors import ControlError, MalformedInputError, VerificationError
from ..identity import PublicIdentity
from ..protocol.scheme import Evidence, decider_for
from ..registry import merkle
from ..registry.checkpoint import Checkpoint, verify_cosignature
from ..registry.entries import ClaimIntent, Registration, claim_challenge, opened_items
from ..registry.note import VerifierKey
from ..wire import Digest, canonical_json
from .bundle import OWNER, ClaimBundle
from .drawn import draw_seed, is_drawn

__all__ = ["ClaimReport", "verify_claim"]

Oracle = Callable[[Sequence[Any]], Sequence[Any]]


@dataclass(frozen=True)
class ClaimReport:
    """What an arbiter learns from a valid bundle."""

    accepted: bool
    owner: PublicIdentity
    suspect: Digest
    scheme: str
    origin: str
    registration_index: int
    registration_time_ms: int
    intent_index: int
    intent_time_ms: int
    opened: tuple[int, ...]
    observer: str
    evidence: Evidence
    witnessed_times: dict[str, int]
    # With a re-query: on how many queries the owner's recorded answers differ from the
    # suspect's (None without one).
    answers_differ: int | None = None
    # A drawn key's trigger-draw entry (index, time_ms); None for any other key.
    trigger_draw: tuple[int, int] | None = None
    # The intent's counter (claims announced under this registration before this one,
    # against any suspect) and how many items they spent. Each announced claim is a
    # fresh try at the test's level α, so an owner who retried against one innocent model
    # until a claim passed had up to 1 + counter tries: the log lists every one.
    earlier_claims: int = 0
    spent_items: int = 0
    # The log's verifier key line: two logs may share an origin name, never a key.
    log_key: str = ""
    # The arbiter's control models, asked the same queries: (name, p-value, accepted).
    # A key whose test accepts a model the owner cannot have marked proves nothing about
    # the suspect (bundle.md, "Control models"); the claim is then rejected.
    controls: tuple[tuple[str, float, bool], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "decision": "accept" if self.accepted else "reject",
            "owner": {"name": self.owner.name, "key_id": self.owner.key_id},
            "suspect": self.suspect.to_dict(),
            "scheme": self.scheme,
            "registry": {"origin": self.origin, "log_key": self.log_key,
                         "registration": {"index": self.registration_index,
                                          "time_ms": self.registration_time_ms},
                         "intent": {"index": self.intent_index, "time_ms": self.intent_time_ms},
                         **({} if self.trigger_draw is None else {"trigger_draw": {
                             "index": self.trigger_draw[0],
                             "time_ms": self.trigger_draw[1]}})},
            "opened": list(self.opened),
            "observer": self.observer,
            "evidence": self.evidence.to_dict(),
            "witnessed_times": dict(self.witnessed_times),
            "earlier_claims": {"count": self.earlier_claims, "spent_items": self.spent_items},
            **({} if self.answers_differ is None else {"answers_differ": self.answers_differ}),
            **({} if not self.controls else {"controls": [
                {"name": n, "p_value": pv, "accepted": a} for n, pv, a in self.controls]}),
        }


FLOAT_TOLERANCE = 1e-9
# The evidence members a decider computes in floating point (sums, libm's lgamma and
# exp), whose last bits may differ between platforms. Everything else is copied from
# the answers or the key, or counted, and must match exactly.
COMPUTED = frozenset({"statistic", "p_value", "p_prop1", "p_t", "p_bound", "mean_difference",
                      "sd_difference", "rate", "success_rate", "delta_p", "delta_mu", "mean_score",
                      "mean_reference"})
ANSWER_TOLERANCE = 1e-4


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _close(a: Any, b: Any, *, rel: float = 0.0, abs_: float = 0.0) -> bool:
    """Two JSON numbers within a tolerance; one beyond the double range (an integer such
    as 10**400, which JSON allows) cannot be compared as a float, so it differs."""
    try:
        return math.isclose(float(a), float(b), rel_tol=rel, abs_tol=abs_)
    except OverflowError:
        return False


def same_evidence(recomputed: Any, claimed: Any, computed: frozenset[str] = COMPUTED,
                  *, inexact: bool = False) -> bool:
    """Equal JSON values. Numbers under a ``computed`` member are equal within 1e-9
    relative: p-values go through libm, whose last bits may differ between platforms.
    Every other number (the observations copied from the answers, the key's parameters,
    counts) must be equal exactly; 59 and 59.0 are one JSON number (RFC 8785 writes the
    float as the integer). Strings, booleans, keys and lengths match exactly."""
    if isinstance(recomputed, dict) and isinstance(claimed, dict):
        return recomputed.keys() == claimed.keys() and all(
            same_evidence(recomputed[k], claimed[k], computed, inexact=inexact or k in computed)
            for k in recomputed)
    if isinstance(recomputed, list) and isinstance(claimed, list):
        return len(recomputed) == len(claimed) and all(
            same_evidence(a, b, computed, inexact=inexact) for a, b in zip(recomputed, claimed))
    if _number(recomputed) and _number(claimed):
        if inexact:
            return _close(recomputed, claimed, rel=FLOAT_TOLERANCE, abs_=1e-300)
        return recomputed == claimed      # exact, even between an int and a float
    return type(recomputed) is type(claimed) and recomputed == claimed


def same_answer(owner: Any, arbiter: Any) -> bool:
    """One query's answers as the owner recorded them and as the arbiter got them. Class
    labels (integers on both sides) must be equal; other numbers within 1e-4 absolute,
    a float32 model's rounding on one machine, not across hardware.
    Lists (probability pairs or vectors) compare element by element."""
    if isinstance(owner, (list, tuple)) and isinstance(arbiter, (list, tuple)):
        return len(owner) == len(arbiter) and all(map(same_answer, owner, arbiter))
    if _number(owner) and _number(arbiter):
        if isinstance(owner, int) and isinstance(arbiter, int):
            return owner == arbiter
        return _close(owner, arbiter, abs_=ANSWER_TOLERANCE)
    return type(owner) is type(arbiter) and owner == arbiter


def verify_claim(bundle: ClaimBundle, *, log_key: VerifierKey,
                 witness_keys: Sequence[VerifierKey] = (), oracle: Oracle | None = None,
                 suspect: Digest | None = None, max_alpha: float | None = None,
                 controls: Sequence[tuple[str, Oracle]] = ()) -> ClaimReport:
    """Check ``bundle`` against the registry's key; see the module docstring.

    ``witness_keys``: each must have cosigned the registration's checkpoint (its
    attested time is reported). ``oracle``: the arbiter's own access to the suspect;
    its answers replace the owner's, and the report counts where the two differ.
    ``suspect``: the digest of the model the arbiter
    holds, which must be the bundle's subject. ``max_alpha``: the arbiter's limit on the
    level a key was registered with (the owner chose it at KeyGen, and a key at α = 0.5
    is accepted on a coin flip); a key above it is refused before any re-query.
    ``controls``: (name, oracle) of models the arbiter knows the owner did not mark (say,
    trained by the arbiter on public data); each is asked the claim's queries, and a
    claim whose test also accepts a control is rejected: the key is not specific to
    what the owner marked (labels chosen to match a model's habits, a meta-classifier
    that calls everything stolen).
    """
    if max_alpha is not None and not 0.0 < max_alpha < 1.0:
        raise MalformedInputError(f"max_alpha must lie in (0, 1), not {max_alpha!r}")
    p = bundle.predicate
    if suspect is not None and not suspect.matches(bundle.suspect):
        raise VerificationError("the bundle is about another model than the one given")

    # 1-2. Receipts, registration and intent.
    reg_cp = p.registration.verify(log_key)
    int_cp = p.intent.verify(log_key)
    reg = p.registration.entry.request
    intent = p.intent.entry.request
    if not isinstance(reg, Registration):
        raise VerificationError("registration receipt: the entry is not a registration")
    if not isinstance(intent, ClaimIntent):
        raise VerificationError("intent receipt: the entry is not a claim intent")
    vk = p.verification_key
    if not vk.digest.matches(reg.verification_key):
        raise VerificationError("the registered verification key is not the bundle's")
    if vk.scheme != reg.scheme or vk.items != reg.items:
        raise VerificationError("the verification key's scheme or size differs from the registration")
    decider = decider_for(vk.scheme)
    decider.check_params(vk)        # the key's own fields, before step 3 reads any of them
    if intent.registration_index != p.registration.index:
        raise VerificationError("the claim intent names another registration")
    if not p.registration.entry.digest.matches(intent.registration_entry):
        raise VerificationError("the claim intent names another registration entry")
    if intent.owner.public_key != reg.owner.public_key:
        raise VerificationError("the claim intent is not by the registered owner")
    if not intent.suspect.matches(bundle.suspect):
        raise VerificationError("the claim intent names another suspect than the bundle")
    if int_cp.size != p.intent.index + 1:
        raise VerificationError("the intent's checkpoint must end with the intent entry")

    # 3. The log's history between the two checkpoints.
    if reg_cp.size > int_cp.size:
        raise VerificationError("the registration's checkpoint is newer than the intent's")
    try:
        merkle.verify_consistency(reg_cp.size, int_cp.size, p.consistency,
                                  reg_cp.root_hash, int_cp.root_hash)
    except (VerificationError, MalformedInputError):
        raise VerificationError("the registry's checkpoints are inconsistent (fork or rewrite)") from None
    witnessed = {key.name: verify_cosignature(p.registration.proof.checkpoint, key)
                 for key in witness_keys}
    trigger = _trigger_seed(bundle, int_cp, log_key)

    # 4. The owner signed the bundle.
    verify_envelope(bundle.envelope, reg.owner)

    # 5. Cut-and-choose.
    opened = opened_items(reg, p.intent.entry, p.intent.proof.checkpoint, log_key)
    if tuple(o.index for o in p.openings) != opened:
        raise VerificationError("the opened items are not the ones the challenge selects")
    for opening in p.openings:
        vk.check_opening(opening)

    # 6. Queries, answers, evidence.
    challenge = claim_challenge(reg, p.intent.entry, p.intent.proof.checkpoint, log_key)
    queries = decider.queries(vk, p.openings, challenge=challenge, trigger=trigger)
    if canonical_json(queries) != canonical_json(list(p.queries)):
        raise VerificationError("the bundle's queries are not the ones its openings define")
    recorded = list(p.answers.values)
    evidence = decider.decide(vk, p.openings, recorded)
    # Observations that are the answers themselves are compared exactly; computed ones
    # (MOVE's meta-classifier scores) within the float tolerance.
    computed = COMPUTED if list(evidence.observations) == recorded else COMPUTED | {"observations"}
    if not same_evidence(evidence.to_dict(), p.evidence, computed):
        raise VerificationError("the bundle's evidence differs from what its answers give")
    level = evidence.result.alpha
    if max_alpha is not None and level > max_alpha:
        raise VerificationError(f"the key's level alpha = {level:g} is above the arbiter's "
                                f"limit {max_alpha:g}")
    observer, differ = OWNER, None
    if oracle is not None:
        # 7. The arbiter's answers decide (decide checks there is one per query). Where the
        # owner recorded other answers, the report says on how many queries: evidence about
        # the owner's record, not a reason to reject by itself, since the same float32
        # model answers a little differently on other hardware (TF32 convolutions on a GPU).
        observed = list(oracle(queries))
        evidence = decider.decide(vk, p.openings, observed)
        observer = "arbiter"
        differ = sum(not same_answer(a, b) for a, b in zip(recorded, observed))
    checked = []
    for name, control in controls:       # 8. The arbiter's controls, on the same queries.
        try:
            result = decider.decide(vk, p.openings, list(control(queries)))
        except ControlError:
            raise
        except MalformedInputError as e:     # the control's answers, not the bundle's
            raise ControlError(f"control {name}: {e}") from None
        checked.append((name, result.result.p_value, result.accepted))

    return ClaimReport(
        accepted=evidence.accepted and not any(a for _, _, a in checked),
        owner=reg.owner, suspect=bundle.suspect,
        scheme=vk.scheme, origin=int_cp.origin, registration_index=p.registration.index,
        registration_time_ms=p.registration.entry.time_ms, intent_index=p.intent.index,
        intent_time_ms=p.intent.entry.time_ms, opened=opened, observer=observer,
        evidence=evidence, witnessed_times=witnessed, answers_differ=differ,
        trigger_draw=None if p.trigger_draw is None else (p.trigger_draw.receipt.index,
                                                          p.trigger_draw.receipt.entry.time_ms),
        earlier_claims=intent.counter, spent_items=len(p.intent.entry.spent or ()),
        log_key=log_key.to_vkey(), controls=tuple(checked))


def _trigger_seed(bundle: ClaimBundle, intent_checkpoint: Checkpoint,
                  log_key: VerifierKey) -> bytes | None:
    """The trigger seed of a drawn key (None for any other key): the draw is by the
    registered owner, precedes the registration (whose release was crafted with the
    drawn trigger) and lies in the history of the intent's checkpoint;
    :func:`~claimkit.claim.drawn.draw_seed` checks its receipt under the log key, that it
    draws this key, and that the opened secret is the committed one."""
    p = bundle.predicate
    draw = p.trigger_draw
    if not is_drawn(p.verification_key):
        if draw is not None:
            raise VerificationError("the bundle opens a trigger draw for a key whose trigger "
                                    "is not drawn from the log")
        return None
    if draw is None:
        raise VerificationError("the key's trigger is drawn from the log, and the bundle "
                                "carries no trigger draw")
    seed = draw_seed(draw.receipt, p.verification_key, draw.secret, log_key)
    checkpoint = draw.receipt.checkpoint
    if draw.receipt.entry.request.owner.public_key != \
            p.registration.entry.request.owner.public_key:
        raise VerificationError("the trigger draw is by another owner than the registration")
    if draw.receipt.index >= p.registration.index:
        raise VerificationError("the key was registered before its trigger was drawn")
    try:
        merkle.verify_consistency(checkpoint.size, intent_checkpoint.size, draw.consistency,
                                  checkpoint.root_hash, intent_checkpoint.root_hash)
    except (VerificationError, MalformedInputError):
        raise VerificationError("the trigger draw's checkpoint is inconsistent with the "
                                "intent's (fork or rewrite)") from None
    return seed
