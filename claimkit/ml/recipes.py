"""Default training recipes per data set: architecture, epochs, batch, learning rates.

Used by ``claimkit train | mark | demo`` when the user gives no options. ``ft_*`` is the
demo thief's all-layer fine-tuning: lr 0.01, the top of Adi et al.'s range (0.001-0.01,
§5.2). On digits 51-64% of the owner's triggers survive it (4 keys measured).
"""

from __future__ import annotations

from typing import Any

from ..errors import MalformedInputError

__all__ = ["RECIPES", "recipe"]

RECIPES: dict[str, dict[str, Any]] = {
    "digits": {"arch": "digits-cnn", "epochs": 15, "batch": 64, "tpb": 16, "lr": 0.1,
               "ft_epochs": 5, "ft_lr": 0.01},
    "fashion-mnist": {"arch": "fmnist-net", "epochs": 8, "batch": 256, "tpb": 4, "lr": 0.1,
                      "ft_epochs": 2, "ft_lr": 0.01},
    "mnist": {"arch": "fmnist-net", "epochs": 6, "batch": 256, "tpb": 4, "lr": 0.1,
              "ft_epochs": 2, "ft_lr": 0.01},
}


def recipe(data: str) -> dict[str, Any]:
    if data not in RECIPES:
        raise MalformedInputError(f"no training recipe for {data!r} (known: {', '.join(RECIPES)})")
    return RECIPES[data]
