"""Data-free (zero-shot) extraction: DFAD, Fang et al. 2019, MOVE's "zero-shot" attack [14].

MOVE §2.1 (model-accessible attacks): the thief has the victim's weights but no data.
A generator turns noise into images on which the victim and a fresh student disagree
most; the student learns to agree. Each iteration takes ``student_steps`` student steps
minimising the L1 distance between the two networks' logits on fresh generated images
(the engine's SGD, momentum and warm-up / linear-decay schedule), then one generator
step maximising it (Adam), as the authors' code does. The generator is DFAD's: a linear
layer to 128 (``width``) maps of a quarter of the image size, two ×2 upsamplings with 3×3
convolutions, batch norm and leaky ReLUs, and a tanh and a parameter-free batch norm at
the end; DFAD feeds that standardised output to networks that expect standardised
images, claimkit's networks take [0, 1] images and standardise them inside, so the
output is placed at mean 0.5 and deviation 0.25 (±2σ spans [0, 1])::

    record = data_free("released.safetensors", data, "zero-shot.safetensors",
                       DataFreeConfig(iterations=2000), seed=1)

Why only with the weights: the generator's step back-propagates through the victim.
Without them (an ONNX file, an endpoint) that gradient must be estimated from queries by
finite differences (DFME, Truong et al. 2021), which took a budget of 20 M queries for
CIFAR-10 in that paper: far beyond what a claim's threat model or this tool's runs
allow. Against an oracle this attack refuses with that reason; use extract-logit with
a ``noise`` pool for a data-free black-box baseline.
"""

from __future__ import annotations

import os
import time
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import MalformedInputError
from ..ml.data import Dataset
from ..ml.train import TrainConfig, resolve_device, to_device
from .common import Target, finish, has_weights, resolve_victim, student
from .config import DataFreeConfig
from .distill import sgd

__all__ = ["DataFreeConfig", "Generator", "data_free"]

PIXEL_MEAN, PIXEL_STD = 0.5, 0.25
WHY_NOT_BLACK_BOX = (
    "data-free extraction needs the victim's weights (--model FILE): DFAD back-propagates "
    "through the victim, and estimating that gradient from queries alone (DFME) took 20 M "
    "queries for CIFAR-10; against an oracle use extract-logit -p pool=noise")


class Generator(nn.Module):
    """DFAD's generator for (C, H, W) images with H and W divisible by 4: ``width``
    channels after the projection (DFAD: 128), half that after the second upsampling, a
    tanh and a batch norm without parameters, whose standardised output is placed at
    pixel mean 0.5 and deviation 0.25 (claimkit's networks take [0, 1] images)."""

    def __init__(self, latent: int, shape: tuple[int, int, int], width: int = 128) -> None:
        super().__init__()
        c, h, w = shape
        if h % 4 or w % 4:
            raise MalformedInputError(f"data-free extraction needs image sides divisible by 4, "
                                      f"not {h}×{w}")
        self.width, self.grid = width, (h // 4, w // 4)
        half = max(1, width // 2)
        self.project = nn.Linear(latent, width * self.grid[0] * self.grid[1])
        self.body = nn.Sequential(
            nn.BatchNorm2d(width), nn.Upsample(scale_factor=2),
            nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.LeakyReLU(0.2),
            nn.Upsample(scale_factor=2),
            nn.Conv2d(width, half, 3, padding=1, bias=False), nn.BatchNorm2d(half), nn.LeakyReLU(0.2),
            nn.Conv2d(half, c, 3, padding=1), nn.Tanh(), nn.BatchNorm2d(c, affine=False))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return PIXEL_MEAN + PIXEL_STD * self.body(self.project(z).view(len(z), self.width, *self.grid))


def data_free(victim: Target, data: Dataset, out: str | os.PathLike[str],
              cfg: DataFreeConfig | None = None, *, device: str = "auto", seed: int = 0,
              progress: bool = False, name: str = "data-free") -> dict[str, Any]:
    """Steal the victim without data: DFAD's adversarial generator against a fresh student.

    ``data`` serves only to measure the result (its test split) and to name the input
    shape; no training image is used.
    """
    from tqdm import tqdm

    started = time.perf_counter()
    cfg = cfg or DataFreeConfig()
    dev = resolve_device(device)
    if not has_weights(victim):
        raise MalformedInputError(WHY_NOT_BLACK_BOX)
    v = resolve_victim(victim, data, dev, attack=name, weights=True)
    teacher, _ = v.weights()
    teacher.eval().requires_grad_(False)
    arch, model = student(cfg.student, v, data, seed, dev)
    torch.manual_seed(seed)
    noise = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 1)
        generator = Generator(cfg.latent, data.input_shape, cfg.width).to(dev)
    steps = cfg.iterations * cfg.student_steps
    optimizer, schedule = sgd(model, TrainConfig(lr=cfg.lr, seed=seed, device=str(dev)), steps)
    g_optimizer = torch.optim.Adam(generator.parameters(), lr=cfg.generator_lr)

    def images() -> torch.Tensor:
        return generator(to_device(torch.randn(cfg.batch_size, cfg.latent, generator=noise), dev))

    model.train()
    generator.train()
    for _ in tqdm(range(cfg.iterations), desc="data-free", unit="it", disable=not progress or None,
                  leave=False):
        for _ in range(cfg.student_steps):
            with torch.no_grad():
                x = images()
                target = teacher(x)
            loss = F.l1_loss(model(x), target)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
        x = images()
        g_loss = -F.l1_loss(model(x), teacher(x))
        g_optimizer.zero_grad(set_to_none=True)
        g_loss.backward()
        g_optimizer.step()
    queries = cfg.iterations * (cfg.student_steps + 1) * cfg.batch_size
    return finish(model, out, attack=name, cfg=cfg, arch=arch, data=data, victim=v, seed=seed,
                  started=started, epochs=None, queries=queries, iterations=cfg.iterations)
