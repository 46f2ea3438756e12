"""Clean vs. marked training on one engine (issue: ML engine, GPU figures).

    python -m bench train --data fashion-mnist [--subset N] [--epochs E] [--device cuda]

Trains the same architecture twice from the same initial weights and seed: clean, and
marked with a 100-image trigger set (Adi et al. 2018, FromScratch). Prints clean and
marked test accuracy, trigger accuracy and the marked/clean wall-time ratio. Without a
GPU, run it with --subset and few epochs and record the figures as a CPU-scale run.

``--blocking-copies`` adds a third run: clean, with the engine's per-batch host→device
copies blocking as they were until 2026-12-04 (:func:`bench.common.blocking_copies`), and
prints the clean run's time over it. On a CPU both are the same code.
"""

from __future__ import annotations

import argparse
import statistics
from contextlib import nullcontext
from dataclasses import replace

import numpy as np
import torch

from claimkit.ml.data import Dataset, load_dataset
from claimkit.ml.models import build
from claimkit.ml.recipes import recipe
from claimkit.ml.train import TrainConfig, resolve_device, train
from claimkit.schemes.trigger_set import TriggerSetParams, keygen, trigger_images

from .common import blocking_copies, emit


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(prog="python -m bench train")
    p.add_argument("--data", default="fashion-mnist")
    p.add_argument("--data-root", default=None)
    p.add_argument("--subset", type=int, default=0, help="first N training images (0: all)")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--trigger-per-batch", type=int, default=4)
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeats", type=int, default=2,
                   help="clean/marked pairs, alternating which goes first; medians reported")
    p.add_argument("--blocking-copies", action="store_true",
                   help="also time the clean run with the copies blocking (the old engine)")
    args = p.parse_args(argv)
    data = load_dataset(args.data, root=args.data_root)
    arch = recipe(data.name, data.input_shape)["arch"]
    if args.subset:
        data = Dataset(data.name, data.x_train[:args.subset], data.y_train[:args.subset],
                       data.x_test, data.y_test, data.num_classes)
    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                      device=args.device, trigger_per_batch=args.trigger_per_batch)
    mk = keygen(TriggerSetParams(data.num_classes, data.input_shape, items=100))
    triggers = {"clean": None, "marked": trigger_images(mk), "blocking": None}

    def run(name: str, c: TrainConfig = cfg) -> dict:
        model = build(arch, num_classes=data.num_classes, input_shape=data.input_shape,
                      seed=args.seed)
        with blocking_copies() if name == "blocking" else nullcontext():
            return train(model, data, c, triggers=triggers[name], progress=False).to_dict()

    # One throw-away epoch first (CUDA context, cuDNN autotuning, allocator), then rounds in
    # rotating order so no variant always runs on a cold or warm machine.
    run("marked", replace(cfg, epochs=1))
    names = ["clean", "marked"] + (["blocking"] if args.blocking_copies else [])
    samples: dict[str, list[dict]] = {name: [] for name in names}
    for i in range(max(1, args.repeats)):
        for name in names[i % len(names):] + names[:i % len(names)]:
            samples[name].append(run(name))
    runs = {name: {**recs[0], "wall_seconds": statistics.median(r["wall_seconds"] for r in recs),
                   "all_wall_seconds": [r["wall_seconds"] for r in recs]}
            for name, recs in samples.items()}
    device = resolve_device(args.device)
    emit("train", {
        "data": args.data, "train_images": len(data.x_train), "test_images": len(data.x_test),
        "arch": arch, "epochs": args.epochs, "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "clean_test_accuracy": runs["clean"]["test_accuracy"],
        "marked_test_accuracy": runs["marked"]["test_accuracy"],
        "trigger_accuracy": runs["marked"]["trigger_accuracy"],
        "repeats": args.repeats, "all_clean_seconds": runs["clean"]["all_wall_seconds"],
        "all_marked_seconds": runs["marked"]["all_wall_seconds"],
        "clean_seconds": runs["clean"]["wall_seconds"],
        "marked_seconds": runs["marked"]["wall_seconds"],
        "ratio_marked_to_clean": runs["marked"]["wall_seconds"] / runs["clean"]["wall_seconds"],
        "accuracy_drop_points": 100 * (runs["clean"]["test_accuracy"] - runs["marked"]["test_accuracy"]),
        "trigger_labels_histogram": np.bincount(trigger_images(mk)[1], minlength=data.num_classes).tolist(),
        **({"blocking_copies_seconds": runs["blocking"]["wall_seconds"],
            "all_blocking_copies_seconds": runs["blocking"]["all_wall_seconds"],
            "blocking_copies_test_accuracy": runs["blocking"]["test_accuracy"],
            "ratio_clean_to_blocking_copies":
                runs["clean"]["wall_seconds"] / runs["blocking"]["wall_seconds"]}
           if "blocking" in runs else {}),
    })
