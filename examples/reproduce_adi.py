"""Adi et al. 2018, Table 1 in spirit: FromScratch and PreTrained trigger-set marking.

    python examples/reproduce_adi.py --data fashion-mnist --device cuda --independent 5

For one data set and one trigger-set key (100 procedurally generated images, uniform
random labels) this trains, on the one engine:

* a clean model (seed S) — the "no watermark" column;
* FromScratch: the same initial weights and data order, triggers in every batch;
* PreTrained: the clean model fine-tuned with the triggers in every batch;
* ``--independent`` clean models with other seeds — the false-claim side.

and reports test accuracy, trigger-set accuracy, the claim's p-value (exact binomial
against 1/C, as `claimkit verify` computes it, on the 50 items a claim opens and on all
100) and, for each independent model, the p-value it would get if the owner accused it.
Prints one JSON document (and, with ``--markdown``, the table for docs/results.md).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from dataclasses import replace
from fractions import Fraction

import numpy as np
import torch

from claimkit.ml.data import load_dataset
from claimkit.ml.models import build
from claimkit.ml.recipes import recipe
from claimkit.ml.train import TrainConfig, as_tensor, predict, resolve_device, train
from claimkit.protocol.stats import binomial_test
from claimkit.schemes.trigger_set import TriggerSetParams, keygen, trigger_images

OPENED = 50


def claim_p_values(model: torch.nn.Module, triggers: tuple[np.ndarray, np.ndarray],
                   device: torch.device, opened: np.ndarray, classes: int) -> dict:
    images, labels = triggers
    answers = predict(model.to(device), as_tensor(images, device)).cpu().numpy()
    hits = answers == labels
    p0 = Fraction(1, classes)
    return {"trigger_accuracy": float(hits.mean()),
            "matches_opened": int(hits[opened].sum()),
            "p_opened": binomial_test(int(hits[opened].sum()), len(opened), p0, alpha=1e-4).p_value,
            "p_all": binomial_test(int(hits.sum()), len(hits), p0, alpha=1e-4).p_value}


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(prog="reproduce_adi")
    ap.add_argument("--data", default="fashion-mnist")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=None, help="default: the data set's recipe")
    ap.add_argument("--pretrained-epochs", type=int, default=3)
    ap.add_argument("--pretrained-lr", type=float, default=0.02)
    ap.add_argument("--independent", type=int, default=5)
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args(argv)

    data = load_dataset(args.data, root=args.data_root)
    r = recipe(data.name, data.input_shape)
    device = resolve_device(args.device)
    epochs = r["epochs"] if args.epochs is None else args.epochs
    cfg = TrainConfig(epochs=epochs, batch_size=r["batch"], lr=r["lr"], seed=args.seed,
                      device=args.device, trigger_per_batch=r["tpb"])
    mk = keygen(TriggerSetParams(data.num_classes, data.input_shape, items=100))
    triggers = trigger_images(mk)
    opened = np.random.default_rng(args.seed).choice(len(triggers[1]), OPENED, replace=False)

    def fresh(seed: int) -> torch.nn.Module:
        return build(r["arch"], num_classes=data.num_classes, input_shape=data.input_shape, seed=seed)

    rows = {}
    clean = fresh(args.seed)
    rec = train(clean, data, cfg, progress=False)
    rows["clean"] = {"test_accuracy": rec.test_accuracy, "seconds": rec.wall_seconds, "epochs": epochs,
                     **claim_p_values(clean, triggers, device, opened, data.num_classes)}
    scratch = fresh(args.seed)
    rec = train(scratch, data, cfg, triggers=triggers, progress=False)
    rows["from_scratch"] = {"test_accuracy": rec.test_accuracy, "seconds": rec.wall_seconds,
                            "epochs": epochs,
                            **claim_p_values(scratch, triggers, device, opened, data.num_classes)}
    pre = copy.deepcopy(clean)
    ft = TrainConfig(epochs=args.pretrained_epochs, batch_size=r["batch"], lr=args.pretrained_lr,
                     seed=args.seed + 1, device=args.device, trigger_per_batch=r["tpb"])
    rec = train(pre, data, ft, triggers=triggers, progress=False)
    rows["pretrained"] = {"test_accuracy": rec.test_accuracy, "seconds": rec.wall_seconds,
                          "epochs": f"{epochs}+{args.pretrained_epochs}",
                          **claim_p_values(pre, triggers, device, opened, data.num_classes)}
    independent = []
    for i in range(args.independent):
        model = fresh(1000 + i)
        rec = train(model, data, replace(cfg, seed=1000 + i), progress=False)
        independent.append({"seed": 1000 + i, "test_accuracy": rec.test_accuracy,
                            **claim_p_values(model, triggers, device, opened, data.num_classes)})
    out = {"data": data.name, "arch": r["arch"], "device": str(device),
           "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
           "torch": torch.__version__, "train_images": len(data.x_train), "triggers": 100,
           "opened": OPENED, "alpha": 1e-4, "rows": rows, "independent": independent,
           "min_independent_p_opened": min((x["p_opened"] for x in independent), default=None)}
    json.dump(out, sys.stdout, indent=2)
    print()
    if args.markdown:
        print(markdown(out))


def markdown(out: dict) -> str:
    lines = ["| model | epochs | test acc. | trigger acc. | matches (50 opened) | p (50 opened) | p (all 100) |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, row in out["rows"].items():
        lines.append(f"| {name} | {row['epochs']} | {100 * row['test_accuracy']:.2f} % | "
                     f"{100 * row['trigger_accuracy']:.0f} % | {row['matches_opened']}/50 | "
                     f"{row['p_opened']:.2e} | {row['p_all']:.2e} |")
    for row in out["independent"]:
        lines.append(f"| independent (seed {row['seed']}) | — | {100 * row['test_accuracy']:.2f} % | "
                     f"{100 * row['trigger_accuracy']:.0f} % | {row['matches_opened']}/50 | "
                     f"{row['p_opened']:.2f} | {row['p_all']:.2f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main(sys.argv[1:])
