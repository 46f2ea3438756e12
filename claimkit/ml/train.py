"""One training engine for clean and marked models, on a GPU or a CPU.

A watermark's cost is measured as a ratio to the clean run on the same engine, so
every model claimkit makes goes through :func:`train`. The data set is moved to the
device once and stays there; augmentation (random translations) runs on the device,
from offsets drawn on the CPU (the same on every device) and copied without waiting for
the GPU (:func:`to_device`); on CUDA the step uses bf16 autocast and channels_last, and
can be compiled. On a CPU the same code runs in float32. Runs are seeded and return a
:class:`RunRecord` (config, seed, device, versions, wall time, accuracies) that callers
write beside the model::

    model = build("digits-cnn", num_classes=10)
    record = train(model, load_dataset("digits"), TrainConfig(epochs=8, seed=1))
    record.test_accuracy

Marking with a trigger set (Adi et al. 2018, §4.1; their code appends 2 trigger images
to every batch of 100): pass ``triggers=(images, labels)`` and each batch carries
``trigger_per_batch`` of them, cycling through the set.

Schemes whose marking needs its own batches (EWE, Jia et al. 2021, Algorithm 1: after
every r normal batches, one watermark batch with an extra loss term) pass an
:class:`Interleave`; the extra step uses the same optimiser, learning rate and autocast,
and the clean path is unchanged.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import __version__
from ..errors import MalformedInputError
from . import distributed
from .data import Dataset

__all__ = ["TrainConfig", "RunRecord", "Interleave", "resolve_device", "train", "evaluate",
           "predict", "as_tensor", "to_device", "random_offsets", "translate"]


@dataclass(frozen=True)
class TrainConfig:
    """Every hyper-parameter in one place; units in the names or comments."""

    epochs: int = 10
    batch_size: int = 128
    lr: float = 0.05                 # peak learning rate (SGD, Nesterov momentum)
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_fraction: float = 0.2     # of all steps: linear ramp up, then linear decay to 0
    label_smoothing: float = 0.0
    shift: int = 1                   # augmentation: random translation by up to this many pixels
    seed: int = 0
    device: str = "auto"             # "auto", "cpu", "cuda", "cuda:1", ...
    bf16: bool | None = None         # default: on CUDA only
    channels_last: bool | None = None  # default: on CUDA only
    compile: bool = False            # torch.compile the model (CUDA)
    trigger_per_batch: int = 2       # trigger images appended to each batch when marking

    def __post_init__(self) -> None:
        if self.epochs < 0 or self.batch_size < 1 or self.lr <= 0 or self.shift < 0:
            raise MalformedInputError("training config: epochs ≥ 0, batch_size ≥ 1, lr > 0, shift ≥ 0")


@dataclass(frozen=True)
class Interleave:
    """One extra optimiser step after every ``every`` normal batches, on ``loss(model)``.

    ``loss`` runs under the engine's autocast with the model in training mode and returns
    a scalar; it may keep state of its own (EWE's learned temperatures).
    """

    every: int
    loss: Callable[[nn.Module], torch.Tensor]

    def __post_init__(self) -> None:
        if self.every < 1:
            raise MalformedInputError("interleave: every must be ≥ 1 normal batch")


@dataclass
class RunRecord:
    config: dict[str, Any]
    device: str
    torch_version: str
    claimkit_version: str
    python: str
    wall_seconds: float = 0.0
    train_accuracy: float = 0.0
    test_accuracy: float = 0.0
    trigger_accuracy: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise MalformedInputError(f"unknown device {name!r}") from None
    if device.type not in ("cpu", "cuda"):    # torch names meta, mps, xla …: none is built here
        raise MalformedInputError(f"device {name!r}: claimkit runs on cpu, cuda or cuda:N")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise MalformedInputError("--device cuda asked for, but no CUDA device is available")
    return device


def as_tensor(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 (N, C, H, W) → float32 in [0, 1] on ``device``."""
    if images.dtype != np.uint8 or images.ndim != 4:
        raise MalformedInputError("images must be uint8 arrays of shape (N, C, H, W)")
    return torch.from_numpy(np.ascontiguousarray(images)).to(device).float().div_(255)


def to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A CPU tensor on ``device`` without making the host wait for the GPU.

    A copy from pageable memory into CUDA returns only once every kernel already queued
    on the stream has run, so a copy per batch drains the GPU's queue each time (the
    training loop's random draws are made on the CPU, so that every device sees the same
    ones). Staged in pinned memory, the copy is queued like a kernel; the caching host
    allocator keeps the pinned block until the copy is done.
    """
    if device.type != "cuda":
        return t.to(device)
    return t.pin_memory().to(device, non_blocking=True)


def random_offsets(n: int, shift: int, generator: torch.Generator,
                   device: torch.device) -> torch.Tensor:
    """(2, n) offsets in [0, 2·shift], drawn on the CPU from ``generator`` as two draws of n
    (the same values on every device), on ``device`` in one :func:`to_device` copy."""
    draws = [torch.randint(0, 2 * shift + 1, (n,), generator=generator) for _ in range(2)]
    return to_device(torch.stack(draws), device)


def _translate(x: torch.Tensor, shift: int, generator: torch.Generator) -> torch.Tensor:
    """Random per-image translation by up to ``shift`` pixels, zero-filled, on x's device."""
    if shift == 0:
        return x
    dx, dy = random_offsets(len(x), shift, generator, x.device)
    return translate(x, shift, dy, dx)


