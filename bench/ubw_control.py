"""Is a UBW suspect's answer specific to the key's trigger? (saved models, or ``bench ubw --control``)

    CLAIMKIT_PASSPHRASE=… python -m bench ubw-control KEYDIR DATA MODEL [MODEL …]

Prop. 1 compares a triggered image with its benign original (H1: P_b > P_p + τ). A model
trained on *any* UBW-C release can learn to lose confidence under any square of the
trigger's size, and then another owner's key passes that test too (docs/benchmarks.md,
"16,000 images": Independent-T p = 0.0025 at τ = 0.25). This measures, on the key's
evaluation images (the source class of DATA's test split, at the key's evaluation
places), P_b − P_p under the key's pattern and under ``--fresh`` random patterns of the
same side drawn here, and the one-sided paired t-test of mean P_p(fresh) − P_p(key) > 0
over the images the model classifies correctly. Prints JSON. An analysis, not a
verifier: the fresh patterns are not committed anywhere.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

import numpy as np

from claimkit.ml.data import load_dataset
from claimkit.ml.oracle import LocalModel
from claimkit.protocol.keys import MarkingKey
from claimkit.protocol.stats import paired_t_test
from claimkit.schemes.ubw import (_EVAL_PLACES, Trigger, _item_candidates, key_params, key_seed,
                                  make_patch, stream)

from .common import emit


def control(oracle: Any, mk: MarkingKey, data: Any, *, fresh: int = 8,
            seed: int = 12345) -> dict[str, Any]:
    """The split of one model's answer for a square-trigger key: P_b − P_p under the key's
    pattern and under ``fresh`` random patterns (same side, same places), and the paired
    test of mean P_p(fresh) − P_p(key) > 0 over the correctly classified images."""
    trigger = Trigger.from_secret(mk.secret["trigger"])
    if trigger.pattern is None:
        raise ValueError("the key's trigger is a warping field, not a square")
    keep = _item_candidates(key_params(mk), data.y_test)
    x, y = data.x_test[keep], data.y_test[keep]
    rng = np.random.default_rng(seed)
    patterns = [make_patch(rng, trigger.pattern.shape[0], trigger.placement) for _ in range(fresh)]
    # The same places for every pattern: only the pattern differs between the columns.
    rows = np.arange(len(y))
    benign = oracle.probabilities(x)
    correct = benign.argmax(1) == y

    def p_true(t: Trigger) -> np.ndarray:
        return oracle.probabilities(t.apply(x, stream(key_seed(mk), _EVAL_PLACES)))[rows, y]

    p_b, p_key = benign[rows, y], p_true(trigger)
    p_fresh = np.array([p_true(t) for t in patterns])
    fresh_mean = p_fresh.mean(0)[correct]
    return {"correct": int(correct.sum()), "key_white": float(trigger.pattern.mean() / 255),
            "delta_key": float((p_b - p_key)[correct].mean()),
            "delta_fresh": [float((p_b - f)[correct].mean()) for f in p_fresh],
            "key_minus_fresh": float((fresh_mean - p_key[correct]).mean()),
            "p_value": paired_t_test(fresh_mean, p_key[correct]).p_value}


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(prog="python -m bench ubw-control")
    p.add_argument("keydir")
    p.add_argument("data")
    p.add_argument("models", nargs="+")
    p.add_argument("--fresh", type=int, default=8, help="random patterns to compare with")
    p.add_argument("--seed", type=int, default=12345, help="seed of the fresh patterns")
    args = p.parse_args(argv)
    mk = MarkingKey.load(args.keydir, os.environ["CLAIMKIT_PASSPHRASE"])
    data = load_dataset(args.data)
    models = {path: control(LocalModel.from_file(path), mk, data, fresh=args.fresh, seed=args.seed)
              for path in args.models}
    emit("ubw-control", {"key": args.keydir, "fresh": args.fresh, "seed": args.seed,
                         "models": models})
