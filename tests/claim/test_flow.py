"""The whole claim protocol with the tests-only lookup-table scheme."""

from __future__ import annotations

import pytest

from claimkit.claim.bundle import ClaimBundle
from claimkit.claim.make import make_claim
from claimkit.claim.verdict import make_verdict
from claimkit.claim.verify import verify_claim
from claimkit.errors import MalformedInputError, RegistryError, VerificationError
from claimkit.identity import Identity
from claimkit.registry.entries import ClaimIntent, Registration, sign_request
from claimkit.registry.witness import Witness

from conftest import LookupModel, lookup_keys, marked_model


def claim(registry, mk, registration, owner, model, k=20):
    return make_claim(registry, mk, registration, model.digest, ask=model.answer,
                      identity=owner, k=k)


def test_stolen_model_is_accepted(registry, mk, registration, owner):
    model = marked_model(mk, keep=0.9)
    bundle = claim(registry, mk, registration, owner, model)
    report = verify_claim(ClaimBundle.from_json(bundle.to_json()), log_key=registry.log_key)
    assert report.accepted
    assert report.observer == "owner"
    assert report.evidence.result.p_value < 1e-10
    assert report.registration_index == registration.index
    assert report.owner.public_key == owner.public.public_key


def test_an_arbiter_can_refuse_keys_above_its_level(registry, mk, registration, owner):
    """The key's α was the owner's choice at KeyGen; ``max_alpha`` is the arbiter's."""
    bundle = claim(registry, mk, registration, owner, marked_model(mk, keep=0.9))
    level = verify_claim(bundle, log_key=registry.log_key).evidence.result.alpha
    assert verify_claim(bundle, log_key=registry.log_key, max_alpha=level).accepted
    with pytest.raises(VerificationError, match="above the arbiter's limit"):
        verify_claim(bundle, log_key=registry.log_key, max_alpha=level / 2)
    with pytest.raises(MalformedInputError, match="max_alpha"):
        verify_claim(bundle, log_key=registry.log_key, max_alpha=1.5)


def test_independent_model_is_rejected(registry, mk, registration, owner):
    independent = LookupModel({}, default=3)
    bundle = claim(registry, mk, registration, owner, independent)
    report = verify_claim(bundle, log_key=registry.log_key)
    assert not report.accepted
    assert report.evidence.result.p_value > 0.01


def test_arbiter_requery_replaces_owner_answers(registry, mk, registration, owner):
    stolen = marked_model(mk, keep=1.0)
    bundle = claim(registry, mk, registration, owner, stolen)
    other = LookupModel({}, default=5)
    report = verify_claim(bundle, log_key=registry.log_key, oracle=other.answer)
    assert report.observer == "arbiter"
    assert not report.accepted


def test_second_claim_opens_fresh_items(registry, mk, registration, owner):
    model = marked_model(mk)
    first = verify_claim(claim(registry, mk, registration, owner, model), log_key=registry.log_key)
    second = verify_claim(claim(registry, mk, registration, owner, model), log_key=registry.log_key)
    assert not set(first.opened) & set(second.opened)
    assert sorted(registry.store.spent(registration.index)) == sorted(first.opened + second.opened)
    assert registry.audit().ok
    # Each announced claim is another try at the test's level: the report says how many
    # came before this one under the registration, and what they spent.
    assert (first.earlier_claims, first.spent_items) == (0, 0)
    assert (second.earlier_claims, second.spent_items) == (1, len(first.opened))
    assert second.to_dict()["earlier_claims"] == {"count": 1, "spent_items": len(first.opened)}


def test_claims_run_out_of_items(registry, mk, registration, owner):
    model = marked_model(mk)
    claim(registry, mk, registration, owner, model, k=40)
    with pytest.raises(RegistryError, match="remain unopened"):
        claim(registry, mk, registration, owner, model, k=40)


