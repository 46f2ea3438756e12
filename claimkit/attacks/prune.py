"""Pruning attacks: magnitude pruning and fine-pruning (UBW App. C.3; Liu et al., RAID 2018).

*Magnitude*: in every convolution and linear layer the ``rate`` fraction of weights
smallest in absolute value is set to zero (``torch.nn.utils.prune.l1_unstructured``, per
layer, so each layer reaches the asked sparsity). *Channel*, the pruning step of
fine-pruning and of UBW's resistance experiment: the channels that feed the output layer
(the last convolution's channels after pooling; an MLP's last hidden units) are ranked
by their mean activation on clean data the attacker holds (UBW: 10 % of the training
set), and the ``rate`` fraction least active is cut by zeroing their weights in the
output layer. With ``epochs`` > 0 the pruned model is then fine-tuned through the one
engine, the masks holding the cut weights at zero, and the cut made permanent::

    record = prune("released.safetensors", data, "pruned.safetensors",
                   PruneConfig(method="channel", rate=0.8, epochs=2, data_fraction=0.1))
    record["extra"]["sparsity"]
"""

from __future__ import annotations

import os
import time
from typing import Any

import torch
from torch import nn
from torch.nn.utils import prune as tprune

from ..errors import MalformedInputError
from ..ml.data import Dataset
from ..ml.recipes import recipe
from ..ml.train import as_tensor, resolve_device, train
from .common import (
    Target,
    attacker_share,
    finish,
    output_layer,
    resolve_victim,
    train_config,
)
from .config import PruneConfig

__all__ = ["PruneConfig", "channel_activity", "prune"]

BATCH = 1024


def _prunable(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


@torch.no_grad()
def channel_activity(model: nn.Module, head: nn.Linear, images: torch.Tensor) -> torch.Tensor:
    """Mean activation of each input of ``head`` (the output layer) over ``images``."""
    total = torch.zeros(head.in_features, device=images.device)
    seen: list[torch.Tensor] = []
    hook = head.register_forward_pre_hook(lambda _m, args: seen.append(args[0].float().sum(0)))
    model.eval()
    try:
        for i in range(0, len(images), BATCH):
            model(images[i:i + BATCH])
            total += seen.pop()
    finally:
        hook.remove()
    return total / max(1, len(images))


def prune(victim: Target, data: Dataset, out: str | os.PathLike[str],
          cfg: PruneConfig | None = None, *, device: str = "auto", seed: int = 0,
          progress: bool = False, name: str = "prune") -> dict[str, Any]:
    """Prune the victim (by weight magnitude or by channel activity), then fine-tune."""
    started = time.perf_counter()
    cfg = cfg or PruneConfig()
    dev = resolve_device(device)
    v = resolve_victim(victim, data, dev, attack=name, weights=True)
    model, arch = v.weights()
    share = attacker_share(data, cfg.data_fraction, seed)
    _, head = output_layer(model, data.num_classes)
    cut_channels = None
    if cfg.method == "magnitude":
        masked = _prunable(model)
        for m in masked:
            tprune.l1_unstructured(m, "weight", amount=cfg.rate)
    else:
        activity = channel_activity(model, head, as_tensor(share.x_train, dev))
        cut_channels = round(cfg.rate * head.in_features)
        if cut_channels >= head.in_features:    # the output layer would read nothing
            raise MalformedInputError(f"rate {cfg.rate} cuts all {head.in_features} channels "
                                      f"of the output layer; at most "
                                      f"{(head.in_features - 0.5) / head.in_features:.4g}")
        cut = torch.argsort(activity, stable=True)[:cut_channels]
        mask = torch.ones_like(head.weight)
        mask[:, cut] = 0
        tprune.custom_from_mask(head, "weight", mask)
        masked = [head]
    epochs = recipe(data.name, data.input_shape, arch=arch)["ft_epochs"] if cfg.epochs is None else cfg.epochs
    record = None
    if epochs > 0:
        tcfg = train_config(data, seed=seed, device=dev, epochs=epochs, lr=cfg.lr,
                            batch_size=cfg.batch_size, fine_tune=True, arch=arch)
        record = train(model, share, tcfg, progress=progress)
    for m in masked:
        tprune.remove(m, "weight")
    weights = [m.weight for m in _prunable(model)]
    zeros = sum(int((w == 0).sum()) for w in weights)
    sparsity = zeros / sum(w.numel() for w in weights)
    return finish(model, out, attack=name, cfg=cfg, arch=arch, data=data, victim=v, seed=seed,
                  started=started, epochs=epochs, trained=record, sparsity=sparsity,
                  channels_cut=cut_channels)
