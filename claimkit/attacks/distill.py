"""Knowledge distillation (Hinton et al. 2015): MOVE §2.1's dataset-accessible theft.

The thief holds the training data and queries the victim; a fresh student (any
architecture, by default the victim's) learns from the victim's soft targets at
temperature T, mixed with the true labels::

    loss = alpha * T² * KL(softmax(teacher / T) ‖ softmax(student / T))
           + (1 - alpha) * CE(student, labels)

The engine (:func:`claimkit.ml.train.train`) knows only hard labels, so this module
holds the one soft-target loop, :func:`distill_train`. It reuses the engine's pieces
(resident data, on-device translations, bf16 autocast and channels_last on CUDA, SGD
with Nesterov momentum and the same warm-up / linear-decay schedule) so a distilled
model costs what a trained one does. Logit-query extraction (:mod:`.extract`) uses it
with stored answers instead of a live teacher::

    record = distill("released.safetensors", data, "student.safetensors",
                     DistillConfig(student="mlp", temperature=4), seed=1)
    record["extra"]["agreement"]

With the victim's weights the teacher's logits are computed on each augmented batch;
with only an oracle (an ONNX file, an endpoint) each augmented batch is asked as uint8
images (translations of uint8 images stay exact) and the answered probabilities are the
soft targets: log p = logits − const, so the temperature acts the same.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import __version__
from ..errors import MalformedInputError
from ..ml.data import Dataset
from ..ml.oracle import check_probabilities
from ..ml.train import (
    RunRecord,
    TrainConfig,
    _autocast,
    _translate,
    as_tensor,
    evaluate,
    resolve_device,
    to_device,
)
from .common import (
    Target,
    Victim,
    attacker_share,
    finish,
    has_weights,
    resolve_victim,
    student,
    train_config,
)
from .config import DistillConfig

__all__ = ["DistillConfig", "distill", "distill_train", "kd_loss", "log_probabilities", "sgd"]

# Teacher: (augmented float batch on the device, its indices into the training split)
# → scores whose softmax is the teacher's distribution (logits or log-probabilities).
Teacher = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
FLOOR = 1e-12   # probabilities answered as 0 are read as this before the logarithm


def sgd(model: nn.Module, cfg: TrainConfig, total_steps: int) -> tuple[torch.optim.Optimizer, Any]:
    """The engine's optimiser and schedule: SGD + Nesterov, linear warm-up then linear decay."""
    total = max(1, total_steps)
    warmup = max(1, int(total * cfg.warmup_fraction))
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=cfg.lr,
                                momentum=cfg.momentum, nesterov=True, weight_decay=cfg.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (total - s) / (total - warmup + 1e-9))))
    return optimizer, schedule


def kd_loss(logits: torch.Tensor, teacher: torch.Tensor, temperature: float, alpha: float = 1.0,
            labels: torch.Tensor | None = None, label_smoothing: float = 0.0) -> torch.Tensor:
    """Hinton et al.'s loss: T²-scaled KL to the softened teacher, plus (1 − alpha) CE."""
    t = temperature
    soft = F.kl_div(F.log_softmax(logits.float() / t, 1), F.log_softmax(teacher.float() / t, 1),
                    log_target=True, reduction="batchmean") * (t * t)
    if labels is None or alpha >= 1:
        return soft
    hard = F.cross_entropy(logits.float(), labels, label_smoothing=label_smoothing)
    return alpha * soft + (1 - alpha) * hard


def log_probabilities(answers: np.ndarray, count: int, num_classes: int) -> np.ndarray:
    """An oracle's probabilities → float32 log-probabilities, refusing malformed answers."""
    p = np.asarray(answers, dtype=np.float64)
    if p.shape != (count, num_classes):
        raise MalformedInputError(f"the victim answered {p.shape} values, not {count} "
                                  f"probability vectors over {num_classes} classes")
    check_probabilities(p, "the victim's answers")
    return np.log(np.maximum(p, FLOOR)).astype(np.float32)


