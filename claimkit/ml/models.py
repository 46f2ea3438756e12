"""Architectures by name, and model files in safetensors (never pickle).

A model file is a safetensors state dict whose metadata names the architecture, the
input shape and the number of classes, so any claimkit tool can rebuild the network
from the file alone; its identity is the canonical weights digest of
:mod:`claimkit.weights`, which does not change when the file is re-saved::

    model = build("digits-cnn", num_classes=10)
    digest = save_model(model, "model.safetensors", arch="digits-cnn", input_shape=(1, 8, 8))
    model, info = load_model("model.safetensors")

Architectures (each a plain ``nn.Sequential`` or torchvision model; all take float images
in [0, 1], normalised inside the network so callers never have to know the statistics):

* ``digits-cnn`` — 3 conv blocks, ~60k parameters: the embedded digits in seconds on a CPU.
* ``fmnist-net`` — a fast 28×28 network (conv-BN-ReLU blocks, 3 poolings), for
  Fashion-MNIST/MNIST.
* ``resnet18-cifar`` — torchvision's ResNet-18 with the CIFAR stem (3×3 conv, no max-pool).
* ``mlp`` — a two-hidden-layer perceptron for any input shape: the "another architecture"
  null model of the evaluation harness, and a cheap student for distillation.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from ..errors import MalformedInputError
from ..weights import SafetensorsHeader, header_from_bytes, weights_digest, weights_digest_from_bytes
from ..wire import Digest, atomic_write, load_json, read_regular_file
from .oracle_checks import MAX_CLASSES, MAX_DIM, MAX_IMAGE_BYTES

__all__ = ["ARCHITECTURES", "ModelInfo", "build", "save_model", "load_model"]

META_ARCH = "claimkit.arch"
META_INPUT = "claimkit.input_shape"
META_CLASSES = "claimkit.num_classes"
MAX_MODEL_BYTES = 1 << 30   # read whole into memory; ~24 times resnet18-cifar in float32
_DTYPES = {torch.float32: "F32", torch.int64: "I64"}   # what claimkit's networks hold


def _block(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class Normalize(nn.Module):
    """Maps [0, 1] images to zero mean, unit variance (fixed statistics, no parameters)."""

    def __init__(self, mean: float, std: float) -> None:
        super().__init__()
        self.mean, self.std = mean, std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def _digits_cnn(num_classes: int, channels: int) -> nn.Module:
    return nn.Sequential(Normalize(0.3, 0.35), *_block(channels, 32), *_block(32, 64),
                         nn.MaxPool2d(2), *_block(64, 64), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(64, num_classes))


def _fmnist_net(num_classes: int, channels: int) -> nn.Module:
    return nn.Sequential(Normalize(0.29, 0.35), *_block(channels, 64), *_block(64, 64),
                         nn.MaxPool2d(2), *_block(64, 128), *_block(128, 128), nn.MaxPool2d(2),
                         *_block(128, 256), nn.MaxPool2d(2), nn.AdaptiveMaxPool2d(1), nn.Flatten(),
                         nn.Linear(256, num_classes))


class _MLP(nn.Sequential):
    def __init__(self, num_classes: int, features: int) -> None:
        super().__init__(Normalize(0.3, 0.35), nn.Flatten(), nn.Linear(features, 512),
                         nn.ReLU(inplace=True), nn.Linear(512, 256), nn.ReLU(inplace=True),
                         nn.Linear(256, num_classes))


def _resnet18_cifar(num_classes: int, channels: int) -> nn.Module:
    from torchvision.models import resnet18

    net = resnet18(num_classes=num_classes)
    net.conv1 = nn.Conv2d(channels, 64, 3, stride=1, padding=1, bias=False)
    net.maxpool = nn.Identity()
    return nn.Sequential(Normalize(0.47, 0.25), net)


@dataclass(frozen=True)
class Architecture:
    make: Callable[[int, tuple[int, int, int]], nn.Module]
    input_shapes: tuple[tuple[int, int, int], ...]   # the shapes it was designed for; () = any


ARCHITECTURES: dict[str, Architecture] = {
    "digits-cnn": Architecture(lambda c, s: _digits_cnn(c, s[0]), ((1, 8, 8),)),
    "fmnist-net": Architecture(lambda c, s: _fmnist_net(c, s[0]), ((1, 28, 28),)),
    "resnet18-cifar": Architecture(lambda c, s: _resnet18_cifar(c, s[0]), ((3, 32, 32),)),
    "mlp": Architecture(lambda c, s: _MLP(c, s[0] * s[1] * s[2]), ()),
}


@dataclass(frozen=True)
class ModelInfo:
    arch: str
    input_shape: tuple[int, int, int]
    num_classes: int
    digest: Digest


def _architecture(arch: str) -> Architecture:
    if arch not in ARCHITECTURES:
        raise MalformedInputError(f"unknown architecture {arch!r} (known: {', '.join(ARCHITECTURES)})")
    return ARCHITECTURES[arch]


def build(arch: str, *, num_classes: int, input_shape: tuple[int, int, int] | None = None,
          seed: int | None = None) -> nn.Module:
    """A fresh network; ``seed`` fixes its initial weights (without touching the global RNG)."""
    spec = _architecture(arch)
    if input_shape is None and not spec.input_shapes:
        raise MalformedInputError(f"{arch} needs the input shape")
    shape = tuple(input_shape or spec.input_shapes[0])
    if len(shape) != 3 or not all(isinstance(d, int) and 0 < d <= 4096 for d in shape):
        raise MalformedInputError(f"input shape must be (C, H, W), not {shape}")
    if spec.input_shapes and shape not in spec.input_shapes:
        raise MalformedInputError(f"{arch} takes inputs of shape "
                                  f"{' or '.join(map(str, spec.input_shapes))}, not {tuple(shape)}")
    if not 2 <= num_classes <= 100_000:
        raise MalformedInputError("num_classes must be within [2, 100000]")
    if seed is None:
        return spec.make(num_classes, shape)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return spec.make(num_classes, shape)


def save_model(model: nn.Module, path: str | os.PathLike[str], *, arch: str,
               input_shape: tuple[int, int, int], num_classes: int) -> Digest:
    """Write the model's state dict atomically as safetensors; returns its weights digest."""
    from safetensors.torch import save

    _architecture(arch)
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    metadata = {META_ARCH: arch, META_INPUT: json.dumps(list(input_shape)),
                META_CLASSES: str(num_classes)}
    atomic_write(path, save(state, metadata=metadata))
    return weights_digest(path)


