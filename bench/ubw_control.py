"""Is a UBW suspect's answer specific to the key's trigger? (saved models, or ``bench ubw --control``)

    CLAIMKIT_PASSPHRASE=… python -m bench ubw-control KEYDIR DATA MODEL [MODEL …]

Prop. 1 compares a triggered image with its benign original (H1: P_b > P_p + τ). A model
trained on *any* UBW-C release can learn to lose confidence under any square of the
trigger's size, and then another owner's key passes that test too (docs/benchmarks.md,
"16,000 images": Independent-T p = 0.0025 at τ = 0.25). This measures, on the key's
evaluation images (the source class of DATA's test split, at the key's evaluation
places), P_b − P_p under the key's pattern and under ``--fresh`` random patterns of the
same side drawn here, over the images the model classifies correctly, and two tests:

* ``p_rank``, a Monte Carlo rank test (Barnard 1963; Dwass 1957): (1 + the number of fresh
  patterns whose mean P_b − P_p reaches the key's) / (fresh + 1). A model that never saw
  the key's release is independent of its pattern, and the key's pattern was drawn from
  the same distribution as the fresh ones (:func:`~claimkit.schemes.ubw.make_patch`), so
  under that null the key's rank is uniform and P(p_rank ≤ α) ≤ α exactly, for any
  model, however sensitive to squares in general. It reaches 0.01 only with fresh ≥ 99.
  It assumes the key's pattern was drawn honestly: an owner who picks a pattern that
  hurts every model would pass it.
* ``p_paired_images``, the one-sided paired t-test of mean P_p(fresh) − P_p(key) > 0 over
  the images (``paired_t_margin_test`` with τ = 0, so with its floor 2^−m since 2026-12-07).
  It describes one model, but it is *not* a test of the claim: a fixed
  pattern differs from the fresh patterns' mean on any model, and with enough images
  that difference is significant for models that never saw the key (the CLI's
  independent model at 8,000 images: p = 0.011 on 171 images, against 999 fresh).

``white_spearman`` is the rank correlation, over the fresh patterns, between a pattern's
white pixels and the P_b − P_p it costs the model: whether an owner could grind a key by
brightness. ``same_white`` repeats the rank test among the fresh patterns with the key's
number of white pixels only (fewer of them, so its smallest p_rank is larger).
``matched_white`` is the rank test against ``fresh`` further patterns drawn with exactly
the key's number of white pixels at uniformly random positions: the distribution of
:func:`~claimkit.schemes.ubw.make_patch` given the key's count, so the test stays exact
for an honest key and brightness buys nothing. It is the reference a claim would need:
on 2026-12-04 an independent clean model ranked a 71 %-white key above all 199 uniform
fresh patterns (p_rank 0.005; docs/benchmarks.md, "UBW-C at 16,000 images").

``delta_fresh.above_tau`` is the share of fresh patterns whose mean P_b − P_p exceeds the
key's τ: how often another owner's random trigger would clear Prop. 1's margin on this
model. ``prop1_fresh`` runs Prop. 1 itself under each fresh trigger, as a claim would:
the paired margin test at the key's τ and α on the first m evaluation images, correct or
not (the decider does not filter), so ``accepted`` estimates how often another owner's
claim with a random trigger of the kind would pass on this model (five other keys give
five draws of that; 199 fresh triggers give 199). The key's own test on the same images
is ``key_p``. With a ``reference`` model (``bench ubw`` passes its clean model, the owner's
surrogate), ``prop1_fresh.reference_correct`` runs the same on the first m evaluation images
the reference classifies correctly: items an owner could choose at KeyGen, before any
suspect exists, closer to Prop. 1's "samples that can be correctly classified" than a
uniform draw (docs/benchmarks.md, "Items the owner's clean model classifies correctly").

Prints JSON. An analysis, not a verifier: the fresh patterns are not committed anywhere.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import replace
from typing import Any

import numpy as np
from scipy.stats import spearmanr

from claimkit.ml.data import load_dataset
from claimkit.ml.oracle import LocalModel
from claimkit.protocol.keys import MarkingKey
from claimkit.protocol.stats import paired_t_margin_test
from claimkit.schemes.ubw import Trigger, evaluation_images, fresh_field, key_params, make_patch

from .common import emit


def rank(delta_fresh: np.ndarray, delta_key: float) -> tuple[int, float]:
    """How many fresh patterns cost the model at least what the key's does, and the Monte
    Carlo p-value of the key's rank among them, (1 + that many) / (fresh + 1)."""
    reached = int((delta_fresh >= delta_key).sum())
    return reached, (1 + reached) / (len(delta_fresh) + 1)


