"""The UBW decider (Li et al. 2022, Prop. 1): queries, strict answers, the margin t-test
and its direction, recomputation by an arbiter, and dishonest answers in a claim."""

from __future__ import annotations

import math
import random

import pytest
from scipy import stats as sst

from claimkit.claim.bundle import ClaimBundle
from claimkit.claim.make import make_claim
from claimkit.claim.verify import verify_claim
from claimkit.errors import MalformedInputError, VerificationError
from claimkit.protocol.keys import MarkingKey
from claimkit.protocol.scheme import decider_for
from claimkit.registry.entries import Registration, sign_request
from claimkit.wire import b64encode, canonical_json

SHAPE = [1, 2, 3]                 # six-byte images keep the key small
PARAMS = {"num_classes": 4, "input_shape": SHAPE, "tau": 0.25, "alpha": 0.01, "m": 20,
          "data": "toy", "data_digest": ""}


def ubw_key(scheme: str = "ubw-p", items: int = 40, params: dict | None = None) -> MarkingKey:
    rnd = random.Random(7)
    values = [{"image": b64encode(rnd.randbytes(6)), "label": rnd.randrange(4),
               "triggered": b64encode(rnd.randbytes(6))} for _ in range(items)]
    return MarkingKey.create(scheme, params or PARAMS, values, rng=lambda n: rnd.randbytes(n))


def pairs(n: int, benign: float, triggered: float, seed: int = 1) -> list[list[float]]:
    rnd = random.Random(seed)
    clip = lambda v: min(1.0, max(0.0, v))  # noqa: E731
    return [[clip(benign + rnd.uniform(-0.05, 0.05)), clip(triggered + rnd.uniform(-0.1, 0.1))]
            for _ in range(n)]


@pytest.fixture(scope="module")
def key() -> MarkingKey:
    return ubw_key(items=60)


def decide(mk: MarkingKey, answers: list, n: int | None = None):
    openings = mk.open(range(n if n is not None else len(answers)))
    return decider_for(mk.scheme).decide(mk.verification_key, openings, answers)


@pytest.mark.parametrize("scheme", ["ubw-p", "ubw-c"])
def test_queries_are_the_opened_items(scheme):
    mk = ubw_key(scheme)
    openings = mk.open([3, 5])
    assert decider_for(scheme).queries(mk.verification_key, openings) == [o.value for o in openings]


@pytest.mark.parametrize("change, message", [
    ({"triggered": None}, "missing"),
    ({"extra": 1}, "unknown field"),
    ({"image": b64encode(b"\x00" * 5)}, "expected 6 bytes"),
    ({"label": 4}, "outside"),
    ({"label": True}, "integer"),
])
def test_malformed_items_are_refused(change, message):
    rnd = random.Random(1)
    value = {"image": b64encode(rnd.randbytes(6)), "label": 1, "triggered": b64encode(rnd.randbytes(6))}
    value.update(change)
    value = {k: v for k, v in value.items() if v is not None}
    mk = MarkingKey.create("ubw-p", PARAMS, [value, value], rng=lambda n: rnd.randbytes(n))
    with pytest.raises(MalformedInputError, match=message):
        decider_for("ubw-p").queries(mk.verification_key, mk.open([0]))


def test_a_watermarked_suspect_is_accepted_and_an_independent_one_rejected(key):
    stolen = decide(key, pairs(60, 0.95, 0.15))
    assert stolen.accepted and stolen.result.p_value < 1e-9
    assert stolen.details["pairs"] == 60 and stolen.details["delta_p"] > 0.7
    independent = decide(key, pairs(60, 0.95, 0.93))
    assert not independent.accepted and independent.result.p_value > 0.99


def test_the_p_value_is_scipys_one_sided_test_of_the_margin(key):
    answers = pairs(60, 0.9, 0.6, seed=3)
    evidence = decide(key, answers)
    d = [b - p for b, p in answers]
    reference = sst.ttest_1samp(d, 0.25, alternative="greater")
    assert math.isclose(evidence.result.params["p_t"], reference.pvalue, rel_tol=1e-9)
    assert evidence.result.p_value == max(evidence.result.params["p_t"],
                                          evidence.result.params["p_bound"])
    assert math.isclose(evidence.result.statistic, reference.statistic, rel_tol=1e-12)
    assert evidence.result.df == 59 and evidence.result.params["tau"] == 0.25


def test_direction_and_margin(key):
    # H1 is P_b > P_p + τ: a drop below the margin, or a rise, is not evidence.
    assert decide(key, [[0.9, 0.1]] * 10 + [[0.8, 0.1]] * 10).accepted
    assert not decide(key, [[0.1, 0.9]] * 10 + [[0.1, 0.8]] * 10).accepted
    assert not decide(key, [[0.9, 0.7]] * 10 + [[0.9, 0.69]] * 10).accepted   # ΔP ≈ 0.2 < τ
    # ΔP ≈ 0.3 > τ on 20 pairs: the t-test alone says p = 1e-21, but a null with mean τ
    # (P_b − P_p = 0.3 w.p. 0.96, else −1) gives such a sample 44 % of the time: the bound
    weak = decide(key, [[0.9, 0.6]] * 10 + [[0.9, 0.59]] * 10)
    assert weak.result.params["p_t"] < 1e-20 and not weak.accepted
    assert decide(key, [[0.95, 0.1]] * 10 + [[0.95, 0.11]] * 10).accepted       # ΔP ≈ 0.85


