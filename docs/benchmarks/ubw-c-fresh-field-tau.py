"""The margin τ of a fresh-field key: Prop. 1 at several τ on the claims of
ubw-c-fresh-field-claims.py, each combined with that claim's recorded p_rank.

    PYTHONPATH=. python docs/benchmarks/ubw-c-fresh-field-tau.py CLAIMS.json OUT.json \\
        RUN=MODEL… [null=MODEL…]          # the same arguments as the claims script

The rank test does not depend on τ, so only Prop. 1 is recomputed: the same keys without
fresh triggers (their committed triggered images are the field's warp of the same
images, made by the same code on this machine), the same 100 items (the same seeded
draw), [P_b, P_p] from each model, the paired t-test with margin τ."""
import json
import sys

from claimkit.eval.harness import claim_evidence
from claimkit.ml.oracle import LocalModel
from claimkit.protocol.stats import paired_t_margin_test
from claimkit.schemes.base import get_backend
from warp_runs import keys

TAUS = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25)
backend = get_backend("ubw-c")

claims = {(c["model"], c["key"]): c for c in json.load(open(sys.argv[1]))["claims"]}
pairs = [arg.split("=", 1) for arg in sys.argv[3:]]
runs, distinct = keys(pairs)
rows = []
for run, path in pairs:
    model = LocalModel.from_file(path, device="cpu")
    name_of_model = run if run != "null" else path.rsplit("/", 1)[-1][:12]
    for name, mk in distinct.values():
        recorded = claims[name_of_model, name]
        answers = claim_evidence(backend, mk, model, 100, seed=0).observations
        b, t = [a[0] for a in answers], [a[1] for a in answers]
        p = {str(tau): paired_t_margin_test(b, t, tau=tau, alpha=0.01).p_value for tau in TAUS}
        assert abs(p["0.25"] - recorded["p_prop1"]) <= 1e-6 * max(1.0, recorded["p_prop1"]), \
            (name_of_model, name, p["0.25"], recorded["p_prop1"])   # the same items and images
        rows.append({"model": name_of_model, "key": name, "label": recorded["label"],
                     "p_rank": recorded["p_rank"], "p_prop1": p})
summary = {}
for tau in TAUS:
    for label in ("owner", "other", "null"):
        group = [r for r in rows if r["label"] == label]
        summary.setdefault(str(tau), {})[label] = {
            "n": len(group),
            "prop1": sum(r["p_prop1"][str(tau)] < 0.01 for r in group),
            "both": sum(r["p_prop1"][str(tau)] < 0.01 and r["p_rank"] <= 0.01 for r in group)}
with open(sys.argv[2], "w") as f:
    json.dump({"summary": summary, "rows": rows}, f, indent=2)
print(json.dumps(summary, indent=1))
