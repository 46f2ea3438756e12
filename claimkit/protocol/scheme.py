"""The Scheme interface (Adi et al. 2018, §3) split so that Verify can run without torch.

A watermarking scheme is KeyGen / Mark / Verify. claimkit splits Verify in two:

* ``queries(vk, openings, challenge=seed)`` — what to ask the suspect model, derived
  from the opened items and the claim's challenge seed (pure; only UBW-C's fresh
  triggers use the seed, so that neither party picks them);
* ``decide(vk, openings, answers)`` — the statistical decision from the recorded
  answers (pure), so an arbiter recomputes it offline from a bundle and a bundle
  never asks to be believed.

Those two live in a :class:`Decider`, registered by scheme name in this pure layer. The
torch side of a scheme (keygen, mark, answering queries with a model) lives in
``claimkit/schemes/`` and adds :class:`Scheme`'s other methods on top.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Callable, Protocol, Sequence, runtime_checkable

from ..commitments import ItemOpening
from ..errors import MalformedInputError
from ..wire import Fields
from .keys import MarkingKey, VerificationKey
from .stats import TestResult, all_but_epsilon, binomial_test, min_pairs

__all__ = [
    "Evidence",
    "Decider",
    "Scheme",
    "check_answer_count",
    "check_min_opened",
    "check_reachable",
    "check_undrawn",
    "read_shape",
    "register_decider",
    "decider_for",
    "LabelMatchDecider",
    "TriggerSetDecider",
    "KIND_ONLY_SCHEMES",
]

KIND_ONLY_SCHEMES = frozenset({"ewe", "move"})
"""Schemes whose accepted claim shows that the suspect carries a mark of the key's kind,
not that it carries this key's: on digits every EWE key of a class pair, and 4 of 10
other owners' MOVE keys, were accepted against models marked with another key
(protocol_spec/bundle.md, "Keys of one kind"). The earliest registration does not tell
their owners apart."""


def check_answer_count(answers: Sequence[Any], openings: Sequence[ItemOpening]) -> None:
    """One answer per opened item, or the claim is malformed."""
    if isinstance(answers, (str, bytes, dict)) or not isinstance(answers, Sequence):
        raise MalformedInputError("answers: expected a list, one answer per opened item")
    if len(answers) != len(openings):
        raise MalformedInputError(
            f"answers: {len(answers)} answers for {len(openings)} opened items")


def check_undrawn(trigger: bytes | None, params: Fields | None = None) -> None:
    """Deciders of schemes whose keys never draw a trigger from the log refuse a trigger
    seed, and a key whose ``params`` name a trigger commitment (ubw.md, "Drawn triggers")
    before a claim spends any item on it."""
    if trigger is not None or (params is not None and params.has("trigger_commitment")):
        raise MalformedInputError("this scheme's keys do not draw their trigger from the log")


def check_reachable(k: int, tau: float, alpha: float, what: str) -> None:
    """A paired-margin claim (UBW, MOVE) of ``k`` ``what`` (pairs, images) whose p can
    never go below alpha (its floor ((1 + τ)/2)^k, protocol.stats) is refused before it
    spends items; an arbiter would only reject it."""
    least = min_pairs(tau, alpha)
    check_min_opened(k, least, f"a claim needs at least {least} {what} to reach alpha = "
                               f"{alpha} at tau = {tau} (p >= ((1 + tau)/2)^{what})")


def check_min_opened(k: int, least: int, message: str) -> None:
    """A claim opening ``k`` items is malformed below ``least``: ``message`` says why.

    Deciders share it between :meth:`Decider.check_claim_size` (asked before a claim
    spends any item) and ``decide`` (which an arbiter runs on a bundle)."""
    if k < least:
        raise MalformedInputError(f"{message}; this claim opens {k}")


def read_shape(f: Fields, name: str = "input_shape") -> tuple[int, int, int]:
    """A key's image shape ``[C, H, W]``, each an integer in [1, 4096] (move.md, ubw.md)."""
    shape = f.raw(name)
    if not (isinstance(shape, list) and len(shape) == 3 and all(
            isinstance(d, int) and not isinstance(d, bool) and 0 < d <= 4096 for d in shape)):
        raise MalformedInputError(f"{f.path(name)}: expected [C, H, W], each in [1, 4096]")
    return (shape[0], shape[1], shape[2])


