"""What every attack shares: the victim, the attacker's data, recipes, the output layer, and
the record written beside the attacked model.

An attack reaches its victim in one of two ways. *Weights* attacks (fine-tuning, pruning,
data-free extraction, piracy) need the model itself: a safetensors file or a
:class:`~claimkit.ml.oracle.LocalModel`; they work on a copy. *Query* attacks
(extraction, and distillation when it has no weights) need only an
:class:`~claimkit.schemes.base.Oracle`, so they run alike against a model file, an ONNX
file or an HTTP endpoint. Either way the victim's answers
on the test split give the attacked model's *agreement* with it; those evaluation
queries are not the attacker's and never count against a query budget.
"""

from __future__ import annotations

import copy
import os
import platform
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import __version__
from ..errors import MalformedInputError
from ..ml.data import Dataset, load_dataset
from ..ml.jobs import save_with_record
from ..ml.models import build
from ..ml.oracle import LocalModel
from ..ml.recipes import recipe
from ..ml.train import RunRecord, TrainConfig, as_tensor, evaluate, predict
from ..schemes.base import Oracle
from ..wire import Digest

__all__ = [
    "Target",
    "Victim",
    "attacker_share",
    "finish",
    "has_weights",
    "other_dataset",
    "output_layer",
    "replace_module",
    "resolve_victim",
    "student",
    "train_config",
]

Target = str | os.PathLike[str] | Oracle


@dataclass
class Victim:
    """The victim as an attack sees it: its answers, and its weights when it has them."""

    oracle: Oracle
    digest: Digest
    arch: str | None              # None when only queries reach it
    model: nn.Module | None       # a private copy on the attack's device, or None
    test_labels: np.ndarray       # its answers on the test split, for the agreement

    def weights(self) -> tuple[nn.Module, str]:
        """The private copy of the victim's network and its architecture's name."""
        if self.model is None or self.arch is None:
            raise MalformedInputError("this attack was given no copy of the victim's weights")
        return self.model, self.arch


def has_weights(victim: Target) -> bool:
    """Whether the attack can reach the victim's network (a model file or a LocalModel)."""
    return isinstance(victim, (str, os.PathLike, LocalModel))


def resolve_victim(victim: Target, data: Dataset, device: torch.device, *, attack: str,
                   weights: bool) -> Victim:
    """A model file, a :class:`LocalModel` or any oracle → :class:`Victim`.

    ``weights``: the attack changes or differentiates the network, so it gets a private
    copy on ``device``; an oracle that only answers queries is refused at once, naming
    ``attack``, before any query is spent.
    """
    if weights and not has_weights(victim):
        raise MalformedInputError(
            f"{attack} needs the victim's weights (--model FILE); an ONNX file or an "
            "endpoint only answers queries: use extract-label or extract-logit")
    if isinstance(victim, (str, os.PathLike)):
        victim = LocalModel.from_file(victim, device=str(device))
    if not isinstance(victim, Oracle):
        raise MalformedInputError("the victim must be a model file or an oracle")
    if tuple(victim.input_shape) != tuple(data.input_shape) or victim.num_classes != data.num_classes:
        raise MalformedInputError(
            f"the victim takes {tuple(victim.input_shape)} images into {victim.num_classes} "
            f"classes; {data.name} has {tuple(data.input_shape)} and {data.num_classes}")
    model = arch = None
    if isinstance(victim, LocalModel):
        arch = victim.info.arch
        if weights:
            model = copy.deepcopy(victim.model).to(device)
    labels = np.asarray(victim.labels(data.x_test), dtype=np.int64)
    return Victim(victim, victim.subject, arch, model, labels)


def attacker_share(data: Dataset, fraction: float, seed: int) -> Dataset:
    """The attacker's part of the training split: a seeded sample of ``fraction`` of it."""
    if fraction >= 1:
        return data
    count = max(1, round(len(data.y_train) * fraction))
    keep = np.sort(np.random.default_rng(seed).choice(len(data.y_train), count, replace=False))
    return replace(data, x_train=data.x_train[keep], y_train=data.y_train[keep])