def test_replayed_openings_are_refused(registry, mk, registration, owner):
    """Openings of claim 0 pasted into claim 1 do not match claim 1's challenge."""
    model = marked_model(mk)
    first = claim(registry, mk, registration, owner, model)
    second = claim(registry, mk, registration, owner, model)
    forged_predicate = {**second.statement.predicate,
                        "openings": first.statement.predicate["openings"],
                        "queries": first.statement.predicate["queries"],
                        "answers": first.statement.predicate["answers"],
                        "evidence": first.statement.predicate["evidence"]}
    forged = resign(second, forged_predicate, owner)
    with pytest.raises(VerificationError, match="challenge"):
        verify_claim(forged, log_key=registry.log_key)


def test_claim_by_someone_else_is_refused(registry, mk, registration, owner):
    mallory = Identity.generate("mallory", seed=b"\x66" * 32)
    model = marked_model(mk)
    intent = ClaimIntent(mallory.public, registration.index, registration.entry.digest,
                         model.digest, 0, 10)
    with pytest.raises(RegistryError, match="owner"):
        registry.announce_claim(intent, sign_request(intent, mallory))


def test_claim_with_another_key_is_rejected(registry, mk, registration, owner):
    """A different marking key cannot open the registered commitments."""
    other_mk = lookup_keys(seed=9)
    model = marked_model(other_mk)
    with pytest.raises(Exception):
        claim(registry, other_mk, registration, owner, model)


def test_wrong_counter_is_refused(registry, mk, registration, owner):
    intent = ClaimIntent(owner.public, registration.index, registration.entry.digest,
                         marked_model(mk).digest, 3, 10)
    with pytest.raises(RegistryError, match="counter"):
        registry.announce_claim(intent, sign_request(intent, owner))


def test_verdict_is_signed_by_the_arbiter(registry, mk, registration, owner):
    from claimkit.dsse import verify_envelope
    arbiter = Identity.generate("arbiter", seed=b"\x22" * 32)
    bundle = claim(registry, mk, registration, owner, marked_model(mk))
    report = verify_claim(bundle, log_key=registry.log_key)
    verdict = make_verdict(bundle, report, arbiter)
    assert verify_envelope(verdict, arbiter.public) == arbiter.public


def test_witness_cosignature_is_checked(registry, mk, owner, tmp_path):
    arbiter = Identity.generate("arbiter", seed=b"\x22" * 32)
    witness = Witness(arbiter, tmp_path / "seen.json")
    vk = mk.verification_key
    request = Registration(owner.public, vk.scheme, vk.digest, vk.items)
    receipt = registry.register(request, sign_request(request, owner))
    registry.add_cosignature(witness.cosign(registry.latest_checkpoint(), registry.log_key,
                                            registry.consistency_proof), witness.verifier_key)
    receipt = registry.receipt(receipt.index, receipt.checkpoint.size)
    bundle = claim(registry, mk, receipt, owner, marked_model(mk))
    report = verify_claim(bundle, log_key=registry.log_key, witness_keys=[witness.verifier_key])
    assert set(report.witnessed_times) == {"arbiter"}
    other = Witness(Identity.generate("other", seed=b"\x33" * 32), tmp_path / "o.json")
    with pytest.raises(VerificationError):
        verify_claim(bundle, log_key=registry.log_key, witness_keys=[other.verifier_key])


def resign(bundle: ClaimBundle, predicate: dict, owner: Identity, *,
           canonical: bool = True) -> ClaimBundle:
    """What a dishonest owner can do: change the predicate and sign it again (as plain
    JSON with ``canonical=False``, for values RFC 8785 cannot write, such as 10**400)."""
    import json
    from claimkit.claim.bundle import PAYLOAD_TYPE, Statement
    from claimkit.dsse import sign_envelope
    from claimkit.wire import canonical_json
    statement = Statement(bundle.statement.subject_name, bundle.suspect,
                          bundle.statement.predicate_type, predicate).to_dict()
    payload = canonical_json(statement) if canonical else json.dumps(statement).encode()
    return ClaimBundle.from_envelope(sign_envelope(payload, PAYLOAD_TYPE, owner))


