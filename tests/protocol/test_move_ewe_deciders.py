"""The pure MOVE and EWE deciders: accept, reject, tampered and malformed answers.

No torch here: keys are built from hand-made items and a hand-made meta-classifier, the
"suspects" are answer lists, and scipy is the reference for the statistics.
"""

from __future__ import annotations

import math
import random
import subprocess
import sys
from fractions import Fraction

import pytest
from scipy import stats

from claimkit.claim.bundle import ClaimBundle
from claimkit.claim.make import DEFAULT_OPEN, default_open, make_claim
from claimkit.claim.verify import verify_claim
from claimkit.errors import MalformedInputError, VerificationError
from claimkit.protocol.keys import MarkingKey, VerificationKey
from claimkit.protocol.move_ewe_deciders import AUGMENTATIONS, MetaClassifier, blackbox_features
from claimkit.protocol.scheme import decider_for
from claimkit.protocol.stats import binomial_sf
from claimkit.registry.entries import Registration, sign_request
from claimkit.wire import Digest, b64encode, canonical_json

from conftest import lookup_keys

K = 10
A = len(AUGMENTATIONS)
IMAGE = b64encode(bytes(64))


def seeded(seed: int):
    r = random.Random(seed)
    return lambda n: r.randbytes(n)


def meta(inputs: int, hidden: int = 2) -> MetaClassifier:
    """C(f) = σ(4·relu(−f₀) − 4·relu(f₀) − 1)... made simple: the first feature decides.

    Hidden unit 0 fires on a negative first feature (the true-class probability dropped,
    as for a benign model on a stylized image), unit 1 on a positive one; the logit is
    8·h1 − 8·h0 − 2, so "no drop" scores σ(−2) ≈ 0.12 and a large drop scores near 0,
    a large rise near 1.
    """
    w1 = [[0.0] * inputs for _ in range(hidden)]
    w1[0][0], w1[1][0] = -1.0, 1.0
    return MetaClassifier(inputs, hidden, tuple(tuple(r) for r in w1), (0.0,) * hidden,
                          (-8.0, 8.0) + (0.0,) * (hidden - 2), -2.0)


def move_key(*, items: int = 40, mode: str = "black-box", tau: float = 0.2, m: int = 20,
             references: list[float] | None = None, classifier: MetaClassifier | None = None,
             **extra) -> MarkingKey:
    refs = references or [0.05 + 0.01 * (i % 5) for i in range(items)]
    params = {"mode": mode, "num_classes": K, "input_shape": [1, 8, 8], "data": "digits",
              "data_digest": "00" * 32, "alpha": 0.01, "tau": tau, "min_queries": m,
              "style_commitment": {"sha256": "11" * 32}}
    if mode == "black-box":
        params.update(features="probability-difference/v1", augmentations=list(AUGMENTATIONS))
        c = classifier or meta(A * K)
        values = [{"image": IMAGE, "source": IMAGE, "reference": r} for r in refs]
    else:
        params.update(features="gradient-sign/v1", arch="digits-cnn", feature_size=12)
        c = classifier or meta(12)
        values = [{"image": IMAGE, "label": i % K, "reference": r} for i, r in enumerate(refs)]
    params["meta_classifier"] = c.to_dict()
    params.update(extra)
    return MarkingKey.create("move", params, values, rng=seeded(1))


def bb_answer(rise: float) -> list[list[float]]:
    """Ten probability vectors whose first-class difference (x′ minus x) is ``rise``."""
    base = [0.5] + [0.5 / (K - 1)] * (K - 1)
    moved = [0.5 + rise] + [(0.5 - rise) / (K - 1)] * (K - 1)
    return [moved] * A + [base] * A


def decide(mk: MarkingKey, answers, n: int | None = None):
    vk = mk.verification_key
    openings = mk.open(list(range(n or len(answers))))
    return decider_for(mk.scheme).decide(vk, openings, answers)


