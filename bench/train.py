"""Clean vs. marked training on one engine (issue: ML engine, GPU figures).

    python -m bench train --data fashion-mnist [--subset N] [--epochs E] [--device cuda]

Trains the same architecture twice from the same initial weights and seed: clean, and
marked with a 100-image trigger set (Adi et al. 2018, FromScratch). Prints clean and
marked test accuracy, trigger accuracy and the marked/clean wall-time ratio. Without a
GPU, run it with --subset and few epochs and record the figures as a CPU-scale run.
"""

from __future__ import annotations

import argparse
import statistics
from dataclasses import replace

import numpy as np
import torch

from claimkit.ml.data import Dataset, load_dataset
from claimkit.ml.models import build
from claimkit.ml.recipes import recipe
from claimkit.ml.train import TrainConfig, resolve_device, train
from claimkit.schemes.trigger_set import TriggerSetParams, keygen, trigger_images

from .common import emit


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
    args = p.parse_args(argv)
    data = load_dataset(args.data, root=args.data_root)
    arch = recipe(data.name, data.input_shape)["arch"]
    if args.subset:
        data = Dataset(data.name, data.x_train[:args.subset], data.y_train[:args.subset],
                       data.x_test, data.y_test, data.num_classes)
    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                      device=args.device, trigger_per_batch=args.trigger_per_batch)
    mk = keygen(TriggerSetParams(data.num_classes, data.input_shape, items=100))
    triggers = {"clean": None, "marked": trigger_images(mk)}

    def run(name: str, c: TrainConfig = cfg) -> dict:
        model = build(arch, num_classes=data.num_classes, input_shape=data.input_shape,
                      seed=args.seed)
        return train(model, data, c, triggers=triggers[name], progress=False).to_dict()

    # One throw-away epoch first (CUDA context, cuDNN autotuning, allocator), then pairs in
    # alternating order so neither variant always runs on a cold or warm machine.
    run("marked", replace(cfg, epochs=1))
    samples: dict[str, list[dict]] = {"clean": [], "marked": []}
    for i in range(max(1, args.repeats)):
        for name in (("clean", "marked") if i % 2 == 0 else ("marked", "clean")):
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
    })
