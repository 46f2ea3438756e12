"""What UBW-C's fresh triggers cost a claim: answering and deciding m opened items with
K fresh squares against the same claim without them, alternating, in one run.

    python docs/benchmarks/ubw-c-fresh-claim-cost.py MODEL.safetensors [--fresh 199]
        [--m 100] [--repeats 3] [--device cpu] > cost.json

Two UBW-C keys from the same seed on Fashion-MNIST (the same items and square; one with
``fresh=K``), m items opened under one stand-in challenge, then for each key, in turn:
the answerer on the suspect (2·m images without fresh triggers, (K + 2)·m with them)
and the decider. Prints medians and their ratio. The suspect is any fmnist-net model
file; what it learned does not change the cost.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import statistics
import time

import torch

from claimkit.ml.data import load_dataset
from claimkit.ml.oracle import LocalModel
from claimkit.protocol.scheme import decider_for
from claimkit.schemes.base import get_backend


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("--fresh", type=int, default=199)
    ap.add_argument("--m", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()

    data = load_dataset("fashion-mnist")
    backend = get_backend("ubw-c")
    seed = hashlib.sha256(b"ubw-c fresh claim cost").digest()
    keys = {k: backend.keygen(data, {"items": str(3 * args.m), "m": str(args.m), "fresh": str(k)},
                              rng=lambda n: seed[:n]) for k in (0, args.fresh)}
    challenge = hashlib.sha256(b"stand-in challenge").digest()
    oracle = LocalModel.from_file(args.model, device=args.device)
    timings: dict[int, dict[str, list[float]]] = {k: {"answer": [], "decide": []} for k in keys}
    for _ in range(args.repeats):
        for k, mk in keys.items():
            vk = mk.verification_key
            openings = mk.open(list(range(args.m)))
            decider = decider_for(vk.scheme)
            queries = decider.queries(vk, openings, challenge=challenge)
            began = time.perf_counter()
            answers = backend.answerer(oracle, vk)(queries)
            timings[k]["answer"].append(time.perf_counter() - began)
            began = time.perf_counter()
            evidence = decider.decide(vk, openings, answers)
            timings[k]["decide"].append(time.perf_counter() - began)
            timings[k].setdefault("p_value", [evidence.result.p_value])
    median = {k: {part: statistics.median(v) for part, v in t.items() if part != "p_value"}
              for k, t in timings.items()}
    print(json.dumps({
        "model": args.model, "m": args.m, "fresh": args.fresh, "repeats": args.repeats,
        "device": args.device, "torch": torch.__version__, "threads": torch.get_num_threads(),
        "machine": platform.processor() or platform.machine(),
        "images": {"without": 2 * args.m, "with": (args.fresh + 2) * args.m},
        "seconds": {str(k): v for k, v in median.items()},
        "raw": {str(k): {p: v for p, v in t.items() if p != "p_value"} for k, t in timings.items()},
        "ratio_answer": median[args.fresh]["answer"] / median[0]["answer"],
        "ms_per_fresh_image": 1000 * (median[args.fresh]["answer"] - median[0]["answer"])
                              / (args.fresh * args.m),
        "p_values": {str(k): t["p_value"][0] for k, t in timings.items()},
    }, indent=2))


if __name__ == "__main__":
    main()