# -- the meta-classifier ------------------------------------------------------------------
def test_meta_classifier_round_trips_and_scores_by_hand():
    c = meta(5, hidden=3)
    back = MetaClassifier.from_dict(c.to_dict())
    assert back == c
    assert back.score([-0.5, 0, 0, 0, 0]) == pytest.approx(1 / (1 + math.exp(2 + 4)))
    assert back.score([0.5, 9, 9, 9, 9]) == pytest.approx(1 / (1 + math.exp(-(4 - 2))))
    assert 0.0 < back.score([-1e6] + [0] * 4) < 1e-300 or back.score([-1e6] + [0] * 4) == 0.0
    with pytest.raises(MalformedInputError, match="takes 5 features"):
        back.score([0.0] * 4)


@pytest.mark.parametrize("change", [
    {"weights": b64encode(bytes(4 * 10))},                     # too few weights
    {"inputs": 0}, {"hidden": 0}, {"extra": 1},
    {"weights": b64encode(b"\x00\x00\xc0\x7f" * MetaClassifier.size(5, 3))},   # NaN
])
def test_malformed_meta_classifiers_are_refused(change):
    wire = {**meta(5, hidden=3).to_dict(), **change}
    with pytest.raises(MalformedInputError):
        MetaClassifier.from_dict(wire)


def test_blackbox_features_are_the_paper_differences():
    vectors = [[i / 100 + j / 1000 for j in range(K)] for i in range(2 * A)]
    features = blackbox_features(vectors, A, K)
    assert len(features) == A * K
    assert features[K + 3] == vectors[1][3] - vectors[A + 1][3]


# -- MOVE -----------------------------------------------------------------------------------
def test_move_accepts_a_suspect_that_keeps_the_external_features():
    mk = move_key()
    answers = [bb_answer(0.3 + 0.01 * (i % 7)) for i in range(30)]
    ev = decide(mk, answers)
    assert ev.accepted and ev.result.test == "paired-t-margin"
    scores, refs = list(ev.observations), ev.details["reference_scores"]
    expected = stats.ttest_rel([s - 0.2 for s in scores], refs, alternative="greater").pvalue
    assert ev.result.params["p_t"] == pytest.approx(expected, rel=1e-9)
    assert ev.result.p_value == max(ev.result.params["p_t"], ev.result.params["p_bound"])
    assert ev.details["delta_mu"] == pytest.approx(sum(scores) / 30 - sum(refs) / 30)
    assert ev.details["m"] == 30 and len(refs) == 30


def test_move_rejects_a_benign_looking_suspect_and_respects_the_margin():
    mk = move_key()
    benign = [bb_answer(-0.2 + 0.02 * (i % 5)) for i in range(30)]
    assert not decide(mk, benign).accepted
    # Scores a little above the references: the paper's τ = 0 test accuses, τ = 0.2 does not.
    slightly = [bb_answer(0.1 + 0.01 * (i % 3)) for i in range(30)]
    assert decide(move_key(tau=0.0), slightly).accepted
    assert not decide(move_key(tau=0.2), slightly).accepted


def test_white_box_answers_are_gradient_sign_features():
    mk = move_key(mode="white-box", m=10)
    stolen = [[0.5 + 0.02 * (i % 4)] + [0.0] * 11 for i in range(12)]
    benign = [[-0.5] + [0.0] * 11 for _ in range(12)]
    assert decide(mk, stolen).accepted
    assert not decide(mk, benign).accepted
    assert mk.verification_key and decider_for("move").queries(
        mk.verification_key, mk.open([3]))[0] == {"image": IMAGE, "label": 3}


