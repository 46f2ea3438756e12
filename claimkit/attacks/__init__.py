"""Removal and stealing attacks on a released model, each one function with a config.

Every attack of the papers is registered here by name, so the evaluation harness and
``claimkit attack NAME`` call them alike; each trains through the one engine, is seeded,
and writes the attacked model (safetensors) with its record beside it (``.run.json``:
attack, parameters, seed, victim digest, queries spent, epochs, accuracy, agreement
with the victim, wall time)::

    from claimkit.attacks import ATTACKS, run_attack
    from claimkit.ml.data import load_dataset

    data = load_dataset("digits")
    record = run_attack("ftll", "released.safetensors", data, "ftll.safetensors",
                        {"epochs": "5"}, device="cpu", seed=1)
    record["test_accuracy"], record["extra"]["agreement"], record["extra"]["queries"]

    # typed, through a family's module (the config dataclasses live in .config):
    from claimkit.attacks.config import ExtractConfig
    from claimkit.attacks.extract import extract_labels
    from claimkit.ml.oracle import LocalModel
    extract_labels(LocalModel.from_file("released.safetensors"), data, "copy.safetensors",
                   ExtractConfig(budget=500, pool="test"), seed=1)

Families and sources: :mod:`.finetune` (FTLL, FTAL, RTLL, RTAL, transfer learning: Adi et
al. 2018 §5.4-5.5; UBW's fine-tuning, App. C.3), :mod:`.prune` (magnitude pruning and
fine-pruning: UBW App. C.3), :mod:`.distill` (knowledge distillation: MOVE §2.1),
:mod:`.extract` (label- and logit-query extraction: MOVE §2.1, §6; EWE §4),
:mod:`.datafree` (DFAD zero-shot extraction: MOVE [14]), :mod:`.piracy` (Adi et al. §5.5).

Every function has the same shape, ``fn(victim, data, out, cfg, *, device, seed,
progress, name) -> record``: ``victim`` a model file, a
:class:`~claimkit.ml.oracle.LocalModel` or (extraction, distillation) any
:class:`~claimkit.schemes.base.Oracle`; ``data`` the attacker's
:class:`~claimkit.ml.data.Dataset`, whose test split measures the result. This package
imports no torch until an attack runs, so the command line lists attacks cheaply.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import MalformedInputError
from ..schemes.base import parse_params
from .config import (
    DataFreeConfig,
    DistillConfig,
    ExtractConfig,
    FineTuneConfig,
    PiracyConfig,
    PruneConfig,
    TransferConfig,
)

if TYPE_CHECKING:
    from ..ml.data import Dataset
    from ..schemes.base import Oracle

__all__ = [
    "ATTACKS",
    "AttackSpec",
    "DataFreeConfig",
    "DistillConfig",
    "ExtractConfig",
    "FineTuneConfig",
    "PiracyConfig",
    "PruneConfig",
    "TransferConfig",
    "attack_names",
    "get_attack",
    "run_attack",
]


@dataclass(frozen=True)
class AttackSpec:
    """One registered attack: its config class, the function that runs it, and the
    config values it fixes (not the user's to set) or presets (the user may override)."""

    name: str
    summary: str                  # one line for --help
    config: type
    function: str                 # "module:function" under claimkit.attacks
    fixed: Mapping[str, Any] = field(default_factory=dict)
    presets: Mapping[str, Any] = field(default_factory=dict)
    queries_only: bool = False    # works against any oracle, not only a model file
    example: str = "--data digits"   # the data (and any -p) of the help's Example: line

    def settable(self) -> list[str]:
        return [f.name for f in dataclasses.fields(self.config) if f.name not in self.fixed]

    def defaults(self) -> dict[str, Any]:
        """The value of every settable field when the user sets none."""
        base = {f.name: f.default for f in dataclasses.fields(self.config)}
        return {k: self.presets.get(k, base[k]) for k in self.settable()}

    def make_config(self, params: Mapping[str, Any] | None = None) -> Any:
        """The config from ``-p KEY=VALUE`` strings (TOML numbers and booleans welcome)."""
        given = {k: _text(v) for k, v in (params or {}).items()}
        for key in given:
            if key in self.fixed:       # listed by --help as "Fixed: …", not unknown
                raise MalformedInputError(f"--param {key}: fixed at {_text(self.fixed[key])} "
                                          f"for attack {self.name}")
            if key not in self.settable():
                raise MalformedInputError(f"--param {key}: unknown for attack {self.name} "
                                          f"(settable: {', '.join(self.settable())})")
        preset = {k: v for k, v in self.presets.items() if k not in given}
        return parse_params(self.config, given, {**preset, **self.fixed})


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


_UBW_FINETUNE = {"layers": "fc", "data_fraction": 0.1, "lr": 0.1, "epochs": 100}

ATTACKS: dict[str, AttackSpec] = {spec.name: spec for spec in (
    AttackSpec("ftll", "fine-tune the output layer, the rest frozen (Adi §5.4)",
               FineTuneConfig, "finetune:fine_tune", fixed={"layers": "last", "reinit": False}),
    AttackSpec("ftal", "fine-tune all layers (Adi et al. §5.4)",
               FineTuneConfig, "finetune:fine_tune", fixed={"layers": "all", "reinit": False}),
    AttackSpec("rtll", "redraw and retrain the output layer only (Adi §5.4)",
               FineTuneConfig, "finetune:fine_tune", fixed={"layers": "last", "reinit": True}),
    AttackSpec("rtal", "redraw the output layer, retrain all layers (Adi §5.4)",
               FineTuneConfig, "finetune:fine_tune", fixed={"layers": "all", "reinit": True}),
    AttackSpec("finetune", "UBW's schedule: FC layers, 10% data, lr 0.1, 100 epochs",
               FineTuneConfig, "finetune:fine_tune", presets=_UBW_FINETUNE),
    AttackSpec("transfer", "retrain on another task, keep the output layer (Adi §5.5)",
               TransferConfig, "finetune:transfer",
               example="--data mnist --data-root mnist/ -p target=fashion-mnist"),
    AttackSpec("prune", "zero each layer's smallest weights (magnitude pruning)",
               PruneConfig, "prune:prune"),
    AttackSpec("fine-prune", "cut the least active channels, fine-tune (Liu; UBW C.3)",
               PruneConfig, "prune:prune", fixed={"method": "channel"},
               presets={"epochs": None, "data_fraction": 0.1}),
    AttackSpec("distill", "distil into a fresh student at temperature T (MOVE §2.1)",
               DistillConfig, "distill:distill", queries_only=True),
    AttackSpec("extract-label", "train a copy on the victim's labels, within a budget",
               ExtractConfig, "extract:extract_labels", fixed={"temperature": 1.0},
               queries_only=True),
    AttackSpec("extract-logit", "fit a copy to the victim's probabilities, within a budget",
               ExtractConfig, "extract:extract_logits", queries_only=True),
    AttackSpec("data-free", "zero-shot extraction with a DFAD generator, no data",
               DataFreeConfig, "datafree:data_free"),
    AttackSpec("piracy", "embed the thief's own trigger set by fine-tuning (Adi §5.5)",
               PiracyConfig, "piracy:piracy"),
)}


def attack_names() -> list[str]:
    return list(ATTACKS)


def get_attack(name: str) -> AttackSpec:
    if name not in ATTACKS:
        raise MalformedInputError(f"unknown attack {name!r} (known: {', '.join(ATTACKS)})")
    return ATTACKS[name]


def run_attack(name: str, victim: str | os.PathLike[str] | Oracle, data: Dataset,
               out: str | os.PathLike[str], config: Any = None, *, device: str = "auto",
               seed: int = 0, progress: bool = False) -> dict[str, Any]:
    """Run attack ``name`` on ``victim`` and write ``out`` (+ ``.run.json``); the record.

    ``config``: the attack's config dataclass, or ``KEY: VALUE`` parameters as the
    command line's ``-p`` takes them (None: the defaults).
    """
    spec = get_attack(name)
    if not isinstance(seed, int) or seed < 0:
        raise MalformedInputError(f"seed must be a non-negative integer, not {seed!r}")
    if isinstance(config, spec.config):
        clash = [k for k, v in spec.fixed.items() if getattr(config, k) != v]
        if clash:
            raise MalformedInputError(f"attack {name} fixes {', '.join(clash)}; the config "
                                      "given sets them otherwise")
        cfg = config
    else:
        cfg = spec.make_config(config)
    module, _, function = spec.function.partition(":")
    run = getattr(importlib.import_module(f"{__name__}.{module}"), function)
    return run(victim, data, out, cfg, device=device, seed=seed, progress=progress, name=name)