def translate(x: torch.Tensor, shift: int, dy: torch.Tensor, dx: torch.Tensor) -> torch.Tensor:
    """Each image of x moved by (dy − shift, dx − shift) pixels, zero-filled: a gather, so
    differentiable in x (UBW-C optimises its perturbations through it)."""
    n, _, h, w = x.shape
    padded = F.pad(x, (shift, shift, shift, shift))
    rows = (dy[:, None] + torch.arange(h, device=x.device)[None, :])          # (n, h)
    cols = (dx[:, None] + torch.arange(w, device=x.device)[None, :])          # (n, w)
    idx_n = torch.arange(n, device=x.device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[idx_n, rows[:, :, None], cols[:, None, :]]  # (n, h, w, c)
    return out.permute(0, 3, 1, 2)


def _autocast(device: torch.device, enabled: bool):
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=enabled)


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, *, batch_size: int = 1024,
            bf16: bool = False) -> torch.Tensor:
    """Class indices for float images already on the model's device."""
    model.eval()
    out = []
    for i in range(0, len(x), batch_size):
        with _autocast(x.device, bf16):
            out.append(model(x[i:i + batch_size]).argmax(1))
    return torch.cat(out) if out else torch.empty(0, dtype=torch.long, device=x.device)


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, bf16: bool = False) -> float:
    if len(y) == 0:
        return 0.0
    return float((predict(model, x, bf16=bf16) == y).float().mean())


