"""Usage: PYTHONPATH=. python docs/benchmarks/ubw-c-fashion-4000-mixed-epochs.py OUT [DATA_ROOT]

The 8-epoch run's release (same key seed 1, its 8-epoch clean model as the surrogate),
with suspect seed 100 trained 40 epochs: separates the suspect's training length from the
surrogate's. Mirrors bench/ubw.py main for --subset 4000 --test-subset 2000 --schemes ubw-c
--surrogate clean --ubw-c steps=40 --ubw-c retrains=0 --seed 0."""
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from bench.ubw import bench_key, claim_p_value, fit_model, recipe_config
from claimkit.ml.data import Dataset, load_dataset
from claimkit.ml.models import save_model
from claimkit.ml.recipes import recipe
from claimkit.ml.release import load_release
from claimkit.schemes.base import MarkOptions, get_backend
from claimkit.schemes.ubw import ubw_metrics

data = load_dataset("fashion-mnist", root=sys.argv[2] if len(sys.argv) > 2 else None)
data = Dataset(data.name, data.x_train[:4000], data.y_train[:4000], data.x_test[:2000],
               data.y_test[:2000], data.num_classes)
r = recipe(data.name, data.input_shape)
cfg8 = recipe_config(r, 8, "cpu", 0)
out = {}
t = time.perf_counter()
clean, rec = fit_model(r["arch"], cfg8, data, None)
out["clean_8ep_ba"] = rec["test_accuracy"]
backend = get_backend("ubw-c")
mk = bench_key("ubw-c", data, 1, epochs=8, chosen={"steps": "40", "retrains": "0"})
with tempfile.TemporaryDirectory() as tmp:
    surrogate = str(Path(tmp) / "clean.safetensors")
    save_model(clean.model, surrogate, arch=r["arch"], input_shape=data.input_shape,
               num_classes=data.num_classes)
    mark = backend.mark(mk, data, Path(tmp) / "rel", MarkOptions(device="cpu", seed=0,
                        progress=False, start_from=surrogate))
    out["final_alignment"] = mark["final_alignment"]
    release = load_release(Path(tmp) / "rel")
    out["release_digest"] = mark["dataset_digest"]
    suspect, srec = fit_model(r["arch"], replace(cfg8, epochs=40, seed=100), release, None)
    out["suspect_40ep"] = {"ba": srec["test_accuracy"], **ubw_metrics(suspect, data, mk).to_dict(),
                           **claim_p_value(mk, suspect, 100, 0),
                           "train_seconds": srec["wall_seconds"]}
out["seconds"] = time.perf_counter() - t
json.dump(out, open(sys.argv[1], "w"), indent=1)
print(json.dumps(out, indent=1))