def distill_train(model: nn.Module, data: Dataset, cfg: TrainConfig, *, teacher: Teacher,
                  temperature: float, alpha: float = 1.0, progress: bool = False) -> RunRecord:
    """Train ``model`` in place on ``data``'s images against ``teacher``'s soft targets
    (``alpha`` < 1 adds ``data``'s labels); the engine's loop with a distillation loss."""
    from tqdm import tqdm

    device = resolve_device(cfg.device)
    on_cuda = device.type == "cuda"
    bf16 = on_cuda if cfg.bf16 is None else cfg.bf16
    channels_last = on_cuda if cfg.channels_last is None else cfg.channels_last
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    torch.manual_seed(cfg.seed)
    generator = torch.Generator().manual_seed(cfg.seed)
    model.to(device=device, memory_format=memory_format)
    step_model = torch.compile(model) if cfg.compile else model
    x_train, x_test = as_tensor(data.x_train, device), as_tensor(data.x_test, device)
    y_train = torch.from_numpy(data.y_train).to(device)
    y_test = torch.from_numpy(data.y_test).to(device)
    steps = max(1, cfg.epochs * -(-len(x_train) // cfg.batch_size))
    optimizer, schedule = sgd(model, cfg, steps)
    record = RunRecord({**asdict(cfg), "data": data.name, "data_digest": data.digest.hex,
                        "temperature": temperature, "alpha": alpha}, str(device),
                       torch.__version__, __version__, platform.python_version())
    if on_cuda:
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in tqdm(range(cfg.epochs), desc="distill", unit="epoch", disable=not progress or None,
                  leave=False):
        model.train()
        order = to_device(torch.randperm(len(x_train), generator=generator), device)
        for i in range(0, len(order), cfg.batch_size):
            idx = order[i:i + cfg.batch_size]
            xb = _translate(x_train[idx], cfg.shift, generator)
            with torch.no_grad():
                target = teacher(xb, idx)
            xb = xb.contiguous(memory_format=memory_format)
            with _autocast(device, bf16):
                logits = step_model(xb)
            loss = kd_loss(logits, target, temperature, alpha, y_train[idx], cfg.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
    if on_cuda:
        torch.cuda.synchronize(device)
    record.wall_seconds = time.perf_counter() - start
    record.train_accuracy = evaluate(model, x_train, y_train, bf16=bf16)
    record.test_accuracy = evaluate(model, x_test, y_test, bf16=bf16)
    model.to(memory_format=torch.contiguous_format)
    return record


class _Asked:
    """The victim as a live teacher, counting the images it answers."""

    def __init__(self, victim: Victim, device: torch.device) -> None:
        self.victim, self.device, self.count = victim, device, 0
        if victim.model is not None:
            victim.model.eval().requires_grad_(False)

    def __call__(self, xb: torch.Tensor, _idx: torch.Tensor) -> torch.Tensor:
        self.count += len(xb)
        if self.victim.model is not None:
            return self.victim.model(xb).float()
        images = (xb * 255).round_().clamp_(0, 255).to(torch.uint8).cpu().numpy()
        answers = self.victim.oracle.probabilities(images)
        return torch.from_numpy(log_probabilities(answers, len(images),
                                                  self.victim.oracle.num_classes)).to(self.device)


def distill(victim: Target, data: Dataset, out: str | os.PathLike[str],
            cfg: DistillConfig | None = None, *, device: str = "auto", seed: int = 0,
            progress: bool = False, name: str = "distill") -> dict[str, Any]:
    """Distil the victim into a fresh ``cfg.student`` on the attacker's share of the data."""
    started = time.perf_counter()
    cfg = cfg or DistillConfig()
    dev = resolve_device(device)
    v = resolve_victim(victim, data, dev, attack=name, weights=has_weights(victim))
    arch, model = student(cfg.student, v, data, seed, dev)
    share = attacker_share(data, cfg.data_fraction, seed)
    tcfg = train_config(data, seed=seed, device=dev, epochs=cfg.epochs, lr=cfg.lr,
                        batch_size=cfg.batch_size, fine_tune=False, arch=arch)
    teacher = _Asked(v, dev)
    record = distill_train(model, share, tcfg, teacher=teacher, temperature=cfg.temperature,
                           alpha=cfg.alpha, progress=progress)
    return finish(model, out, attack=name, cfg=cfg, arch=arch, data=data, victim=v, seed=seed,
                  started=started, epochs=tcfg.epochs, queries=teacher.count, trained=record)