@dataclass(frozen=True)
class Evidence:
    """What Verify concluded and from what: raw observations, the test and its result."""

    scheme: str
    observations: tuple[Any, ...]
    result: TestResult
    details: dict[str, Any]

    @property
    def accepted(self) -> bool:
        return self.result.reject_null

    def to_dict(self) -> dict[str, Any]:
        return {"scheme": self.scheme, "observations": list(self.observations),
                "result": self.result.to_dict(), "details": self.details,
                "decision": "accept" if self.accepted else "reject"}


@runtime_checkable
class Decider(Protocol):
    """The pure half of Verify for one scheme."""

    name: str

    def check_params(self, vk: VerificationKey) -> None: ...

    def check_claim_size(self, vk: VerificationKey, k: int) -> None:
        """Raise :class:`MalformedInputError` if ``decide`` would refuse a claim opening
        ``k`` items (too few for the test): pure, so a claim asks before it spends any."""

    def queries(self, vk: VerificationKey, openings: Sequence[ItemOpening], *,
                challenge: bytes | None = None, trigger: bytes | None = None) -> list[Any]:
        """What to ask the suspect: ``challenge`` is the claim's challenge seed, ``trigger``
        the trigger seed of a key whose trigger is drawn from the log (None otherwise)."""

    def decide(self, vk: VerificationKey, openings: Sequence[ItemOpening],
               answers: Sequence[Any]) -> Evidence: ...


class Scheme(Decider, Protocol):
    """A whole backend: the decider plus KeyGen and Mark (implemented in ``schemes/``)."""

    def keygen(self, params: dict[str, Any], *, rng: Callable[[int], bytes]) -> MarkingKey: ...

    def mark(self, target: Any, mk: MarkingKey, config: Any) -> Any: ...


_DECIDERS: dict[str, Decider] = {}


def register_decider(decider: Decider) -> Decider:
    _DECIDERS[decider.name] = decider
    return decider


def decider_for(scheme: str) -> Decider:
    try:
        return _DECIDERS[scheme]
    except KeyError:
        raise MalformedInputError(f"unknown scheme {scheme!r} (known: "
                                  f"{', '.join(sorted(_DECIDERS)) or 'none'})") from None