def test_evidence_comparison_tolerates_only_float_noise():
    from claimkit.claim.verify import same_evidence
    base = {"result": {"p_value": 1.2345e-7, "reject_null": True, "statistic": 8.0},
            "observations": [1, 2, 3], "details": {"n": 3}}
    assert same_evidence(base, {**base, "result": {**base["result"], "p_value": 1.2345e-7 * (1 + 1e-13)}})
    for bad in ({**base, "result": {**base["result"], "p_value": 1.3e-7}},
                {**base, "result": {**base["result"], "reject_null": False}},
                {**base, "observations": [1, 2, 4]}, {**base, "details": {"n": 3.5}},
                {**base, "details": {"n": True}}, {**base, "extra": 1}):
        assert not same_evidence(base, bad)


def test_numbers_beyond_the_double_range_are_evidence_that_differs(registry, mk, registration,
                                                                   owner):
    """10**400 is valid JSON; comparing it as a float must reject, not raise OverflowError."""
    from claimkit.claim.verify import same_evidence
    bundle = claim(registry, mk, registration, owner, marked_model(mk))
    for path in (("result", "p_value"), ("result", "statistic"), ("details", "n"),
                 ("observations", 0)):
        predicate = bundle.predicate.to_dict()
        *parents, last = ("evidence", *path)
        target = predicate
        for key in parents:
            target = target[key]
        target[last] = 10**400
        assert not same_evidence(bundle.predicate.evidence, predicate["evidence"])
        with pytest.raises(MalformedInputError, match="not canonical JSON"):   # JCS has no 1e400
            verify_claim(resign(bundle, predicate, owner, canonical=False),
                         log_key=registry.log_key)


def test_only_computed_statistics_get_the_float_tolerance():
    from claimkit.claim.verify import same_evidence
    base = {"observations": [[0.9, 0.1]], "result": {"p_value": 0.25, "statistic": 2.5,
                                                     "df": 59.0, "alpha": 0.01},
            "details": {"tau": 0.25, "delta_p": 0.8}}
    near = 1 + 1e-12
    assert same_evidence(base, {**base, "result": {**base["result"], "p_value": 0.25 * near,
                                                   "statistic": 2.5 * near, "df": 59}})
    assert same_evidence(base, {**base, "details": {"tau": 0.25, "delta_p": 0.8 * near}})
    for bad in ({**base, "observations": [[0.9000000001, 0.1]]},
                {**base, "details": {"tau": 0.25 * near, "delta_p": 0.8}},
                {**base, "result": {**base["result"], "alpha": 0.01 * near}}):
        assert not same_evidence(base, bad)


def test_bundle_answers_must_be_the_owners(registry, mk, registration, owner):
    """An owner cannot label made-up answers as the arbiter's: only a verifier says that."""
    from claimkit.claim.bundle import Answers
    from claimkit.errors import MalformedInputError
    bundle = claim(registry, mk, registration, owner, marked_model(mk))
    predicate = bundle.predicate.to_dict()
    predicate["answers"]["observer"] = "arbiter"
    with pytest.raises(MalformedInputError, match="observer"):
        resign(bundle, predicate, owner)
    with pytest.raises(MalformedInputError, match="observer"):
        Answers("arbiter", (1, 2))
    report = verify_claim(bundle, log_key=registry.log_key, oracle=marked_model(mk).answer)
    assert report.observer == "arbiter" and report.to_dict()["observer"] == "arbiter"


def test_a_requery_counts_answers_the_suspect_does_not_give(registry, mk, registration, owner):
    """Re-querying: the suspect's answers decide, and the report says on how many queries
    the owner's signed answers differ from them (a count, not a reject: float32 answers
    differ a little across hardware)."""
    stolen = marked_model(mk, keep=1.0)
    bundle = claim(registry, mk, registration, owner, stolen)
    same = verify_claim(bundle, log_key=registry.log_key, oracle=stolen.answer)
    assert same.accepted and same.answers_differ == 0 and same.to_dict()["answers_differ"] == 0
    assert "answers_differ" not in verify_claim(bundle, log_key=registry.log_key).to_dict()
    suspect = marked_model(mk, keep=0.9)                 # differs on a few triggers only
    differ = sum(a != b for a, b in zip(stolen.answer(bundle.predicate.queries),
                                        suspect.answer(bundle.predicate.queries)))
    assert differ
    report = verify_claim(bundle, log_key=registry.log_key, oracle=suspect.answer)
    assert report.answers_differ == differ and report.accepted == report.evidence.accepted


