"""Data sets, loaded from disk only: nothing is ever downloaded at run time.

* ``digits`` — scikit-learn's bundled 8×8 handwritten digits (1,797 images, 10 classes),
  the embedded default: always present, trains on a CPU in seconds.
* ``fashion-mnist`` and ``mnist`` — the four IDX files (``.gz`` or raw) in a folder; for
  Fashion-MNIST the default folder is Debian's ``dataset-fashion-mnist`` package,
  ``/usr/share/datasets/fashion-mnist``.
* ``cifar10`` — the binary or python version of CIFAR-10 unpacked under ``root``, read
  without unpickling anything but numpy arrays (:mod:`claimkit.ml.cifar10`).
* ``imagefolder`` — a tree ``root/train/<class>/<image>`` and ``root/test/<class>/<image>``
  (torchvision's ImageFolder layout); classes are train's sorted folder names, images are
  converted to the first image's mode and size unless ``channels``/``image_size`` say.
* a directory given in place of a name: a released watermarked data set when it holds
  ``claimkit-dataset.json`` (:mod:`claimkit.ml.release`), an ImageFolder tree otherwise.

Images come back as ``uint8`` arrays of shape (N, C, H, W) with int64 labels, plus a
digest of the exact content, so a marking key can record which data it was made on
(PEERS.md: a peer's data preparation once mixed MNIST and Fashion-MNIST files)::

    data = load_dataset("digits")
    data.x_train.shape, data.num_classes, data.digest.hex[:12]
    load_dataset("cifar10", root="/data/cifar")       # holds cifar-10-batches-bin/
    load_dataset("photos/")                           # photos/train/<class>/*.png, photos/test/…

A missing file is one :class:`~claimkit.errors.DataMissingError` naming the file looked
for and how to get it; a damaged one is a :class:`~claimkit.errors.MalformedInputError`.
"""

from __future__ import annotations

import gzip
import io
import hashlib
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataMissingError, MalformedInputError
from ..wire import Digest, read_regular_file
from .cifar10 import BIN_DIR, read_cifar10
from .cifar10 import HOW_TO_GET as CIFAR10_HOW_TO_GET
from .imagefiles import image_files, image_spec, read_images

__all__ = ["DATASETS", "FASHION_MNIST_ROOT", "RELEASE_MANIFEST", "Dataset", "load_dataset",
           "read_idx"]

FASHION_MNIST_ROOT = Path("/usr/share/datasets/fashion-mnist")
IDX_FILES = {"x_train": "train-images-idx3-ubyte", "y_train": "train-labels-idx1-ubyte",
             "x_test": "t10k-images-idx3-ubyte", "y_test": "t10k-labels-idx1-ubyte"}
