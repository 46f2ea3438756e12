"""Fresh-field claims (`-p fresh=199`) on saved models of the 2026-12-06 Intel runs of
docs/benchmarks.md, "More crafting under attacked-class decoys" (4,000 Fashion-MNIST
images × 40 epochs, `--ubw-c trigger=warp warp_strength=1 … decoys=0.005
decoy_class=source target=specific`): each suspect claimed under its own key and under
the other runs' keys, and each independently trained clean model under every key.

    PYTHONPATH=. python docs/benchmarks/ubw-c-fresh-field-claims.py OUT.json \\
        RUN=MODEL… [null=MODEL…]

RUN names a run as `key<seed>-s<steps>-r<re-trainings>`; its key is re-made with the
bench's generator and parameters plus `fresh=199` (the same field and items: fresh only
changes what the items carry), MODEL is the run's suspect from the bench's `--models`
cache. A claim opens 100 items (a seeded draw) under a stand-in challenge
(claimkit.eval.harness.claim_evidence: the claim without a log), so the fresh fields are
drawn as a logged claim would draw them from its own seed."""
import json
import sys
import time

from bench.ubw import bench_key
from claimkit.eval.harness import claim_evidence
from claimkit.ml.data import Dataset, load_dataset
from claimkit.ml.oracle import LocalModel
from claimkit.schemes.base import get_backend

d = load_dataset("fashion-mnist")
data = Dataset(d.name, d.x_train[:4000], d.y_train[:4000], d.x_test[:2000], d.y_test[:2000],
               d.num_classes)
backend = get_backend("ubw-c")


def key(run: str):
    seed, steps, retrains = (int(part[1:] if i else part[3:]) for i, part in
                             enumerate(run.split("-")))
    return bench_key("ubw-c", data, seed, epochs=40, chosen={
        "trigger": "warp", "warp_strength": "1", "match_layers": "2", "steps": str(steps),
        "retrains": str(retrains), "surrogate_epochs": "20", "decay": "round",
        "decoys": "0.005", "decoy_class": "source", "target": "specific", "fresh": "199"})


pairs = [arg.split("=", 1) for arg in sys.argv[2:]]
runs = {run: key(run) for run, _ in pairs if run != "null"}
distinct = {}       # one claim per distinct field (key 1's three runs share its trigger)
for run, mk in runs.items():
    distinct.setdefault(mk.verification_key.digest.hex, (run, mk))
rows = []
for run, path in pairs:
    model = LocalModel.from_file(path, device="cpu")
    own = runs.get(run)
    for name, mk in distinct.values():
        same = own is not None and mk.verification_key.digest == own.verification_key.digest
        label = "owner" if same else ("null" if run == "null" else "other")
        began = time.perf_counter()
        ev = claim_evidence(backend, mk, model, 100, seed=0)
        row = {"model": run if run != "null" else path.rsplit("/", 1)[-1][:12],
               "key": name, "label": label, "accepted": ev.accepted,
               "p": ev.result.p_value, "p_prop1": ev.details["p_prop1"],
               "p_rank": ev.details["p_rank"], "d_key": ev.details["d_key"],
               "d_fresh_median": ev.details["d_fresh_median"],
               "seconds": time.perf_counter() - began}
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
with open(sys.argv[1], "w") as f:
    json.dump({"claims": rows}, f, indent=2)
