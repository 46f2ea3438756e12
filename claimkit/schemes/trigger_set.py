"""Trigger-set watermarks: Adi et al. 2018, "Turning Your Weakness Into a Strength".

KeyGen (§3, §4.1): ℓ abstract images with labels drawn uniformly at random; each
(image, label) pair is one committed item of the marking key, so a claim opens a random
subset and keeps the rest (App. A). The paper used 100 abstract-art images; here the
images are generated procedurally from the key's secret seed (random Gaussian blobs and
oriented stripes), which makes keys reproducible from the secret and independent of any
image collection. Or they come from the owner's own folder (``-p trigger_dir=PATH``, like
the paper's abstract images): sorted by path, a seeded sample of ``items`` of them when
the folder holds more, converted to the data's channels and size, and committed exactly
as the model sees them; the verification key records ``"triggers": "folder"`` and never
the path. Labels come from the seeded generator either way and are tested to be uniform
and reproducible (PEERS.md: a peer's loader once gave every trigger label 0).

Mark (§4.1): FromScratch trains with the triggers appended to every batch (the
authors' code: 2 per batch of 100); PreTrained fine-tunes a trained model the same way.
Both go through the one training engine, so the cost is a ratio to a clean run.

Verify (§3, made statistical): the pure decider ``trigger-set`` in
:mod:`claimkit.protocol.scheme` counts answers equal to the committed labels and runs
the exact binomial test against 1/C, reporting the all-but-ε rule beside it.

Defaults and their source: ℓ = 100 items (the paper); ε = 0.1; α = 1e-4, ours: the
level is committed in the verification key before release, and a false accusation of
theft costs more than a missed claim. With p0 = 1/10 and 50 opened items a claim then
needs 15 matches; an independent model reaches that with probability 7.4e-5, and a
stolen model whose triggers survive at 50% misses it with probability 1.0e-4 (exact
binomial; at α = 0.01 and 30 items, one demo run in about a hundred accused the
independent model, as that level promises).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataMissingError, MalformedInputError
from ..protocol.keys import MarkingKey, VerificationKey
from ..protocol.scheme import read_shape
from ..wire import Fields, b64decode, b64encode
from .base import MarkOptions, Oracle, data_fields, parse_params

__all__ = [
    "BACKEND",
    "SCHEME",
    "TriggerSetParams",
    "decode_queries",
    "folder_triggers",
    "keygen",
    "make_triggers",
    "trigger_images",
]

SCHEME = "trigger-set"


@dataclass(frozen=True)
class TriggerSetParams:
    num_classes: int
    input_shape: tuple[int, int, int]
    items: int = 100
    alpha: float = 1e-4
    epsilon: float = 0.1
    data: str = ""
    data_digest: str = ""
    trigger_dir: str = ""        # the owner's images; "" draws them procedurally. Never public.

    def __post_init__(self) -> None:
        if not 2 <= self.items <= 100_000:
            raise MalformedInputError("trigger-set: items must be within [2, 100000]")
        if not 1e-12 <= self.alpha <= 0.5 or not 0 <= self.epsilon <= 1:
            raise MalformedInputError("trigger-set: alpha within [1e-12, 0.5], epsilon within [0, 1]")

    def public(self) -> dict[str, Any]:
        return {"num_classes": self.num_classes, "input_shape": list(self.input_shape),
                "alpha": self.alpha, "epsilon": self.epsilon, "data": self.data,
                "data_digest": self.data_digest,
                "triggers": "folder" if self.trigger_dir else "procedural"}


def make_triggers(seed: bytes, count: int, shape: tuple[int, int, int],
                  num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` abstract uint8 images and uniformly random labels, from a secret seed."""
    rng = _generator(seed)
    c, h, w = shape
    yy, xx = np.meshgrid(np.linspace(-1, 1, h), np.linspace(-1, 1, w), indexing="ij")
    images = np.empty((count, c, h, w), dtype=np.uint8)
    for i in range(count):
        for ch in range(c):
            canvas = np.zeros((h, w))
            for _ in range(rng.integers(2, 6)):
                cx, cy, s = rng.uniform(-1, 1), rng.uniform(-1, 1), rng.uniform(0.1, 0.6)
                canvas += rng.uniform(-1, 1) * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * s * s))
            angle, freq = rng.uniform(0, np.pi), rng.uniform(1, 6)
            canvas += 0.5 * np.sin(freq * np.pi * (np.cos(angle) * xx + np.sin(angle) * yy)
                                   + rng.uniform(0, 2 * np.pi))
            lo, hi = canvas.min(), canvas.max()
            images[i, ch] = np.rint(255 * (canvas - lo) / (hi - lo + 1e-12)).astype(np.uint8)
    labels = rng.integers(0, num_classes, count).astype(np.int64)
    return images, labels


