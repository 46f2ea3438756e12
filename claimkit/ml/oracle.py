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
from ..wire import Digest
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

    @property
    def subject(self) -> Digest:
        return self.info.digest

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return self.info.input_shape

    @property
    def num_classes(self) -> int:
        return self.info.num_classes

    def _tensor(self, images: np.ndarray) -> torch.Tensor:
        if images.ndim != 4 or tuple(images.shape[1:]) != tuple(self.info.input_shape):
            raise MalformedInputError(f"queries of shape {tuple(images.shape[1:])} for a model "
                                      f"that takes {tuple(self.info.input_shape)}")
        return as_tensor(images, self.device)

    def labels(self, images: np.ndarray) -> list[int]:
        return [int(v) for v in predict(self.model, self._tensor(images)).cpu()]

    @torch.no_grad()
    def probabilities(self, images: np.ndarray, *, batch_size: int = 1024) -> np.ndarray:
        """Softmax outputs, float64 (N, num_classes), computed in float32."""
        x = self._tensor(images)
        self.model.eval()
        out = [torch.softmax(self.model(x[i:i + batch_size]).float(), 1)
               for i in range(0, len(x), batch_size)]
        if not out:
            return np.zeros((0, self.num_classes))
        return torch.cat(out).cpu().double().numpy()
