"""CIFAR-10 from the files of its distribution, read without trusting them.

Krizhevsky's site (https://www.cs.toronto.edu/~kriz/cifar.html) ships two versions
that claimkit reads, after the user has unpacked one of them:

* the **binary version**, ``cifar-10-batches-bin/``: ``data_batch_1.bin`` …
  ``data_batch_5.bin`` and ``test_batch.bin``, each a run of 3,073-byte records
  (1 label byte, then 3,072 bytes: the red, green and blue 32×32 planes, row-major).
  Read natively with numpy; this is the version we recommend.
* the **python version**, ``cifar-10-batches-py/``: the same batches as pickles. The
  files are not ours, and unpickling runs whatever a pickle names, so they go through
  :class:`RestrictedUnpickler`, which admits only the numpy array reconstruction the
  files need and refuses every other global (``os.system``, ``builtins.eval``, …).
  torchvision's ``CIFAR10`` unpickles them unrestricted, which is why it is not used.

``root`` may be the folder holding either batches folder, or the batches folder
itself::

    arrays = read_cifar10("/data/cifar")   # {"x_train": (50000, 3, 32, 32) uint8, ...}

Nothing is downloaded: a missing file is a :class:`~claimkit.errors.DataMissingError`
naming it; a damaged one a :class:`~claimkit.errors.MalformedInputError`.
"""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataMissingError, MalformedInputError
from ..wire import read_regular_file

__all__ = ["BIN_DIR", "PY_DIR", "RestrictedUnpickler", "read_bin_batch", "read_cifar10",
           "read_py_batch"]

BIN_DIR, PY_DIR = "cifar-10-batches-bin", "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
SHAPE = (3, 32, 32)
IMAGE_BYTES = 3 * 32 * 32
RECORD_BYTES = 1 + IMAGE_BYTES
NUM_CLASSES = 10
MAX_BATCH_BYTES = 1 << 28       # a real batch is 30.7 MB (binary) or 31.0 MB (pickle)
HOW_TO_GET = ("get the CIFAR-10 binary version from https://www.cs.toronto.edu/~kriz/cifar.html "
              f"and unpack it there (tar xzf cifar-10-binary.tar.gz gives {BIN_DIR}/); "
              "claimkit never downloads")


def read_bin_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One binary batch → (N, 3, 32, 32) uint8 images and int64 labels."""
    raw = _read_bounded(path)
    if not raw or len(raw) % RECORD_BYTES:
        raise MalformedInputError(f"{path}: {len(raw)} bytes is not a whole number of "
                                  f"{RECORD_BYTES}-byte CIFAR-10 records (truncated?)")
    records = np.frombuffer(raw, dtype=np.uint8).reshape(-1, RECORD_BYTES)
    return _checked(path, records[:, 1:], records[:, 0])


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that can build CIFAR-10's batches and nothing else.

    The python batches hold a dict of byte strings, lists of ints and one uint8 numpy
    array; the array is the only thing built through globals. Every other global is
    refused, so a pickle cannot call ``os.system`` or ``eval``; object dtypes are
    refused too, so an array cannot smuggle arbitrary Python objects.
    """

    _RECONSTRUCT = np.empty(0).__reduce__()[0]

    def find_class(self, module: str, name: str) -> Any:
        if name == "_reconstruct" and module in ("numpy.core.multiarray", "numpy._core.multiarray"):
            return self._RECONSTRUCT
        if module == "numpy" and name == "ndarray":
            return np.ndarray
        if module == "numpy" and name == "dtype":
            return _plain_dtype
        raise MalformedInputError(f"refusing to unpickle {module}.{name}: a CIFAR-10 batch "
                                  "needs only numpy arrays")


def _plain_dtype(*args: Any) -> np.dtype:
    dtype = np.dtype(*args)
    if dtype.hasobject:
        raise MalformedInputError("refusing to unpickle an object array")
    return dtype


def read_py_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One python batch (a pickle, read restricted) → images and labels."""
    raw = _read_bounded(path)
    try:
        # latin1 as for any Python 2 pickle of numpy data: byte strings come back intact.
        batch = RestrictedUnpickler(io.BytesIO(raw), encoding="latin1").load()
    except MalformedInputError as e:
        raise MalformedInputError(f"{path}: {e}") from None
    except Exception as e:  # noqa: BLE001 - any failure on untrusted bytes is malformed input
        raise MalformedInputError(f"{path}: not a CIFAR-10 python batch ({type(e).__name__})") from None
    if not isinstance(batch, dict):
        raise MalformedInputError(f"{path}: not a CIFAR-10 python batch (expected a dict)")
    fields = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in batch.items()}
    data, labels = fields.get("data"), fields.get("labels")
    if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2
            and data.shape[1] == IMAGE_BYTES):
        raise MalformedInputError(f"{path}: 'data' must be a uint8 array (N, {IMAGE_BYTES})")
    if isinstance(labels, list) and all(type(v) is int for v in labels):
        labels = np.array(labels, dtype=np.int64)
    if not (isinstance(labels, np.ndarray) and labels.dtype.kind in "iu" and labels.ndim == 1):
        raise MalformedInputError(f"{path}: 'labels' must be a list of integers")
    if len(labels) != len(data):
        raise MalformedInputError(f"{path}: {len(data)} images but {len(labels)} labels")
    return _checked(path, data, labels)


def _checked(path: Path, flat: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= NUM_CLASSES):
        raise MalformedInputError(f"{path}: labels outside [0, {NUM_CLASSES})")
    return np.ascontiguousarray(flat).reshape(-1, *SHAPE), labels.astype(np.int64)


def _read_bounded(path: Path) -> bytes:
    try:
        return read_regular_file(path, max_bytes=MAX_BATCH_BYTES)
    except FileNotFoundError:
        raise DataMissingError(f"missing {path}; {HOW_TO_GET}") from None


def _locate(root: Path) -> tuple[Path, str]:
    """The batches folder under (or at) ``root`` and its file suffix, binary first."""
    for folder, suffix in ((root / BIN_DIR, ".bin"), (root, ".bin"), (root / PY_DIR, ""), (root, "")):
        if (folder / f"{TRAIN_BATCHES[0]}{suffix}").is_file():
            return folder, suffix
    raise DataMissingError(f"missing {root / BIN_DIR / (TRAIN_BATCHES[0] + '.bin')} "
                           f"(or {PY_DIR}/{TRAIN_BATCHES[0]}); {HOW_TO_GET}")


def read_cifar10(root: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """The six batches of the binary or python version under ``root``, as four arrays."""
    folder, suffix = _locate(Path(root))
    read = read_bin_batch if suffix else read_py_batch
    parts = {}
    for stem in (*TRAIN_BATCHES, TEST_BATCH):
        path = folder / f"{stem}{suffix}"
        if not path.is_file():
            raise DataMissingError(f"missing {path}; {HOW_TO_GET}")
        parts[stem] = read(path)
    train = [parts[stem] for stem in TRAIN_BATCHES]
    return {"x_train": np.concatenate([x for x, _ in train]),
            "y_train": np.concatenate([y for _, y in train]),
            "x_test": parts[TEST_BATCH][0], "y_test": parts[TEST_BATCH][1]}