def test_answers_compare_labels_exactly_and_probabilities_within_1e_4():
    from claimkit.claim.verify import same_answer
    assert same_answer(3, 3) and not same_answer(3, 4) and not same_answer(3, True)
    assert same_answer([0.9, 0.1], [0.90005, 0.1]) and not same_answer([0.9, 0.1], [0.9002, 0.1])
    assert same_answer([1, 0], [0.99999, 0.00001])      # RFC 8785 writes 1.0 as 1
    assert not same_answer([0.9, 0.1], [0.9]) and not same_answer([[0.5]], [0.5])
    assert not same_answer([10**400, 0.1], [0.5, 0.1])  # no OverflowError


def test_a_payload_over_the_64_mib_document_limit_is_parsed():
    """Bundles are read up to the envelope's payload limit (192 MiB), not load_json's
    64 MiB default: an honest claim on large images writes such payloads."""
    from claimkit.claim.bundle import CLAIM_PREDICATE, PAYLOAD_TYPE, STATEMENT_TYPE
    from claimkit.wire import canonical_json
    from claimkit.dsse import Envelope, EnvelopeSignature
    from claimkit.errors import MalformedInputError
    statement = {"_type": STATEMENT_TYPE, "predicateType": CLAIM_PREDICATE,
                 "subject": [{"name": "m", "digest": {"sha256": "0" * 64}}],
                 "predicate": {"padding": "A" * (65 * 2**20)}}
    envelope = Envelope(canonical_json(statement), PAYLOAD_TYPE,
                        (EnvelopeSignature("", b"\0" * 64),))
    with pytest.raises(MalformedInputError) as info:
        ClaimBundle.from_envelope(envelope)
    assert "predicate" in str(info.value) and "larger than" not in str(info.value)


def test_a_claim_too_large_to_verify_is_refused_before_announcing(registry, owner, monkeypatch):
    """The announcement spends the opened items, so the size check comes first."""
    import claimkit.claim.bundle as bundle_module
    from claimkit.errors import MalformedInputError
    from claimkit.protocol.keys import MarkingKey
    from conftest import LOOKUP_SCHEME, LookupModel
    values = [{"input": f"{i:04d}" + "A" * 50_000, "label": i % 10} for i in range(40)]
    mk = MarkingKey.create(LOOKUP_SCHEME, {"num_classes": 10, "alpha": 0.01}, values)
    vk = mk.verification_key
    request = Registration(owner.public, vk.scheme, vk.digest, vk.items)
    receipt = registry.register(request, sign_request(request, owner))
    model = LookupModel({v["input"]: v["label"] for v in values})
    monkeypatch.setattr(bundle_module, "MAX_BUNDLE_PAYLOAD", 1_500_000)
    with pytest.raises(MalformedInputError, match="open fewer items"):
        claim(registry, mk, receipt, owner, model, k=20)   # about 2 MB
    assert registry.claims_made(receipt.index) == 0
    assert registry.store.spent(receipt.index) == ()
    bundle = claim(registry, mk, receipt, owner, model, k=10)   # about 1 MB: fits
    assert len(bundle.envelope.payload) <= 1_500_000
    assert verify_claim(ClaimBundle.from_json(bundle.to_json()), log_key=registry.log_key).accepted


