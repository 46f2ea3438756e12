"""Trained models kept on disk between bench runs, keyed by everything that made them.

On this project's 2-core CPU one fmnist-net trained on 16,000 Fashion-MNIST images for
20 epochs takes about 27 minutes, so the issue's ten independent models at that scale do
not fit one session. ``python -m bench ubw --models DIR`` stores every model it trains
under DIR and reuses any whose recipe it has already trained: a later run with more
``--nulls`` adds models instead of repeating them.

The key is the SHA-256 of the architecture, the whole training configuration (seed and
device included) and the bytes of the training and test splits, so a model is reused
only where training it again would have asked for exactly the same run. Reusing one
changes what its record's ``wall_seconds`` means (measured in the run that trained it),
so a reused record says ``"cached": true`` and callers that compare times in one run
must say so too. Models are safetensors files (:func:`claimkit.ml.models.load_model`
checks the header before a tensor is read); the cache is the caller's own folder.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from claimkit.ml.data import Dataset
from claimkit.ml.models import load_model, save_model
from claimkit.ml.train import TrainConfig
from claimkit.wire import atomic_write


def recipe_digest(arch: str, cfg: TrainConfig, data: Dataset) -> str:
    """Hex SHA-256 over what decides a trained model: arch, config, both splits."""
    h = hashlib.sha256(b"claimkit/bench-model-cache/v1\n")
    h.update(json.dumps({"arch": arch, "config": asdict(cfg), "classes": data.num_classes},
                        sort_keys=True).encode())
    for array in (data.x_train, data.y_train, data.x_test, data.y_test):
        h.update(f"\n{array.dtype.str}{array.shape}\n".encode())
        h.update(array.tobytes())
    return h.hexdigest()


class ModelCache:
    """``DIR/<digest>.safetensors`` with its training record in ``DIR/<digest>.json``."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    def load(self, digest: str, device: torch.device) -> tuple[torch.nn.Module, dict[str, Any]] | None:
        weights, record = self.folder / f"{digest}.safetensors", self.folder / f"{digest}.json"
        if not (weights.is_file() and record.is_file()):
            return None
        model, _ = load_model(weights, device=device)
        return model, {**json.loads(record.read_text()), "cached": True}

    def store(self, digest: str, model: torch.nn.Module, record: dict[str, Any], *, arch: str,
              data: Dataset) -> None:
        # The record last: a model counts as stored only once both files are there.
        save_model(model, self.folder / f"{digest}.safetensors", arch=arch,
                   input_shape=data.input_shape, num_classes=data.num_classes)
        atomic_write(self.folder / f"{digest}.json", json.dumps(record, indent=2).encode())