def load_model(path: str | os.PathLike[str], *, arch: str | None = None,
               device: str | torch.device = "cpu") -> tuple[nn.Module, ModelInfo]:
    """Rebuild a model from a claimkit safetensors file, refusing anything suspicious.

    The file is read once, so the header checked, the weights loaded and the digest
    named all come from the same bytes (a file swapped meanwhile cannot make the digest
    name other weights). The network is built on torch's meta device, which allocates
    nothing, and its tensors' names, shapes and dtypes are compared with the header's
    before any is materialised: metadata alone cannot make the loader allocate more
    than the file holds.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load

    path = Path(path)
    try:
        blob = read_regular_file(path, max_bytes=MAX_MODEL_BYTES)
    except FileNotFoundError as e:
        raise MalformedInputError(f"{path}: cannot read ({e.strerror})") from None
    header = header_from_bytes(blob, path)  # strict format check before any tensor is touched
    file_arch, shape, classes = _metadata(header.metadata, path)
    if arch is not None and arch != file_arch:
        raise MalformedInputError(f"{path}: the file holds a {file_arch}, not a {arch}")
    with torch.device("meta"):
        model = build(file_arch, num_classes=classes, input_shape=shape)
    _check_tensors(model, header, f"{path}: weights do not fit {file_arch}")
    try:
        state = load(blob)
        model.load_state_dict(state, strict=True, assign=True)
        model = model.to(device)
    # Out of memory, here or on the GPU; or a header the Rust reader parses otherwise than
    # ours (weights.py refuses what it knows of, -0 for 0: this is the backstop).
    except (RuntimeError, MemoryError, SafetensorError) as e:
        raise MalformedInputError(f"{path}: cannot load the weights "
                                  f"({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    for name, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise MalformedInputError(f"{path}: tensor {name!r} holds NaN or infinite values")
    model.eval()
    digest = weights_digest_from_bytes(blob, path, header)
    return model, ModelInfo(file_arch, shape, classes, digest)


def _metadata(meta: dict[str, str], path: Path) -> tuple[str, tuple[int, int, int], int]:
    """Architecture, input shape and class count, parsed strictly: JSON (bounded depth,
    no NaN), plain integers in range — not whatever ``int()`` makes of a string (``"1_0"``,
    ``"[1.9, 8, 8]"``, ``'"188"'`` all used to be read as something)."""
    def plain(value: Any, hi: int) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= hi

    try:
        arch = meta[META_ARCH]
        shape = load_json(meta[META_INPUT], what=META_INPUT)
        classes = load_json(meta[META_CLASSES], what=META_CLASSES)
    except KeyError:
        raise MalformedInputError(f"{path}: not a claimkit model (metadata lacks the "
                                  "architecture, input shape or class count)") from None
    except MalformedInputError as e:
        raise MalformedInputError(f"{path}: metadata {e}") from None
    if not isinstance(shape, list) or len(shape) != 3 \
            or not all(plain(d, MAX_DIM) for d in shape) or math.prod(shape) > MAX_IMAGE_BYTES:
        raise MalformedInputError(f"{path}: metadata {META_INPUT} must be [C, H, W], integers "
                                  f"within [1, {MAX_DIM}], C·H·W ≤ {MAX_IMAGE_BYTES}")
    if not plain(classes, MAX_CLASSES) or classes < 2:
        raise MalformedInputError(f"{path}: metadata {META_CLASSES} must be an integer "
                                  f"within [2, {MAX_CLASSES}]")
    return arch, (shape[0], shape[1], shape[2]), classes


def _check_tensors(model: nn.Module, header: SafetensorsHeader, where: str) -> None:
    """The header's tensors must be exactly the network's: same names, same shapes, and
    the network's own dtypes (F32, I64) — not cast, since a cast can turn a finite F64
    into infinity, and torch cannot even check some dtypes (F8) for NaN."""
    expected = {name: (tuple(t.shape), _DTYPES.get(t.dtype, str(t.dtype)))
                for name, t in model.state_dict().items()}
    found = {t.name: (t.shape, t.dtype) for t in header.tensors}
    for name in sorted(expected.keys() - found.keys())[:1]:
        raise MalformedInputError(f"{where}: tensor {name!r} missing")
    for name in sorted(found.keys() - expected.keys())[:1]:
        raise MalformedInputError(f"{where}: unexpected tensor {_short(name)}")
    for name, (want_shape, want_dtype) in expected.items():
        got_shape, got_dtype = found[name]
        if got_shape != want_shape:
            raise MalformedInputError(f"{where}: tensor {name!r} has shape {list(got_shape)}, "
                                      f"expected {list(want_shape)}")
        if got_dtype != want_dtype:
            raise MalformedInputError(f"{where}: tensor {name!r} is {got_dtype}, "
                                      f"expected {want_dtype}")


def _short(name: str, limit: int = 80) -> str:
    text = repr(name)
    return text if len(text) <= limit else text[:limit] + "…"
