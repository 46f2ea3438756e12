"""The warping-field runs of docs/benchmarks.md, "More crafting under attacked-class
decoys" (2026-12-06, Intel: `python -m bench ubw --subset 4000 --test-subset 2000
--epochs 40 --schemes ubw-c --ubw-c trigger=warp … --first-key K`), as the record
scripts beside this module re-make them: the data subset and each run's key. The
scripts import it by name (running a script puts this folder on ``sys.path``)."""
from bench.ubw import bench_key
from claimkit.ml.data import Dataset, load_dataset

_full = load_dataset("fashion-mnist")
DATA = Dataset(_full.name, _full.x_train[:4000], _full.y_train[:4000], _full.x_test[:2000],
               _full.y_test[:2000], _full.num_classes)


def key(run: str, **extra: str):
    """The key of run `key<seed>-s<steps>-r<re-trainings>`, re-made with the bench's
    generator and parameters (its `delta_key` equals the run's), plus ``extra`` ones
    (``fresh="199"`` keeps the field and items, changing only what the items carry)."""
    seed, steps, retrains = (int(part[1:] if i else part[3:]) for i, part in
                             enumerate(run.split("-")))
    return bench_key("ubw-c", DATA, seed, epochs=40, chosen={
        "trigger": "warp", "warp_strength": "1", "match_layers": "2", "steps": str(steps),
        "retrains": str(retrains), "surrogate_epochs": "20", "decay": "round",
        "decoys": "0.005", "decoy_class": "source", "target": "specific", **extra})


def keys(pairs: list[list[str]], **extra: str) -> tuple[dict, dict]:
    """For `RUN=MODEL` pairs (`null=MODEL` for a clean model): each run's key, and one
    (run, key) per distinct key (key 1's three runs share its trigger and digest)."""
    runs = {run: key(run, **extra) for run, _ in pairs if run != "null"}
    distinct: dict = {}
    for run, mk in runs.items():
        distinct.setdefault(mk.verification_key.digest.hex, (run, mk))
    return runs, distinct