def other_dataset(name: str, root: str, shape: tuple[int, ...], what: str, *,
                  root_param: str) -> Dataset:
    """A data set the attacker brings (``name`` or a directory), with images shaped ``shape``;
    its files under ``root``, the parameter ``root_param`` (not the command's --data-root)."""
    from ..errors import DataMissingError
    try:
        other = load_dataset(name, root=root or None)
    except DataMissingError as e:
        raise DataMissingError(f"{what}: {str(e).replace('--data-root', f'-p {root_param}')}") from None
    if other.input_shape != tuple(shape):
        raise MalformedInputError(f"{what} {name!r} has {other.input_shape} images; the victim "
                                  f"takes {tuple(shape)}")
    return other


def train_config(data: Dataset, *, seed: int, device: torch.device, epochs: int | None,
                 lr: float | None, batch_size: int | None, fine_tune: bool,
                 arch: str | None = None, **overrides: Any) -> TrainConfig:
    """The engine's config from the data set's recipe, ``None`` fields taking the recipe's
    training values, or its fine-tuning rate when ``fine_tune``."""
    r = recipe(data.name, data.input_shape, arch=arch)
    default_lr = r["ft_lr"] if fine_tune else r["lr"]
    fields: dict[str, Any] = {
        "epochs": r["epochs"] if epochs is None else epochs, "lr": default_lr if lr is None else lr,
        "batch_size": r["batch"] if batch_size is None else batch_size,
        "label_smoothing": r["label_smoothing"], "shift": r["shift"], "trigger_per_batch": r["tpb"],
        "seed": seed, "device": str(device)}
    fields.update((k, v) for k, v in overrides.items() if v is not None)
    return TrainConfig(**fields)


def output_layer(model: nn.Module, num_classes: int) -> tuple[str, nn.Linear]:
    """The output layer: the last linear layer, which must map to ``num_classes``."""
    found = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not found or found[-1][1].out_features != num_classes:
        raise MalformedInputError(f"cannot find the output layer ({num_classes} outputs) of "
                                  "this architecture")
    return found[-1]


def replace_module(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, module)


def student(arch: str, victim: Victim, data: Dataset, seed: int, device: torch.device) -> tuple[str, nn.Module]:
    """A fresh network for the attacker: ``arch``, else the victim's, else the recipe's."""
    arch = arch or victim.arch or recipe(data.name, data.input_shape)["arch"]
    model = build(arch, num_classes=data.num_classes, input_shape=data.input_shape, seed=seed)
    return arch, model.to(device)


def finish(model: nn.Module, out: str | os.PathLike[str], *, attack: str, cfg: Any, arch: str,
           data: Dataset, victim: Victim, seed: int, started: float, epochs: int | None,
           queries: int | None = None, trained: RunRecord | None = None,
           **extra: Any) -> dict[str, Any]:
    """Measure the attacked model, save it and its record (``out`` + ``.run.json``).

    The record holds the attack's name and parameters, the seed, the victim's digest,
    the queries the attacker spent (None: it had the weights), the epochs, the test and
    train accuracy on ``data``, the agreement with the victim on the test split, the
    engine's own run record when it trained, and the wall time of the whole attack.
    """
    device = next(model.parameters()).device
    model.eval()
    x_test = as_tensor(data.x_test, device)
    y_test = torch.from_numpy(data.y_test).to(device)
    answers = predict(model, x_test).cpu().numpy()
    wall = time.perf_counter() - started
    record = RunRecord({"attack": attack, "params": asdict(cfg), "seed": seed, "data": data.name,
                        "data_digest": data.digest.hex}, str(device), torch.__version__,
                       __version__, platform.python_version(), wall_seconds=wall)
    record.test_accuracy = evaluate(model, x_test, y_test)
    record.train_accuracy = evaluate(model, as_tensor(data.x_train, device),
                                     torch.from_numpy(data.y_train).to(device))
    record.trigger_accuracy = trained.trigger_accuracy if trained is not None else None
    record.extra = {"victim": victim.digest.hex,
                    "victim_test_accuracy": float(np.mean(victim.test_labels == data.y_test)),
                    "agreement": float(np.mean(answers == victim.test_labels)),
                    "epochs": epochs, "queries": queries,
                    "train": trained.to_dict() if trained is not None else None, **extra}
    save_with_record(model, Path(out), arch=arch, data=data, record=record)
    return record.to_dict()
