"""Train (clean or marked) and save, with the run record beside the model.

The one function behind ``claimkit train``, ``claimkit mark`` and the demo's models::

    digest, record = fit_and_save(data, "model.safetensors", seed=1)
    # model.safetensors + model.run.json
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from torch import nn

from ..wire import Digest, atomic_write, pretty_json
from ..weights import weights_digest
from . import distributed
from .data import Dataset
from .models import build, load_model, save_model
from .recipes import recipe
from .train import RunRecord, TrainConfig, train

__all__ = ["fit_and_save", "save_with_record"]


def fit_and_save(data: Dataset, out: str | os.PathLike[str], *, arch: str | None = None,
                 epochs: int | None = None, lr: float | None = None, seed: int = 0,
                 device: str = "auto", triggers: tuple[np.ndarray, np.ndarray] | None = None,
                 start_from: str | os.PathLike[str] | None = None,
                 progress: bool = True) -> tuple[Digest, RunRecord]:
    """Train from scratch, or fine-tune ``start_from`` (PreTrained marking), then save."""
    r = recipe(data.name, data.input_shape, arch=arch)
    if start_from is not None:
        model, info = load_model(start_from, arch=arch)
        arch = info.arch
    else:
        arch = arch or r["arch"]
        model = build(arch, num_classes=data.num_classes, input_shape=data.input_shape, seed=seed)
    default_epochs, default_lr = (r["ft_epochs"], r["ft_lr"]) if start_from else (r["epochs"], r["lr"])
    cfg = TrainConfig(epochs=default_epochs if epochs is None else epochs,
                      lr=default_lr if lr is None else lr, batch_size=r["batch"], seed=seed,
                      device=device, trigger_per_batch=r["tpb"],
                      label_smoothing=r["label_smoothing"], shift=r["shift"])
    record = train(model, data, cfg, triggers=triggers, progress=progress)
    record.extra["start_from"] = None if start_from is None else str(start_from)
    return save_with_record(model, out, arch=arch, data=data, record=record), record


def save_with_record(model: nn.Module, out: str | os.PathLike[str], *, arch: str, data: Dataset,
                     record: RunRecord) -> Digest:
    """Save the model and write its run record beside it (``out`` with ``.run.json``).

    Under ``torchrun`` rank 0 writes and the others wait, then read the digest.
    """
    out = Path(out)
    if distributed.is_main():
        digest = save_model(model, out, arch=arch, input_shape=data.input_shape,
                            num_classes=data.num_classes)
        record.extra.update(arch=arch, weights_digest=digest.hex)
        atomic_write(out.with_suffix(".run.json"), pretty_json(record.to_dict()))
    distributed.barrier()
    return weights_digest(out)
