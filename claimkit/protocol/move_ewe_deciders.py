"""Pure Verify for MOVE and EWE: the decision from recorded answers, without torch.

An arbiter recomputes both decisions from a bundle alone (protocol_spec/bundle.md,
§Verify), so everything that turns the suspect's answers into a p-value lives here,
in plain Python; the torch side (``claimkit/schemes/move*.py``, ``ewe.py``) makes the
keys and answers the queries::

    decider = decider_for("move")
    evidence = decider.decide(vk, openings, answers)
    evidence.result.p_value, evidence.details["delta_mu"]

**MOVE** (Li et al., *MOVE*, §5.3–5.4). Each committed item is one transformed image
x′ (the style-transferred version of a held-out image x) with the meta-classifier's
score of the benign reference models on it (``reference``, committed before release).
The answers are the suspect's raw observations, from which the meta-classifier C, whose
weights the verification key carries, is evaluated here:

* black-box (§5.3 Eq. 6–8): for each item, the suspect's probability vectors of the
  five augmentations T_a of x′ and then of x; the features are
  CAT_a(f(T_a(x′)) − f(T_a(x))), 5·K numbers;
* white-box (§5.3 Eq. 4): the sign of the per-sample loss gradient with respect to the
  weights, sign(∇_w L(f(x′), y)), summarised per layer in a way that does not depend on
  the order of hidden units (protocol_spec/move.md); a few dozen numbers per image.

The test is the paper's one-tailed paired t-test over the m opened images (§5.4,
Definitions 3–4) of the suspect's scores against the references, with a margin τ:
H1 is mean(μ_S − μ_B) > τ (:func:`~claimkit.protocol.stats.paired_t_margin_test`;
τ = 0 is the paper's test exactly). Why the margin: the t-test treats the images as the
random sample and the two models as fixed, so it says nothing about how much an
independently trained model's scores differ from the reference models'; measured on
digits, they exceed the references by up to 0.2–0.26 on average, and with m = 100 images
the paper's τ = 0 test calls such a model stolen (protocol_spec/move.md, §Decision).

**EWE** (Jia et al. 2021, §4.3.1). Each item is one source-class image carrying the
trigger; the answer is the suspect's class index; a success is the target class. The
watermark success rate is tested against the false-watermark rate of a non-watermarked
model, by default the chance rate 1/K, the paper's conservative bound (Figure 4), with
the exact binomial tail (:func:`~claimkit.protocol.stats.success_rate_test`); the paper
asks for at least 30 queries, and so does the key.
"""

from __future__ import annotations

import base64
import math
import struct
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Sequence

from ..commitments import ItemOpening
from ..errors import MalformedInputError
from ..wire import Fields
from .keys import VerificationKey
from .scheme import (Evidence, check_answer_count, check_min_opened, check_reachable,
                     check_undrawn, read_shape, register_decider)
from .stats import paired_t_margin_test, success_rate_test

__all__ = [
    "AUGMENTATIONS",
    "MOVE_MODES",
    "MetaClassifier",
    "MoveDecider",
    "EweDecider",
    "blackbox_features",
]

AUGMENTATIONS = ("identity", "hflip", "shift-down-right", "shift-right", "shift-down")
"""MOVE §5.3: identity, horizontal flip, translation towards the bottom right, the
right and the bottom (one pixel, zero fill), in this order."""

MOVE_MODES = ("black-box", "white-box")
MAX_FEATURES = 1 << 16
MAX_HIDDEN = 1024