def test_claims_in_two_logs_of_one_origin_rank_by_time_in_any_order(tmp_path, registry, mk,
                                                                    registration, owner, clock):
    """A thief's log named like the owner's, his registration entry 0 there too, made
    later: ranked by index as one log, whichever was listed first won."""
    from claimkit.claim.compete import rank_claims
    from claimkit.registry.log import Registry

    from conftest import PASSPHRASE
    stolen = marked_model(mk)
    owners = verify_claim(claim(registry, mk, registration, owner, stolen),
                          log_key=registry.log_key)
    clock.now += 3600                                          # an hour later, his own log
    thief = Identity.generate("mallory", seed=b"\x22" * 32)
    other = Registry.init(tmp_path / "other", origin=registry.origin, passphrase=PASSPHRASE,
                          clock=clock, key_strength="min")
    vk = mk.verification_key
    request = Registration(thief.public, vk.scheme, vk.digest, vk.items)
    receipt = other.register(request, sign_request(request, thief))
    thiefs = verify_claim(claim(other, mk, receipt, thief, stolen), log_key=other.log_key)
    other.close()
    assert owners.origin == thiefs.origin and owners.registration_index == thiefs.registration_index
    assert owners.log_key != thiefs.log_key
    assert rank_claims([owners, thiefs])[0] is owners
    assert rank_claims([thiefs, owners])[0] is owners


def test_a_key_that_also_accuses_the_arbiters_control_is_rejected(registry, owner):
    """A review labelled every trigger with the class an independent model favours: the
    claim against that model passed. The same key accuses any model with that habit, so
    an arbiter's own control model exposes it."""
    biased = lookup_keys(items=40)
    biased = type(biased).create(biased.scheme, dict(biased.verification_key.params),
                                 [{**v, "label": 8} for v in biased.items.values],
                                 rng=lambda n: b"\x07" * n)
    vk = biased.verification_key
    request = Registration(owner.public, vk.scheme, vk.digest, vk.items)
    receipt = registry.register(request, sign_request(request, owner))
    favours_8 = LookupModel({}, default=8)                   # no trigger learned, a habit
    bundle = claim(registry, biased, receipt, owner, favours_8)
    assert verify_claim(bundle, log_key=registry.log_key).accepted      # alone: fooled
    report = verify_claim(bundle, log_key=registry.log_key,
                          controls=[("control", LookupModel({"x": 1}, default=8).answer)])
    assert not report.accepted and report.evidence.accepted
    assert report.controls[0][0] == "control" and report.controls[0][2]
    honest = verify_claim(bundle, log_key=registry.log_key,
                          controls=[("control", LookupModel({}, default=3).answer)])
    assert honest.accepted and not honest.controls[0][2]
    assert honest.to_dict()["controls"] == [{"name": "control", "p_value": 1.0,
                                             "accepted": False}]


def test_a_control_that_cannot_answer_is_the_arbiters_error_not_the_bundles(registry, mk,
                                                                          registration, owner):
    """A control of another task made every bundle of a run 'MALFORMED'; it is now a
    ControlError naming the control, which ends the run (the arbiter's argument)."""
    from claimkit.errors import ControlError
    bundle = claim(registry, mk, registration, owner, marked_model(mk))

    def wrong_task(queries):
        return ["not a class"] * len(queries)
    with pytest.raises(ControlError, match="control other-task: answers"):
        verify_claim(bundle, log_key=registry.log_key, controls=[("other-task", wrong_task)])


# -- a dishonest owner who rebuilds the whole predicate (mutation-testing gaps) ----------
def _rebuild(registry, bundle, owner, mk, model, **changes):
    """The bundle with ``changes`` to its predicate and everything after them recomputed
    as make_claim would (the opened items, openings, queries, answers and evidence), then
    signed again by the owner: only the check aimed at the change can refuse it."""
    import dataclasses
    from claimkit.claim.bundle import Answers
    from claimkit.protocol.scheme import decider_for
    from claimkit.registry.entries import opened_items
    p = dataclasses.replace(bundle.predicate, **changes)
    reg = p.registration.entry.request
    opened = opened_items(reg, p.intent.entry, p.intent.proof.checkpoint, registry.log_key)
    openings = mk.open(opened)
    vk = p.verification_key
    decider = decider_for(vk.scheme)
    queries = decider.queries(vk, openings)
    answers = Answers("owner", tuple(model.answer(queries)))
    evidence = decider.decide(vk, openings, list(answers.values))
    p = dataclasses.replace(p, openings=openings, queries=tuple(queries), answers=answers,
                            evidence=evidence.to_dict())
    return resign(bundle, p.to_dict(), owner)