def folder_triggers(folder: str | os.PathLike[str], seed: bytes, count: int,
                    shape: tuple[int, int, int], num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``count`` of a folder's images as uint8 ``shape`` arrays, with uniformly random
    labels; when the folder holds more, the secret seed picks which."""
    from ..ml.imagefiles import image_files, read_images

    if not Path(folder).is_dir():
        raise DataMissingError(f"trigger folder {folder} is not a directory")
    files = image_files(folder)
    if len(files) < 2:
        raise MalformedInputError(f"trigger folder {folder} holds {len(files)} image files; "
                                  "a trigger set needs at least 2")
    rng = _generator(seed)
    if len(files) > count:
        files = [files[i] for i in sorted(rng.choice(len(files), count, replace=False))]
    images = read_images(files, channels=shape[0], size=(shape[1], shape[2]))
    return images, rng.integers(0, num_classes, len(files)).astype(np.int64)


def _generator(seed: bytes) -> np.random.Generator:
    if len(seed) < 16:
        raise MalformedInputError("a trigger seed needs at least 16 bytes")
    return np.random.default_rng(int.from_bytes(seed, "big"))


def keygen(params: TriggerSetParams, *, rng: Callable[[int], bytes] = os.urandom) -> MarkingKey:
    """A marking key whose items are (image, label) pairs made from a fresh secret seed,
    the images drawn procedurally or taken from ``params.trigger_dir``."""
    seed = rng(32)
    args = (seed, params.items, params.input_shape, params.num_classes)
    images, labels = (folder_triggers(params.trigger_dir, *args) if params.trigger_dir
                      else make_triggers(*args))
    values = [{"image": b64encode(img.tobytes()), "label": int(lab)}
              for img, lab in zip(images, labels)]
    return MarkingKey.create(SCHEME, params.public(), values, rng=rng,
                             secret={"seed": b64encode(seed)})


def decode_queries(queries: Sequence[Any], vk: VerificationKey) -> np.ndarray:
    """Opened trigger images (strict, canonical base64 of uint8 C×H×W, as everywhere on the
    wire) → an (N, C, H, W) uint8 array; anything else is a :class:`MalformedInputError`."""
    shape = read_shape(Fields(vk.params, "verification_key.params"))
    if isinstance(queries, (str, bytes, dict)) or not isinstance(queries, Sequence):
        raise MalformedInputError("queries: expected a list of base64 images")
    size = shape[0] * shape[1] * shape[2]
    out = np.empty((len(queries), *shape), dtype=np.uint8)
    for i, q in enumerate(queries):
        out[i] = np.frombuffer(b64decode(q, field=f"query {i}", size=size),
                               dtype=np.uint8).reshape(shape)
    return out


def trigger_images(mk: MarkingKey) -> tuple[np.ndarray, np.ndarray]:
    """All of a marking key's triggers, for Mark."""
    vk = mk.verification_key
    images = decode_queries([v["image"] for v in mk.items.values], vk)
    labels = np.array([v["label"] for v in mk.items.values], dtype=np.int64)
    return images, labels


class TriggerSetBackend:
    """Adi et al. 2018 behind the :class:`~claimkit.schemes.base.Backend` interface."""

    name = SCHEME
    marks = "model"
    params = TriggerSetParams
    summary = "random trigger images with random labels (Adi et al. 2018)"

    def keygen(self, data: Any, params: Mapping[str, str], *,
               rng: Callable[[int], bytes] = os.urandom) -> MarkingKey:
        p = parse_params(self.params, params, data_fields(data))
        return keygen(p, rng=rng)

    def mark(self, mk: MarkingKey, data: Any, out: str | os.PathLike[str],
             options: MarkOptions) -> dict[str, Any]:
        """FromScratch, or PreTrained with ``options.start_from`` (§4.1)."""
        from ..ml.jobs import fit_and_save

        _, record = fit_and_save(data, out, arch=options.arch, epochs=options.epochs,
                                 lr=options.lr, seed=options.seed, device=options.device,
                                 triggers=trigger_images(mk), start_from=options.start_from,
                                 progress=options.progress)
        return record.to_dict()

    def answerer(self, oracle: Oracle, vk: VerificationKey) -> Callable[[Sequence[Any]], list[Any]]:
        """Queries (opened trigger images) → the suspect's class indices."""
        return lambda queries: oracle.labels(decode_queries(queries, vk))


BACKEND = TriggerSetBackend()