@pytest.mark.parametrize("answer, message", [
    ([[0.1] * K] * (2 * A - 1), "expected 10 probability vectors"),
    ([[0.1] * (K + 1)] * (2 * A), "expected 10 probabilities"),
    ([[0.1] * (K - 1) + [1.5]] * (2 * A), r"in \[0, 1\]"),
    ([[0.1] * (K - 1) + [-0.5]] * (2 * A), r"in \[0, 1\]"),
    ([[0.1] * (K - 1) + ["0.1"]] * (2 * A), r"in \[0, 1\]"),
    ([[0.1] * (K - 1) + [True]] * (2 * A), r"in \[0, 1\]"),
    ([[0.1] * (K - 1) + [10**400]] * (2 * A), r"in \[0, 1\]"),   # no float: no OverflowError
    ({"vectors": []}, "expected 10 probability vectors"),
])
def test_malformed_black_box_answers_are_refused(answer, message):
    answers = [bb_answer(0.3)] * 29 + [answer]
    with pytest.raises(MalformedInputError, match=message):
        decide(move_key(), answers)


def test_malformed_white_box_answers_are_refused():
    mk = move_key(mode="white-box", m=10)
    good = [[0.0] * 12] * 11
    for bad in ([0.0] * 11, [2.0] + [0.0] * 11, [-1.5] + [0.0] * 11, ["x"] * 12, 0.5, [-10**400] + [0.0] * 11):
        with pytest.raises(MalformedInputError, match="gradient-sign"):
            decide(mk, good + [bad])


def test_move_needs_the_papers_m_and_one_answer_per_item():
    mk = move_key(m=20)
    with pytest.raises(MalformedInputError, match="at least 20 opened images"):
        decide(mk, [bb_answer(0.3)] * 19)
    with pytest.raises(MalformedInputError, match="29 answers for 30"):
        decide(mk, [bb_answer(0.3)] * 29, n=30)


@pytest.mark.parametrize("change, message", [
    ({"meta_classifier": meta(A * K + 1).to_dict()}, "does not match the key"),
    ({"mode": "white-box", "arch": "digits-cnn", "feature_size": 13,
      "features": "gradient-sign/v1"}, "does not match the key"),
    ({"augmentations": ["identity"]}, "augmentations"),
    ({"features": "gradient-sign/v1"}, "probability-difference"),
    ({"tau": 1.5}, "tau"), ({"alpha": 0.0}, "alpha"), ({"mode": "grey-box"}, "mode"),
    ({"input_shape": [1, 8]}, "input_shape"), ({"surprise": 1}, "unknown field"),
])
def test_keys_whose_parameters_or_meta_classifier_do_not_fit_are_refused(change, message):
    mk = move_key(**change)
    with pytest.raises(MalformedInputError, match=message):
        decider_for("move").check_params(mk.verification_key)


def test_items_must_carry_a_reference_score():
    params = move_key().params
    mk = MarkingKey.create("move", params, [{"image": IMAGE, "source": IMAGE}] * 30, rng=seeded(2))
    with pytest.raises(MalformedInputError, match="reference"):
        decider_for("move").queries(mk.verification_key, mk.open([0]))


# -- EWE ------------------------------------------------------------------------------------
def ewe_key(items: int = 60, **extra) -> MarkingKey:
    params = {"num_classes": K, "input_shape": [1, 8, 8], "data": "digits", "data_digest": "00" * 32,
              "source": 1, "target": 7, "alpha": 0.01, "min_queries": 30,
              "reference_false_rate": 0.02, **extra}
    return MarkingKey.create("ewe", params, [{"image": IMAGE}] * items, rng=seeded(3))


def test_ewe_tests_the_success_rate_against_chance_exactly():
    answers = [7] * 12 + [1] * 38
    ev = decide(ewe_key(), answers)
    assert ev.details["successes"] == 12 and ev.details["fpr"] == 0.1
    assert ev.result.p_value == binomial_sf(12, 50, Fraction(1, 10))
    assert ev.result.p_value == pytest.approx(stats.binom.sf(11, 50, 0.1), rel=1e-12)
    assert ev.accepted
    assert not decide(ewe_key(), [7] * 6 + [1] * 44).accepted
    assert not decide(ewe_key(fpr=0.3), answers).accepted