def test_the_arbiters_suspect_must_be_the_bundles(registry, mk, registration, owner):
    model = marked_model(mk)
    bundle = claim(registry, mk, registration, owner, model)
    assert verify_claim(bundle, log_key=registry.log_key, suspect=model.digest).accepted
    with pytest.raises(VerificationError, match="another model"):
        verify_claim(bundle, log_key=registry.log_key, suspect=LookupModel({"x": 1}).digest)


def test_a_key_made_after_the_intent_to_fit_an_innocent_model_is_refused(registry, mk,
                                                                          registration, owner):
    """The owner swaps in a key of the registered scheme and size whose labels are what an
    innocent model answers: every opening, query and statistic is consistent with it, and
    only the registration's digest of the key stands in the way."""
    innocent = LookupModel({}, default=3)
    bundle = claim(registry, mk, registration, owner, innocent)
    assert not verify_claim(bundle, log_key=registry.log_key).accepted
    fitted = lookup_keys(items=mk.verification_key.items, seed=9)
    fitted = type(fitted).create(fitted.scheme, dict(mk.verification_key.params),
                                 [{**v, "label": 3} for v in fitted.items.values])
    forged = _rebuild(registry, bundle, owner, fitted, innocent,
                      verification_key=fitted.verification_key)
    with pytest.raises(VerificationError, match="registered verification key"):
        verify_claim(forged, log_key=registry.log_key)


