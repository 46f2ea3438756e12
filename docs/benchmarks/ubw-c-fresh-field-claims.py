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

from claimkit.eval.harness import claim_evidence
from claimkit.ml.oracle import LocalModel
from claimkit.schemes.base import get_backend
from warp_runs import keys

backend = get_backend("ubw-c")

pairs = [arg.split("=", 1) for arg in sys.argv[2:]]
runs, distinct = keys(pairs, fresh="199")   # one claim per distinct field
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