def test_ewe_refuses_too_few_queries_and_malformed_answers():
    with pytest.raises(MalformedInputError, match="at least 30 queries"):
        decide(ewe_key(), [7] * 29)
    for bad in (10, -1, True, "7", 7.0):
        with pytest.raises(MalformedInputError, match="class index"):
            decide(ewe_key(), [7] * 30 + [bad])
    for change, message in (({"target": 1}, "must differ"), ({"source": 10}, "outside"),
                            ({"fpr": 1.0}, "outside"), ({"other": 0}, "unknown field")):
        with pytest.raises(MalformedInputError, match=message):
            decider_for("ewe").check_params(ewe_key(**change).verification_key)


@pytest.mark.parametrize("shape", [[], ["x"], [1, 8], [1, 8, 8, 8], [0, 8, 8], [1, 8, 4097],
                                   [True, 8, 8], [1.0, 8, 8], "1x8x8", None])
@pytest.mark.parametrize("scheme", ["ewe", "move"])
def test_a_mistyped_or_out_of_range_input_shape_is_refused(scheme, shape):
    """ewe.md and move.md: a verifier MUST reject a mistyped or out-of-range member."""
    mk = (ewe_key if scheme == "ewe" else move_key)(input_shape=shape)
    with pytest.raises(MalformedInputError, match="input_shape"):
        decider_for(scheme).check_params(mk.verification_key)


@pytest.mark.parametrize("mk, least", [(move_key(m=20), 20), (ewe_key(), 30)])
def test_the_claim_size_check_agrees_with_decide(mk, least):
    vk = mk.verification_key
    decider_for(mk.scheme).check_claim_size(vk, least)
    with pytest.raises(MalformedInputError, match=f"at least {least}"):
        decider_for(mk.scheme).check_claim_size(vk, least - 1)


def test_the_default_claim_size_never_falls_below_the_keys_minimum():
    """A key's minimum raises the default of 50 and never lowers it (fewer items, less
    power); UBW's m is the number a claim should open and is taken as it is."""
    assert default_open(move_key(m=20).verification_key) == DEFAULT_OPEN == 50
    assert default_open(move_key(m=120).verification_key) == 120
    assert default_open(ewe_key(min_queries=40).verification_key) == 50
    assert default_open(lookup_keys(items=4).verification_key) == 50
    assert default_open(VerificationKey("ubw-c", {"m": 20}, 300, b"\x00" * 32)) == 20


# -- through the claim protocol --------------------------------------------------------------
def resign(bundle: ClaimBundle, predicate: dict, owner) -> ClaimBundle:
    """A dishonest owner: changes the predicate and signs it again."""
    from claimkit.claim.bundle import PAYLOAD_TYPE, Statement
    from claimkit.dsse import sign_envelope
    statement = Statement(bundle.statement.subject_name, bundle.suspect,
                          bundle.statement.predicate_type, predicate)
    return ClaimBundle.from_envelope(
        sign_envelope(canonical_json(statement.to_dict()), PAYLOAD_TYPE, owner))


@pytest.fixture
def move_claim(registry, owner):
    mk = move_key(items=40, m=20)
    vk = mk.verification_key
    request = Registration(owner.public, vk.scheme, vk.digest, vk.items)
    registration = registry.register(request, sign_request(request, owner))
    from claimkit.wire import Digest
    bundle = make_claim(registry, mk, registration, Digest.of(b"suspect"),
                        ask=lambda queries: [bb_answer(0.3 + 0.001 * i) for i in range(len(queries))],
                        identity=owner, k=25)
    return registry, owner, bundle


def test_a_claim_too_small_for_the_key_is_refused_before_it_spends_items(registry, owner):
    """MOVE needs m opened images: refused before the intent is logged, not after."""
    mk = move_key(items=40, m=20)
    vk = mk.verification_key
    request = Registration(owner.public, vk.scheme, vk.digest, vk.items)
    registration = registry.register(request, sign_request(request, owner))
    size, made = registry.size, registry.claims_made(registration.index)
    with pytest.raises(MalformedInputError, match="at least 20 opened images"):
        make_claim(registry, mk, registration, Digest.of(b"suspect"), identity=owner, k=19,
                   ask=lambda queries: [bb_answer(0.3)] * len(queries))
    assert registry.size == size and registry.claims_made(registration.index) == made


