"""Default training recipes per data set: architecture, epochs, batch, learning rates.

Used by ``claimkit train | mark | demo`` when the user gives no options. A data set with
no recipe of its own (an ImageFolder tree, a released data set) takes the recipe of the
named set whose inputs have its shape, or of the named set trained with the
architecture given (``--arch``), or else the engine's defaults (:data:`GENERIC`, for an
architecture such as ``mlp`` that takes any shape). ``ft_*`` is the demo thief's all-layer
fine-tuning: lr 0.01, the top of Adi et al.'s range (0.001-0.01, §5.2). On digits
51-64% of the owner's triggers survive it (4 keys measured).

CIFAR-10 trains torchvision's ResNet-18 (3×3 stem, no max-pool) for 30 epochs of 512
images at peak lr 0.4 (the usual 0.1 per 128 images, scaled linearly), label smoothing
0.1, random translations of up to 4 pixels (the standard pad-4 crop; the engine has no
flips), and 10 triggers per batch, about Adi et al.'s 2 per 100 (§4.1).
``label_smoothing`` and ``shift`` (pixels) go to the engine's TrainConfig unchanged.
"""

from __future__ import annotations

from typing import Any

from ..errors import MalformedInputError

__all__ = ["BY_SHAPE", "GENERIC", "RECIPES", "recipe"]

RECIPES: dict[str, dict[str, Any]] = {
    "digits": {"arch": "digits-cnn", "epochs": 15, "batch": 64, "tpb": 16, "lr": 0.1,
               "label_smoothing": 0.0, "shift": 1, "ft_epochs": 5, "ft_lr": 0.01},
    "fashion-mnist": {"arch": "fmnist-net", "epochs": 8, "batch": 256, "tpb": 4, "lr": 0.1,
                      "label_smoothing": 0.0, "shift": 1, "ft_epochs": 2, "ft_lr": 0.01},
    "mnist": {"arch": "fmnist-net", "epochs": 6, "batch": 256, "tpb": 4, "lr": 0.1,
              "label_smoothing": 0.0, "shift": 1, "ft_epochs": 2, "ft_lr": 0.01},
    "cifar10": {"arch": "resnet18-cifar", "epochs": 30, "batch": 512, "tpb": 10, "lr": 0.4,
                "label_smoothing": 0.1, "shift": 4, "ft_epochs": 5, "ft_lr": 0.01},
}

# TrainConfig's defaults, for an architecture given on inputs no recipe knows.
GENERIC: dict[str, Any] = {"epochs": 10, "batch": 128, "tpb": 2, "lr": 0.05,
                           "label_smoothing": 0.0, "shift": 1, "ft_epochs": 2, "ft_lr": 0.01}

# (channels, height, width) → the named set whose recipe fits such inputs.
BY_SHAPE: dict[tuple[int, int, int], str] = {
    (1, 8, 8): "digits", (1, 28, 28): "fashion-mnist", (3, 32, 32): "cifar10"}


def recipe(data: str, input_shape: tuple[int, ...] | None = None, *,
           arch: str | None = None) -> dict[str, Any]:
    """The recipe of data set ``data``; else of the named set with ``input_shape``; else
    of the first named set trained with architecture ``arch``; else, when ``arch`` is
    given, :data:`GENERIC` with it."""
    if data in RECIPES:
        return RECIPES[data]
    shape = None if input_shape is None else tuple(input_shape)
    if shape in BY_SHAPE:
        return RECIPES[BY_SHAPE[shape]]
    if arch is not None:
        return next((r for r in RECIPES.values() if r["arch"] == arch), {**GENERIC, "arch": arch})
    takes = ", ".join(f"{RECIPES[name]['arch']} {s}" for s, name in BY_SHAPE.items())
    raise MalformedInputError(f"no training recipe for {data!r} with inputs {shape}; give --arch "
                              f"(mlp takes any shape; {takes}) or resize the images")
