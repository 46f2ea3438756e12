"""Do other owners' keys of the same kind accuse a model marked by one key?

    OMP_NUM_THREADS=1 python docs/benchmarks/cross-key.py ewe > ewe-cross-key.json
    OMP_NUM_THREADS=1 python docs/benchmarks/cross-key.py move > move-cross-key.json
    OMP_NUM_THREADS=1 python docs/benchmarks/cross-key.py trigger-set > ts-cross-key.json

On digits (the embedded set, CPU), for a scheme that marks models: several keys, each
from its own seed (``KEYS``: KeyGen's defaults but where named), models marked with the
first two (the recipe's epochs, seeds 5 and 6) and a clean model (seed 7, ``claimkit
train``'s recipe). Every model is asked every item of every key through the scheme's
own answerer, as a claim opening all items would ask it, and the key's decider gives
the p-value (α = the key's). A key is specific to what its owner marked if it accepts
its own marked model only.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from claimkit.ml.data import load_dataset
from claimkit.ml.jobs import fit_and_save
from claimkit.ml.oracle import LocalModel
from claimkit.protocol.scheme import decider_for
from claimkit.schemes.base import MarkOptions, get_backend

KEYS = {
    "ewe": {"A": (1, {}), "B": (2, {}), "C": (3, {"trigger_size": "3"}),
            "D": (4, {"source": "3", "target": "5"}), "E": (5, {"fgsm": "false"})},
    "move": {name: (seed, {}) for seed, name in enumerate("ABCDEF", 1)},
    "trigger-set": {name: (seed, {}) for seed, name in enumerate("ABCDEF", 1)},
}


def main(scheme: str) -> None:
    torch.set_num_threads(1)
    data = load_dataset("digits")
    backend, decider = get_backend(scheme), decider_for(scheme)
    start = time.time()
    keys = {}
    for name, (seed, params) in KEYS[scheme].items():
        rng = np.random.default_rng(seed)
        given = {**params, **({"device": "cpu"} if scheme != "trigger-set" else {})}
        keys[name] = backend.keygen(data, given, rng=lambda n, r=rng: r.bytes(n))
    cells = []
    with tempfile.TemporaryDirectory() as tmp:
        files = {}
        for name, seed in (("A", 5), ("B", 6)):
            files[f"marked with {name}"] = out = Path(tmp, f"{name}.safetensors")
            backend.mark(keys[name], data, out, MarkOptions(seed=seed, device="cpu", progress=False))
        files["clean (seed 7)"] = out = Path(tmp, "clean.safetensors")
        fit_and_save(data, out, seed=7, device="cpu", progress=False)
        for model_name, path in files.items():
            oracle = LocalModel.from_file(path, device="cpu")
            for key_name, mk in keys.items():
                vk = mk.verification_key
                openings = mk.open(range(len(mk.items.values)))
                answers = backend.answerer(oracle, vk)(decider.queries(vk, openings))
                evidence = decider.decide(vk, openings, answers)
                cells.append({"model": model_name, "key": key_name,
                              "details": {k: v for k, v in evidence.details.items()
                                          if not isinstance(v, list)},
                              "p_value": evidence.result.p_value, "accepted": evidence.accepted})
    json.dump({"what": f"{scheme} cross-key claims on digits",
               "keys": {k: {"seed": s, "params": p} for k, (s, p) in KEYS[scheme].items()},
               "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"),
               "seconds": round(time.time() - start, 1), "cells": cells}, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main(sys.argv[1])