# -- the meta-classifier --------------------------------------------------------------------
@dataclass(frozen=True)
class MetaClassifier:
    """C of MOVE §5.3: a one-hidden-layer ReLU network with one logit, σ(logit) = P(stolen).

    Wire form (in the verification key): ``{"inputs": F, "hidden": H, "weights": b64}``
    where the bytes are little-endian float32 in the order W1 (H rows of F), b1 (H),
    w2 (H), b2 (1). Evaluated here in double precision with exactly rounded sums
    (:func:`math.fsum`), so every platform gets the same logit; only ``exp`` may differ
    in the last bit, which the bundle check tolerates.
    """

    inputs: int
    hidden: int
    w1: tuple[tuple[float, ...], ...]
    b1: tuple[float, ...]
    w2: tuple[float, ...]
    b2: float

    @staticmethod
    def size(inputs: int, hidden: int) -> int:
        return hidden * inputs + 2 * hidden + 1

    @classmethod
    def from_dict(cls, obj: Any, where: str = "meta_classifier") -> MetaClassifier:
        f = Fields(obj, where)
        inputs = f.int("inputs", lo=1, hi=MAX_FEATURES)
        hidden = f.int("hidden", lo=1, hi=MAX_HIDDEN)
        n = cls.size(inputs, hidden)
        raw = f.bytes("weights", size=4 * n, max_size=4 * cls.size(MAX_FEATURES, MAX_HIDDEN))
        f.done()
        values = struct.unpack(f"<{n}f", raw)
        if not all(math.isfinite(v) for v in values):
            raise MalformedInputError(f"{where}.weights: NaN or infinite values")
        w1 = tuple(values[h * inputs:(h + 1) * inputs] for h in range(hidden))
        rest = values[hidden * inputs:]
        return cls(inputs, hidden, w1, rest[:hidden], rest[hidden:2 * hidden], rest[-1])

    def to_dict(self) -> dict[str, Any]:
        flat = [v for row in self.w1 for v in row] + [*self.b1, *self.w2, self.b2]
        return {"inputs": self.inputs, "hidden": self.hidden,
                "weights": base64.b64encode(struct.pack(f"<{len(flat)}f", *flat)).decode()}

    def score(self, features: Sequence[float]) -> float:
        """P(stolen) for one feature vector."""
        if len(features) != self.inputs:
            raise MalformedInputError(
                f"the meta-classifier takes {self.inputs} features, got {len(features)}")
        hidden = [max(0.0, math.fsum([*(w * x for w, x in zip(row, features)), b]))
                  for row, b in zip(self.w1, self.b1)]
        logit = math.fsum([*(w * h for w, h in zip(self.w2, hidden)), self.b2])
        if logit >= 0:
            return 1.0 / (1.0 + math.exp(-logit))
        e = math.exp(logit)
        return e / (1.0 + e)


def blackbox_features(vectors: Any, augmentations: int, classes: int,
                      where: str = "answer") -> list[float]:
    """MOVE §5.3 Eq. 7–8: CAT_a(f(T_a(x′)) − f(T_a(x))) from the 2·A recorded vectors
    (the A augmentations of x′ first, then those of x), each K probabilities."""
    if not isinstance(vectors, list) or len(vectors) != 2 * augmentations:
        raise MalformedInputError(f"{where}: expected {2 * augmentations} probability vectors")
    rows = []
    for j, vec in enumerate(vectors):
        if not isinstance(vec, list) or len(vec) != classes:
            raise MalformedInputError(f"{where}[{j}]: expected {classes} probabilities")
        for v in vec:
            # compared before float(): a JSON integer such as 10**400 has no float
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= v <= 1.0:
                raise MalformedInputError(f"{where}[{j}]: probabilities must be numbers in [0, 1]")
        rows.append([float(v) for v in vec])
    return [a - b for t in range(augmentations) for a, b in zip(rows[t], rows[augmentations + t])]


def _whitebox_features(values: Any, size: int, where: str) -> list[float]:
    if not isinstance(values, list) or len(values) != size:
        raise MalformedInputError(f"{where}: expected {size} gradient-sign features")
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not -1.0 <= v <= 1.0:
            raise MalformedInputError(f"{where}: gradient-sign features must be numbers in [-1, 1]")
        out.append(float(v))
    return out


# -- MOVE -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class MoveParams:
    mode: str
    classes: int
    alpha: float
    tau: float
    min_queries: int
    augmentations: int
    features: int
    meta: MetaClassifier
    image_bytes: int            # C·H·W: every item image's size (move.md, *Items*)