def control(oracle: Any, mk: MarkingKey, data: Any, *, fresh: int = 199,
            seed: int = 12345, limit: int = 0, reference: Any = None) -> dict[str, Any]:
    """The split of one model's answer: P_b − P_p under the key's trigger and under
    ``fresh`` random ones of its kind (squares of its side at the same places, or fields of
    its grid and strength), with the rank test and the per-image paired test of the
    module's docstring (the white-pixel analyses for squares only); on the first
    ``limit`` evaluation images (0: all; UBW-P's are the whole test split). ``reference``
    (an oracle) adds Prop. 1 on the images it classifies correctly."""
    trigger = Trigger.from_secret(mk.secret["trigger"])
    ev = evaluation_images(mk, data)
    keep = slice(0, limit or None)       # the places are drawn for all, then cut: the same
    x, y = ev.x[keep], ev.y[keep]        # as the metrics' on the images kept
    rng = np.random.default_rng(seed)
    if trigger.kind == "warp":           # fresh fields of the key's grid and strength
        patterns = [replace(trigger, field=fresh_field(rng, trigger)) for _ in range(fresh)]
    else:
        assert trigger.pattern is not None
        patterns = [make_patch(rng, trigger.pattern.shape[0], trigger.placement)
                    for _ in range(fresh)]
    # The same places for every pattern: only the pattern differs between the columns.
    rows = np.arange(len(y))
    benign = oracle.probabilities(x)
    correct = benign.argmax(1) == y
    if correct.sum() < 2:   # a toy model: no images to rank on, so no evidence (p = 1)
        return {"correct": int(correct.sum()), "p_rank": 1.0,
                "skipped": "fewer than 2 correctly classified images"}

    def p_true(t: Trigger) -> np.ndarray:
        return oracle.probabilities(ev.triggered(t, limit))[rows, y]

    p_b, p_key = benign[rows, y], p_true(trigger)
    p_fresh = np.array([p_true(t) for t in patterns])
    fresh_mean = p_fresh.mean(0)[correct]
    delta_key = float((p_b - p_key)[correct].mean())
    delta_fresh = (p_b - p_fresh)[:, correct].mean(1)
    reached, p_rank = rank(delta_fresh, delta_key)
    params = key_params(mk)
    first = slice(0, params.m)           # a claim's m pairs, every image of them

    def prop1(p_p: np.ndarray, items: Any = first) -> float:
        return paired_t_margin_test(p_b[items].tolist(), p_p[items].tolist(), tau=params.tau,
                                    alpha=params.alpha).p_value

    def prop1_summary(items: Any) -> dict[str, Any]:
        fresh_p = np.array([prop1(p, items) for p in p_fresh])
        return {"m": len(p_b[items]), "key_p": prop1(p_key, items),
                "accepted": float((fresh_p <= params.alpha).mean()),
                "min_p": float(fresh_p.min())}

    prop1_fresh = prop1_summary(first)
    if reference is not None:
        owner_correct = np.flatnonzero(np.asarray(reference.labels(x)) == y)[:params.m]
        prop1_fresh["reference_correct"] = (
            prop1_summary(owner_correct) if len(owner_correct) >= 2
            else {"m": len(owner_correct), "skipped": "fewer than 2 such images"})
    out = {"correct": int(correct.sum()), "delta_key": delta_key,
           "delta_fresh": {"min": float(delta_fresh.min()),
                           "median": float(np.median(delta_fresh)),
                           "max": float(delta_fresh.max()),
                           "above_tau": float((delta_fresh > params.tau).mean())},
           "key_minus_fresh": float((fresh_mean - p_key[correct]).mean()),
           "fresh_reaching_key": reached, "p_rank": p_rank,
           "p_paired_images": paired_t_margin_test(fresh_mean.tolist(), p_key[correct].tolist(),
                                                   tau=0.0).p_value,
           "prop1_fresh": prop1_fresh}
    if trigger.pattern is None:          # a field has no white pixels to grind
        return out
    # Grinding (docs/proposals/ubw-c-key-specific-test.md): does a brighter square cost
    # this model more? Then the fresh patterns to rank the key among are those with the
    # key's number of white pixels.
    white = np.array([np.count_nonzero(t.pattern) for t in patterns])
    key_white = np.count_nonzero(trigger.pattern)
    same = white == key_white
    reached_same, p_same = rank(delta_fresh[same], delta_key)
    side = trigger.pattern.shape[0]
    matched = [replace(trigger, pattern=((rng.permutation(side * side) < key_white) * 255)
                       .astype(np.uint8).reshape(side, side)) for _ in range(fresh)]
    delta_matched = (p_b - np.array([p_true(t) for t in matched]))[:, correct].mean(1)
    reached_matched, p_matched = rank(delta_matched, delta_key)
    return {**out, "key_white": key_white / trigger.pattern.size,
            "white_spearman": float(spearmanr(white, delta_fresh).statistic),
            "same_white": {"fresh": int(same.sum()), "reaching_key": reached_same,
                           "p_rank": p_same},
            "matched_white": {"median": float(np.median(delta_matched)),
                              "max": float(delta_matched.max()),
                              "reaching_key": reached_matched,
                              "p_rank": p_matched}}


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(prog="python -m bench ubw-control")
    p.add_argument("keydir")
    p.add_argument("data")
    p.add_argument("models", nargs="+")
    p.add_argument("--fresh", type=int, default=199,
                   help="random patterns to compare with (99 or more for p_rank ≤ 0.01)")
    p.add_argument("--seed", type=int, default=12345, help="seed of the fresh patterns")
    p.add_argument("--limit", type=int, default=0,
                   help="the first N evaluation images only (0: all)")
    p.add_argument("--reference", default=None, metavar="MODEL",
                   help="the owner's clean model: also Prop. 1 on the images it gets right")
    args = p.parse_args(argv)
    if args.fresh < 1 or args.limit < 0:
        p.error("--fresh must be at least 1, --limit at least 0")
    mk = MarkingKey.load(args.keydir, os.environ["CLAIMKIT_PASSPHRASE"])
    data = load_dataset(args.data)
    reference = LocalModel.from_file(args.reference) if args.reference else None
    models = {path: control(LocalModel.from_file(path), mk, data, fresh=args.fresh, seed=args.seed,
                            limit=args.limit, reference=reference)
              for path in args.models}
    emit("ubw-control", {"key": args.keydir, "fresh": args.fresh, "seed": args.seed,
                         "limit": args.limit, "reference": args.reference, "models": models})
