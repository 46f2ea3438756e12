"""UBW-P on digits: the metrics and a claim on all classes (claimkit) against the source
class only (App. C.2 of the paper and the authors' evaluation script, class 0).

    OMP_NUM_THREADS=1 python docs/benchmarks/ubw-p-per-class.py > rows.jsonl

Two keys (seeds 1 and 2) with the paper's release (``decoys=0 labels=uniform``), each
released and a suspect trained on the release (digits recipe, seed = the key's seed).
For each: ASR-A, ASR-C and Dp over all test images and over class 0, ASR-A per class,
mean P_b − P_p per class, and the p-value of a 30-pair claim drawn (seed 0) from all
classes and from class 0 (τ = 0.25, α = 0.01). Written from a review's script
(2026-12-07); docs/decisions.md, "UBW-P: items and metrics from every class".
"""
import json
import tempfile

import numpy as np
import torch

from claimkit.ml.data import load_dataset
from claimkit.ml.models import build
from claimkit.ml.recipes import recipe
from claimkit.ml.release import load_release
from claimkit.ml.train import TrainConfig, train
from claimkit.protocol.stats import paired_t_margin_test
from claimkit.schemes import ubw as U
from claimkit.schemes.base import MarkOptions

torch.set_num_threads(1)
d = load_dataset("digits")
r = recipe("digits")
for s in (1, 2):
    g = np.random.default_rng(s)
    mk = U.BACKEND.keygen(d, {"decoys": "0", "labels": "uniform"}, rng=lambda n: g.bytes(n))
    out = tempfile.mkdtemp()
    U.mark(mk, d, out, MarkOptions())
    rel = load_release(out)
    m = build(r["arch"], num_classes=10, input_shape=d.input_shape, seed=s)
    train(m, rel, TrainConfig(epochs=r["epochs"], lr=r["lr"], batch_size=r["batch"], seed=s,
                              device="cpu", shift=r["shift"]), progress=False)
    m.eval()
    ev = U.evaluation_images(mk, d)
    triggered = ev.triggered(U.key_trigger(mk))
    with torch.no_grad():
        def probs(x):
            return torch.softmax(m(torch.from_numpy(x).float() / 255), 1).numpy()
        p_benign, p_trig = probs(ev.x), probs(triggered)
    pred, ben = p_trig.argmax(1), p_benign.argmax(1)
    wrong, correct = pred != ev.y, ben == ev.y
    rows = np.arange(len(ev.y))
    dp = p_benign[rows, ev.y] - p_trig[rows, ev.y]
    row = {"key_seed": s}
    for name, k in (("all classes", np.ones(len(ev.y), bool)), ("class 0", ev.y == 0)):
        row[name] = {"ASR-A": float(wrong[k].mean()), "ASR-C": float(wrong[k & correct].mean()),
                     "Dp": float(U.dispersibility(ev.y[k], pred[k], 10))}
    row["ASR-A per class"] = [round(float(wrong[ev.y == c].mean()), 3) for c in range(10)]
    row["mean dP per class"] = [round(float(dp[ev.y == c].mean()), 3) for c in range(10)]
    pick = np.random.default_rng(0)
    for name, pool in (("claim from all classes", rows), ("claim from class 0", np.flatnonzero(ev.y == 0))):
        idx = pick.choice(pool, min(30, len(pool)), replace=False)
        res = paired_t_margin_test(p_benign[idx, ev.y[idx]].tolist(), p_trig[idx, ev.y[idx]].tolist(),
                                   tau=0.25, alpha=0.01)
        row[name] = {"p_t": res.params["p_t"], "p": res.p_value}
    print(json.dumps(row), flush=True)