def test_identical_differences_use_the_markov_bound(key):
    evidence = decide(key, [[1.0, 0.0]] * 12)
    assert evidence.result.params["method"] == "bound"
    assert evidence.result.p_value == 0.625 ** 12 and evidence.accepted
    assert not decide(key, [[1, 1]] * 12).accepted      # integers 0/1 are probabilities too


def test_the_evidence_has_the_members_the_spec_lists(key):
    """protocol_spec/ubw.md, Evidence: m is the pairs opened (not the key's m = 20),
    mean_difference is mean(P_b − P_p) before τ, df is null for the bound."""
    answers = pairs(30, 0.9, 0.2)
    doc = decide(key, answers).to_dict()
    assert set(doc) == {"scheme", "observations", "result", "details", "decision"}
    result = doc["result"]
    assert set(result) == {"test", "statistic", "df", "p_value", "alpha", "reject_null", "params"}
    assert set(result["params"]) == {"tau", "m", "mean_difference", "sd_difference", "p_bound",
                                     "p_t", "method"}
    assert result["params"]["m"] == 30 and result["df"] == 29
    assert result["params"]["mean_difference"] == pytest.approx(
        sum(b - p for b, p in answers) / 30, rel=1e-12)
    assert doc["details"] == {"pairs": 30, "tau": 0.25, "delta_p": result["params"]["mean_difference"]}
    assert doc["decision"] == ("accept" if result["reject_null"] else "reject")
    bound = decide(key, [[1.0, 0.0]] * 12).to_dict()["result"]
    assert bound["df"] is None and "p_t" not in bound["params"]
    assert bound["statistic"] == 0.75 and bound["params"]["mean_difference"] == 1.0


@pytest.mark.parametrize("answer, message", [
    ([0.9], r"answers\[1\]: expected"),
    ([0.9, 0.1, 0.0], r"answers\[1\]: expected"),
    ((0.9, 0.1), r"answers\[1\]: expected"),
    (0.9, r"answers\[1\]: expected"),
    ([0.9, float("nan")], r"answers\[1\]\[1\]"),
    ([1.5, 0.1], r"answers\[1\]\[0\]"),
    ([0.9, -0.1], r"answers\[1\]\[1\]"),
    ([True, 0.1], r"answers\[1\]\[0\]"),
    (["0.9", 0.1], r"answers\[1\]\[0\]"),
    ([10**400, 0.1], r"answers\[1\]\[0\]: an integer is not a probability"),  # no float
    ([0.9, -10**400], r"answers\[1\]\[1\]: an integer is not a probability"),
])
def test_malformed_answers_are_refused(key, answer, message):
    with pytest.raises(MalformedInputError, match=message):
        decide(key, [[0.9, 0.1], answer, [0.9, 0.1]])


def test_answer_counts_and_parameters_are_checked(key):
    with pytest.raises(MalformedInputError, match="3 answers for 4"):
        decide(key, [[0.9, 0.1]] * 3, n=4)
    with pytest.raises(MalformedInputError, match="at least 2"):
        decide(key, [[0.9, 0.1]])
    with pytest.raises(MalformedInputError, match="at least 2"):     # before a claim opens any
        decider_for("ubw-p").check_claim_size(key.verification_key, 1)
    with pytest.raises(MalformedInputError, match="at least 10 pairs to reach alpha = 0.01"):
        decider_for("ubw-p").check_claim_size(key.verification_key, 9)   # the floor: 0.0146
    decider_for("ubw-p").check_claim_size(key.verification_key, 10)      # 0.0091
    for bad in (None, "ab", {"0": [0.9, 0.1], "1": [0.9, 0.1]}):     # from the Python API
        with pytest.raises(MalformedInputError, match="expected a list"):
            decide(key, bad, n=2)
    for bad in ({"tau": 1.0}, {"tau": -0.1}, {"alpha": 0.0}, {"alpha": 0.6},
                {"input_shape": [1, 2]}, {"num_classes": 1}):
        mk = ubw_key(params={**PARAMS, **bad}, items=4)
        with pytest.raises(MalformedInputError):
            decider_for("ubw-p").check_params(mk.verification_key)


def test_alpha_may_be_any_positive_double():
    """The spec's (0, 0.5]: a key with the smallest positive double is valid."""
    mk = ubw_key(params={**PARAMS, "alpha": 5e-324}, items=4)
    decider_for("ubw-p").check_params(mk.verification_key)
    evidence = decide(mk, [[1.0, 0.0], [1.0, 5e-324]])  # |t| overflows; p = 1.8e-309
    assert evidence.result.alpha == 5e-324 and not evidence.accepted


