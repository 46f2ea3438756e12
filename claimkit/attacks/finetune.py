"""Fine-tuning attacks: FTLL, FTAL, RTLL, RTAL and transfer learning (Adi et al. 2018, §5.4–5.5),
and UBW's fine-tuning defence (UBW App. C.3).

The thief holds the released model and (a share of) the training data and fine-tunes:
the output layer only (FTLL), every layer (FTAL), or either after drawing the output
layer afresh (RTLL, RTAL); UBW freezes the convolutions and tunes the fully connected
layers on 10 % of the data at lr 0.1 for 100 epochs. Frozen layers stay in evaluation
mode, so their batch-norm statistics do not drift either: FTLL changes the output layer
and nothing else. Training goes through the one engine at the recipe's fine-tuning
rate (0.01; Adi et al.'s code fine-tunes at 0.001-0.01, their paper at the last rate of
training) with its warm-up and linear decay, where the paper keeps the rate constant::

    record = fine_tune("released.safetensors", data, "ftll.safetensors",
                       FineTuneConfig(layers="last", epochs=5), seed=1)
    record["test_accuracy"], record["extra"]["agreement"]

Transfer learning (§5.5) retrains every layer on another task behind a fresh output
layer (the RTAL setting, the only one the paper reports) and puts the original output
layer back, as the paper does for verification; the record keeps the accuracy on the
new task.
"""

from __future__ import annotations

import copy
import os
import time
from typing import Any

import torch
from torch import nn

from ..errors import MalformedInputError
from ..ml.data import Dataset
from ..ml.train import resolve_device, train
from .common import (
    Target,
    attacker_share,
    finish,
    other_dataset,
    output_layer,
    replace_module,
    resolve_victim,
    train_config,
)
from .config import FineTuneConfig, TransferConfig

__all__ = ["FineTuneConfig", "TransferConfig", "fine_tune", "transfer"]


class _Partial(nn.Module):
    """Trains only ``trainable``; the rest of ``net`` is frozen and stays in eval mode."""

    def __init__(self, net: nn.Module, trainable: list[nn.Module]) -> None:
        super().__init__()
        self.net = net
        self.trainable = nn.ModuleList(trainable)
        keep = {id(p) for m in trainable for p in m.parameters()}
        for p in net.parameters():
            p.requires_grad_(id(p) in keep)

    def train(self, mode: bool = True) -> _Partial:
        super().train(mode)
        self.net.eval()
        for m in self.trainable:
            m.train(mode)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _fresh_linear(like: nn.Linear, out_features: int, seed: int) -> nn.Linear:
    """A newly initialised layer with ``like``'s inputs, drawn from ``seed``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        layer = nn.Linear(like.in_features, out_features, bias=like.bias is not None)
    return layer.to(like.weight.device)


def fine_tune(victim: Target, data: Dataset, out: str | os.PathLike[str],
              cfg: FineTuneConfig | None = None, *, device: str = "auto", seed: int = 0,
              progress: bool = False, name: str = "finetune") -> dict[str, Any]:
    """Fine-tune (or re-train) the victim's output layer, its fully connected layers or all."""
    started = time.perf_counter()
    cfg = cfg or FineTuneConfig()
    dev = resolve_device(device)
    v = resolve_victim(victim, data, dev, attack=name, weights=True)
    model, arch = v.weights()
    head_name, head = output_layer(model, data.num_classes)
    if cfg.reinit:
        head = _fresh_linear(head, data.num_classes, seed)
        replace_module(model, head_name, head)
    trainee: nn.Module = model
    if cfg.layers != "all":
        layers = [head] if cfg.layers == "last" else [m for m in model.modules() if isinstance(m, nn.Linear)]
        trainee = _Partial(model, layers)
    tcfg = train_config(data, seed=seed, device=dev, epochs=cfg.epochs, lr=cfg.lr,
                        batch_size=cfg.batch_size, fine_tune=True, arch=arch)
    record = train(trainee, attacker_share(data, cfg.data_fraction, seed), tcfg, progress=progress)
    model.requires_grad_(True)
    return finish(model, out, attack=name, cfg=cfg, arch=arch, data=data, victim=v,
                  seed=seed, started=started, epochs=tcfg.epochs, trained=record)


def transfer(victim: Target, data: Dataset, out: str | os.PathLike[str],
             cfg: TransferConfig | None = None, *, device: str = "auto", seed: int = 0,
             progress: bool = False, name: str = "transfer",
             target: Dataset | None = None) -> dict[str, Any]:
    """Retrain every layer on ``target`` (default: ``cfg.target``) behind a new output layer,
    then restore the original output layer (Adi et al. §5.5)."""
    started = time.perf_counter()
    cfg = cfg or TransferConfig()
    if target is None:
        if not cfg.target:
            raise MalformedInputError("transfer needs a target task: -p target=NAME|DIR")
        target = other_dataset(cfg.target, cfg.target_root, data.input_shape, "transfer target",
                               root_param="target_root")
    elif target.input_shape != data.input_shape:
        raise MalformedInputError(f"transfer target has {target.input_shape} images; the victim "
                                  f"takes {data.input_shape}")
    dev = resolve_device(device)
    v = resolve_victim(victim, data, dev, attack=name, weights=True)
    model, arch = v.weights()
    head_name, head = output_layer(model, data.num_classes)
    original = copy.deepcopy(head)
    replace_module(model, head_name, _fresh_linear(head, target.num_classes, seed))
    tcfg = train_config(target, seed=seed, device=dev, epochs=cfg.epochs, lr=cfg.lr,
                        batch_size=cfg.batch_size, fine_tune=True, arch=arch)
    record = train(model, attacker_share(target, cfg.data_fraction, seed), tcfg, progress=progress)
    replace_module(model, head_name, original)
    return finish(model, out, attack=name, cfg=cfg, arch=arch, data=data, victim=v,
                  seed=seed, started=started, epochs=tcfg.epochs, trained=record,
                  target=target.name, target_digest=target.digest.hex,
                  target_test_accuracy=record.test_accuracy)