class LabelMatchDecider:
    """Items carry a committed ``label``; the suspect's answer to an item is a class index.

    Decision (Adi et al. 2018, §3 Verify, made statistical): the number of answers that
    equal the committed labels is tested against the rate ``p0`` at which an independent
    model matches random labels, ``1 / num_classes`` unless the key fixes ``p0``, with
    the exact one-sided binomial test at level ``alpha``. The paper's all-but-ε rule is
    reported beside it. Public parameters (in the verification key):
    ``num_classes`` (int ≥ 2), ``alpha`` (default 0.01), ``epsilon`` (default 0.1),
    optional ``p0``.
    """

    def __init__(self, name: str, query_field: str) -> None:
        self.name = name
        self.query_field = query_field

    def _params(self, vk: VerificationKey) -> tuple[int, float, float, Fraction | float]:
        f = Fields(vk.params, "verification_key.params")
        check_undrawn(None, f)
        classes = f.int("num_classes", lo=2, hi=1 << 20)
        alpha = f.float("alpha", lo=math.ulp(0.0), hi=0.5, optional=True)  # (0, 0.5]
        epsilon = f.float("epsilon", lo=0.0, hi=1.0, optional=True)
        p0 = f.float("p0", lo=1e-12, hi=1 - 1e-12, optional=True)
        if p0 is not None and p0 < Fraction(1, classes):
            # uniformly random labels match an independent model at exactly 1/C: a smaller
            # null rate would make chance agreement look like evidence
            raise MalformedInputError(f"verification_key.params.p0: {p0} is below 1/num_classes "
                                      f"= 1/{classes}, the rate at which random labels match "
                                      f"any independent model")
        return (classes, 0.01 if alpha is None else alpha,
                0.1 if epsilon is None else epsilon, Fraction(1, classes) if p0 is None else p0)

    def check_params(self, vk: VerificationKey) -> None:
        self._params(vk)

    def check_claim_size(self, vk: VerificationKey, k: int) -> None:
        self._params(vk)
        check_min_opened(k, 1, "the binomial test needs at least 1 opened item")

    def _label(self, opening: ItemOpening, classes: int) -> int:
        f = Fields(opening.value, f"opening[{opening.index}].value")
        return f.int("label", hi=classes - 1)

    def queries(self, vk: VerificationKey, openings: Sequence[ItemOpening], *,
                challenge: bytes | None = None, trigger: bytes | None = None) -> list[Any]:
        check_undrawn(trigger)
        out = []
        for opening in openings:
            if not isinstance(opening.value, dict) or self.query_field not in opening.value:
                raise MalformedInputError(
                    f"opening[{opening.index}].value: missing {self.query_field!r}")
            out.append(opening.value[self.query_field])
        return out

    def decide(self, vk: VerificationKey, openings: Sequence[ItemOpening],
               answers: Sequence[Any]) -> Evidence:
        classes, alpha, epsilon, p0 = self._params(vk)
        check_answer_count(answers, openings)
        matches = 0
        for i, (opening, answer) in enumerate(zip(openings, answers)):
            if not isinstance(answer, int) or isinstance(answer, bool) or not 0 <= answer < classes:
                raise MalformedInputError(f"answers[{i}]: expected a class index below {classes}")
            matches += answer == self._label(opening, classes)
        n = len(answers)
        result = binomial_test(matches, n, p0, alpha=alpha)
        details = {"matches": matches, "n": n, "p0": float(p0), "epsilon": epsilon,
                   "all_but_epsilon": all_but_epsilon(matches, n, epsilon)}
        return Evidence(self.name, tuple(answers), result, details)


class TriggerSetDecider(LabelMatchDecider):
    """Adi et al.'s trigger sets: a label-matching decider whose items are exactly
    ``{"image", "label"}``, the image canonical base64 of C·H·W bytes of the key's
    ``input_shape`` (protocol_spec/bundle.md, *Trigger-set items and queries*). Offline
    Verify checks them too: an answer to something that is not an image of the key's
    shape is no model's answer (the spec-only verifier found claimkit reading only the
    label, 2026-12-07)."""

    def __init__(self) -> None:
        super().__init__("trigger-set", "image")

    def _shape(self, vk: VerificationKey) -> tuple[int, int, int]:
        return read_shape(Fields(vk.params, "verification_key.params"))

    def check_params(self, vk: VerificationKey) -> None:
        super().check_params(vk)
        self._shape(vk)

    def _check_items(self, vk: VerificationKey, openings: Sequence[ItemOpening]) -> None:
        c, h, w = self._shape(vk)
        classes = self._params(vk)[0]
        for opening in openings:
            f = Fields(opening.value, f"opening[{opening.index}].value")
            f.bytes("image", size=c * h * w)
            f.int("label", hi=classes - 1)
            f.done()

    def queries(self, vk: VerificationKey, openings: Sequence[ItemOpening], *,
                challenge: bytes | None = None, trigger: bytes | None = None) -> list[Any]:
        self._check_items(vk, openings)
        return super().queries(vk, openings, challenge=challenge, trigger=trigger)

    def decide(self, vk: VerificationKey, openings: Sequence[ItemOpening],
               answers: Sequence[Any]) -> Evidence:
        self._check_items(vk, openings)
        return super().decide(vk, openings, answers)


register_decider(TriggerSetDecider())

from . import move_ewe_deciders  # noqa: E402,F401  (registers "move" and "ewe")
from . import ubw_decider  # noqa: E402,F401  (registers "ubw-p" and "ubw-c")
