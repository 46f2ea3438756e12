"""An ONNX file as a suspect, run by onnxruntime (the ``onnx`` extra).

See :mod:`claimkit.ml.oracle` for the subject it names and the checks it shares.
"""

from __future__ import annotations

import math
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import MalformedInputError, OracleError
from ..wire import Digest, read_regular_file, sha256
from .oracle_checks import (
    MAX_BATCH,
    MAX_CLASSES,
    MAX_DIM,
    MAX_IMAGE_BYTES,
    MAX_ONNX_BYTES,
    ONNX_DOMAIN,
    _check_images,
    _one_line,
    check_probabilities,
    softmax,
)

# Seconds one batch (at most ``batch_size`` images) may run, and the one-image probe that
# finds the class count: a graph may loop for ever (a Loop of 2^62 trips), and the arbiter
# must get an answer or an error. onnxruntime stops a run whose RunOptions.terminate is set.
BATCH_SECONDS = 600.0
PROBE_SECONDS = 60.0


# -- an ONNX file ----------------------------------------------------------------------------
def onnx_digest(data: bytes) -> Digest:
    """An ONNX model's subject: SHA-256("claimkit/onnx/v1\\n" || file bytes)."""
    return Digest(sha256(ONNX_DOMAIN + data))


def _onnx_modules() -> tuple[Any, Any]:
    try:
        import onnx
        import onnxruntime
    except ImportError:
        raise OracleError("ONNX models need onnx and onnxruntime: "
                          "pip install 'claimkit[onnx]'") from None
    return onnx, onnxruntime


def _has_external_data(onnx: Any, model: Any) -> bool:
    """Whether any tensor anywhere in the model keeps its bytes in another file: every
    message field is walked, so graphs, subgraphs, functions and their attributes'
    defaults, training info and whatever a later ONNX adds are all covered (a walk over
    named fields missed a function's default attribute, which onnxruntime then read
    from a path relative to the working directory)."""
    from google.protobuf.message import Message

    tensor = onnx.TensorProto
    stack: list[Any] = [model]
    while stack:
        message = stack.pop()
        if isinstance(message, tensor) and (message.data_location == tensor.EXTERNAL
                                            or len(message.external_data)):
            return True
        for field, value in message.ListFields():
            if field.type == field.TYPE_MESSAGE:    # one message, a repeated field, or a map
                items = [value] if isinstance(value, Message) else (
                    value.values() if hasattr(value, "values") else value)
                stack.extend(item for item in items if isinstance(item, Message))
    return False


def _providers(ort: Any, device: str) -> list[Any]:
    has_cuda = "CUDAExecutionProvider" in ort.get_available_providers()
    if device == "cpu" or (device == "auto" and not has_cuda):
        return ["CPUExecutionProvider"]
    kind, _, index = device.partition(":")
    if kind not in ("auto", "cuda") or (index and not index.isdigit()):
        raise MalformedInputError(f"unknown device {device!r}")
    if not has_cuda:
        raise OracleError(f"--device {device}: this onnxruntime has no CUDA provider "
                          "(pip install onnxruntime-gpu)")
    return [("CUDAExecutionProvider", {"device_id": int(index or 0)}), "CPUExecutionProvider"]


