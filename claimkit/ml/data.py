"""Data sets, loaded from disk only: nothing is ever downloaded at run time.

* ``digits`` — scikit-learn's bundled 8×8 handwritten digits (1,797 images, 10 classes),
  the embedded default: always present, trains on a CPU in seconds.
* ``fashion-mnist`` and ``mnist`` — the four IDX files (``.gz`` or raw) in a folder; for
  Fashion-MNIST the default folder is Debian's ``dataset-fashion-mnist`` package,
  ``/usr/share/datasets/fashion-mnist``.

Images come back as ``uint8`` arrays of shape (N, C, H, W) with int64 labels, plus a
digest of the exact content, so a marking key can record which data it was made on
(PEERS.md: a peer's data preparation once mixed MNIST and Fashion-MNIST files)::

    data = load_dataset("digits")
    data.x_train.shape, data.num_classes, data.digest.hex[:12]

A missing file is one :class:`~claimkit.errors.DataMissingError` naming the file looked
for and how to get it; a damaged one is a :class:`~claimkit.errors.MalformedInputError`.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataMissingError, MalformedInputError
from ..wire import Digest

__all__ = ["Dataset", "DATASETS", "load_dataset", "read_idx", "FASHION_MNIST_ROOT"]

FASHION_MNIST_ROOT = Path("/usr/share/datasets/fashion-mnist")
IDX_FILES = {"x_train": "train-images-idx3-ubyte", "y_train": "train-labels-idx1-ubyte",
             "x_test": "t10k-images-idx3-ubyte", "y_test": "t10k-labels-idx1-ubyte"}
DIGITS_TEST_FRACTION = 0.2
DIGITS_SPLIT_SEED = 0
MAX_IDX_BYTES = 1 << 31
_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
              0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


@dataclass(frozen=True)
class Dataset:
    """Train and test splits as uint8 (N, C, H, W) images and int64 labels."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int

    def __post_init__(self) -> None:
        for split, x, y in (("train", self.x_train, self.y_train), ("test", self.x_test, self.y_test)):
            if x.dtype != np.uint8 or x.ndim != 4 or y.ndim != 1 or len(x) != len(y):
                raise MalformedInputError(f"{self.name} {split}: expected uint8 (N, C, H, W) "
                                          "images and one label per image")
            if len(y) and not (0 <= int(y.min()) and int(y.max()) < self.num_classes):
                raise MalformedInputError(f"{self.name} {split}: labels outside [0, {self.num_classes})")

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.x_train.shape[1:])  # type: ignore[return-value]

    @property
    def digest(self) -> Digest:
        """SHA-256 over the name, then each array's shape, dtype and bytes, in a fixed order."""
        h = hashlib.sha256(b"claimkit/dataset/v1\n" + self.name.encode() + b"\n")
        for array in (self.x_train, self.y_train, self.x_test, self.y_test):
            h.update(f"{array.dtype.str} {list(array.shape)}\n".encode())
            h.update(np.ascontiguousarray(array).tobytes())
        return Digest(h.digest())


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read one IDX file (raw or gzip): magic 0x0000 | type | ndim, big-endian sizes, data."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(2)
        opener = gzip.open if head == b"\x1f\x8b" else open
        with opener(path, "rb") as fh:  # type: ignore[operator]
            data = fh.read(MAX_IDX_BYTES + 1)
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise MalformedInputError(f"{path}: cannot read IDX file ({e})") from None
    if len(data) > MAX_IDX_BYTES or len(data) < 4 or data[:2] != b"\x00\x00" \
            or data[2] not in _IDX_TYPES or not 1 <= data[3] <= 4:
        raise MalformedInputError(f"{path}: not an IDX file")
    ndim = data[3]
    if len(data) < 4 + 4 * ndim:
        raise MalformedInputError(f"{path}: truncated IDX header")
    shape = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    dtype = np.dtype(_IDX_TYPES[data[2]])
    body = data[4 + 4 * ndim:]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(body) != expected:
        raise MalformedInputError(f"{path}: IDX data has {len(body)} bytes, the header says {expected}")
    return np.frombuffer(body, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


def _find(root: Path, stem: str, how_to_get: str) -> Path:
    for candidate in (root / f"{stem}.gz", root / stem):
        if candidate.is_file():
            return candidate
    raise DataMissingError(f"missing {root / (stem + '.gz')} (or {stem} uncompressed); {how_to_get}")


def _load_idx_set(name: str, root: Path, num_classes: int, how_to_get: str) -> Dataset:
    arrays = {key: read_idx(_find(root, stem, how_to_get)) for key, stem in IDX_FILES.items()}
    for key in ("x_train", "x_test"):
        if arrays[key].ndim != 3 or arrays[key].dtype != np.uint8:
            raise MalformedInputError(f"{name}: {IDX_FILES[key]} must hold uint8 images (N, H, W)")
        arrays[key] = arrays[key][:, None, :, :]
    for key in ("y_train", "y_test"):
        if arrays[key].ndim != 1:
            raise MalformedInputError(f"{name}: {IDX_FILES[key]} must hold one label per image")
        arrays[key] = arrays[key].astype(np.int64)
    return Dataset(name, num_classes=num_classes, **arrays)


def _load_digits() -> Dataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.clip(np.rint(bunch.images * (255 / 16)), 0, 255).astype(np.uint8)[:, None]
    labels = bunch.target.astype(np.int64)
    order = np.random.default_rng(DIGITS_SPLIT_SEED).permutation(len(labels))
    cut = int(round(len(labels) * (1 - DIGITS_TEST_FRACTION)))
    train, test = order[:cut], order[cut:]
    return Dataset("digits", images[train], labels[train], images[test], labels[test], 10)


DATASETS = ("digits", "fashion-mnist", "mnist")


def load_dataset(name: str, *, root: str | os.PathLike[str] | None = None) -> Dataset:
    """Load a data set by name; ``root`` is the folder of its files (IDX sets)."""
    if name == "digits":
        return _load_digits()
    if name == "fashion-mnist":
        return _load_idx_set(name, Path(root) if root else FASHION_MNIST_ROOT, 10,
                             "install Debian's dataset-fashion-mnist (apt-get install "
                             "dataset-fashion-mnist) or pass --data-root with the IDX files")
    if name == "mnist":
        if root is None:
            raise DataMissingError("mnist needs --data-root: a folder with the four MNIST IDX files")
        return _load_idx_set(name, Path(root), 10, "put the four MNIST IDX files there")
    raise MalformedInputError(f"unknown data set {name!r} (known: {', '.join(DATASETS)})")
