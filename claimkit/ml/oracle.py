"""Oracles: what an owner or an arbiter queries to get a suspect model's answers.

A suspect turns up in one of three forms, and each has an oracle that answers a
scheme's queries (uint8 images, N × C × H × W) with class indices and probabilities,
in batches, and names what it queried by a :class:`~claimkit.wire.Digest` (its
``subject``, the digest a claim bundle is about)::

    oracle = open_oracle(endpoint="http://127.0.0.1:8000/")   # or model=..., onnx=...
    labels = oracle.labels(images)            # uint8 (N, C, H, W) → class indices
    oracle.subject                            # what the claim names

* :class:`LocalModel` — a claimkit safetensors file (loaded without unpickling, see
  :mod:`claimkit.ml.models`); subject: the canonical weights digest
  (protocol_spec/weights.md).
* :class:`OnnxModel` — an ONNX file run by onnxruntime (the ``onnx`` extra); subject:
  SHA-256 over ``"claimkit/onnx/v1\\n"`` and the file's bytes (protocol_spec/oracle-http.md).
  Inputs are float32 in [0, 1] (claimkit's networks normalise inside); outputs are
  logits, turned into probabilities by a softmax, unless the file is opened with
  ``outputs="probabilities"``.
* :class:`HttpEndpoint` — a remote model behind the JSON protocol of
  protocol_spec/oracle-http.md; subject: SHA-256 over ``"claimkit/endpoint/v1\\n"`` and
  the normalised URL, so the URL an owner claims and the one an arbiter re-queries name
  the same subject. An endpoint is a black box whose model may change: what a bundle
  attests is what it answered when the owner asked, and what a verdict attests is what
  it answered when the arbiter asked.

:class:`OracleServer` answers that protocol for any oracle (``claimkit serve``). Every
failure to get an answer — a timeout, a refused connection, an HTTP error, a response
that is not the protocol, a probability row that is not one — is an
:class:`~claimkit.errors.OracleError` with one line naming the URL or file.

Torch is imported only by :class:`LocalModel`, so re-querying an ONNX file or an
endpoint never loads it.
"""


from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import MalformedInputError, OracleError
from ..wire import Digest
from .endpoint import (HttpEndpoint, OracleServer, encode_query, endpoint_digest, normalise_url,
                       parse_answer, parse_description, parse_query)
from .onnx_oracle import OnnxModel, onnx_digest
from .oracle_checks import DEFAULT_TIMEOUT, _check_images, check_probabilities

if TYPE_CHECKING:
    import torch
    from torch import nn

    from .models import ModelInfo

__all__ = [
    "DEFAULT_TIMEOUT",
    "HttpEndpoint",
    "LocalModel",
    "OnnxModel",
    "OracleServer",
    "check_probabilities",
    "encode_query",
    "endpoint_digest",
    "normalise_url",
    "onnx_digest",
    "open_oracle",
    "parse_answer",
    "parse_description",
    "parse_query",
]

# -- a claimkit model file ----------------------------------------------------------------
@dataclass
class LocalModel:
    model: nn.Module
    info: ModelInfo
    device: torch.device
    name: str = "suspect-model"

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], *, arch: str | None = None,
                  device: str = "auto") -> LocalModel:
        from .models import load_model
        from .train import resolve_device
        dev = resolve_device(device)
        model, info = load_model(path, arch=arch, device=dev)
        return cls(model, info, dev, Path(path).name)

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
        from .train import as_tensor
        return as_tensor(_check_images(images, self.info.input_shape), self.device)

    def _logits(self, images: np.ndarray, *, batch_size: int = 1024) -> torch.Tensor:
        """float32 (N, num_classes), checked finite: finite weights can still compute NaN
        or infinity (a negative BatchNorm variance, weights near float32's maximum), and
        an argmax over a row of NaN would quietly answer class 0."""
        import torch
        x = self._tensor(images)
        self.model.eval()
        with torch.no_grad():
            out = [self.model(x[i:i + batch_size]).float() for i in range(0, len(x), batch_size)]
        logits = torch.cat(out) if out else torch.zeros((0, self.num_classes), device=self.device)
        if tuple(logits.shape) != (len(x), self.num_classes):
            raise OracleError(f"{self.name}: outputs of shape {tuple(logits.shape)} for "
                              f"{len(x)} images; expected (N, {self.num_classes})")
        if not bool(torch.isfinite(logits).all()):
            raise OracleError(f"{self.name}: NaN or infinite outputs")
        return logits

    def labels(self, images: np.ndarray) -> list[int]:
        return [int(v) for v in self._logits(images).argmax(1).cpu()]

    def probabilities(self, images: np.ndarray, *, batch_size: int = 1024) -> np.ndarray:
        """Softmax outputs, float64 (N, num_classes), computed in float32 and checked to be
        probability rows as every oracle's are."""
        import torch
        p = torch.softmax(self._logits(images, batch_size=batch_size), 1)
        return check_probabilities(p.cpu().double().numpy(), self.name)


# -- one entry point for the CLI ---------------------------------------------------------
def open_oracle(*, model: str | os.PathLike[str] | None = None,
                onnx: str | os.PathLike[str] | None = None, endpoint: str | None = None,
                arch: str | None = None, device: str = "auto",
                timeout: float = DEFAULT_TIMEOUT) -> LocalModel | OnnxModel | HttpEndpoint:
    """The oracle for exactly one of a model file, an ONNX file or an endpoint URL.

    Each has a ``name`` for the claim's subject (the file's name, or the URL).
    """
    given = [flag for flag, value in (("--model", model), ("--onnx", onnx),
                                      ("--endpoint", endpoint)) if value is not None]
    if len(given) != 1:
        raise MalformedInputError("give the suspect as exactly one of --model FILE, --onnx FILE "
                                  "or --endpoint URL" + (f" (got {' and '.join(given)})" if given else ""))
    if arch is not None and model is None:
        raise MalformedInputError("--arch applies to --model only")
    if model is not None:
        return LocalModel.from_file(model, arch=arch, device=device)
    if onnx is not None:
        return OnnxModel.from_file(onnx, device=device)
    return HttpEndpoint.open(str(endpoint), timeout=timeout)