@dataclass
class OnnxModel:
    """An ONNX classifier: one float32 input (N, C, H, W) in [0, 1], one output (N, classes).

    The batch dimension may be symbolic (claimkit's exporter makes it so) or fixed, in
    which case queries run in chunks of exactly that size, the last one padded.
    """

    session: Any
    input_name: str
    output_name: str
    input_shape: tuple[int, int, int]
    num_classes: int
    subject: Digest
    name: str
    outputs: str = "logits"
    fixed_batch: int | None = None
    batch_size: int = 1024

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], *, device: str = "auto",
                  outputs: str = "logits") -> OnnxModel:
        _onnx_modules()
        try:     # a regular file: a FIFO or /dev/zero would hang or never end
            data = read_regular_file(path, max_bytes=MAX_ONNX_BYTES)
        except (OSError, MalformedInputError) as e:
            raise OracleError(str(e) if isinstance(e, MalformedInputError)
                              else f"{path}: cannot read ({e.strerror})") from None
        return cls.from_bytes(data, name=Path(path).name, device=device, outputs=outputs)

    @classmethod
    def from_bytes(cls, data: bytes, *, name: str, device: str = "auto",
                   outputs: str = "logits") -> OnnxModel:
        """Load the very bytes that are hashed, so the subject names what answers."""
        onnx, ort = _onnx_modules()
        if outputs not in ("logits", "probabilities"):
            raise MalformedInputError(f"outputs must be logits or probabilities, not {outputs!r}")
        try:
            proto = onnx.load_model_from_string(data)
        except Exception as e:  # noqa: BLE001 — protobuf's errors, untrusted bytes
            raise OracleError(f"{name}: not an ONNX model ({_one_line(e)})") from None
        if _has_external_data(onnx, proto):
            raise OracleError(f"{name}: weights stored outside the file (external data) are "
                              "not covered by its digest; save the model as one file")
        del proto
        options = ort.SessionOptions()
        options.log_severity_level = 3
        try:
            session = ort.InferenceSession(data, options, providers=_providers(ort, device))
        except Exception as e:  # noqa: BLE001 — onnxruntime's errors: no common base
            raise OracleError(f"{name}: onnxruntime cannot load it ({_one_line(e)})") from None
        inputs, outs = session.get_inputs(), session.get_outputs()
        if len(inputs) != 1 or len(outs) < 1:
            raise OracleError(f"{name}: expected one input (the images), found {len(inputs)}")
        spec = inputs[0]
        dims = list(spec.shape)
        if spec.type != "tensor(float)" or len(dims) != 4:
            raise OracleError(f"{name}: the input must be float32 (N, C, H, W), not "
                              f"{spec.type} {dims}")
        shape = dims[1:]
        if not all(isinstance(d, int) and 0 < d <= MAX_DIM for d in shape) \
                or math.prod(shape) > MAX_IMAGE_BYTES:
            raise OracleError(f"{name}: the input's C, H, W must be fixed sizes, not {shape}")
        fixed = dims[0] if isinstance(dims[0], int) and dims[0] > 0 else None
        # Refuse sizes that would make the probe below allocate without bound.
        if fixed is not None and fixed > MAX_BATCH:
            raise OracleError(f"{name}: a fixed batch of {fixed} images (at most {MAX_BATCH})")
        width = list(outs[0].shape)[1:2]
        if width and isinstance(width[0], int) and not 2 <= width[0] <= MAX_CLASSES:
            raise OracleError(f"{name}: {width[0]} classes (expected 2 to {MAX_CLASSES})")
        model = cls(session, spec.name, outs[0].name, tuple(shape), 0, onnx_digest(data), name,
                    outputs, fixed)
        # The class count is the output's width, which graphs may leave symbolic: ask once.
        probe = model._run(np.zeros((1, *shape), dtype=np.float32), seconds=PROBE_SECONDS)
        model.num_classes = probe.shape[1]
        if not 2 <= model.num_classes <= MAX_CLASSES:
            raise OracleError(f"{name}: {model.num_classes} classes (expected 2 to {MAX_CLASSES})")
        return model

    def _run(self, x: np.ndarray, seconds: float | None = None) -> np.ndarray:
        """Raw outputs for float32 inputs, batched, validated as (N, classes) finite numbers;
        a batch running past ``seconds`` (:data:`BATCH_SECONDS`) is stopped and refused."""
        import onnxruntime as ort

        seconds = BATCH_SECONDS if seconds is None else seconds
        step = self.fixed_batch or self.batch_size
        out = []
        for i in range(0, len(x), step):
            chunk = x[i:i + step]
            if self.fixed_batch and len(chunk) < step:
                chunk = np.concatenate([chunk, np.zeros((step - len(chunk), *x.shape[1:]),
                                                        dtype=x.dtype)])
            options = ort.RunOptions()
            options.log_severity_level = 4            # its errors become ours, below
            timer = threading.Timer(seconds, setattr, (options, "terminate", True))
            timer.start()
            try:
                raw = self.session.run([self.output_name], {self.input_name: chunk}, options)[0]
            except Exception as e:  # noqa: BLE001 — as above
                if options.terminate:
                    raise OracleError(f"{self.name}: a batch of {len(chunk)} images ran longer "
                                      f"than {seconds:g} s; stopped") from None
                raise OracleError(f"{self.name}: onnxruntime failed ({_one_line(e)})") from None
            finally:
                timer.cancel()
            raw = np.asarray(raw)
            # num_classes is 0 only while from_bytes probes for it.
            width = self.num_classes or (raw.shape[1] if raw.ndim == 2 else -1)
            if raw.ndim != 2 or raw.shape != (len(chunk), width) or raw.dtype.kind != "f":
                raise OracleError(f"{self.name}: output of shape {raw.shape} ({raw.dtype}) for "
                                  f"{len(chunk)} images; expected (N, classes) floats")
            if not np.isfinite(raw).all():
                raise OracleError(f"{self.name}: NaN or infinite outputs")
            out.append(raw[:min(step, len(x) - i)])
        if not out:
            return np.zeros((0, self.num_classes))
        return np.concatenate(out).astype(np.float64)

    def raw_outputs(self, images: np.ndarray) -> np.ndarray:
        """The output as the model gives it (logits, for a claimkit export), float64."""
        x = _check_images(images, self.input_shape).astype(np.float32) / np.float32(255)
        return self._run(x)

    def labels(self, images: np.ndarray) -> list[int]:
        return [int(v) for v in self.raw_outputs(images).argmax(axis=1)]

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """float64 (N, classes): softmax of the logits, or the model's own probabilities
        (checked to be probability vectors) when opened with ``outputs="probabilities"``."""
        raw = self.raw_outputs(images)
        if self.outputs == "probabilities":
            return check_probabilities(raw, self.name)
        return softmax(raw)