class MoveDecider:
    """MOVE (Li et al., §5.4): paired one-tailed t-test on the meta-classifier's scores."""

    name = "move"

    def _params(self, vk: VerificationKey) -> MoveParams:
        f = Fields(vk.params, "verification_key.params")
        check_undrawn(None, f)
        mode = f.str("mode", choices=MOVE_MODES)
        classes = f.int("num_classes", lo=2, hi=1 << 16)
        c, h, w = read_shape(f)
        f.str("data", max_len=256)
        f.str("data_digest", max_len=64)
        f.digest("style_commitment")
        alpha = f.float("alpha", lo=math.ulp(0.0), hi=0.5)  # (0, 0.5]
        tau = f.float("tau", lo=0.0, hi=0.99)
        min_queries = f.int("min_queries", lo=2, hi=1_000_000)
        features = f.str("features", max_len=64)
        augmentations = 0
        if mode == "black-box":
            augs = f.list("augmentations", max_items=len(AUGMENTATIONS))
            if tuple(augs) != AUGMENTATIONS:
                raise MalformedInputError("verification_key.params.augmentations: expected "
                                          f"{list(AUGMENTATIONS)} (MOVE §5.3)")
            if features != "probability-difference/v1":
                raise MalformedInputError("verification_key.params.features: black-box MOVE "
                                          "uses probability-difference/v1")
            augmentations = len(AUGMENTATIONS)
            size = augmentations * classes
        else:
            f.str("arch", max_len=64)
            if features != "gradient-sign/v1":
                raise MalformedInputError("verification_key.params.features: white-box MOVE "
                                          "uses gradient-sign/v1")
            size = f.int("feature_size", lo=1, hi=MAX_FEATURES)
        meta = MetaClassifier.from_dict(f.obj("meta_classifier"),
                                        "verification_key.params.meta_classifier")
        f.done()
        if meta.inputs != size:
            raise MalformedInputError(
                f"the key's meta-classifier takes {meta.inputs} features, but its {mode} "
                f"features have {size}: the meta-classifier does not match the key")
        return MoveParams(mode, classes, alpha, tau, min_queries, augmentations, size, meta,
                          c * h * w)

    def check_params(self, vk: VerificationKey) -> None:
        self._params(vk)

    def check_claim_size(self, vk: VerificationKey, k: int) -> None:
        p = self._params(vk)
        self._check_size(p, k)
        check_reachable(k, p.tau, p.alpha, "images")

    @staticmethod
    def _check_size(p: MoveParams, k: int) -> None:
        check_min_opened(k, p.min_queries, f"MOVE {p.mode} verification needs at least "
                         f"{p.min_queries} opened images (the key's m, MOVE §6.1)")

    @staticmethod
    def _item(opening: ItemOpening, p: MoveParams) -> tuple[dict[str, Any], float]:
        """The query and μ_B of one opened item, whose images are C·H·W bytes of the key's
        shape: an answer about anything else is no model's answer (the spec-only verifier
        found claimkit reading them as strings, 2026-12-07)."""
        f = Fields(opening.value, f"opening[{opening.index}].value")
        members = ("image", "source") if p.mode == "black-box" else ("image",)
        query: dict[str, Any] = {}
        for name in members:
            f.bytes(name, size=p.image_bytes)
            query[name] = f.raw(name)          # the string, checked above
        if p.mode == "white-box":
            query["label"] = f.int("label", hi=p.classes - 1)
        reference = f.float("reference", lo=0.0, hi=1.0)
        f.done()
        return query, reference

    def queries(self, vk: VerificationKey, openings: Sequence[ItemOpening], *,
                challenge: bytes | None = None, trigger: bytes | None = None) -> list[Any]:
        check_undrawn(trigger)
        p = self._params(vk)
        return [self._item(o, p)[0] for o in openings]

    def decide(self, vk: VerificationKey, openings: Sequence[ItemOpening],
               answers: Sequence[Any]) -> Evidence:
        p = self._params(vk)
        check_answer_count(answers, openings)
        self._check_size(p, len(openings))
        scores, references = [], []
        for i, (opening, answer) in enumerate(zip(openings, answers)):
            references.append(self._item(opening, p)[1])
            if p.mode == "black-box":
                features = blackbox_features(answer, p.augmentations, p.classes, f"answers[{i}]")
            else:
                features = _whitebox_features(answer, p.features, f"answers[{i}]")
            scores.append(p.meta.score(features))
        result = paired_t_margin_test(scores, references, tau=p.tau, alpha=p.alpha)
        mean_s, mean_r = math.fsum(scores) / len(scores), math.fsum(references) / len(references)
        # Δμ is the test's mean of the differences, rounded once: the difference of the two
        # rounded means can lose every digit when they nearly cancel (move.md, *Decision*)
        details = {"mode": p.mode, "m": len(scores), "tau": p.tau, "reference_scores": references,
                   "mean_score": mean_s, "mean_reference": mean_r,
                   "delta_mu": result.params["mean_difference"]}
        return Evidence(self.name, tuple(scores), result, details)


