"""Re-rank the bench seed-0 UBW-C key (16,000 Fashion-MNIST images, `python -m bench ubw
--subset 16000 --test-subset 2000 --seed 0 --schemes ubw-c …`) on saved models, with
uniform and with white-matched fresh patterns (bench/ubw_control.py's ``matched_white``).

    PYTHONPATH=. python docs/benchmarks/ubw-c-fashion-16000-matched-white.py OUT.json MODEL…

The key is re-made with the bench's generator and parameters (its ``p_rank`` on the
seed-0 clean model equals the bench run's, 0.075); the models were the bench's
``--models`` files of the clean (seed 0) and independent (seed 1001) runs."""
import json
import sys

from bench.ubw import bench_key
from bench.ubw_control import control
from claimkit.ml.data import Dataset, load_dataset
from claimkit.ml.oracle import LocalModel

d = load_dataset("fashion-mnist")
data = Dataset(d.name, d.x_train[:16000], d.y_train[:16000], d.x_test[:2000], d.y_test[:2000],
               d.num_classes)
mk = bench_key("ubw-c", data, 1, epochs=20,      # bench: key seed = seed + 1
               chosen={"steps": "40", "retrains": "0", "target": "contrast"})
out = {path: control(LocalModel.from_file(path, device="cpu"), mk, data, fresh=199)
       for path in sys.argv[2:]}
with open(sys.argv[1], "w") as f:
    json.dump(out, f, indent=2)
