"""Does an EWE-marked digits model respond to the trigger at other positions, or to
other patterns at its position? (docs/proposals/owner-specific-ewe-move.md)

    OMP_NUM_THREADS=1 python docs/benchmarks/ewe-position-grid.py > grid.json

One default EWE key (seed 1; the preset pair 1 → 7, a 2×2 trigger at the position
Algorithm 1 picks), a model marked with it (seed 5) and a clean model (seed 7); the
source-class *test* images (never in a key) with a white square at every position,
and with 50 random grey 2×2 patterns at the key's position: the share called 7.
"""
import json, tempfile
from pathlib import Path
import numpy as np, torch
torch.set_num_threads(1)
import claimkit.schemes.ewe as E
from claimkit.ml.data import load_dataset
from claimkit.ml.oracle import LocalModel
from claimkit.schemes.base import MarkOptions
from claimkit.ml.jobs import fit_and_save
data = load_dataset("digits")
seen = []
orig = E._position
def rec(*a, **k):
    r = orig(*a, **k); seen.append(r); return r
E._position = rec
rng = np.random.default_rng(1)
mk = E.BACKEND.keygen(data, {"device": "cpu"}, rng=lambda n: rng.bytes(n))
pos = seen[-1]; size = 2
src_test = data.x_test[data.y_test == 1]          # unseen source-class images
out = {"position": pos, "n": int(len(src_test))}
with tempfile.TemporaryDirectory() as tmp:
    E.BACKEND.mark(mk, data, Path(tmp, "a.st"), MarkOptions(seed=5, device="cpu", progress=False))
    fit_and_save(data, Path(tmp, "c.st"), seed=7, device="cpu", progress=False)
    for name in ("a.st", "c.st"):
        o = LocalModel.from_file(Path(tmp, name), device="cpu")
        def rate(imgs): return float((np.asarray(o.labels(imgs)) == 7).mean())
        grid = np.zeros((8 - size + 1, 8 - size + 1))
        for r in range(grid.shape[0]):
            for c in range(grid.shape[1]):
                x = src_test.copy(); x[:, :, r:r + size, c:c + size] = 255; grid[r, c] = rate(x)
        pats = []
        g = np.random.default_rng(0)
        for _ in range(50):
            x = src_test.copy()
            x[:, :, pos[0]:pos[0] + size, pos[1]:pos[1] + size] = g.integers(0, 256, (size, size), dtype=np.uint8)
            pats.append(rate(x))
        out[name] = {"plain": rate(src_test), "white square by position": grid.round(2).tolist(),
                     "random grey patterns at the key's position (50)": sorted(round(p, 2) for p in pats)}
print(json.dumps(out, indent=1))
