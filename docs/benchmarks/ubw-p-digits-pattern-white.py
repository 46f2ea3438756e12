"""Does a UBW-P key's square, by its white pixels, decide how strongly a suspect answers it?

Ad-hoc (2026-12-03), kept as the provenance of ubw-p-digits-pattern-white-2026-12-03-cpu.jsonl:

    PYTHONPATH=. python docs/benchmarks/ubw-p-digits-pattern-white.py 3 > OUT.jsonl

Digits, the recipe's epochs. Key seeds 0, 1, 2, … are drawn (as ``bench ubw`` draws them)
until each bin of white pixels in the 3×3 square (1, 2, 4–5, 7–8 of 9) has N keys; each
key's release is marked with decoys 0 and 0.1, a suspect (seed 100) is trained on it and
claimed with 100 items (τ = 0.25). The first line is the keys chosen, then one row a suspect.
"""
import json
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

from bench.ubw import Memory, claim_p_value, seeded
from claimkit.ml.data import load_dataset
from claimkit.ml.models import build
from claimkit.ml.recipes import recipe
from claimkit.ml.release import load_release
from claimkit.ml.train import TrainConfig, resolve_device, train
from claimkit.schemes.base import MarkOptions, get_backend
from claimkit.schemes.ubw import Trigger, ubw_metrics

data = load_dataset("digits")
r = recipe(data.name, data.input_shape)
cfg = TrainConfig(epochs=r["epochs"], batch_size=r["batch"], lr=r["lr"], seed=0, device="cpu",
                  label_smoothing=r["label_smoothing"], shift=r["shift"])
backend = get_backend("ubw-p")
bins = {"1": (1,), "2": (2,), "4-5": (4, 5), "7-8": (7, 8)}
per = int(sys.argv[1]) if len(sys.argv) > 1 else 3
chosen: dict[str, list[tuple[int, int]]] = {b: [] for b in bins}
for s in range(2000):
    mk = backend.keygen(data, {"decoys": "0"}, rng=seeded(s))
    white = int(np.count_nonzero(Trigger.from_secret(mk.secret["trigger"]).pattern))
    for b, ws in bins.items():
        if white in ws and len(chosen[b]) < per:
            chosen[b].append((s, white))
    if all(len(v) == per for v in chosen.values()):
        break
print(json.dumps(chosen), flush=True)
for rho in ("0", "0.1"):
    for b, keys in chosen.items():
        for s, white in keys:
            mk = backend.keygen(data, {"decoys": rho}, rng=seeded(s))
            with tempfile.TemporaryDirectory() as tmp:
                backend.mark(mk, data, Path(tmp) / "r", MarkOptions(device="cpu", seed=0, progress=False))
                model = build(r["arch"], num_classes=data.num_classes, input_shape=data.input_shape, seed=100)
                train(model, load_release(Path(tmp) / "r"), replace(cfg, seed=100), progress=False)
            oracle = Memory(model, resolve_device("cpu"), data.num_classes, data.input_shape)
            print(json.dumps({"rho": rho, "bin": b, "key_seed": s, "white": white,
                              **ubw_metrics(oracle, data, mk).to_dict(),
                              **claim_p_value(mk, oracle, 100, 0)}), flush=True)