DIGITS_TEST_FRACTION = 0.2
DIGITS_SPLIT_SEED = 0
MAX_IDX_BYTES = 1 << 31
RELEASE_MANIFEST = "claimkit-dataset.json"
MAX_FOLDER_IMAGES = 1_000_000
MAX_CLASSES = 100_000           # a release's num_classes too (claimkit.ml.release)
MAX_FOLDER_BYTES = 1 << 33      # the decoded uint8 arrays of an ImageFolder tree
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
        """Refuse what would train or score on nothing: an empty split, test images of
        another shape than train's (a mixed-up file), labels outside the classes."""
        for split, x, y in (("train", self.x_train, self.y_train), ("test", self.x_test, self.y_test)):
            if x.dtype != np.uint8 or x.ndim != 4 or y.ndim != 1 or len(x) != len(y):
                raise MalformedInputError(f"{self.name} {split}: expected uint8 (N, C, H, W) "
                                          "images and one label per image")
            if not len(y):
                raise MalformedInputError(f"{self.name} {split}: the split holds no images")
            if not (0 <= int(y.min()) and int(y.max()) < self.num_classes):
                raise MalformedInputError(f"{self.name} {split}: labels outside [0, {self.num_classes})")
        if self.x_test.shape[1:] != self.x_train.shape[1:]:
            raise MalformedInputError(f"{self.name}: test images are {list(self.x_test.shape[1:])}, "
                                      f"train images {list(self.x_train.shape[1:])} (C, H, W)")

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
    """Read one IDX file (raw or gzip): magic 0x0000 | type | ndim, big-endian sizes, data.

    A gzip stream is read header first, then only as far as the size the header gives
    (plus one byte, to tell a longer stream): reading it whole reserved 2 GiB up front
    and let a small bomb expand to gigabytes before anything was checked.
    """
    path = Path(path)
    try:
        data = read_regular_file(path, max_bytes=MAX_IDX_BYTES)    # not a FIFO or a device
        if data[:2] == b"\x1f\x8b":
            with gzip.GzipFile(fileobj=io.BytesIO(data)) as fh:
                data = _read_idx_stream(path, fh)
    except (OSError, EOFError, zlib.error) as e:      # BadGzipFile is an OSError
        raise MalformedInputError(f"{path}: cannot read IDX file ({e})") from None
    dtype, shape, size = _idx_head(path, data)
    body = memoryview(data)[4 + 4 * len(shape):]
    if len(body) > size:
        raise MalformedInputError(f"{path}: IDX data runs past the {size} bytes its header says "
                                  "(trailing bytes, or a gzip stream that expands to more)")
    if len(body) < size:
        raise MalformedInputError(f"{path}: IDX data has {len(body)} bytes, the header says {size}")
    return np.frombuffer(body, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


def _read_idx_stream(path: Path, fh: gzip.GzipFile) -> bytearray:
    """The header, then at most one byte more than the data size it gives."""
    data = bytearray(fh.read(4))
    if len(data) == 4 and 1 <= data[3] <= 4:
        data += fh.read(4 * data[3])
    end = len(data) + _idx_head(path, data)[2] + 1     # refuses a bad header before reading on
    while len(data) < end:
        chunk = fh.read(min(1 << 20, end - len(data)))
        if not chunk:
            break
        data += chunk
    return data


def _idx_head(path: Path, data: bytes | bytearray) -> tuple[np.dtype, tuple[int, ...], int]:
    """The dtype, shape and data size in bytes an IDX header gives, every size checked."""
    if len(data) < 4 or data[:2] != b"\x00\x00" or data[2] not in _IDX_TYPES \
            or not 1 <= data[3] <= 4:
        raise MalformedInputError(f"{path}: not an IDX file")
    ndim = data[3]
    if len(data) < 4 + 4 * ndim:
        raise MalformedInputError(f"{path}: truncated IDX header")
    shape = struct.unpack(f">{ndim}I", bytes(data[4:4 + 4 * ndim]))
    dtype = np.dtype(_IDX_TYPES[data[2]])
    expected = nonzero = dtype.itemsize
    for d in shape:         # Python ints: numpy's product wraps around for huge sizes
        expected *= d
        nonzero *= max(d, 1)
    if expected > MAX_IDX_BYTES:
        raise MalformedInputError(f"{path}: the IDX header says {expected} bytes, more than "
                                  f"{MAX_IDX_BYTES}")
    if nonzero > MAX_IDX_BYTES:      # an empty file of (0, 2^32-1, 2^32-1): numpy's reshape fails
        raise MalformedInputError(f"{path}: the IDX header gives sizes {list(shape)}, more than "
                                  f"{MAX_IDX_BYTES} bytes besides its zero")
    return dtype, shape, expected


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
        if arrays[key].ndim != 1 or arrays[key].dtype.kind not in "iu":
            raise MalformedInputError(f"{name}: {IDX_FILES[key]} must hold one integer label "
                                      "per image")
        arrays[key] = arrays[key].astype(np.int64)
    return Dataset(name, num_classes=num_classes, **arrays)


def _load_digits() -> Dataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.clip(np.rint(bunch.images * (255 / 16)), 0, 255).astype(np.uint8)[:, None]
    labels = bunch.target.astype(np.int64)
    order = np.random.default_rng(DIGITS_SPLIT_SEED).permutation(len(labels))
    cut = round(len(labels) * (1 - DIGITS_TEST_FRACTION))
    train, test = order[:cut], order[cut:]
    return Dataset("digits", images[train], labels[train], images[test], labels[test], 10)


def _class_names(folder: Path) -> list[str]:
    """The class folders' names, sorted; more than :data:`MAX_CLASSES` are refused as
    soon as they are seen, before any image is listed."""
    names = []
    for d in folder.iterdir():
        if d.is_dir() and not d.name.startswith("."):
            names.append(d.name)
            if len(names) > MAX_CLASSES:
                raise MalformedInputError(f"{folder}: more than {MAX_CLASSES} class folders")
    return sorted(names)


def _split_files(folder: Path, classes: list[str], *, require_all: bool) -> tuple[list[Path], list[int]]:
    """Image files of one split and their labels (the index of their class in ``classes``).
    Membership is tested in sets: lists made 100,000 classes a quadratic wait."""
    present = set(_class_names(folder))
    unknown = sorted(present - set(classes))
    if unknown:
        shown = ", ".join(classes[:10]) + (", …" if len(classes) > 10 else "")
        raise MalformedInputError(f"{folder / unknown[0]}: not a class of the train split ({shown})")
    files: list[Path] = []
    labels: list[int] = []
    for label, name in enumerate(classes):
        found = image_files(folder / name) if name in present else []
        if require_all and not found:
            raise MalformedInputError(f"{folder / name}: empty class (no image files)")
        files += found
        labels += [label] * len(found)
    return files, labels


def _load_imagefolder(root: Path, *, image_size: int | tuple[int, int] | None,
                      channels: int | None) -> Dataset:
    """An ImageFolder tree; every image converted to one (channels, height, width)."""
    layout = "an ImageFolder tree is PATH/train/<class>/<image> and PATH/test/<class>/<image>"
    for split in ("train", "test"):
        if not (root / split).is_dir():
            raise DataMissingError(f"missing {root / split}/ ({layout})")
    classes = _class_names(root / "train")
    if len(classes) < 2:
        raise MalformedInputError(f"{root / 'train'}: needs at least 2 class folders ({layout})")
    train_files, train_labels = _split_files(root / "train", classes, require_all=True)
    test_files, test_labels = _split_files(root / "test", classes, require_all=False)
    if not test_files:
        raise MalformedInputError(f"{root / 'test'}: the test split holds no images ({layout})")
    count = len(train_files) + len(test_files)
    if count > MAX_FOLDER_IMAGES:
        raise MalformedInputError(f"{root}: {count} images, more than {MAX_FOLDER_IMAGES}")
    first_channels, first_size = image_spec(train_files[0])
    channels = first_channels if channels is None else channels
    if image_size is None:
        size = first_size
    else:
        size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if count * channels * size[0] * size[1] > MAX_FOLDER_BYTES:
        raise MalformedInputError(f"{root}: {count} images of {channels}×{size[0]}×{size[1]} "
                                  f"exceed {MAX_FOLDER_BYTES >> 30} GiB; pass a smaller image_size")
    return Dataset("imagefolder", read_images(train_files, channels=channels, size=size),
                   np.array(train_labels, dtype=np.int64),
                   read_images(test_files, channels=channels, size=size),
                   np.array(test_labels, dtype=np.int64), len(classes))


def _load_release(path: Path) -> Dataset:
    try:
        from .release import load_release
    except ModuleNotFoundError as e:
        if e.name != f"{__package__}.release":
            raise
        raise MalformedInputError(f"{path} is a released claimkit data set ({RELEASE_MANIFEST}), "
                                  "but this claimkit has no reader for it (claimkit.ml.release "
                                  "is missing)") from None
    return load_release(path)


DATASETS = ("digits", "fashion-mnist", "mnist", "cifar10", "imagefolder")


def load_dataset(data: str | os.PathLike[str], *, root: str | os.PathLike[str] | None = None,
                 image_size: int | tuple[int, int] | None = None,
                 channels: int | None = None) -> Dataset:
    """Load a data set by name (``root``: the folder of its files) or from a directory.

    ``data`` is one of :data:`DATASETS`, or a directory: a released data set when it holds
    ``claimkit-dataset.json``, an ImageFolder tree otherwise. ``image_size`` (pixels, or
    (height, width)) and ``channels`` (1 or 3) fix an ImageFolder tree's image format.
    """
    name = os.fspath(data)
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
    if name == "cifar10":
        if root is None:
            raise DataMissingError(f"cifar10 needs --data-root: a folder holding {BIN_DIR}/; "
                                   f"{CIFAR10_HOW_TO_GET}")
        return Dataset(name, num_classes=10, **read_cifar10(root))
    if name == "imagefolder":
        if root is None:
            raise DataMissingError("imagefolder needs --data-root PATH (or --data PATH), "
                                   "PATH holding train/<class>/ and test/<class>/ image folders")
        return _load_imagefolder(Path(root), image_size=image_size, channels=channels)
    path = Path(name)
    if path.is_dir():
        if root is not None:
            raise MalformedInputError(f"--data {name} is a directory already; drop --data-root")
        if (path / RELEASE_MANIFEST).is_file():
            return _load_release(path)
        return _load_imagefolder(path, image_size=image_size, channels=channels)
    raise MalformedInputError(f"unknown data set {name!r} (known: {', '.join(DATASETS)}; or a "
                              "directory: an ImageFolder tree or a released data set)")
