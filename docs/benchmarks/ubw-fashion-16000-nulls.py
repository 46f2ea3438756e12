"""Ten independently trained clean models at the 16,000-image CPU scale, under the bench's
UBW-P and UBW-C keys: Prop. 1's claim p-value (m = 100, τ = 0.25) under both, and under
the UBW-C key the rank tests of bench/ubw_control.py (199 uniform and 199 white-matched
fresh patterns). UBW-P's rank tests are left out: on this CPU they cost about ten
minutes a model (1,000 images × 399 patterns), as long as training one.

    PYTHONPATH=. python docs/benchmarks/ubw-fashion-16000-nulls.py OUT.json [MODELS_DIR [SEEDS]]

The models are those ``python -m bench ubw --subset 16000 --test-subset 2000 --epochs 20
--seed 0 --nulls 10 --models MODELS_DIR`` trains as its null models: the clean model
(seed 0, which the bench counts as the first) and seeds 1001–1009, the same recipe and
cache digest (a model the bench already trained is loaded, not trained again). The keys
are re-made with the bench's generators and parameters: UBW-P's (key seed 0; its square
and items do not depend on the decoys, which only the release uses) and the seed-0 UBW-C
key of docs/benchmarks.md (key seed 1, steps 40, target contrast). Writes OUT after each
model, so a run stopped early keeps what it finished. SEEDS (comma-separated, default the
ten above) splits the models between processes, e.g. two of one thread each
(``OMP_NUM_THREADS=1``), whose OUT files are then concatenated.
"""
import json
import sys
import time
from dataclasses import replace

from bench.model_cache import ModelCache
from bench.ubw import bench_key, claim_p_value, fit_model, recipe_config
from bench.ubw_control import control
from claimkit.ml.data import Dataset, load_dataset
from claimkit.ml.recipes import recipe

M, TAU, FRESH = 100, 0.25, 199
d = load_dataset("fashion-mnist")
data = Dataset(d.name, d.x_train[:16000], d.y_train[:16000], d.x_test[:2000], d.y_test[:2000],
               d.num_classes)
r = recipe(data.name, data.input_shape)
cfg = recipe_config(r, 20, "cpu", 0)
keys = {
    "ubw-p": bench_key("ubw-p", data, 0, m=M, tau=TAU, epochs=20, chosen={"decoys": "0.1"}),
    "ubw-c": bench_key("ubw-c", data, 1, m=M, tau=TAU, epochs=20,
                       chosen={"steps": "40", "retrains": "0", "target": "contrast"}),
}
plain = bench_key("ubw-p", data, 0, m=M, tau=TAU, epochs=20, chosen={"decoys": "0"})
same_claims = plain.verification_key == keys["ubw-p"].verification_key
cache = ModelCache(sys.argv[2] if len(sys.argv) > 2 else ".models")
out = {"train_images": 16000, "test_images": 2000, "epochs": 20, "m": M, "tau": TAU,
       "fresh": FRESH, "ubw_p_decoys_share_verification_key": same_claims, "models": []}
seeds = [int(s) for s in sys.argv[3].split(",")] if len(sys.argv) > 3 else [0, *range(1001, 1010)]
for seed in seeds:
    model, record = fit_model(r["arch"], replace(cfg, seed=seed), data, cache)
    started = time.perf_counter()
    row = {"seed": seed, "ba": record["test_accuracy"], "train_seconds": record["wall_seconds"],
           "cached": bool(record.get("cached"))}
    for scheme, mk in keys.items():
        row[scheme] = claim_p_value(mk, model, M, 0)
    row["ubw-c"]["control"] = control(model, keys["ubw-c"], data, fresh=FRESH)
    row["evaluation_seconds"] = time.perf_counter() - started
    out["models"].append(row)
    with open(sys.argv[1], "w") as f:
        json.dump(out, f, indent=2)
    ranks = row["ubw-c"]["control"]
    print(seed, row["ba"], row["ubw-p"]["p_value"], row["ubw-c"]["p_value"], ranks["p_rank"],
          ranks["matched_white"]["p_rank"], round(row["evaluation_seconds"]), flush=True)