# -- EWE ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EweParams:
    classes: int
    target: int
    alpha: float
    fpr: Fraction | float       # the false-watermark rate; exactly 1/K when the key has none
    min_queries: int
    image_bytes: int            # C·H·W (ewe.md, *Items*)


class EweDecider:
    """EWE (Jia et al. 2021, §4.3.1): watermark success rate vs. the false-watermark rate."""

    name = "ewe"

    def _params(self, vk: VerificationKey) -> EweParams:
        f = Fields(vk.params, "verification_key.params")
        check_undrawn(None, f)
        classes = f.int("num_classes", lo=2, hi=1 << 16)
        c, h, w = read_shape(f)
        f.str("data", max_len=256)
        f.str("data_digest", max_len=64)
        source = f.int("source", hi=classes - 1)
        target = f.int("target", hi=classes - 1)
        if source == target:
            raise MalformedInputError("verification_key.params: source and target class must differ")
        alpha = f.float("alpha", lo=math.ulp(0.0), hi=0.5)  # (0, 0.5]
        fpr = f.float("fpr", lo=1e-12, hi=1 - 1e-12, optional=True)
        f.float("reference_false_rate", lo=0.0, hi=1.0)
        min_queries = f.int("min_queries", lo=1, hi=1_000_000)
        f.done()
        return EweParams(classes, target, alpha, Fraction(1, classes) if fpr is None else fpr,
                         min_queries, c * h * w)

    def check_params(self, vk: VerificationKey) -> None:
        self._params(vk)

    def check_claim_size(self, vk: VerificationKey, k: int) -> None:
        self._check_size(self._params(vk).min_queries, k)

    @staticmethod
    def _check_size(min_queries: int, k: int) -> None:
        check_min_opened(k, min_queries, f"EWE verification needs at least {min_queries} "
                         "queries (Jia et al. 2021, §4.3.1: the CLT needs n > 30)")

    def queries(self, vk: VerificationKey, openings: Sequence[ItemOpening], *,
                challenge: bytes | None = None, trigger: bytes | None = None) -> list[Any]:
        check_undrawn(trigger)
        size = self._params(vk).image_bytes
        out = []
        for o in openings:         # images of the key's shape, as MOVE's (_item)
            f = Fields(o.value, f"opening[{o.index}].value")
            f.bytes("image", size=size)
            out.append(f.raw("image"))
            f.done()
        return out

    def decide(self, vk: VerificationKey, openings: Sequence[ItemOpening],
               answers: Sequence[Any]) -> Evidence:
        p = self._params(vk)
        classes, target = p.classes, p.target
        self.queries(vk, openings)
        check_answer_count(answers, openings)
        self._check_size(p.min_queries, len(answers))
        for i, answer in enumerate(answers):
            if not isinstance(answer, int) or isinstance(answer, bool) or not 0 <= answer < classes:
                raise MalformedInputError(f"answers[{i}]: expected a class index below {classes}")
        successes = sum(1 for a in answers if a == target)
        result = success_rate_test(successes, len(answers), p.fpr, alpha=p.alpha)
        details = {"target": target, "n": len(answers), "successes": successes,
                   "success_rate": successes / len(answers), "fpr": float(p.fpr)}
        return Evidence(self.name, tuple(answers), result, details)


register_decider(MoveDecider())
register_decider(EweDecider())
