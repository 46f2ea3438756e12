"""What an owner who grinds a warping key's field buys without the log's draw: the
false-accept rate of the rank test (and of the conjunction with Prop. 1) on models that
never saw the owner's release, when the owner tried N candidate fields on a model of
their own and kept the one that cost it the most.

    PYTHONPATH=. python docs/benchmarks/ubw-c-grinding.py OUT.json NAME=MODEL… [--pool 2000] \
        [--tau 0.25 0.1 …] [--costs FILE.npz]

For each model: P_b on 100 T-shirt test images of the warping runs' subset
(docs/benchmarks/warp_runs.py) and P_p under each of a pool of fields drawn as fresh
fields are (grid 4, strength 1: the runs' keys'). Then for every ordered pair (A, B) of
models, A the grinder's, B the target, and each N, 400 trials on a random split of the
pool: N candidates, the kept one the candidate of largest D on A; 199 reference fields;
p_rank = (1 + #{r : D_B(r) >= D_B(kept)}) / 200 on B, and Prop. 1 (at each ``--tau``,
the same trials) on B's pairs under the kept field. N = 1 is an honest owner: its rate
is at most α by construction. Trials share the pool, so they are not independent draws.
Names starting with "null" are clean models (the summary splits targets and grinders by
it). ``--costs`` keeps every model's P_b and P_p (the inference, minutes a model) in an
.npz, read back when it names the same models and pool, to re-run the trials alone."""
import argparse
import hashlib
import json
import os
import time

import numpy as np

from claimkit.ml.oracle import LocalModel
from claimkit.protocol.stats import paired_t_margin_test
from claimkit.protocol.ubw_decider import fresh_fields
from claimkit.schemes.ubw import _warp, fresh_probabilities
from warp_runs import DATA

GRID, STRENGTH, M, REFERENCE, TRIALS, ALPHA = 4, 1.0, 100, 199, 400, 0.01
NS = (1, 10, 30, 100, 300)

parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
parser.add_argument("out")
parser.add_argument("models", nargs="+", metavar="NAME=MODEL")
parser.add_argument("--pool", type=int, default=2000)
parser.add_argument("--tau", type=float, nargs="+", default=[0.25])
parser.add_argument("--costs", help="an .npz of P_b and P_p per model, written or read")
args = parser.parse_args()
models = dict(arg.split("=", 1) for arg in args.models)

index = np.flatnonzero(DATA.y_test == 0)[:M]
benign, labels = DATA.x_test[index], DATA.y_test[index]
seed = hashlib.sha256(b"claimkit ubw-c grinding pool").digest()
pool = np.frombuffer(b"".join(fresh_fields(seed, GRID, args.pool)), dtype="<f8").reshape(
    args.pool, GRID, GRID, 2).astype(np.float64)

costs, p_b, seconds = {}, {}, {}
cache = {}
if args.costs and os.path.exists(args.costs):
    with np.load(args.costs) as npz:
        cache = {k: npz[k] for k in npz.files}
for name, path in models.items():
    tag = hashlib.sha256(path.encode()).hexdigest()[:16]
    if f"pb_{tag}" in cache and cache[f"pp_{tag}"].shape == (M, args.pool):
        p_b[name], costs[name] = cache[f"pb_{tag}"], cache[f"pp_{tag}"]
        print(name, "from", args.costs, flush=True)
        continue
    start = time.perf_counter()
    model = LocalModel.from_file(path, device="cpu")
    p_b[name] = model.probabilities(benign)[np.arange(M), labels].astype(np.float64)
    p_p = fresh_probabilities(model, labels, args.pool, lambda b: _warp(
        np.tile(benign, (len(pool[b]), 1, 1, 1)), np.repeat(pool[b], M, axis=0), STRENGTH))
    costs[name] = p_p                                # (M, pool): P under each field
    seconds[name] = time.perf_counter() - start
    print(name, f"{seconds[name]:.0f} s", flush=True)
    if args.costs:
        cache.update({f"pb_{tag}": p_b[name], f"pp_{tag}": p_p})
        np.savez(args.costs, **cache)

rng = np.random.default_rng(0)
taus = [float(t) for t in args.tau]
rows = []
for a in costs:
    d_a = (p_b[a][:, None] - costs[a]).mean(0)
    for b in costs:
        if a == b:
            continue
        d_b = (p_b[b][:, None] - costs[b]).mean(0)
        for n in NS:
            rank_ok = 0
            prop1_ok, both = dict.fromkeys(taus, 0), dict.fromkeys(taus, 0)
            for _ in range(TRIALS):
                order = rng.permutation(args.pool)
                candidates, reference = order[:n], order[n:n + REFERENCE]
                kept = candidates[np.argmax(d_a[candidates])]
                p_rank = (1 + int((d_b[reference] >= d_b[kept]).sum())) / (REFERENCE + 1)
                rank_ok += p_rank <= ALPHA
                for tau in taus:
                    p1 = paired_t_margin_test(list(p_b[b]), list(costs[b][:, kept]), tau=tau,
                                              alpha=ALPHA).p_value
                    prop1_ok[tau] += p1 < ALPHA
                    both[tau] += p_rank <= ALPHA and p1 < ALPHA
            rows.append({"grinder": a, "target": b, "n": n, "trials": TRIALS,
                         "rank_accepts": rank_ok,
                         "prop1_accepts": {str(t): v for t, v in prop1_ok.items()},
                         "both_accept": {str(t): v for t, v in both.items()}})
            print(a, b, n, rank_ok, prop1_ok, both, flush=True)


def share(group: list[dict], key: str, tau: str | None = None) -> float:
    """Accepts over trials in ``group``: the rank test's, or Prop. 1's / both at ``tau``."""
    hits = sum(r[key] if tau is None else r[key][tau] for r in group)
    return hits / max(1, sum(r["trials"] for r in group))


def clean(name: str) -> bool:
    return name.startswith("null")


kinds = {"suspect_by_suspect": lambda r: not clean(r["grinder"]) and not clean(r["target"]),
         "suspect_by_clean": lambda r: clean(r["grinder"]) and not clean(r["target"]),
         "clean_target": lambda r: clean(r["target"])}
summary = {}
for n in NS:
    summary[str(n)] = {}
    for kind, pick in kinds.items():
        group = [r for r in rows if r["n"] == n and pick(r)]
        summary[str(n)][kind] = {"pairs": len(group), "rank_accepts": share(group, "rank_accepts"),
                                 **{f"prop1_accepts@{t}": share(group, "prop1_accepts", str(t))
                                    for t in taus},
                                 **{f"both_accept@{t}": share(group, "both_accept", str(t))
                                    for t in taus}}
fields_median = {name: float(np.median((p_b[name][:, None] - c).mean(0))) for name, c in costs.items()}
with open(args.out, "w") as f:
    json.dump({"pool": args.pool, "m": M, "reference": REFERENCE, "trials": TRIALS,
               "alpha": ALPHA, "taus": taus, "models": models,
               "median_field_cost": fields_median, "seconds": seconds, "summary": summary,
               "rows": rows}, f, indent=2)
print(json.dumps(summary, indent=1))
