"""Untargeted backdoor watermarks for data sets: Li et al., "Untargeted Backdoor Watermark:
Towards Harmless and Stealthy Dataset Copyright Protection" (NeurIPS 2022).

A data set owner releases a watermarked training set; a model trained on it behaves
normally on benign images and *dispersibly wrong* on images carrying a secret trigger;
an arbiter later tests a suspect for that behaviour with black-box probabilities::

    backend = get_backend("ubw-p")
    mk = backend.keygen(load_dataset("digits"), {"gamma": "0.1"})
    backend.mark(mk, data, "released/", MarkOptions())       # a release folder (ml.release)
    ask = backend.answerer(LocalModel.from_file("suspect.safetensors"), mk.verification_key)

Schemes (one backend each, sharing this module):

* ``ubw-p`` (§3.3): a γ fraction of the training set, picked uniformly at random, gets
  the trigger and a label drawn uniformly from the K − 1 classes other than its own
  (ours; ``-p labels=uniform`` draws from all K, the paper's y' ~ [1, …, K], so that a
  tenth of the poisons keep their label and teach nothing). On the same two keys,
  decoys and seeds (8,000 Fashion-MNIST images × 20 epochs) it took ASR-A from 70.0 and
  74.6 % to 85.0 and 86.4 %, Dp from 1.96 and 2.04 to 2.12 and 2.08, with BA and
  the other key's claims (p = 1.0) unchanged (docs/benchmarks.md, "UBW-P's poisons take
  another class's label"). The trigger is a
  BadNets-style square of black and white pixels in the bottom-right corner (the
  authors' code: a 3×3 patch on 32×32 images), or, with ``-p trigger=warp``, the
  WaNet warping field of App. H (a k×k grid of random offsets, upsampled, strength s).
  Decoys (ours, not the paper's; ``-p decoys=ρ``, default 0.1; ``decoys=0
  labels=uniform`` is the paper's release): ρ·N further training images, none of them
  poisoned, get a random square of their own (never the key's) in the same corner and
  keep their labels. Without them the release only ever shows "a square in that
  corner" with a random label, so a model
  learns the corner rather than the square, and other owners' squares pass Prop. 1 too:
  on digits 3 of 12 claims by other UBW-P keys were accepted (none with decoys), and at
  8,000 Fashion-MNIST images one of two (p = 0.0036), while a suspect of a third key lost
  more than τ under 93 % of random squares in its corner (1 % with decoys); at 16,000,
  97 % (1 % with decoys). Decoys cost some effect at small scale (ASR-A −3 points at
  8,000 images on the same key, none measured at 16,000), not validity
  (docs/benchmarks.md, "UBW-P at 8,000 images" and "… at 16,000 images"). A warping
  trigger (``trigger=warp``) gets decoys of its own kind: images warped by fields of
  their own (the key's grid and strength), labels kept, like WaNet's noise mode (Nguyen &
  Tran 2021, which keeps the labels of images warped by the key's field plus noise; ours
  are other owners' fields). Without them one of two other owners' warping claims was
  accepted at 4,000 Fashion-MNIST images (p = 1.2e-4), with them neither (p ≥ 0.998), at
  the price decoys have for squares (ASR-A 70 and 63 % → 58 and 44 %; docs/benchmarks.md,
  "A warping trigger").
* ``ubw-c`` (§3.4, App. B): clean labels; the γ·N training images with the largest
  gradient norms get ε-bounded perturbations crafted by gradient matching
  (:mod:`claimkit.schemes.ubw_c`); the inference trigger is the same kind of square at a
  random position (App. B: G_i(x) = (1 − α)⊗x + α⊗t, the authors' ``random_patch``), or
  with ``-p trigger=warp`` (ours for UBW-C) a warping field as for ``ubw-p``. The
  source class, whose triggered images the crafting attacks (App. B 2)), is 0 unless
  ``-p source=N`` names another, or ``-p source=-1`` draws it from the key's seed,
  uniformly over the classes with at least m test images (ours). Drawing would make
  another owner's claim rarer: over six releases (4,000 Fashion-MNIST images, a CPU)
  another owner's claim passed Prop. 1 in 7 of 30 cases where the two keys shared the
  class and in 2 of 270 where they did not. It is not the default because the two
  releases measured on drawn classes (sandals, ankle boots) implanted nothing where the
  same keys on T-shirts did (docs/benchmarks.md, "Six keys of that release").
  It takes ``-p decoys=ρ`` too (default 0): the same decoys (squares at random places,
  stored in the key, or fields), which its crafting keeps out of the poisons, drawn
  from all classes or, with ``-p decoy_class=source``, from the source class only
  (:mod:`claimkit.schemes.ubw_c`).

Fresh triggers (``ubw-c``, ``-p fresh=K``; ours, not the paper's; opt-in, default 0).
Prop. 1 holds an honest other owner's claim as well as the owner's when the suspect
learned a release of the same kind: on Fashion-MNIST another owner's UBW-C claim passed
it in 9 of 38 measured cases. With K > 0 a claim must also rank the key's trigger among
K fresh triggers of its kind drawn from its challenge seed: squares pasted at each
item's place, or (``trigger=warp``) warping fields of the key's grid and strength
(p_rank = (1 + #{D_j ≥ D_key}) / (K + 1), exact for a model that never saw the key),
which took those 9 to 0 but kept only 4 of the 38 square owners' claims that Prop. 1
accepted (warping fields, measured before they were built here: 10 of 14 owners'
claims kept, 0 of 10 other owners'; K = 199; docs/proposals/ubw-c-key-specific-test.md,
"Building it in two steps", step 1). The price in power is why it stays opt-in until
the GPU run measures it at full scale. Items then carry the square's ``place`` and the
key its ``side``, or, for a field, the items carry the key's ``field`` instead of a
triggered image (the answerer warps the image by it, by the code that warps the fresh
ones) and the key its ``grid`` and ``warp_strength``; a claim costs (K + 2)·m queries;
K must reach alpha (1/(K + 1) ≤ α: 99 for α = 0.01); protocol_spec/ubw.md.

Drawn triggers (``ubw-c``, ``-p fresh=K -p draw=log``; ours, the proposal's step 2;
opt-in). The rank test is exact only for a trigger drawn like the fresh ones, and an
owner who tried candidate fields on a model of their own and kept the costliest would
pass it on innocent models far more often than α (docs/benchmarks.md, "What grinding a
key buys"). A drawn key commits to a secret s (``trigger_commitment``) and its items
carry no trigger; ``claimkit draw`` logs a trigger-draw entry naming the key, once per
key, and the key's trigger is fresh trigger 0 of the seed that entry's tree head and s
give (:func:`complete_draw`; protocol_spec/ubw.md, "Drawn triggers"). Claims open s, and
the verifier derives the trigger. Decoys, which must differ from the trigger, are drawn
when such a key marks.

Keys. KeyGen draws a 32-byte secret seed; every random choice (pattern, warping field,
poisoned indices and labels, items, trigger positions, crafting) comes from an
independent stream of it, and the derived trigger, indices and labels are stored in the
sealed marking key as well, so marking never depends on a generator's version. The
ℓ committed **items** are test images with their label and triggered version
``{"image", "label", "triggered"}`` (and ``"place"`` with fresh squares; with fresh
fields ``{"image", "label", "field"}``; protocol_spec/ubw.md); a claim opens a random
subset of them (cut-and-choose, Adi et al. App. A), m = 100 in the paper (App. C.2), so
the default ℓ = 300 leaves fresh items for two more claims. For ``ubw-c`` the items come from
the source class, the only class whose triggered images the crafting targets (App. B 2)).

Which samples are tested (Prop. 1). The paper tests "samples that can be correctly
classified by the suspicious model", which needs the suspect's top class; an answer
here is only the probability of the item's label on the benign and the triggered image.
The items are instead fixed at KeyGen, uniformly from the test split (the source class
for ``ubw-c``), before any model exists, so their selection cannot depend on the
suspect, and nothing is dropped after the answers are seen. A benign image that a
suspect misclassifies has a small P_b and contributes about −τ to the test statistic
whether or not the suspect was trained on the release: it costs power, never validity.

What an opening reveals. Every item's triggered image shows the trigger (its pattern,
and for ``ubw-p`` its position; for ``trigger=warp`` the field can be estimated from
image pairs). After the first claim that trigger is public: a model trained later can
be trained on a release cleaned of the visible ``ubw-p`` patches, and a stolen model can
be fine-tuned to unlearn the trigger. Claims against models that were trained before
the opening stay sound (the registry dates the claim intent), and later claims still
open fresh items, so a suspect cannot have been tuned to the exact images asked; but
fresh items do not make the trigger secret again. An owner who expects many claims
should mark the release with several keys, or let an arbiter query privately.

Defaults and their source: γ = 0.1, τ = 0.25, m = 100, λ = 2 (§5.2, §5.3, App. C);
α = 0.01 (the paper's significance level, §4.2: "p-value ≪ 0.01"); patch side per 32
pixels of image side (``patch_size`` overrides it): 3 for ``ubw-p`` (the authors' BadNets
square; at least 3), 8 for ``ubw-c`` (the authors' ``UBW_C.py``, ``PATCH_SIZE = 8``; App.
D.2, Table 2: a side of 2 gives ASR-A 4.4 %, 4 and more 70–98 %; at least 2), so 3 and 7
on 28×28 Fashion-MNIST, 3 and 2 on 8×8 digits;
WaNet k = 4, s = 0.5 (the WaNet paper's defaults; App. H used k = 16 on CIFAR-10).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..challenge import TRIGGER_SECRET_SIZE, trigger_commitment
from ..claim.drawn import draw_seed
from ..errors import MalformedInputError, OracleError
from ..protocol.keys import MarkingKey, VerificationKey
from ..protocol.stats import min_pairs
from ..protocol.ubw_decider import (MAX_FRESH, drawn_trigger, fresh_fields, fresh_patterns,
                                    min_fresh, read_queries)
from ..registry.note import VerifierKey
from ..registry.receipt import Receipt
from ..wire import b64decode, b64encode
from .base import MarkOptions, Oracle, data_fields, parse_params

__all__ = [
    "BACKEND",
    "EvaluationImages",
    "Trigger",
    "UBWBackend",
    "UBWCParams",
    "UBWMetrics",
    "UBWPParams",
    "UBWParams",
    "complete_draw",
    "decode_queries",
    "evaluation_images",
    "key_trigger",
    "keygen",
    "mark",
    "stamp_decoys",
    "stream",
    "ubw_metrics",
]

# Independent random streams of the key's seed, one per purpose.
_PATTERN, _POISON, _ITEMS, _ITEM_PLACES, _EVAL_PLACES, _CRAFT, _DECOYS, _SOURCE = range(8)


@dataclass(frozen=True)
class UBWParams:
    """What both schemes share; ``num_classes``, ``input_shape`` and ``data*`` come from
    the data set, the rest from ``--param KEY=VALUE``."""

    num_classes: int
    input_shape: tuple[int, int, int]
    data: str = ""
    data_digest: str = ""
    gamma: float = 0.1          # poisoning rate |D_s| / |D| (§5.2)
    patch_size: int = 0         # side of the square trigger in pixels; 0: per_32 per 32 pixels
    items: int = 300            # ℓ committed verification items (at most the candidates)
    m: int = 100                # pairs a claim should open (App. C.2)
    tau: float = 0.25           # margin of Prop. 1's H1: P_b > P_p + τ (§5.3)
    alpha: float = 0.01         # significance level
    decoys: float = 0.0         # share given other random triggers, labels kept (ours; module doc)
    trigger: str = "patch"      # "patch" (BadNets square, §5.2) or "warp" (WaNet, App. H)
    warp_grid: int = 4          # k: control points per side of the warping field
    warp_strength: float = 0.5  # s: its amplitude

    def __post_init__(self) -> None:
        c, h, w = self.input_shape
        if self.trigger not in ("patch", "warp"):
            raise MalformedInputError("ubw: trigger must be patch or warp")
        if not 2 <= self.warp_grid <= min(h, w) or not 0 < self.warp_strength <= 4:
            raise MalformedInputError("ubw: warp_grid within [2, image side], "
                                      "warp_strength within (0, 4]")
        if not 0.0 < self.gamma <= 0.5:
            raise MalformedInputError("ubw: gamma (poisoning rate) must be within (0, 0.5]")
        if self.patch_size and not self.min_side <= self.patch_size <= min(h, w) // 2:
            # below min_side a square is too small to be a trigger (side 1 cannot even hold
            # both colours, which make_patch requires)
            raise MalformedInputError(f"ubw: patch_size must be 0 ({self.per_32} pixels per 32) "
                                      f"or within [{self.min_side}, {min(h, w) // 2}]")
        if not 2 <= self.m <= self.items <= 100_000:
            raise MalformedInputError("ubw: need 2 <= m <= items <= 100000")
        if not 0.0 <= self.tau < 1.0:
            raise MalformedInputError("ubw: tau must be within [0, 1)")
        if not 1e-12 <= self.alpha <= 0.5:
            raise MalformedInputError("ubw: alpha must be within [1e-12, 0.5]")
        least = min_pairs(self.tau, self.alpha)
        if self.m < least:      # no answers could ever make such a claim
            hint = f"use m >= {least}" if least <= 100_000 else "lower tau or raise alpha"
            raise MalformedInputError(f"ubw: a claim of m = {self.m} pairs can never reach "
                                      f"alpha = {self.alpha} at tau = {self.tau} (p >= "
                                      f"((1 + tau)/2)^m, docs/statistics.md); {hint}")
        if not 0.0 <= self.decoys <= 0.5:
            raise MalformedInputError("ubw: decoys must be within [0, 0.5]")

    @property
    def side(self) -> int:
        """The square trigger's side: ``patch_size``, or :attr:`per_32` pixels per 32 of
        the image side, at least :attr:`min_side`."""
        return self.patch_size or max(self.min_side,
                                      round(self.per_32 * min(self.input_shape[1:]) / 32))

    @property
    def per_32(self) -> int:
        """The authors' UBW-P square: 3×3 on 32×32 images."""
        return 3

    @property
    def min_side(self) -> int:
        return 3

    def public(self) -> dict[str, Any]:
        """The verification key's parameters: what a verifier needs, nothing secret."""
        return {"num_classes": self.num_classes, "input_shape": list(self.input_shape),
                "data": self.data, "data_digest": self.data_digest, "tau": self.tau,
                "alpha": self.alpha, "m": self.m}