def train(model: nn.Module, data: Dataset, cfg: TrainConfig, *,
          triggers: tuple[np.ndarray, np.ndarray] | None = None,
          interleave: Interleave | None = None, progress: bool = True) -> RunRecord:
    """Train ``model`` in place on ``data`` (optionally marking it with ``triggers`` or
    with ``interleave``'s extra batches)."""
    from tqdm import tqdm

    group = distributed.world(cfg.device)  # set under torchrun, else None
    device = group.device if group else resolve_device(cfg.device)
    on_cuda = device.type == "cuda"
    bf16 = on_cuda if cfg.bf16 is None else cfg.bf16
    channels_last = on_cuda if cfg.channels_last is None else cfg.channels_last
    torch.manual_seed(cfg.seed)
    generator = torch.Generator().manual_seed(cfg.seed)

    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model.to(device=device, memory_format=memory_format)
    step_model = torch.compile(model) if cfg.compile else model
    if group is not None:
        from torch.nn.parallel import DistributedDataParallel
        step_model = DistributedDataParallel(step_model, device_ids=[device.index] if on_cuda else None)
    shard = slice(group.rank, None, group.size) if group else slice(None)
    # Every rank draws the same batch order from ``generator``; augmentation draws from a
    # per-rank one, whose use depends on the shard's size.
    # Under DDP a last batch smaller than the world would leave a rank without data.
    tail = len(data.x_train) % cfg.batch_size if group and len(data.x_train) % cfg.batch_size < group.size else 0
    augment = torch.Generator().manual_seed(cfg.seed + 7919 * (group.rank + 1)) if group else generator
    x_train, x_test = as_tensor(data.x_train, device), as_tensor(data.x_test, device)
    y_train = torch.from_numpy(data.y_train).to(device)
    y_test = torch.from_numpy(data.y_test).to(device)
    if interleave is not None and group is not None:
        raise MalformedInputError("interleaved marking batches (EWE) do not run under torchrun; "
                                  "train on one device")
    tx = ty = None
    if triggers is not None:
        tx, ty = as_tensor(triggers[0], device), torch.from_numpy(triggers[1]).long().to(device)
        if tx.shape[1:] != x_train.shape[1:] or len(tx) != len(ty) or len(tx) == 0:
            raise MalformedInputError("triggers must be images shaped like the data, one label each")

    steps_per_epoch = max(1, (len(x_train) + cfg.batch_size - 1) // cfg.batch_size)
    total = max(1, cfg.epochs * steps_per_epoch)
    warmup = max(1, int(total * cfg.warmup_fraction))
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                                nesterov=True, weight_decay=cfg.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (total - s) / (total - warmup + 1e-9))))
    loss_fn = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    record = RunRecord({**asdict(cfg), "data": data.name, "data_digest": data.digest.hex,
                        "marked": triggers is not None or interleave is not None},
                       str(device), torch.__version__,
                       __version__, platform.python_version())
    if group is not None:
        record.extra["world_size"] = group.size

    if on_cuda:
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    trigger_cursor = step = 0
    for _ in tqdm(range(cfg.epochs), desc="train", unit="epoch", disable=not progress or None,
                  leave=False):
        model.train()
        order = to_device(torch.randperm(len(x_train), generator=generator), device)
        for i in range(0, len(order) - tail, cfg.batch_size):
            idx = order[i:i + cfg.batch_size][shard]
            xb = _translate(x_train[idx], cfg.shift, augment)
            yb = y_train[idx]
            if tx is not None and cfg.trigger_per_batch:
                pick = (torch.arange(cfg.trigger_per_batch, device=device) + trigger_cursor) % len(tx)
                trigger_cursor = (trigger_cursor + cfg.trigger_per_batch) % len(tx)
                pick = pick[shard]
                xb, yb = torch.cat([xb, tx[pick]]), torch.cat([yb, ty[pick]])
            xb = xb.contiguous(memory_format=memory_format)
            with _autocast(device, bf16):
                loss = loss_fn(step_model(xb), yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            step += 1
            if interleave is not None and step % interleave.every == 0:
                with _autocast(device, bf16):
                    extra = interleave.loss(model)
                optimizer.zero_grad(set_to_none=True)
                extra.backward()
                optimizer.step()
    if on_cuda:
        torch.cuda.synchronize(device)
    record.wall_seconds = time.perf_counter() - start
    if group is not None:
        distributed.sync_buffers(model)
    record.train_accuracy = evaluate(model, x_train, y_train, bf16=bf16)
    record.test_accuracy = evaluate(model, x_test, y_test, bf16=bf16)
    if tx is not None:
        record.trigger_accuracy = evaluate(model, tx, ty, bf16=bf16)
    model.to(memory_format=torch.contiguous_format)
    return record
