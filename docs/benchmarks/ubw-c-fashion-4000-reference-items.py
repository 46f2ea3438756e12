"""Prop. 1 on items the owner's clean model classifies correctly, on saved models of the
2026-12-06 Intel runs of docs/benchmarks.md, "More crafting under attacked-class decoys"
(`python -m bench ubw --subset 4000 --test-subset 2000 --epochs 40 --schemes ubw-c
--ubw-c trigger=warp … --ubw-c decoys=0.005 --ubw-c decoy_class=source --first-key K`).

    PYTHONPATH=. python docs/benchmarks/ubw-c-fashion-4000-reference-items.py OUT.json \\
        CLEAN RUN=MODEL… [null=MODEL…]

RUN names a run as `key<seed>-s<steps>-r<re-trainings>`; its key is re-made with the
bench's generator and parameters (its `delta_key` equals the run's), MODEL is the run's
suspect from the bench's `--models` cache. Each `null=MODEL` (an independently trained
clean model) is tried under every distinct key. CLEAN is the seed-0 clean model, the owner's
surrogate: `bench.ubw_control.control(..., reference=CLEAN)`."""
import json
import sys

from bench.ubw_control import control
from claimkit.ml.oracle import LocalModel
from warp_runs import DATA as data
from warp_runs import keys

clean = LocalModel.from_file(sys.argv[2], device="cpu")
pairs = [arg.split("=", 1) for arg in sys.argv[3:]]
runs, distinct = keys(pairs)   # a null model under each key once
out = {}
for run, path in pairs:
    model = LocalModel.from_file(path, device="cpu")
    for name, mk in ([(run, runs[run])] if run != "null" else distinct.values()):
        label = name if run != "null" else f"null {path.rsplit('/', 1)[-1][:12]} under {name}"
        out[label] = control(model, mk, data, fresh=199, reference=clean)
        print(label, json.dumps(out[label]["prop1_fresh"]), file=sys.stderr, flush=True)
with open(sys.argv[1], "w") as f:
    json.dump(out, f, indent=2)
