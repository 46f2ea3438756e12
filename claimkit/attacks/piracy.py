"""Ownership piracy: the thief embeds its own trigger set (Adi et al. 2018, §3 and §5.5).

Having stolen a marked model, the pirate makes a trigger-set key of its own and
fine-tunes every layer with those triggers riding on each batch, for as many epochs as
the owner trained ("the same amount of epochs to embed the new trigger set as we used
for the original one", §5.5), so that it too can show a watermark. The paper's answer
is the registry: the owner's commitment predates the pirate's. The attack reports how
well the pirate's triggers took (``trigger_accuracy``); whether the owner's survived is
for the owner's claim to show::

    record = piracy("released.safetensors", data, "pirated.safetensors", PiracyConfig(items=100))
    record["trigger_accuracy"], record["extra"]["pirate_verification_key"]

The pirate's key comes from the trigger-set backend (``claimkit keygen --scheme
trigger-set``). Unless the caller hands one over (``key=``), it is drawn from a byte
stream seeded by the run's seed and the victim's digest, so a run is repeatable and an
evaluation can rebuild the pirate's key with :func:`pirate_key`: a simulation's key,
not a secret.
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from ..ml.data import Dataset
from ..ml.train import resolve_device, train
from ..protocol.keys import MarkingKey
from ..schemes.base import get_backend
from ..schemes.trigger_set import trigger_images
from ..wire import Digest
from .common import Target, attacker_share, finish, resolve_victim, train_config
from .config import PiracyConfig

__all__ = ["PiracyConfig", "piracy", "pirate_key"]


def pirate_key(data: Dataset, cfg: PiracyConfig, *, seed: int, victim: Digest) -> MarkingKey:
    """The pirate's trigger-set key, reproducible from ``seed`` and the victim's digest."""
    stream = np.random.default_rng([seed, *victim.value])
    params = {"items": str(cfg.items)}
    if cfg.trigger_dir:
        params["trigger_dir"] = cfg.trigger_dir
    return get_backend("trigger-set").keygen(data, params, rng=stream.bytes)


def piracy(victim: Target, data: Dataset, out: str | os.PathLike[str],
           cfg: PiracyConfig | None = None, *, device: str = "auto", seed: int = 0,
           progress: bool = False, name: str = "piracy",
           key: MarkingKey | None = None) -> dict[str, Any]:
    """Fine-tune the stolen model with the pirate's triggers (``key``, else :func:`pirate_key`)."""
    started = time.perf_counter()
    cfg = cfg or PiracyConfig()
    dev = resolve_device(device)
    v = resolve_victim(victim, data, dev, attack=name, weights=True)
    model, arch = v.weights()
    key = key or pirate_key(data, cfg, seed=seed, victim=v.digest)
    tcfg = train_config(data, seed=seed, device=dev, epochs=cfg.epochs, lr=cfg.lr,
                        batch_size=cfg.batch_size, fine_tune=True, arch=arch,
                        trigger_per_batch=cfg.trigger_per_batch)
    record = train(model, attacker_share(data, cfg.data_fraction, seed), tcfg,
                   triggers=trigger_images(key), progress=progress)
    vk = key.verification_key
    return finish(model, out, attack=name, cfg=cfg, arch=arch, data=data, victim=v, seed=seed,
                  started=started, epochs=tcfg.epochs, trained=record,
                  pirate_verification_key=vk.digest.hex, pirate_items=vk.items)