def test_a_move_claim_verifies_offline_and_re_querying_decides(move_claim):
    registry, _, bundle = move_claim
    report = verify_claim(ClaimBundle.from_json(bundle.to_json()), log_key=registry.log_key)
    assert report.accepted and report.evidence.details["m"] == 25
    benign = verify_claim(bundle, log_key=registry.log_key,
                          oracle=lambda queries: [bb_answer(-0.1)] * len(queries))
    assert benign.observer == "arbiter" and not benign.accepted


def test_tampered_move_answers_or_evidence_are_rejected(move_claim):
    registry, owner, bundle = move_claim
    predicate = bundle.predicate.to_dict()
    # A dishonest owner who replaces the answers (and signs again) must also fix the evidence.
    lowered = dict(predicate, answers={"observer": "owner",
                                       "values": [bb_answer(-0.1)] * len(predicate["answers"]["values"])})
    with pytest.raises(VerificationError, match="evidence differs"):
        verify_claim(resign(bundle, lowered, owner), log_key=registry.log_key)
    forged = dict(predicate, evidence={**predicate["evidence"], "details": {
        **predicate["evidence"]["details"], "reference_scores": [0.0] * 25}})
    with pytest.raises(VerificationError, match="evidence differs"):
        verify_claim(resign(bundle, forged, owner), log_key=registry.log_key)


