"""The pure half of Verify for the UBW dataset watermarks (``ubw-p``, ``ubw-c``).

Li et al. 2022, §4.2, Proposition 1: with P_b and P_p the suspect's probability of the
ground-truth label on a benign image and on its triggered version, the suspect is held
to have been trained on the protected data set (with τ-certainty) iff the one-sided
pairwise t-test rejects H0: P_b ≤ P_p + τ in favour of H1: P_b > P_p + τ at level α.

* Items (committed at KeyGen, protocol_spec/ubw.md): ``{"image": base64 uint8 C×H×W,
  "label": class, "triggered": base64 uint8 C×H×W}``.
* Query of an opened item: the same three fields, checked.
* Answer to a query: ``[P_b, P_p]``, two numbers in [0, 1].
* Decision: :func:`~claimkit.protocol.stats.paired_t_margin_test` on the m pairs with
  the key's τ and α; the evidence lists every pair, so an arbiter recomputes the
  p-value from the bundle alone. ``details.delta_p`` is the paper's confidence score
  ΔP = mean(P_b − P_p).

Public parameters (verification key): ``num_classes``, ``input_shape`` [C, H, W],
``tau`` in [0, 1) (0.25, §5.3), ``alpha`` in (0, 0.5] (0.01), ``m`` (pairs a claim
should open, 100, App. C.2; informative, the test uses every opened item).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

from ..commitments import ItemOpening
from ..errors import MalformedInputError
from ..wire import Fields, b64decode
from .keys import VerificationKey
from .scheme import Evidence, check_answer_count, check_min_opened, read_shape, register_decider
from .stats import paired_t_margin_test

__all__ = ["UBWDecider", "read_query"]


def _probability(value: Any, where: str) -> float:
    """A JSON number in [0, 1] as a float. The range is checked on the value itself,
    before float(): a JSON integer such as 10**400 has no float (OverflowError), and
    Python compares ints with floats exactly (NaN fails the comparison)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise MalformedInputError(f"{where}: expected a probability")
    if not 0.0 <= value <= 1.0:
        shown = repr(value) if isinstance(value, float) else "an integer"  # ints may be huge
        raise MalformedInputError(f"{where}: {shown} is not a probability in [0, 1]")
    return float(value)


def read_query(value: Any, classes: int, shape: tuple[int, int, int],
               where: str) -> tuple[dict[str, Any], bytes, bytes]:
    """An item's value as a query: ``({"image", "label", "triggered"}, image bytes,
    triggered bytes)``, checked as protocol_spec/ubw.md requires (no other member, label
    in [0, classes), canonical base64 of exactly C·H·W bytes). The decider's
    :meth:`UBWDecider.queries` and the answerer's decoder
    (:func:`claimkit.schemes.ubw.decode_queries`) share it, so an answerer refuses
    whatever Verify would refuse (a label of −1 would otherwise index class K − 1)."""
    c, h, w = shape
    f = Fields(value, where)
    query = {"image": f.str("image", max_len=1 << 26),
             "label": f.int("label", hi=classes - 1),
             "triggered": f.str("triggered", max_len=1 << 26)}
    f.done()
    image, triggered = (b64decode(query[key], field=f.path(key), size=c * h * w)
                        for key in ("image", "triggered"))
    return query, image, triggered


class UBWDecider:
    """Prop. 1's pairwise one-sided t-test with margin τ, for one UBW scheme name."""

    def __init__(self, name: str) -> None:
        self.name = name

    def _params(self, vk: VerificationKey) -> tuple[int, tuple[int, int, int], float, float]:
        f = Fields(vk.params, "verification_key.params")
        classes = f.int("num_classes", lo=2, hi=100_000)
        tau = f.float("tau", lo=0.0, hi=1.0)
        if tau >= 1.0:
            raise MalformedInputError("verification_key.params.tau: must be below 1")
        alpha = f.float("alpha", lo=math.ulp(0.0), hi=0.5)  # (0, 0.5]: any positive double
        f.int("m", lo=2, hi=1 << 20, optional=True)
        return classes, read_shape(f), tau, alpha

    def check_params(self, vk: VerificationKey) -> None:
        self._params(vk)

    def check_claim_size(self, vk: VerificationKey, k: int) -> None:
        self._params(vk)
        self._check_size(k)

    @staticmethod
    def _check_size(k: int) -> None:
        check_min_opened(k, 2, "the pairwise t-test needs at least 2 opened items")

    def query_space(self, vk: VerificationKey) -> tuple[int, tuple[int, int, int]]:
        """K and [C, H, W] of a checked key: what :func:`read_query` needs."""
        classes, shape, _, _ = self._params(vk)
        return classes, shape

    def queries(self, vk: VerificationKey, openings: Sequence[ItemOpening]) -> list[Any]:
        classes, shape = self.query_space(vk)
        return [read_query(opening.value, classes, shape, f"opening[{opening.index}].value")[0]
                for opening in openings]

    def decide(self, vk: VerificationKey, openings: Sequence[ItemOpening],
               answers: Sequence[Any]) -> Evidence:
        _, _, tau, alpha = self._params(vk)
        check_answer_count(answers, openings)
        self._check_size(len(answers))
        benign, triggered = [], []
        for i, answer in enumerate(answers):
            if not isinstance(answer, list) or len(answer) != 2:
                raise MalformedInputError(f"answers[{i}]: expected [P_benign, P_triggered]")
            benign.append(_probability(answer[0], f"answers[{i}][0]"))
            triggered.append(_probability(answer[1], f"answers[{i}][1]"))
        result = paired_t_margin_test(benign, triggered, tau=tau, alpha=alpha)
        details = {"pairs": len(answers), "tau": tau,
                   "delta_p": result.params["mean_difference"]}
        return Evidence(self.name, tuple(answers), result, details)


for _name in ("ubw-p", "ubw-c"):
    register_decider(UBWDecider(_name))
