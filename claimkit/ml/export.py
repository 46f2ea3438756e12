"""Export a claimkit model to ONNX, the form black-box suspects are often shared in.

The exported file takes what claimkit's networks take — float32 images in [0, 1],
(N, C, H, W), any batch size — and returns logits (N, classes); its subject is the
digest of its bytes (:func:`claimkit.ml.oracle.onnx_digest`). It goes through torch's
``torch.export``-based exporter (``dynamo=True``, the default since torch 2.9, which
needs ``onnxscript``; the TorchScript one is deprecated), weights kept inside the one
file so the digest covers them. Before the file is written, onnxruntime runs it beside
the torch model on random images and the logits must agree::

    digest = export_onnx("released.safetensors", "released.onnx")
    OnnxModel.from_file("released.onnx").subject == digest    # True

The file's metadata records the architecture and the source's weights digest
(``claimkit.arch``, ``claimkit.weights``) so a reader can trace it; neither is part of
any check.
"""

from __future__ import annotations

import contextlib
import io
import os

import numpy as np

from ..errors import MalformedInputError, OracleError
from ..wire import Digest, atomic_write
from .oracle import OnnxModel, onnx_digest

__all__ = ["export_onnx"]

CHECK_IMAGES = 16            # random images the export is checked on
CHECK_TOLERANCE = 1e-3       # max |Δ logit| / (1 + max |logit|)


def export_onnx(model_path: str | os.PathLike[str], out: str | os.PathLike[str], *,
                arch: str | None = None) -> Digest:
    """Write ``model_path`` (claimkit safetensors) as a single-file ONNX model at ``out``;
    returns the ONNX file's subject digest. Nothing is written if the check fails."""
    try:
        import onnx
        import onnxscript  # noqa: F401  (torch's exporter needs it; say so up front)
    except ImportError:
        raise OracleError("exporting to ONNX needs onnx and onnxscript: "
                          "pip install 'claimkit[onnx]'") from None
    import torch

    from .models import load_model

    model, info = load_model(model_path, arch=arch, device="cpu")
    example = torch.rand(2, *info.input_shape, generator=torch.Generator().manual_seed(0))
    batch = torch.export.Dim("batch", min=1, max=1 << 20)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            program = torch.onnx.export(model, (example,), dynamo=True, input_names=["images"],
                                        output_names=["logits"], dynamic_shapes=({0: batch},),
                                        external_data=False, verbose=False)
        proto = program.model_proto
        onnx.helper.set_model_props(proto, {"claimkit.arch": info.arch,
                                            "claimkit.weights": info.digest.hex})
        data = proto.SerializeToString()
    except Exception as e:  # noqa: BLE001 — the exporter fails from many layers
        first = " ".join(str(e).split())[:200]
        raise MalformedInputError(f"{model_path}: ONNX export failed ({first})") from None

    images = np.random.default_rng(0).integers(0, 256, (CHECK_IMAGES, *info.input_shape),
                                               dtype=np.uint8)
    exported = OnnxModel.from_bytes(data, name=str(out), device="cpu")
    with torch.no_grad():
        expected = model(torch.from_numpy(images).float() / 255).double().numpy()
    got = exported.raw_outputs(images)
    error = float(np.abs(got - expected).max()) / (1 + float(np.abs(expected).max()))
    if exported.num_classes != info.num_classes or error > CHECK_TOLERANCE:
        raise MalformedInputError(f"{model_path}: the ONNX export answers differently from the "
                                  f"model (relative logit error {error:.2g}); not written")
    atomic_write(out, data)
    return onnx_digest(data)
