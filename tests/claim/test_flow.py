"""The whole claim protocol with the tests-only lookup-table scheme."""

from __future__ import annotations

import pytest

from claimkit.claim.bundle import ClaimBundle
from claimkit.claim.make import make_claim
from claimkit.claim.verdict import make_verdict
from claimkit.claim.verify import verify_claim
from claimkit.errors import RegistryError, VerificationError
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
                                            registry.consistency_proof))
    receipt = registry.receipt(receipt.index, receipt.checkpoint.size)
    bundle = claim(registry, mk, receipt, owner, marked_model(mk))
    report = verify_claim(bundle, log_key=registry.log_key, witness_keys=[witness.verifier_key])
    assert set(report.witnessed_times) == {"arbiter"}
    other = Witness(Identity.generate("other", seed=b"\x33" * 32), tmp_path / "o.json")
    with pytest.raises(VerificationError):
        verify_claim(bundle, log_key=registry.log_key, witness_keys=[other.verifier_key])


def resign(bundle: ClaimBundle, predicate: dict, owner: Identity) -> ClaimBundle:
    """What a dishonest owner can do: change the predicate and sign it again."""
    from claimkit.claim.bundle import PAYLOAD_TYPE, Statement
    from claimkit.dsse import sign_envelope
    from claimkit.wire import canonical_json
    statement = Statement(bundle.statement.subject_name, bundle.suspect,
                          bundle.statement.predicate_type, predicate)
    envelope = sign_envelope(canonical_json(statement.to_dict()), PAYLOAD_TYPE, owner)
    return ClaimBundle.from_envelope(envelope)


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