def test_the_deciders_import_neither_torch_nor_numpy():
    code = ("import sys; from claimkit.protocol.scheme import decider_for; decider_for('move'); "
            "decider_for('ewe'); print('torch' in sys.modules or 'numpy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# -- trigger sets ---------------------------------------------------------------------------
def trigger_set_key(seed: int, labels: list[int], **params) -> MarkingKey:
    """A trigger-set key of 2×2 images with these labels and extra public parameters."""
    rnd = random.Random(seed)
    values = [{"image": b64encode(rnd.randbytes(4)), "label": label} for label in labels]
    return MarkingKey.create("trigger-set", {"num_classes": 10, "input_shape": [1, 2, 2], **params},
                             values, rng=lambda n: rnd.randbytes(n))


def check_params_refuses(mk: MarkingKey, ok: bool, message: str) -> None:
    decider = decider_for("trigger-set")
    if ok:
        decider.check_params(mk.verification_key)
    else:
        with pytest.raises(MalformedInputError, match=message):
            decider.check_params(mk.verification_key)


@pytest.mark.parametrize("p0, ok", [(1e-6, False), (0.0999, False), (0.1, True), (0.2, True)])
def test_a_trigger_set_null_rate_below_chance_is_refused(p0, ok):
    """A review registered a key with p0 = 1e-6: 7 chance matches in 50 from an
    independent model gave p = 1e-34, accepted even when the arbiter asked the model."""
    labels = [random.Random(3).randrange(10) for _ in range(20)]
    check_params_refuses(trigger_set_key(3, labels, alpha=0.01, p0=p0), ok, "below 1/num_classes")


def test_trigger_set_evidence_reads_p0_as_its_double_and_epsilon_as_its_decimal():
    """protocol_spec/bundle.md, trigger sets' *Numbers*: p0 = 0.15 is the double's exact
    binary value; epsilon = 0.29 allows ⌊29/100 · 100⌋ = 29 mismatches (the double: 28)."""
    mk = trigger_set_key(4, [i % 10 for i in range(100)], alpha=0.01, p0=0.15, epsilon=0.29)
    openings = mk.open(range(100))
    answers = [o.value["label"] if i < 71 else (o.value["label"] + 1) % 10
               for i, o in enumerate(openings)]
    doc = decider_for("trigger-set").decide(mk.verification_key, openings, answers).to_dict()
    assert set(doc) == {"scheme", "observations", "result", "details", "decision"}
    assert doc["result"]["df"] is None and doc["result"]["test"] == "binomial"
    assert doc["result"]["params"] == {"n": 100, "k": 71, "p0": 0.15, "exact": True,
                                       "p0_exact": "5404319552844595/36028797018963968"}
    assert doc["details"] == {"matches": 71, "n": 100, "p0": 0.15, "epsilon": 0.29,
                              "all_but_epsilon": True}


@pytest.mark.parametrize("change, message", [
    ({"params": {"input_shape": None}}, "input_shape: missing"),
    ({"params": {"input_shape": [1, 2, 0]}}, r"expected \[C, H, W\]"),
    ({"item": {"image": b64encode(bytes(5))}}, "expected 4 bytes, got 5"),
    ({"item": {"note": "x"}}, "unknown field"),
    ({"item": {"label": 10}}, "label"),
])
def test_trigger_set_items_and_shape_are_checked_offline(change, message):
    """protocol_spec/bundle.md, *Trigger-set items and queries*: the spec-only verifier
    (protocol_spec/interop) refused these; claimkit's decider read only the label."""
    rnd = random.Random(5)
    params = {"num_classes": 10, "input_shape": [1, 2, 2], **change.get("params", {})}
    params = {k: v for k, v in params.items() if v is not None}
    values = [{"image": b64encode(rnd.randbytes(4)), "label": 1} for _ in range(5)]
    values[0] = {**values[0], **change.get("item", {})}
    mk = MarkingKey.create("trigger-set", params, values, rng=lambda n: rnd.randbytes(n))
    decider, openings = decider_for("trigger-set"), mk.open(range(5))
    with pytest.raises(MalformedInputError, match=message):
        decider.decide(mk.verification_key, openings, [1] * 5)
    with pytest.raises(MalformedInputError, match=message):
        decider.queries(mk.verification_key, openings)


def test_trigger_set_answers_must_be_class_indices():
    mk = trigger_set_key(5, [0, 1, 2, 3])
    openings, decider = mk.open(range(4)), decider_for("trigger-set")
    assert decider.decide(mk.verification_key, openings, [0, 1, 2, 9]).details["matches"] == 3
    for bad in (10, -1, True, 1.0, 1 << 70):
        with pytest.raises(MalformedInputError, match=r"answers\[3\]: expected a class index"):
            decider.decide(mk.verification_key, openings, [0, 1, 2, bad])


@pytest.mark.parametrize("alpha, ok", [(0.5, True), (0.01, True), (0.5000001, False), (0.99, False),
                                       (0.0, False)])
def test_trigger_set_level_is_at_most_one_half(alpha, ok):
    """A key at alpha near 1 would be accepted on almost any answers: the level is capped."""
    check_params_refuses(trigger_set_key(6, [0, 1, 2, 3], alpha=alpha), ok, "alpha")


def test_ewe_counts_only_the_target_class_as_a_success():
    """Every other class, class 0 included, is a failure: all-zero answers prove nothing."""
    ev = decide(ewe_key(), [0] * 50)
    assert ev.details["successes"] == 0 and not ev.accepted
    ev = decide(ewe_key(), [7] * 12 + [0] * 38)
    assert ev.details["successes"] == 12


@pytest.mark.parametrize("reference", [-0.5, 1.5])
def test_a_reference_score_outside_0_1_is_refused(reference):
    """A committed reference below 0 would let any suspect's scores clear the margin."""
    params = move_key().params
    item = {"image": IMAGE, "source": IMAGE, "reference": reference}
    mk = MarkingKey.create("move", params, [item] * 30, rng=seeded(2))
    with pytest.raises(MalformedInputError, match="reference"):
        decider_for("move").queries(mk.verification_key, mk.open([0]))


@pytest.mark.parametrize("make", [lambda: move_key(trigger_commitment="ab" * 32),
                                  lambda: ewe_key(trigger_commitment="ab" * 32)])
def test_move_and_ewe_keys_that_name_a_trigger_commitment_are_refused(make):
    """Said as such (these schemes never draw a trigger), not as an unknown field."""
    mk = make()
    with pytest.raises(MalformedInputError, match="do not draw their trigger from the log"):
        decider_for(mk.scheme).check_params(mk.verification_key)
