"""EWE on digits: the SNNL-chosen trigger position (Algorithm 1) against a position drawn
from the key's seed: watermark success on the marked model and after distillation.

    OMP_NUM_THREADS=1 python docs/benchmarks/ewe-random-position.py > rows.jsonl

Four key seeds, each with the position Algorithm 1 picks and with a uniformly drawn one
(the experiment replaces ``_position``); marked with seed 5, distilled with the attack's
defaults (seed 0); "m.st" and "d.st" are the shares of the key's 100 items the marked
and the distilled model call the target (7). docs/proposals/owner-specific-ewe-move.md.
"""
import json, tempfile
from pathlib import Path
import numpy as np, torch
torch.set_num_threads(1)
import claimkit.schemes.ewe as E
from claimkit.ml.data import load_dataset
from claimkit.ml.oracle import LocalModel
from claimkit.schemes.base import MarkOptions
from claimkit.attacks.distill import distill
data = load_dataset("digits")
orig = E._position
mode = {"random": None}
def pos(model, xw, xt, size, temps):
    snnl = orig(model, xw, xt, size, temps)
    if mode["random"] is None:
        return snnl
    g = np.random.default_rng(mode["random"])
    H, W = xw.shape[2:]
    return int(g.integers(0, H - size + 1)), int(g.integers(0, W - size + 1))
E._position = pos
rows = []
for seed in (11, 12, 13, 14):
    for kind in ("snnl", "random"):
        mode["random"] = None if kind == "snnl" else seed
        seen = []
        def rec(*a, **k):
            r = pos(*a, **k); seen.append(r); return r
        E._position = rec
        rng = np.random.default_rng(seed)
        mk = E.BACKEND.keygen(data, {"device": "cpu"}, rng=lambda n: rng.bytes(n))
        E._position = pos
        with tempfile.TemporaryDirectory() as tmp:
            rec_ = E.BACKEND.mark(mk, data, Path(tmp, "m.st"), MarkOptions(seed=5, device="cpu", progress=False))
            distill(str(Path(tmp, "m.st")), data, Path(tmp, "d.st"), device="cpu", seed=0)
            out = {"seed": seed, "position": kind, "at": seen[-1],
                   "reference_false_rate": mk.verification_key.params["reference_false_rate"],
                   "marked_accuracy": rec_.get("test_accuracy")}
            for name in ("m.st", "d.st"):
                o = LocalModel.from_file(Path(tmp, name), device="cpu")
                imgs = E.BACKEND.answerer(o, mk.verification_key)([v["image"] for v in mk.items.values])
                out[name] = float(np.mean(np.asarray(imgs) == 7))
        rows.append(out); print(json.dumps(out), flush=True)