@dataclass(frozen=True)
class UBWPParams(UBWParams):
    decoys: float = 0.1         # UBW-P's default has them (0: none, as in the paper)
    labels: str = "others"      # the poisons' labels: uniform over the K − 1 classes other
                                # than their own (ours; module doc) or "uniform" over all K (§3.3)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.labels not in ("uniform", "others"):
            raise MalformedInputError("ubw-p: labels must be uniform or others")


@dataclass(frozen=True)
class UBWCParams(UBWParams):
    source: int = 0             # the class whose triggered images are attacked (App. B 2));
                                # -1: drawn from the key's seed at KeyGen (ours; module doc)
    epsilon: int = 16           # L∞ budget of the perturbations, in 1/255 steps (16/255)
    lam: float = 2.0            # λ, weight of the entropy (dispersibility) term (§5.2)
    steps: int = 200            # projected gradient steps in all (App. B: 5 rounds of PGA-40)
    retrains: int = 4           # surrogate re-trainings between them (the lower level)
    surrogate_epochs: int = 0   # epochs per surrogate training; 0: the recipe's
    warm: int = 0               # >0 (ours): each re-training continues the current surrogate
                                # for this many epochs; 0: from scratch (Eq. 9; ubw_c)
    match_layers: int = 0       # >0 (ours): match the gradient of the last k weight layers
                                # only, a cheaper step; 0: all parameters (Eq. 8; ubw_c)
    step_size: float = 0.025    # Adam learning rate on signed gradients (the authors' code)
    decay: str = "all"          # step size ×0.1 at 3/8, 5/8 and 7/8 of "all" steps (the
                                # authors' code) or of each "round" between re-trainings (ours)
    selection: str = "last-layer"  # gradient norm for picking poisons: "last-layer" or "full"
    target: str = "paper"       # matched gradient: "paper" (−∇L_i on triggered sources),
                                # "contrast" (minus the same on the benign sources) or
                                # "specific" (minus the same under fresh random squares; ubw_c)
    decoy_class: str = "all"    # decoys drawn from "all" training images or the "source"
                                # class's only (ours; ubw_c)
    fresh: int = 0              # K > 0 (ours; module doc): claims also rank the key's square
                                # among K fresh ones; 0: Prop. 1 alone (the paper's)
    draw: str = "key"           # the trigger from the key's seed ("key") or drawn from the
                                # registry log ("log", with fresh > 0; module doc)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.decoy_class not in ("all", "source"):
            raise MalformedInputError("ubw-c: decoy_class must be all or source")
        if not -1 <= self.source < self.num_classes:
            raise MalformedInputError(f"ubw-c: source must be a class in [0, {self.num_classes}) "
                                      f"or -1 (drawn)")
        if not 1 <= self.epsilon <= 64 or not 0 <= self.lam <= 100:
            raise MalformedInputError("ubw-c: epsilon within [1, 64] (/255), lam within [0, 100]")
        if not 1 <= self.steps <= 10_000 or not 0 <= self.retrains < self.steps:
            raise MalformedInputError("ubw-c: steps within [1, 10000], retrains within [0, steps)")
        if not 0 <= self.surrogate_epochs <= 1000 or not 0 < self.step_size <= 1:
            raise MalformedInputError("ubw-c: surrogate_epochs within [0, 1000], "
                                      "step_size within (0, 1]")
        if not 0 <= self.warm <= 1000:
            raise MalformedInputError("ubw-c: warm within [0, 1000] epochs")
        if not 0 <= self.match_layers <= 1000:
            raise MalformedInputError("ubw-c: match_layers within [0, 1000] (0: all)")
        if self.decay not in ("all", "round"):
            raise MalformedInputError("ubw-c: decay must be all or round")
        if self.selection not in ("last-layer", "full"):
            raise MalformedInputError("ubw-c: selection must be last-layer or full")
        if self.target not in ("paper", "contrast", "specific"):
            raise MalformedInputError("ubw-c: target must be paper, contrast or specific")
        if not 0 <= self.fresh <= MAX_FRESH:
            raise MalformedInputError(f"ubw-c: fresh must be 0 (off) or K in [1, {MAX_FRESH}]")
        if self.draw not in ("key", "log"):
            raise MalformedInputError("ubw-c: draw must be key or log")
        if self.draw == "log" and not self.fresh:
            raise MalformedInputError("ubw-c: draw=log needs fresh triggers (-p fresh=K): "
                                      "a drawn trigger is what makes their rank test exact")
        if self.fresh and self.fresh < min_fresh(self.alpha):
            hint = (f"use K >= {min_fresh(self.alpha)}" if min_fresh(self.alpha) <= MAX_FRESH
                    else f"fresh triggers need alpha >= {1 / (MAX_FRESH + 1):.3g} (K <= {MAX_FRESH})")
            raise MalformedInputError(f"ubw-c: fresh={self.fresh} can never reach alpha = "
                                      f"{self.alpha} (p_rank >= 1/(K+1)); {hint}")

    def public(self) -> dict[str, Any]:
        """With fresh triggers the key also states K and the square's side, or the warping
        field's grid and strength, which a verifier needs to read the items and draw the
        fresh triggers (which of side and grid is present names the trigger's kind)."""
        if not self.fresh:
            return super().public()
        extra = ({"grid": self.warp_grid, "warp_strength": self.warp_strength}
                 if self.trigger == "warp" else {"side": self.side})
        return {**super().public(), "fresh": self.fresh, **extra}

    @property
    def per_32(self) -> int:
        """8: the authors' ``UBW_C.py`` (``PATCH_SIZE = 8``); App. D.2, Table 2 measured
        UBW-C's ASR-A at 4.4 % with a side of 2 and 70–98 % with 4 to 12 on CIFAR-10."""
        return 8

    @property
    def min_side(self) -> int:
        """2: a square at a random place may cover the object itself; on 8×8 digits a 3×3
        one lowers a clean model's P_b − P_p by more than τ (measured), which would accuse
        independent models."""
        return 2


