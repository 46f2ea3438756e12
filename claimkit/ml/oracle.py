"""Oracles: what an owner or an arbiter queries to get a suspect model's answers.

An oracle turns a scheme's queries into answers. :class:`LocalModel` wraps a
safetensors model file (loaded without unpickling, see :mod:`claimkit.ml.models`) and
answers in batches. ONNX files and HTTP endpoints are the next oracles to add (the
ML engine issue lists them)::

    oracle = LocalModel.from_file("suspect.safetensors")
    answers = oracle.labels(images)          # uint8 (N, C, H, W) → class indices
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..errors import MalformedInputError
from .models import ModelInfo, load_model
from .train import as_tensor, predict, resolve_device

__all__ = ["LocalModel"]


@dataclass
class LocalModel:
    model: nn.Module
    info: ModelInfo
    device: torch.device

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], *, arch: str | None = None,
                  device: str = "auto") -> LocalModel:
        dev = resolve_device(device)
        model, info = load_model(path, arch=arch, device=dev)
        return cls(model, info, dev)

    def labels(self, images: np.ndarray) -> list[int]:
        if tuple(images.shape[1:]) != tuple(self.info.input_shape):
            raise MalformedInputError(f"queries of shape {tuple(images.shape[1:])} for a model "
                                      f"that takes {tuple(self.info.input_shape)}")
        x = as_tensor(images, self.device)
        return [int(v) for v in predict(self.model, x).cpu()]
