"""EWE's marking overhead alone on a Fashion-MNIST subset (CPU scale), without `bench move`'s
MOVE key (whose keygen refuses a style that under-trained references cannot tell apart).

    PYTHONPATH=. python docs/benchmarks/ewe-overhead-fashion-cpu.py SUBSET EPOCHS REPEATS

The clean run and the EWE run (the engine with EWE's interleaved watermark batches, as
`bench move --only overhead` times them) in alternating order after one warm-up epoch;
prints JSON with every run's seconds and the ratio of the medians.
"""

import json
import random
import statistics
import sys
from dataclasses import replace

from bench.common import envelope
from claimkit.ml.data import Dataset, load_dataset
from claimkit.ml.models import build
from claimkit.ml.recipes import recipe
from claimkit.ml.train import TrainConfig, resolve_device, train
from claimkit.schemes.base import get_backend
from claimkit.schemes.ewe import _interleave

subset, epochs, repeats = (int(a) for a in sys.argv[1:4])
full = load_dataset("fashion-mnist")
data = Dataset(full.name, full.x_train[:subset], full.y_train[:subset], full.x_test[:2000],
               full.y_test[:2000], full.num_classes)
device = resolve_device("cpu")
r = recipe(data.name)
rng = random.Random(0)
mk = get_backend("ewe").keygen(data, {"device": "cpu"}, rng=rng.randbytes)
cfg = TrainConfig(epochs=epochs, lr=r["lr"], batch_size=r["batch"], seed=0, device="cpu")


def run(kind: str, c: TrainConfig = cfg) -> float:
    model = build(r["arch"], num_classes=data.num_classes, input_shape=data.input_shape, seed=0)
    interleave = _interleave(mk, data, device, c.batch_size, 0) if kind == "ewe" else None
    return train(model, data, c, interleave=interleave, progress=False).wall_seconds


run("ewe", replace(cfg, epochs=1))
times: dict[str, list[float]] = {"clean": [], "ewe": []}
for i in range(repeats):
    for kind in (("clean", "ewe") if i % 2 == 0 else ("ewe", "clean")):
        times[kind].append(run(kind))
med = {k: statistics.median(v) for k, v in times.items()}
print(json.dumps(envelope("ewe-overhead", {
    "data": data.name, "train_images": subset, "epochs": epochs, "arch": r["arch"],
    "batch": r["batch"], "ratio": mk.secret["training"]["ratio"], "seconds": times,
    "median_seconds": med, "ewe_over_clean": med["ewe"] / med["clean"]}), indent=2))
