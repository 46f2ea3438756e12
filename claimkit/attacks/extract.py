"""Model extraction by queries: label-query and logit-query (MOVE §2.1 and §6; EWE §4).

The thief never sees the weights. It asks the victim, through the
:class:`~claimkit.schemes.base.Oracle` interface (a model file, an ONNX file or an HTTP
endpoint alike), about at most ``budget`` images of its query pool, once each, and trains
a fresh student on the answers: the predicted labels through the one engine
(label-query: a data set relabelled by the victim), or the probabilities through the
distillation loop with a KL loss (logit-query; MOVE §6 trains 20 epochs either way)::

    oracle = LocalModel.from_file("released.safetensors")      # or an ONNX / HTTP oracle
    record = extract_labels(oracle, data, "copy.safetensors", ExtractConfig(budget=500))
    record["extra"]["queries"], record["extra"]["agreement"]

The pool is the test split, the training split (EWE's adversary knows the training
images but not their labels), uniform noise, or another data set's training split. Every
query passes through :class:`QueryBudget`, which counts and refuses to exceed the budget;
its count is the ``queries`` of the record. Measuring the copy's agreement with the
victim afterwards asks about the test split too; those are the evaluation's queries,
not the thief's.
"""

from __future__ import annotations

import os
import time
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from ..errors import MalformedInputError
from ..ml.data import Dataset
from ..ml.train import resolve_device, train
from ..schemes.base import Oracle
from .common import Target, finish, other_dataset, resolve_victim, student, train_config
from .config import ExtractConfig
from .distill import distill_train, log_probabilities

__all__ = ["ExtractConfig", "QueryBudget", "extract_labels", "extract_logits", "query_pool"]

QUERY_BATCH = 1024   # images per request


class QueryBudget:
    """An oracle seen through a query budget: counts images asked, refuses past ``budget``."""

    def __init__(self, oracle: Oracle, budget: int) -> None:
        self.oracle, self.budget, self.used = oracle, budget, 0

    def _spend(self, images: np.ndarray) -> None:
        if self.used + len(images) > self.budget:
            raise MalformedInputError(f"query budget exceeded: {self.used} + {len(images)} > "
                                      f"{self.budget} images")
        self.used += len(images)

    def labels(self, images: np.ndarray) -> np.ndarray:
        self._spend(images)
        answers = np.asarray(self.oracle.labels(images))
        if answers.shape != (len(images),) or not np.issubdtype(answers.dtype, np.integer) \
                or (answers < 0).any() or (answers >= self.oracle.num_classes).any():
            raise MalformedInputError(f"the victim's answers are not {len(images)} class indices "
                                      f"in [0, {self.oracle.num_classes})")
        return answers.astype(np.int64)

    def log_probabilities(self, images: np.ndarray) -> np.ndarray:
        self._spend(images)
        return log_probabilities(self.oracle.probabilities(images), len(images),
                                 self.oracle.num_classes)


MAX_NOISE_BYTES = 1 << 30


def query_pool(cfg: ExtractConfig, data: Dataset, seed: int) -> np.ndarray:
    """The images the thief will ask about: ``cfg.budget`` of its pool, a seeded sample."""
    rng = np.random.default_rng(seed)
    if cfg.pool == "train":
        pool = data.x_train
    elif cfg.pool == "test":
        pool = data.x_test
    elif cfg.pool == "noise":
        count = cfg.budget or len(data.x_train)
        size = count * int(np.prod(data.input_shape))
        if size > MAX_NOISE_BYTES:       # drawn at once: a budget of 10^8 was 6 GiB on digits
            raise MalformedInputError(f"a noise pool of {count} images is {size >> 20} MiB, more "
                                      f"than {MAX_NOISE_BYTES >> 20}: lower -p budget")
        return rng.integers(0, 256, (count, *data.input_shape), dtype=np.uint8)
    else:
        pool = other_dataset(cfg.pool, cfg.pool_root, data.input_shape, "query pool",
                             root_param="pool_root").x_train
    if cfg.budget is None or cfg.budget >= len(pool):
        return pool
    return pool[np.sort(rng.choice(len(pool), cfg.budget, replace=False))]


def _ask(budget: QueryBudget, images: np.ndarray, logits: bool) -> np.ndarray:
    ask = budget.log_probabilities if logits else budget.labels
    return np.concatenate([ask(images[i:i + QUERY_BATCH]) for i in range(0, len(images), QUERY_BATCH)])


def _extract(victim: Target, data: Dataset, out: str | os.PathLike[str],
             cfg: ExtractConfig | None, *, device: str, seed: int, progress: bool, name: str,
             logits: bool) -> dict[str, Any]:
    started = time.perf_counter()
    cfg = cfg or ExtractConfig()
    dev = resolve_device(device)
    v = resolve_victim(victim, data, dev, attack=name, weights=False)
    images = query_pool(cfg, data, seed)
    budget = QueryBudget(v.oracle, len(images) if cfg.budget is None else cfg.budget)
    answers = _ask(budget, images, logits)
    labels = answers.argmax(1) if logits else answers
    answered = replace(data, name=f"{data.name}+answers", x_train=images, y_train=labels)
    arch, model = student(cfg.student, v, data, seed, dev)
    tcfg = train_config(data, seed=seed, device=dev, epochs=cfg.epochs, lr=cfg.lr,
                        batch_size=cfg.batch_size, fine_tune=False, arch=arch)
    if logits:
        stored = torch.from_numpy(answers).to(dev)
        record = distill_train(model, answered, tcfg, teacher=lambda _x, idx: stored[idx],
                               temperature=cfg.temperature, progress=progress)
    else:
        record = train(model, answered, tcfg, progress=progress)
    return finish(model, out, attack=name, cfg=cfg, arch=arch, data=data, victim=v, seed=seed,
                  started=started, epochs=tcfg.epochs, queries=budget.used, trained=record,
                  pool=cfg.pool, budget=budget.budget)


def extract_labels(victim: Target, data: Dataset, out: str | os.PathLike[str],
                   cfg: ExtractConfig | None = None, *, device: str = "auto", seed: int = 0,
                   progress: bool = False, name: str = "extract-label") -> dict[str, Any]:
    """Label-query extraction: a student trained on the victim's labels of the pool."""
    return _extract(victim, data, out, cfg, device=device, seed=seed, progress=progress,
                    name=name, logits=False)


def extract_logits(victim: Target, data: Dataset, out: str | os.PathLike[str],
                   cfg: ExtractConfig | None = None, *, device: str = "auto", seed: int = 0,
                   progress: bool = False, name: str = "extract-logit") -> dict[str, Any]:
    """Logit-query extraction: a student fitted to the victim's probabilities (KL loss)."""
    return _extract(victim, data, out, cfg, device=device, seed=seed, progress=progress,
                    name=name, logits=True)