def test_a_registration_must_state_its_keys_size(registry, mk, owner):
    """A registration naming the key's digest but fewer items than it has (so the
    challenge draws from a part of the key the owner picked) is refused."""
    vk = mk.verification_key
    request = Registration(owner.public, vk.scheme, vk.digest, vk.items // 2)
    receipt = registry.register(request, sign_request(request, owner))
    bundle = claim(registry, mk, receipt, owner, marked_model(mk))
    with pytest.raises(VerificationError, match="scheme or size"):
        verify_claim(bundle, log_key=registry.log_key)


def test_a_later_checkpoint_cannot_reseed_the_challenge(registry, mk, registration, owner):
    """The challenge is seeded by the checkpoint that ends with the intent. Were any later
    checkpoint allowed, the owner could pick among them the one whose items suit the
    suspect: here one that lies past the intent, with everything recomputed from it."""
    from conftest import register_many
    model = marked_model(mk, keep=0.5)
    bundle = claim(registry, mk, registration, owner, model)
    register_many(registry, owner, 3)
    later = registry.receipt(bundle.predicate.intent.index)
    assert later.checkpoint.size > bundle.predicate.intent.index + 1
    forged = _rebuild(registry, bundle, owner, mk, model, intent=later, consistency=tuple(
        registry.consistency_proof(registration.checkpoint.size, later.checkpoint.size)))
    assert forged.predicate.openings != bundle.predicate.openings      # another challenge
    with pytest.raises(VerificationError, match="must end with the intent"):
        verify_claim(forged, log_key=registry.log_key)


def test_a_claim_about_one_suspect_cannot_accuse_another(registry, mk, registration, owner):
    """The intent fixes the suspect before the challenge: a bundle whose statement names
    another model than its intent is refused, whatever the answers say."""
    from claimkit.claim.bundle import PAYLOAD_TYPE, Statement
    from claimkit.dsse import sign_envelope
    from claimkit.wire import canonical_json
    model = marked_model(mk)
    bundle = claim(registry, mk, registration, owner, model)
    other = LookupModel({"x": 1}).digest
    statement = Statement(bundle.statement.subject_name, other, bundle.statement.predicate_type,
                          bundle.predicate.to_dict())
    forged = ClaimBundle.from_envelope(sign_envelope(canonical_json(statement.to_dict()),
                                                     PAYLOAD_TYPE, owner))
    with pytest.raises(VerificationError, match="another suspect"):
        verify_claim(forged, log_key=registry.log_key, suspect=other)


def _insert_intent(registry, intent, signature):
    """Append a claim intent behind the registry's rules (what a registry that broke
    them would have written) under a checkpoint that ends with it; its receipt."""
    from claimkit.registry import merkle
    from claimkit.registry.entries import LogEntry
    with registry.store.transaction():
        size, last_time = registry.store.head()
        frontier = merkle.Frontier.load(size, registry.store.read_nodes)
        entry = LogEntry(intent, signature, last_time, spent=())
        nodes = frontier.append(merkle.leaf_hash(entry.to_bytes()))
        registry.store.append([(size, entry.to_bytes(), intent.kind, intent.registration_index,
                                last_time)], nodes)
        registry._sign_checkpoint(size + 1, frontier.root(), last_time)
    return registry.receipt(size)


@pytest.mark.parametrize("change, message", [
    ("index", "names another registration$"),
    ("entry", "names another registration entry"),
    ("owner", "not by the registered owner"),
])
def test_an_intent_the_registry_should_have_refused_is_refused(registry, mk, owner, change,
                                                               message):
    """The arbiter re-checks what announce_claim checks: an intent naming another index
    (of a byte-identical entry: one request logged twice in one batch), another entry,
    or signed by someone other than the registered owner."""
    from claimkit.registry.entries import ClaimIntent, signed_bytes
    from claimkit.wire import Digest
    vk = mk.verification_key
    request = Registration(owner.public, vk.scheme, vk.digest, vk.items)
    first = registry.append([(request, sign_request(request, owner))] * 2).first_index
    registration = registry.receipt(first)
    assert registry.entry(first + 1).to_bytes() == registration.entry.to_bytes()
    model = marked_model(mk)
    bundle = claim(registry, mk, registration, owner, model)
    signer, index, entry = owner, registration.index, registration.entry.digest
    if change == "index":
        index = first + 1
    elif change == "entry":
        entry = Digest.of(b"another entry")
    else:
        signer = Identity.generate("mallory", seed=b"\x66" * 32)
    intent = ClaimIntent(signer.public, index, entry, model.digest, 1, 20)
    receipt = _insert_intent(registry, intent, signer.sign(signed_bytes(intent)))
    forged = _rebuild(registry, bundle, owner, mk, model, intent=receipt, consistency=tuple(
        registry.consistency_proof(registration.checkpoint.size, receipt.checkpoint.size)))
    with pytest.raises(VerificationError, match=message):
        verify_claim(forged, log_key=registry.log_key)


def test_evidence_lists_and_booleans_compare_strictly():
    """A list of another length (zip would stop at the shorter) and a boolean written as
    a number (True == 1 in Python) are evidence that differs."""
    from claimkit.claim.verify import same_evidence
    base = {"observations": [1, 2, 3], "result": {"reject_null": True}}
    for bad in ({**base, "observations": [1, 2]}, {**base, "observations": [1, 2, 3, 4]},
                {**base, "result": {"reject_null": 1}}, {**base, "result": {"reject_null": 1.0}}):
        assert not same_evidence(base, bad) and not same_evidence(bad, base)
    assert same_evidence(base, {"observations": [1.0, 2, 3], "result": {"reject_null": True}})


def test_a_trigger_draw_for_a_key_that_draws_none_is_refused(registry, mk, registration, owner):
    """A bundle whose key's trigger is not drawn from the log must carry no trigger draw:
    every part of a signed bundle is checked, none rides along unread."""
    import dataclasses
    from claimkit.claim.bundle import TriggerDrawOpening
    bundle = claim(registry, mk, registration, owner, marked_model(mk))
    draw = TriggerDrawOpening(registration, b"\x05" * 32, ())
    forged = resign(bundle, dataclasses.replace(bundle.predicate, trigger_draw=draw).to_dict(), owner)
    assert forged.predicate.trigger_draw is not None
    with pytest.raises(VerificationError, match="not drawn from the log"):
        verify_claim(forged, log_key=registry.log_key)


def test_computed_statistics_get_1e_9_relative_and_labels_no_tolerance():
    from claimkit.claim.verify import same_answer, same_evidence
    base = {"result": {"p_value": 1e-3}}
    assert same_evidence(base, {"result": {"p_value": 1e-3 * (1 + 1e-10)}})
    assert not same_evidence(base, {"result": {"p_value": 1e-3 * (1 + 1e-8)}})
    big = 1 << 60                       # one double: equal as floats, not as labels
    assert float(big) == float(big + 1) and not same_answer(big, big + 1)


def test_a_registration_receipt_from_another_log_spends_nothing(registry, mk, registration,
                                                                  owner, tmp_path):
    """The same entry at the same index in another log (another log key): make_claim
    checks the receipt under this registry's key before the intent spends any item."""
    from claimkit.registry.log import Registry
    from conftest import PASSPHRASE, FakeClock
    other = Registry.init(tmp_path / "other", origin=registry.origin, passphrase=PASSPHRASE,
                          clock=FakeClock(), key_strength="min")
    vk = mk.verification_key
    request = Registration(owner.public, vk.scheme, vk.digest, vk.items)
    foreign = other.register(request, sign_request(request, owner))
    other.close()
    assert (foreign.index, foreign.entry.to_bytes()) == (registration.index,
                                                         registration.entry.to_bytes())
    with pytest.raises(VerificationError):
        claim(registry, mk, foreign, owner, marked_model(mk))
    assert registry.claims_made(registration.index) == 0
    assert registry.store.spent(registration.index) == ()


def test_a_verdict_on_a_rejected_claim_says_reject_and_names_the_envelope(registry, mk,
                                                                           registration, owner):
    import hashlib
    import json

    from claimkit.wire import canonical_json
    arbiter = Identity.generate("arbiter", seed=b"\x22" * 32)
    bundle = claim(registry, mk, registration, owner, LookupModel({}, default=3))
    report = verify_claim(bundle, log_key=registry.log_key)
    assert not report.accepted
    for verdict_report in (report, None):
        predicate = json.loads(make_verdict(bundle, verdict_report, arbiter).payload)["predicate"]
        assert predicate["decision"] == "reject"
    predicate = json.loads(make_verdict(bundle, report, arbiter).payload)["predicate"]
    envelope = hashlib.sha256(canonical_json(bundle.envelope.to_dict())).hexdigest()
    assert predicate["bundle"] == {"sha256": envelope}
    competition = {"bundles": [predicate["bundle"]], "earliest": None}
    predicate = json.loads(make_verdict(bundle, report, arbiter, competition=competition,
                                        checked_with={"log": "k"}).payload)["predicate"]
    assert predicate["competition"] == competition and predicate["checked_with"] == {"log": "k"}


def test_ranking_counts_accepted_claims_only_on_one_suspect_by_time_across_logs(
        registry, mk, registration, owner):
    from dataclasses import replace

    from claimkit.claim.compete import rank_claims
    from claimkit.wire import Digest
    report = verify_claim(claim(registry, mk, registration, owner, marked_model(mk)),
                          log_key=registry.log_key)
    assert report.accepted
    rejected_earlier = replace(report, accepted=False, registration_index=0)
    later = replace(report, registration_index=7)
    assert rank_claims([rejected_earlier, later]) == [later]
    elsewhere = replace(report, suspect=Digest.of(b"another model"))
    with pytest.raises(MalformedInputError, match="same suspect"):
        rank_claims([report, elsewhere])
    assert rank_claims([report, replace(elsewhere, accepted=False)]) == [report]
    # Two logs: the earlier registration time wins, whatever the origin names.
    first = replace(report, origin="z.example/log", log_key="z", registration_time_ms=1_000)
    second = replace(report, origin="a.example/log", log_key="a", registration_time_ms=2_000)
    assert rank_claims([second, first]) == [first, second]
    # One origin name, two log keys: by time, not by index.
    mine = replace(report, log_key="mine", registration_index=3, registration_time_ms=1_000)
    theirs = replace(report, log_key="theirs", registration_index=0, registration_time_ms=2_000)
    assert rank_claims([theirs, mine]) == [mine, theirs]