# -- triggers -------------------------------------------------------------------------------
def stream(seed: bytes, purpose: int) -> np.random.Generator:
    """An independent generator for one purpose, from the key's secret seed."""
    if len(seed) < 16:
        raise MalformedInputError("a UBW seed needs at least 16 bytes")
    return np.random.default_rng(np.random.SeedSequence(int.from_bytes(seed, "big"),
                                                        spawn_key=(purpose,)))


@dataclass(frozen=True)
class Trigger:
    """G(x): a square of black and white pixels (at a fixed corner or a random place per
    image), or a WaNet warping field. Images are uint8 (N, C, H, W) in and out."""

    kind: str                       # "patch" or "warp"
    pattern: np.ndarray | None      # (s, s) uint8, 0 or 255
    placement: str                  # "corner" (bottom-right) or "random"
    field: np.ndarray | None        # (k, k, 2) warping offsets
    strength: float

    def places(self, n: int, h: int, w: int,
               rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The top-left row and column of the square on each of ``n`` images of h × w."""
        assert self.pattern is not None
        s = self.pattern.shape[0]
        if self.placement == "corner":
            return np.full(n, h - s), np.full(n, w - s)
        if rng is None:
            raise ValueError("a randomly placed trigger needs a generator")
        return random_places(rng, n, h, w, s)

    def apply(self, images: np.ndarray, rng: np.random.Generator | None = None, *,
              places: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
        """The triggered copy of ``images``; a square lands at ``places`` if given, else
        at places drawn from ``rng`` (random placement)."""
        if self.kind == "warp":
            return _warp(images, self.field, self.strength)
        assert self.pattern is not None
        n, _, h, w = images.shape
        rows, cols = self.places(n, h, w, rng) if places is None else places
        return _paste(images, self.pattern[:, :, None], rows, cols)

    def secret(self) -> dict[str, Any]:
        if self.kind == "warp":
            assert self.field is not None
            return {"kind": "warp", "grid": self.field.shape[0],
                    "field": b64encode(self.field.astype("<f8").tobytes()),
                    "strength": self.strength}
        assert self.pattern is not None
        return {"kind": "patch", "side": self.pattern.shape[0], "placement": self.placement,
                "pattern": b64encode(self.pattern.tobytes())}

    @classmethod
    def from_secret(cls, obj: Mapping[str, Any]) -> Trigger:
        if obj.get("kind") == "warp":
            k = int(obj["grid"])
            raw = b64decode(obj["field"], field="trigger.field", size=k * k * 2 * 8)
            field = np.frombuffer(raw, dtype="<f8").reshape(k, k, 2).astype(np.float64)
            return cls("warp", None, "corner", field, float(obj["strength"]))
        s = int(obj["side"])
        raw = b64decode(obj["pattern"], field="trigger.pattern", size=s * s)
        return cls("patch", np.frombuffer(raw, dtype=np.uint8).reshape(s, s).copy(),
                   str(obj["placement"]), None, 0.0)


def random_places(rng: np.random.Generator, n: int, h: int, w: int,
                  side: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-left rows and columns of ``n`` side × side squares, uniform over the places
    inside an h × w image (UBW-C's ``random_patch``)."""
    return rng.integers(0, h - side + 1, n), rng.integers(0, w - side + 1, n)


def _paste(images: np.ndarray, patterns: np.ndarray, rows: np.ndarray,
           cols: np.ndarray) -> np.ndarray:
    """A copy of ``images`` with ``patterns`` ((s, s, 1) for all, or (n, s, s, 1) one per
    image) pasted at (rows[i], cols[i]) in every channel. One indexed assignment for all
    images: (n, s, s) row and column indices; the channel slice between them puts the
    channel last, so a pattern broadcasts over it."""
    n, s = len(images), patterns.shape[-2]
    out = images.copy()
    span = np.arange(s)
    r = rows[:, None, None] + span[None, :, None]
    c = cols[:, None, None] + span[None, None, :]
    out[np.arange(n)[:, None, None], :, r, c] = patterns
    return out


def random_triggers(images: np.ndarray, trigger: Trigger,
                    rng: np.random.Generator) -> np.ndarray:
    """Each image under its *own* fresh trigger of the key's kind, never the key's: a
    square of its size (make_patch's distribution) placed as the key places its own, or a
    warping field of its grid and strength (make_warp's). "Any trigger but the key's",
    which ``target=specific`` teaches UBW-C to tell from the key's."""
    n, _, h, w = images.shape
    if trigger.kind == "warp":
        assert trigger.field is not None
        fields = np.stack([fresh_field(rng, trigger) for _ in range(n)])
        return _warp(images, fields, trigger.strength)
    patterns = np.stack([fresh_patch(rng, trigger) for _ in range(n)])
    rows, cols = trigger.places(n, h, w, rng)
    return _paste(images, patterns[..., None], rows, cols)


def make_patch(rng: np.random.Generator, side: int, placement: str) -> Trigger:
    """A random black-and-white square (both colours present), like BadNets' trigger but
    drawn from the key so that every owner's trigger differs. A side below 2 has no such
    square, and the draw would never end."""
    if side < 2:
        raise MalformedInputError(f"ubw: a square trigger needs a side of at least 2, got {side}")
    while True:
        pattern = (rng.integers(0, 2, (side, side)) * 255).astype(np.uint8)
        if 0 < int(pattern.sum()) < 255 * side * side:
            return Trigger("patch", pattern, placement, None, 0.0)


def fresh_patch(rng: np.random.Generator, trigger: Trigger) -> np.ndarray:
    """A random pattern of the square trigger's size that is not the trigger's own."""
    assert trigger.pattern is not None
    while True:
        pattern = make_patch(rng, trigger.pattern.shape[0], trigger.placement).pattern
        if not np.array_equal(pattern, trigger.pattern):
            return pattern


def make_warp(rng: np.random.Generator, grid: int, strength: float) -> Trigger:
    """WaNet's field (Nguyen & Tran 2021, §3.2): uniform offsets normalised by their mean
    absolute value."""
    field = rng.uniform(-1, 1, (grid, grid, 2))
    return Trigger("warp", None, "corner", field / np.mean(np.abs(field)), strength)


def fresh_field(rng: np.random.Generator, trigger: Trigger) -> np.ndarray:
    """A random warping field of the warping trigger's grid (make_warp's distribution; a
    continuous draw, so never the key's own)."""
    assert trigger.field is not None
    return make_warp(rng, trigger.field.shape[0], trigger.strength).field


def _warp(images: np.ndarray, field: np.ndarray | None, strength: float) -> np.ndarray:
    """Warp uint8 images by the field ((k, k, 2), or (n, k, k, 2): one per image):
    upsampled bicubically, scaled by s / H, sampled bilinearly with ``grid_sample``
    (WaNet's generator), rounded back to uint8."""
    import torch
    import torch.nn.functional as F

    assert field is not None
    n, _, h, w = images.shape
    noise = torch.from_numpy(field.reshape(-1, *field.shape[-3:])).permute(0, 3, 1, 2).float()
    up = F.interpolate(noise, size=(h, w), mode="bicubic", align_corners=True).permute(0, 2, 3, 1)
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    grid = (torch.stack((xs, ys), 2)[None] + strength * up / h).clamp(-1, 1)
    out = []
    for i in range(0, n, 4096):
        x = torch.from_numpy(np.ascontiguousarray(images[i:i + 4096])).float()
        g = grid[i:i + 4096] if len(grid) > 1 else grid.expand(len(x), -1, -1, -1)
        warped = F.grid_sample(x, g, align_corners=True)
        out.append(warped.round().clamp(0, 255).to(torch.uint8).numpy())
    return np.concatenate(out) if out else images.copy()


# -- keygen ---------------------------------------------------------------------------------
def _item_candidates(params: UBWParams, y_test: np.ndarray) -> np.ndarray:
    """Positions in the test split that items and metrics are drawn from: all of it, or
    for ``ubw-c`` its source class."""
    if isinstance(params, UBWCParams):
        return np.flatnonzero(y_test == params.source)
    return np.arange(len(y_test))


def _draw_source(rng: np.random.Generator, params: UBWCParams, y_test: np.ndarray) -> int:
    """UBW-C's source class for ``source=-1``: uniform over the classes with at least m test
    images (all of them on Fashion-MNIST; a class short of items could not make a claim).
    Two owners' releases then attack different classes unless they draw the same one
    (1/K), and another owner's claim passes far less often across classes than within one
    (module doc)."""
    counts = np.bincount(y_test, minlength=params.num_classes)[:params.num_classes]
    eligible = np.flatnonzero(counts >= params.m)
    if not len(eligible):
        raise MalformedInputError(f"ubw-c: no class has m = {params.m} test images for items "
                                  f"(the most: {counts.max()}); lower -p m")
    return int(rng.choice(eligible))


def keygen(scheme: str, params: UBWParams, data: Any, *,
           rng: Callable[[int], bytes] = os.urandom) -> MarkingKey:
    """A marking key: the trigger, (``ubw-p``) the poisoned indices and their labels, and
    ℓ committed items of test images with their triggered versions. A key whose trigger
    is drawn from the log (``draw=log``) holds instead the secret its verification key
    commits to, and items without the trigger; :func:`complete_draw` adds the trigger."""
    seed = rng(32)
    drawn = isinstance(params, UBWCParams) and params.draw == "log"
    if isinstance(params, UBWCParams) and params.source == -1:
        params = dataclasses.replace(params, source=_draw_source(stream(seed, _SOURCE), params,
                                                                  data.y_test))
    candidates = _item_candidates(params, data.y_test)
    if len(candidates) < params.m:
        raise MalformedInputError(f"ubw: the test split has {len(candidates)} candidate images "
                                  f"for items, fewer than m = {params.m}; lower -p m")
    count = min(params.items, len(candidates))
    chosen = np.sort(stream(seed, _ITEMS).choice(candidates, count, replace=False))
    benign = data.x_test[chosen]
    values: list[dict[str, Any]] = [{"image": b64encode(b.tobytes()), "label": int(data.y_test[i])}
                                    for i, b in zip(chosen, benign)]
    places = None           # UBW-C's squares: the places apply() would draw
    if params.trigger == "patch" and isinstance(params, UBWCParams):
        places = random_places(stream(seed, _ITEM_PLACES), len(benign), *benign.shape[2:],
                               params.side)
    secret: dict[str, Any] = {"seed": b64encode(seed),
                              "params": {**dataclasses.asdict(params),
                                         "input_shape": list(params.input_shape)}}
    trigger = None if drawn else _key_trigger(seed, params)
    fresh = getattr(params, "fresh", 0)
    if trigger is not None:
        secret["trigger"] = trigger.secret()
        if trigger.kind == "warp" and fresh:    # the answerer warps the image by the field
            for value in values:
                value["field"] = secret["trigger"]["field"]
        else:
            triggered = trigger.apply(benign, places=places)
            for value, t in zip(values, triggered):
                value["triggered"] = b64encode(t.tobytes())
    if fresh and places is not None:
        for value, r, c in zip(values, *places):
            value["place"] = [int(r), int(c)]
    poisoned = None
    if isinstance(params, UBWPParams):
        n = len(data.y_train)
        poison = stream(seed, _POISON)
        poisoned = np.sort(poison.choice(n, max(1, round(params.gamma * n)), replace=False))
        secret["poison"] = {"indices": poisoned.tolist(),
                            "labels": _poison_labels(poison, params,
                                                     data.y_train[poisoned]).tolist()}
    pool = _decoy_pool(params, data, poisoned)
    if params.decoys and trigger is not None:   # a drawn key's, when it marks (they avoid it)
        secret["decoys"] = _decoys(stream(seed, _DECOYS), trigger, data.x_train.shape,
                                   pool, params.decoys)
    public = params.public()
    if drawn:
        trigger_secret = rng(TRIGGER_SECRET_SIZE)
        secret["trigger_secret"] = b64encode(trigger_secret)
        public["trigger_commitment"] = trigger_commitment(trigger_secret).hex()
    return MarkingKey.create(scheme, public, values, rng=rng, secret=secret)


def _key_trigger(seed: bytes, params: UBWParams) -> Trigger:
    """The trigger drawn from the key's own seed (every key but a drawn one)."""
    if params.trigger == "warp":
        return make_warp(stream(seed, _PATTERN), params.warp_grid, params.warp_strength)
    return make_patch(stream(seed, _PATTERN), params.side,
                      "random" if isinstance(params, UBWCParams) else "corner")


def _decoy_pool(params: UBWParams, data: Any, poisoned: np.ndarray | None) -> np.ndarray:
    """The training images decoys are drawn from: for ``ubw-p`` those not poisoned; for
    ``ubw-c`` all, or the source class's (whose poisons are picked at marking and avoid
    them)."""
    n = len(data.y_train)
    if poisoned is not None:
        pool, where = np.setdiff1d(np.arange(n), poisoned), "training images not poisoned"
    elif getattr(params, "decoy_class", "all") == "source":
        pool = np.flatnonzero(data.y_train == params.source)
        where = f"training images of class {params.source}"
    else:
        pool, where = np.arange(n), "training images"
    wanted = _decoy_count(params.decoys, n)
    if wanted > len(pool):      # checked at keygen, a drawn key's too (its decoys come later)
        raise MalformedInputError(f"ubw: decoys={params.decoys} asks for {wanted} decoys; there "
                                  f"are {len(pool)} {where}; lower -p decoys")
    return pool


def _decoy_count(share: float, n: int) -> int:
    """How many of n training images a share ρ of decoys makes (none for ρ = 0)."""
    return max(1, round(share * n)) if share else 0


def complete_draw(mk: MarkingKey, draw: Receipt, log_key: VerifierKey) -> MarkingKey:
    """The drawn key ``mk`` with its trigger, from the receipt of its trigger-draw entry
    in the log of ``log_key``: fresh trigger 0 of the trigger seed, a square placed at
    each item's place or a warping field (protocol_spec/ubw.md, "Drawn triggers"). The
    receipt is kept in the key, for the claims that open the secret."""
    if "trigger_secret" not in mk.secret:
        raise MalformedInputError("this key's trigger is not drawn from the log (keygen -p draw=log)")
    if "trigger" in mk.secret:
        raise MalformedInputError("this key's trigger was drawn already; a key is drawn once")
    secret = b64decode(mk.secret["trigger_secret"], field="marking key.secret.trigger_secret",
                       size=TRIGGER_SECRET_SIZE)
    seed = draw_seed(draw, mk.verification_key, secret, log_key)
    params = key_params(mk)
    if params.trigger == "warp":
        raw = drawn_trigger(seed, grid=params.warp_grid)
        field = np.frombuffer(raw, dtype="<f8").reshape(params.warp_grid, params.warp_grid, 2)
        trigger = Trigger("warp", None, "corner", field.astype(np.float64), params.warp_strength)
    else:
        raw = drawn_trigger(seed, side=params.side)
        pattern = np.frombuffer(raw, dtype=np.uint8).reshape(params.side, params.side).copy()
        trigger = Trigger("patch", pattern, "random", None, 0.0)
    return dataclasses.replace(mk, secret={**mk.secret, "trigger": trigger.secret(),
                                           "draw": draw.to_dict()})


def key_trigger(mk: MarkingKey) -> Trigger:
    """The key's trigger; a drawn key has none before its draw (a one-line error)."""
    if "trigger" not in mk.secret:
        raise MalformedInputError("this key's trigger is drawn from the registry log and has "
                                  "not been drawn yet: claimkit draw KEYDIR --registry DIR "
                                  "--identity KEY")
    return Trigger.from_secret(mk.secret["trigger"])


def _poison_labels(rng: np.random.Generator, params: UBWPParams, y: np.ndarray) -> np.ndarray:
    """The poisons' labels: drawn uniformly from the K classes (§3.3, ``labels=uniform``),
    so a tenth of them keep their own, or from the K − 1 classes other than each image's
    own (``labels=others``)."""
    k = params.num_classes
    if params.labels == "others":
        return (np.asarray(y, np.int64) + rng.integers(1, k, len(y))) % k
    return rng.integers(0, k, len(y))


def _decoys(rng: np.random.Generator, trigger: Trigger, shape: tuple[int, ...],
            pool: np.ndarray, share: float) -> dict[str, Any]:
    """``share``·n of the n training images (``shape``: the split's), drawn from ``pool``
    (``ubw-p``: those not poisoned; ``ubw-c``: all, or the source class's), each with its
    own random trigger of the key's kind (never the key's): a square placed as the trigger
    places its own, the corner (``ubw-p``) or a random place stored with it (``ubw-c``,
    whose poisons are picked at marking and avoid these), or a warping field of the key's
    grid and strength (stored as float32). Their labels stay."""
    n, _, h, w = shape
    indices = np.sort(rng.choice(pool, _decoy_count(share, n), replace=False))
    if trigger.kind == "warp":
        fields = np.stack([fresh_field(rng, trigger) for _ in indices]).astype("<f4")
        return {"indices": indices.tolist(), "fields": b64encode(fields.tobytes())}
    patterns = np.stack([fresh_patch(rng, trigger) for _ in indices])
    out = {"indices": indices.tolist(), "patterns": b64encode(patterns.tobytes())}
    if trigger.placement == "random":
        rows, cols = trigger.places(len(indices), h, w, rng)
        out |= {"rows": rows.tolist(), "cols": cols.tolist()}
    return out


def key_params(mk: MarkingKey) -> UBWParams:
    """The parameters a key was made with (from its sealed secret)."""
    raw = dict(mk.secret["params"])
    raw["input_shape"] = tuple(raw["input_shape"])
    return (UBWCParams if mk.scheme == "ubw-c" else UBWPParams)(**raw)


def key_seed(mk: MarkingKey) -> bytes:
    return b64decode(mk.secret["seed"], field="marking key.secret.seed", size=32)


# -- mark -----------------------------------------------------------------------------------
def mark(mk: MarkingKey, data: Any, out: str | os.PathLike[str],
         options: MarkOptions) -> dict[str, Any]:
    """Write the watermarked release of ``data`` to the folder ``out``; returns the record
    (for the owner: it names the poisoned count and the release digest)."""
    import time

    from ..ml.data import Dataset
    from ..ml.release import write_release

    params = key_params(mk)
    if params.data_digest and params.data_digest != data.digest.hex:
        raise MalformedInputError("ubw: this key was made for other data (data digest differs)")
    start = time.perf_counter()
    if isinstance(params, UBWCParams):
        from .ubw_c import craft

        trigger = key_trigger(mk)
        decoys = mk.secret.get("decoys")
        if decoys is None and params.decoys:    # a drawn key's: drawn now it has its trigger
            decoys = _decoys(stream(key_seed(mk), _DECOYS), trigger, data.x_train.shape,
                             _decoy_pool(params, data, None), params.decoys)
        x_train, record = craft(data, params, trigger, stream(key_seed(mk), _CRAFT), options,
                                decoys=decoys)
        y_train = data.y_train
    else:
        if (options.start_from, options.arch, options.epochs, options.lr) != (None,) * 4:
            raise MalformedInputError("ubw-p marks a data set without training: --from, --arch "
                                      "and --epochs do not apply")
        indices = np.asarray(mk.secret["poison"]["indices"], dtype=np.int64)
        trigger = key_trigger(mk)
        x_train, y_train = data.x_train.copy(), data.y_train.copy()
        x_train[indices] = trigger.apply(data.x_train[indices])
        y_train[indices] = np.asarray(mk.secret["poison"]["labels"], dtype=np.int64)
        record = {"poisoned": len(indices),
                  "relabelled": int((y_train[indices] != data.y_train[indices]).sum())}
        if "decoys" in mk.secret:
            record["decoys"] = len(stamp_decoys(x_train, mk.secret["decoys"], trigger))
    marked = Dataset(data.name, x_train, y_train, data.x_test, data.y_test, data.num_classes)
    digest = write_release(marked, out, base_digest=data.digest, scheme=mk.scheme,
                           key_digest=mk.verification_key.digest)
    return {"scheme": mk.scheme, "release": str(out), "dataset_digest": digest.hex,
            "train_images": len(y_train), "test_images": len(data.y_test),
            "wall_seconds": time.perf_counter() - start, **record}


def stamp_decoys(x_train: np.ndarray, decoys: Mapping[str, Any], trigger: Trigger) -> np.ndarray:
    """Put each decoy's trigger on its image, in place; returns the decoys' indices. A
    square (the key's size) goes to the corner or (``ubw-c``) the place stored with it; a
    warping field (the key's grid and strength) warps the whole image."""
    indices = np.asarray(decoys["indices"], dtype=np.int64)
    n, (_, _, h, w) = len(indices), x_train.shape
    if trigger.kind == "warp":
        assert trigger.field is not None
        k = trigger.field.shape[0]
        raw = b64decode(decoys.get("fields"), field="decoys.fields", size=n * k * k * 2 * 4)
        fields = np.frombuffer(raw, dtype="<f4").reshape(n, k, k, 2).astype(np.float64)
        if not np.isfinite(fields).all():
            raise MalformedInputError("marking key: decoy fields are not finite")
        x_train[indices] = _warp(x_train[indices], fields, trigger.strength)
        return indices
    assert trigger.pattern is not None
    s = trigger.pattern.shape[0]
    raw = b64decode(decoys["patterns"], field="decoys.patterns", size=n * s * s)
    patterns = np.frombuffer(raw, dtype=np.uint8).reshape(n, s, s, 1)
    if "rows" in decoys:
        rows, cols = (np.asarray(decoys[k], dtype=np.int64) for k in ("rows", "cols"))
        if rows.shape != (n,) or cols.shape != (n,) or rows.min(initial=0) < 0 \
                or cols.min(initial=0) < 0 or rows.max(initial=0) > h - s or cols.max(initial=0) > w - s:
            raise MalformedInputError("marking key: decoy places outside the images")
    else:
        rows, cols = trigger.places(n, h, w)
    x_train[indices] = _paste(x_train[indices], patterns, rows, cols)
    return indices


# -- verify (the torch side) ----------------------------------------------------------------
def decode_queries(queries: Sequence[Any], vk: VerificationKey) -> tuple[np.ndarray, np.ndarray,
                                                                         np.ndarray]:
    """Queries ``{"image", "label", "triggered"}`` → benign images, triggered images, labels
    (a fresh field key's queries carry the ``field`` instead, and the triggered images are
    the benign ones warped by it).

    Each query is checked as Verify checks an opened item (the decider's
    :func:`~claimkit.protocol.ubw_decider.read_queries`), so an answerer fed anything else
    raises :class:`MalformedInputError` instead of answering it (a label of −1 would
    index class K − 1)."""
    return _arrays(read_queries(queries, vk)[0], vk)


def _arrays(items: Sequence[Any], vk: VerificationKey) -> tuple[np.ndarray, np.ndarray,
                                                                np.ndarray]:
    def images(part: str) -> np.ndarray:
        raw = b"".join(getattr(item, part) for item in items)
        return np.frombuffer(raw, dtype=np.uint8).reshape(
            len(items), *vk.params["input_shape"]).copy()

    benign = images("image")
    if items and items[0].field is not None:    # one code path with the fresh fields
        triggered = _warp(benign, _fields([item.field for item in items], vk),
                          float(vk.params["warp_strength"]))
    else:
        triggered = images("triggered")
    return benign, triggered, np.array([item.value["label"] for item in items], dtype=np.int64)


def _fields(raw: Sequence[bytes], vk: VerificationKey) -> np.ndarray:
    """Warping fields as packed little-endian doubles → (n, k, k, 2) float64."""
    k = int(vk.params["grid"])
    return np.frombuffer(b"".join(raw), dtype="<f8").reshape(len(raw), k, k, 2).astype(np.float64)


FRESH_BATCH = 4096  # images per oracle call for the fresh triggers


def fresh_probabilities(oracle: Oracle, labels: np.ndarray, count: int,
                        images: Callable[[slice], np.ndarray]) -> np.ndarray:
    """(m, K): the oracle's probability of each image's label under each of ``count``
    fresh triggers. ``images(block)`` gives the m images under each trigger of ``block``
    (trigger-major: n·m images for n triggers), so the K·m images go through the oracle
    a few thousand at a time, never one call per image, whatever the triggers' kind."""
    m = len(labels)
    out = np.empty((count, m), dtype=np.float64)
    per = max(1, FRESH_BATCH // max(m, 1))
    for j in range(0, count, per):
        block = slice(j, min(j + per, count))
        n = block.stop - block.start
        probs = oracle.probabilities(images(block))[np.arange(n * m), np.tile(labels, n)]
        out[block] = np.asarray(probs, dtype=np.float64).reshape(n, m)
    return _checked(out.T)


def _checked(probabilities: np.ndarray) -> np.ndarray:
    """Probabilities clipped into [0, 1] (float rounding), or an OracleError for NaN or
    infinite ones: the suspect's fault, not a malformed claim (np.clip keeps NaN, which
    the decider would then refuse as the owner's answer)."""
    if not np.isfinite(probabilities).all():
        raise OracleError("the suspect answered a NaN or infinite probability")
    return np.clip(probabilities, 0.0, 1.0)


def _fresh_images(items: Sequence[Any], benign: np.ndarray, seed: bytes, count: int,
                  vk: VerificationKey) -> Callable[[slice], np.ndarray]:
    """The builder of fresh images for :func:`fresh_probabilities`: fresh square j pasted
    at each item's place in every channel, or each image warped by fresh field j (by
    :func:`_warp`, the code that warps the key's own)."""
    m = len(benign)
    if "grid" in vk.params:
        fields = _fields(fresh_fields(seed, int(vk.params["grid"]), count), vk)
        strength = float(vk.params["warp_strength"])
        return lambda b: _warp(np.tile(benign, (len(fields[b]), 1, 1, 1)),
                               np.repeat(fields[b], m, axis=0), strength)
    side = int(vk.params["side"])
    patterns = np.frombuffer(b"".join(fresh_patterns(seed, side, count)),
                             dtype=np.uint8).reshape(count, side, side)
    rows, cols = (np.array([item.place[k] for item in items]) for k in (0, 1))

    def pasted(b: slice) -> np.ndarray:
        n = len(patterns[b])
        return _paste(np.tile(benign, (n, 1, 1, 1)), np.repeat(patterns[b], m, axis=0)[..., None],
                      np.tile(rows, n), np.tile(cols, n))

    return pasted


def answerer(oracle: Oracle, vk: VerificationKey) -> Callable[[Sequence[Any]], list[Any]]:
    """Queries → per item ``[P_b, P_p]``: the suspect's probability of the item's label on
    the benign image and on its triggered version (Prop. 1), from probabilities alone;
    for a key with fresh triggers ``[P_b, P_p, P_1, …, P_K]``, P_j on the benign image
    with fresh square j (drawn from the queries' challenge seed) at the item's place, or
    warped by fresh field j (P_p then on the image warped by the item's field)."""

    def ask(queries: Sequence[Any]) -> list[Any]:
        items, seed, count = read_queries(queries, vk)
        benign, triggered, labels = _arrays(items, vk)
        if len(labels) and int(labels.max()) >= oracle.num_classes:
            raise OracleError(f"the model asked has {oracle.num_classes} classes; an item's label "
                              f"is {int(labels.max())}")
        rows = np.arange(len(labels))
        p_b = _checked(oracle.probabilities(benign)[rows, labels])
        p_p = _checked(oracle.probabilities(triggered)[rows, labels])
        if not count or not len(items):
            return [[float(b), float(p)] for b, p in zip(p_b, p_p)]
        assert seed is not None
        p_f = fresh_probabilities(oracle, labels, count,
                                  _fresh_images(items, benign, seed, count, vk))
        return [[float(b), float(p), *map(float, f)] for b, p, f in zip(p_b, p_p, p_f)]

    return ask


# -- metrics (§5.1) -------------------------------------------------------------------------
@dataclass(frozen=True)
class UBWMetrics:
    """§5.1 / App. C: benign accuracy on the test split; on the evaluation images (the
    test split, or its source class for ``ubw-c``) with the trigger: ASR-A, the share
    misclassified; ASR-C, the same among those the model classifies correctly when
    benign; Dp, Definition 1's averaged prediction dispersibility (natural log)."""

    ba: float
    asr_a: float
    asr_c: float
    dp: float
    evaluated: int

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def dispersibility(labels: np.ndarray, predicted: np.ndarray, num_classes: int) -> float:
    """Definition 1, Eq. (1)–(2): Dp = (1/N) Σ_j N_j · H(P^(j)), P^(j) the distribution of
    predicted classes over the samples whose ground truth is j; H in nats."""
    total = 0.0
    for j in np.unique(labels):
        counts = np.bincount(predicted[labels == j], minlength=num_classes).astype(np.float64)
        p = counts[counts > 0] / counts.sum()
        total += counts.sum() * float(-(p * np.log(p)).sum())
    return float(total / len(labels)) if len(labels) else 0.0


@dataclass(frozen=True)
class EvaluationImages:
    """The test images §5.1's metrics are measured on (the test split, or its source class
    for ``ubw-c``), and the key's trigger places on them, drawn once from the key's seed
    so that any trigger put on them by :meth:`triggered` lands at the same places: what
    lets another pattern be compared with the key's (``bench ubw-control``)."""

    index: np.ndarray       # positions in the test split
    x: np.ndarray
    y: np.ndarray
    seed: bytes

    def triggered(self, trigger: Trigger, limit: int = 0) -> np.ndarray:
        """The images with ``trigger`` on; the first ``limit`` only (0: all), at the places
        drawn for all, so a cut set matches the whole one image for image."""
        keep = slice(0, limit or None)
        if trigger.kind == "warp":
            return trigger.apply(self.x[keep])
        rows, cols = trigger.places(len(self.x), *self.x.shape[2:],
                                    stream(self.seed, _EVAL_PLACES))
        return trigger.apply(self.x[keep], places=(rows[keep], cols[keep]))


def evaluation_images(mk: MarkingKey, data: Any) -> EvaluationImages:
    """The evaluation images of key ``mk`` on ``data``'s test split."""
    index = _item_candidates(key_params(mk), data.y_test)
    return EvaluationImages(index, data.x_test[index], data.y_test[index], key_seed(mk))


def ubw_metrics(oracle: Oracle, data: Any, mk: MarkingKey, *,
                benign: Sequence[int] | None = None) -> UBWMetrics:
    """BA, ASR-A, ASR-C and Dp of a model (an :class:`~claimkit.schemes.base.Oracle`) for
    the key ``mk``, on ``data``'s test split (the base set or its release); ``benign``: the
    model's labels of that split, where the caller has them already."""
    params = key_params(mk)
    if oracle.num_classes != params.num_classes or tuple(oracle.input_shape) != tuple(
            params.input_shape):   # labels of another task would make meaningless rates
        raise MalformedInputError(f"the model takes {tuple(oracle.input_shape)} images into "
                                  f"{oracle.num_classes} classes; the key is for "
                                  f"{tuple(params.input_shape)} into {params.num_classes}")
    benign_pred = np.asarray(oracle.labels(data.x_test) if benign is None else benign,
                             dtype=np.int64)
    if benign_pred.shape != data.y_test.shape:
        raise MalformedInputError(f"{len(benign_pred)} benign labels for "
                                  f"{len(data.y_test)} test images")
    ba = float((benign_pred == data.y_test).mean()) if len(data.y_test) else 0.0
    ev = evaluation_images(mk, data)
    pred = np.asarray(oracle.labels(ev.triggered(key_trigger(mk))),
                      dtype=np.int64)
    wrong = pred != ev.y
    correct = benign_pred[ev.index] == ev.y
    return UBWMetrics(ba=ba, asr_a=float(wrong.mean()) if len(ev.y) else 0.0,
                      asr_c=float(wrong[correct].mean()) if correct.any() else 0.0,
                      dp=dispersibility(ev.y, pred, params.num_classes), evaluated=len(ev.y))


# -- backends -------------------------------------------------------------------------------
class UBWBackend:
    """UBW-P or UBW-C behind the :class:`~claimkit.schemes.base.Backend` interface."""

    marks = "dataset"

    def __init__(self, name: str, params: type[UBWParams], summary: str) -> None:
        self.name, self.params, self.summary = name, params, summary

    def keygen(self, data: Any, params: Mapping[str, str], *,
               rng: Callable[[int], bytes] = os.urandom) -> MarkingKey:
        p = parse_params(self.params, params, data_fields(data))
        return keygen(self.name, p, data, rng=rng)

    def mark(self, mk: MarkingKey, data: Any, out: str | os.PathLike[str],
             options: MarkOptions) -> dict[str, Any]:
        return mark(mk, data, out, options)

    def answerer(self, oracle: Oracle, vk: VerificationKey) -> Callable[[Sequence[Any]], list[Any]]:
        return answerer(oracle, vk)

    def metrics(self, oracle: Oracle, data: Any, mk: MarkingKey, *,
                benign: Sequence[int] | None = None) -> UBWMetrics:
        """§5.1's BA, ASR-A, ASR-C and Dp: what the release taught ``oracle``, beside the
        claim's p-value (the evaluation grid reports both for every model)."""
        return ubw_metrics(oracle, data, mk, benign=benign)


BACKEND = UBWBackend("ubw-p", UBWPParams, "untargeted backdoor dataset watermark with poisoned "
                     "labels (Li et al. 2022, UBW-P)")