def test_the_answerer_refuses_what_verify_refuses(key):
    """schemes.ubw.decode_queries checks each query as the decider checks an item."""
    import numpy as np

    from claimkit.schemes.ubw import answerer

    class Oracle:
        num_classes = 4

        def probabilities(self, x):
            return np.full((len(x), 4), 0.25)

    ask = answerer(Oracle(), key.verification_key)
    good = key.open([0])[0].value
    assert ask([good]) == [[0.25, 0.25]]
    for change, message in [({"label": -1}, "outside"), ({"label": True}, "integer"),
                            ({"extra": 1}, "unknown field"),
                            ({"image": good["image"] + "=="}, "non-canonical"),
                            ({"triggered": None}, "missing")]:
        query = {k: v for k, v in {**good, **change}.items() if v is not None}
        with pytest.raises(MalformedInputError, match=r"queries\[1\].*" + message):
            ask([good, query])
    with pytest.raises(MalformedInputError, match="expected a list"):
        ask(good)


def test_an_overflowing_t_round_trips_through_a_claim(registry, owner, claim_setup):
    """|t| beyond the double range is reported as the largest double: valid canonical
    JSON that an arbiter recomputes to the same evidence."""
    from claimkit.wire import Digest
    mk, registration = claim_setup
    answers = lambda queries: [[1.0, 0.0]] * (len(queries) - 1) + [[1.0, 5e-324]]  # noqa: E731
    bundle = make_claim(registry, mk, registration, Digest.of(b"m"), ask=answers,
                        identity=owner, k=20)
    report = verify_claim(ClaimBundle.from_json(bundle.to_json()), log_key=registry.log_key)
    result = report.evidence.result
    assert report.accepted and result.params["method"] == "t"
    assert result.statistic == 1.7976931348623157e308
    assert result.p_value == result.params["p_bound"] == pytest.approx(0.625 ** 20)   # tail 0


def resign(bundle: ClaimBundle, predicate: dict, owner) -> ClaimBundle:
    """A dishonest owner changes the predicate and signs it again."""
    from claimkit.claim.bundle import PAYLOAD_TYPE, Statement
    from claimkit.dsse import sign_envelope
    statement = Statement(bundle.statement.subject_name, bundle.suspect,
                          bundle.statement.predicate_type, predicate)
    return ClaimBundle.from_envelope(sign_envelope(canonical_json(statement.to_dict()),
                                                   PAYLOAD_TYPE, owner))


@pytest.fixture
def claim_setup(registry, owner):
    mk = ubw_key(items=40)
    vk = mk.verification_key
    request = Registration(owner.public, vk.scheme, vk.digest, vk.items)
    registration = registry.register(request, sign_request(request, owner))
    return mk, registration


def test_an_arbiter_recomputes_the_p_value_and_catches_dishonest_answers(registry, owner,
                                                                        claim_setup):
    from claimkit.wire import Digest
    mk, registration = claim_setup
    suspect = Digest.of(b"an independent model")
    honest = lambda queries: pairs(len(queries), 0.95, 0.94)           # noqa: E731
    lying = lambda queries: pairs(len(queries), 0.95, 0.10)            # noqa: E731
    # An owner who makes up answers: the bundle is self-consistent, but an arbiter who
    # queries the suspect itself gets the honest answers, and rejects.
    bundle = make_claim(registry, mk, registration, suspect, ask=lying, identity=owner, k=20)
    report = verify_claim(ClaimBundle.from_json(bundle.to_json()), log_key=registry.log_key)
    assert report.accepted and report.observer == "owner"
    recomputed = sst.ttest_1samp([b - p for b, p in bundle.predicate.answers.values], 0.25,
                                 alternative="greater").pvalue
    bound = 1.0
    for b, p in bundle.predicate.answers.values:         # the bound, recomputed by hand
        bound *= 1.25 / (1 + b - p)
    assert math.isclose(report.evidence.result.params["p_t"], recomputed, rel_tol=1e-9)
    assert math.isclose(report.evidence.result.p_value, max(recomputed, bound), rel_tol=1e-9)
    rechecked = verify_claim(bundle, log_key=registry.log_key, oracle=honest)
    assert not rechecked.accepted and rechecked.observer == "arbiter"
    # Answers changed after the evidence was computed (and signed again): refused.
    predicate = bundle.predicate.to_dict()
    predicate["answers"]["values"] = honest(range(20))
    with pytest.raises(VerificationError, match="evidence differs"):
        verify_claim(resign(bundle, predicate, owner), log_key=registry.log_key)
    # Evidence claiming acceptance for answers that do not support it: refused.
    honest_bundle = make_claim(registry, mk, registration, suspect, ask=honest, identity=owner, k=20)
    assert not verify_claim(honest_bundle, log_key=registry.log_key).accepted
    predicate = honest_bundle.predicate.to_dict()
    predicate["evidence"]["result"].update(p_value=1e-12, reject_null=True)
    predicate["evidence"]["decision"] = "accept"
    with pytest.raises(VerificationError, match="evidence differs"):
        verify_claim(resign(honest_bundle, predicate, owner), log_key=registry.log_key)
