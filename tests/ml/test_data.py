"""Data loading: the embedded digits, IDX files, and one-line errors for what is missing."""

from __future__ import annotations

import gzip
import struct
import warnings

import numpy as np
import pytest

from claimkit.errors import DataMissingError, MalformedInputError
from claimkit.ml.data import FASHION_MNIST_ROOT, IDX_FILES, Dataset, load_dataset, read_idx


def write_idx(path, array: np.ndarray, *, compress: bool) -> None:
    code = {np.dtype(np.uint8): 0x08}[array.dtype]
    data = struct.pack(">HBB", 0, code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    data += array.tobytes()
    path.write_bytes(gzip.compress(data) if compress else data)


def make_idx_set(root, *, n_train=12, n_test=5, compress=True):
    rng = np.random.default_rng(1)
    arrays = {"x_train": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
              "y_train": rng.integers(0, 10, n_train).astype(np.uint8),
              "x_test": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
              "y_test": rng.integers(0, 10, n_test).astype(np.uint8)}
    for key, stem in IDX_FILES.items():
        write_idx(root / (stem + (".gz" if compress else "")), arrays[key], compress=compress)
    return arrays


def test_digits_is_embedded_and_deterministic():
    a, b = load_dataset("digits"), load_dataset("digits")
    assert a.x_train.shape == (1438, 1, 8, 8) and a.x_test.shape == (359, 1, 8, 8)
    assert a.x_train.dtype == np.uint8 and a.x_train.max() == 255
    assert set(np.unique(a.y_train)) == set(range(10))
    assert a.digest == b.digest
    assert np.array_equal(a.x_test, b.x_test)


@pytest.mark.parametrize("compress", [True, False])
def test_idx_sets_load_from_any_folder(tmp_path, compress):
    arrays = make_idx_set(tmp_path, compress=compress)
    data = load_dataset("mnist", root=tmp_path)
    assert data.x_train.shape == (12, 1, 28, 28) and data.input_shape == (1, 28, 28)
    assert np.array_equal(data.x_train[:, 0], arrays["x_train"])
    assert np.array_equal(data.y_test, arrays["y_test"].astype(np.int64))
    assert load_dataset("fashion-mnist", root=tmp_path).digest != data.digest  # the name counts


def test_missing_files_name_the_file_and_the_fix(tmp_path):
    make_idx_set(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataMissingError, match=r"t10k-labels-idx1-ubyte\.gz.*dataset-fashion-mnist"):
        load_dataset("fashion-mnist", root=tmp_path)
    with pytest.raises(DataMissingError, match="--data-root"):
        load_dataset("mnist")
    with pytest.raises(MalformedInputError, match="unknown data set"):
        load_dataset("imagenet")


@pytest.mark.parametrize("damage", [
    lambda b: b[:-1],                              # truncated data
    lambda b: b[:10],                              # truncated header
    lambda b: b"\x01" + b[1:],                     # bad magic
    lambda b: b[:2] + b"\x42" + b[3:],             # unknown element type
    lambda b: b + b"\x00",                         # trailing bytes
    lambda b: b"",                                 # empty
])
def test_damaged_idx_files_are_refused(tmp_path, damage):
    write_idx(tmp_path / "x", np.zeros((3, 4, 4), dtype=np.uint8), compress=False)
    (tmp_path / "x").write_bytes(damage((tmp_path / "x").read_bytes()))
    with pytest.raises(MalformedInputError):
        read_idx(tmp_path / "x")


def test_damaged_gzip_is_refused(tmp_path):
    write_idx(tmp_path / "x.gz", np.zeros((3, 4, 4), dtype=np.uint8), compress=True)
    (tmp_path / "x.gz").write_bytes((tmp_path / "x.gz").read_bytes()[:-8])
    with pytest.raises(MalformedInputError):
        read_idx(tmp_path / "x.gz")


def test_a_corrupt_deflate_stream_is_refused(tmp_path):
    """zlib.error is no OSError: a flipped byte inside the stream was a traceback."""
    write_idx(tmp_path / "x.gz", np.arange(3 * 16, dtype=np.uint8).reshape(3, 4, 4), compress=True)
    blob = bytearray((tmp_path / "x.gz").read_bytes())
    blob[10] ^= 0xFF                                   # the first byte after the gzip header
    (tmp_path / "x.gz").write_bytes(bytes(blob))
    with pytest.raises(MalformedInputError, match="cannot read IDX file"):
        read_idx(tmp_path / "x.gz")


def test_a_gzip_stream_is_read_no_further_than_its_header_says(tmp_path, monkeypatch):
    """``fh.read(MAX_IDX_BYTES + 1)`` reserved 2 GiB whatever the header said, and a gzip
    bomb expanded in full (2.6 GB) before it was called "not an IDX file"."""
    asked = []
    real_read = gzip.GzipFile.read
    monkeypatch.setattr(gzip.GzipFile, "read",
                        lambda self, n=-1: asked.append(n) or real_read(self, n))
    header = struct.pack(">HBB3I", 0, 0x08, 3, 3, 4, 4)
    (tmp_path / "x.gz").write_bytes(gzip.compress(header + bytes(48) + bytes(4 << 20)))
    with pytest.raises(MalformedInputError, match="runs past the 48 bytes its header says"):
        read_idx(tmp_path / "x.gz")
    assert 0 < max(asked) <= 49 and -1 not in asked
    write_idx(tmp_path / "y.gz", np.arange(48, dtype=np.uint8).reshape(3, 4, 4), compress=True)
    assert read_idx(tmp_path / "y.gz").tolist() == np.arange(48).reshape(3, 4, 4).tolist()


def test_idx_sizes_are_multiplied_without_wrapping_around(tmp_path):
    # 2^22 · 2^21 · 2^21 = 2^64 is 0 in int64: the empty body used to pass the size check.
    (tmp_path / "x").write_bytes(struct.pack(">HBB3I", 0, 0x08, 3, 1 << 22, 1 << 21, 1 << 21))
    with pytest.raises(MalformedInputError, match=r"header says 18446744073709551616 bytes, more than"):
        read_idx(tmp_path / "x")


@pytest.mark.parametrize("shape", [(0, (1 << 32) - 1, (1 << 32) - 1),
                                   (1 << 16, 0, 1 << 16, 1 << 16), (0, 1 << 31, 2)])
def test_idx_sizes_beside_a_zero_are_bounded_too(tmp_path, shape):
    """A zero size passed the byte count with any other sizes: numpy's reshape of
    (0, 2^32-1, 2^32-1) then raised ValueError (a traceback)."""
    (tmp_path / "x").write_bytes(struct.pack(f">HBB{len(shape)}I", 0, 0x08, len(shape), *shape))
    with pytest.raises(MalformedInputError, match=r"x: the IDX header gives sizes \[.*besides "
                                                  "its zero"):
        read_idx(tmp_path / "x")
    (tmp_path / "x").write_bytes(struct.pack(">HBB3I", 0, 0x08, 3, 0, 1 << 15, 1 << 16))
    assert read_idx(tmp_path / "x").shape == (0, 1 << 15, 1 << 16)    # empty, within bounds


@pytest.mark.parametrize("labels", [np.array([9.7, 1, 2]), np.array([np.nan, 1, 2])])
def test_idx_labels_must_be_integers(tmp_path, labels):
    make_idx_set(tmp_path, n_train=3)
    raw = struct.pack(">HBBI", 0, 0x0D, 1, 3) + labels.astype(">f4").tobytes()
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(raw))
    with warnings.catch_warnings():
        warnings.simplefilter("error")                  # NaN once warned before the error
        with pytest.raises(MalformedInputError, match="must hold one integer label per image"):
            load_dataset("mnist", root=tmp_path)


def test_idx_splits_must_hold_images(tmp_path):
    make_idx_set(tmp_path, n_test=0)
    with pytest.raises(MalformedInputError, match="mnist test: the split holds no images"):
        load_dataset("mnist", root=tmp_path)


def test_idx_test_images_must_have_the_train_images_shape(tmp_path):
    make_idx_set(tmp_path)
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", np.zeros((2, 20, 20), np.uint8), compress=True)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.zeros(2, np.uint8), compress=True)
    with pytest.raises(MalformedInputError, match=r"test images are \[1, 20, 20\], train images "
                                                  r"\[1, 28, 28\]"):
        load_dataset("mnist", root=tmp_path)


def test_datasets_refuse_empty_splits():
    x, y = np.zeros((2, 1, 4, 4), np.uint8), np.zeros(2, np.int64)
    for split in ("train", "test"):
        parts = {"x_train": x, "y_train": y, "x_test": x, "y_test": y}
        parts[f"x_{split}"], parts[f"y_{split}"] = x[:0], y[:0]
        with pytest.raises(MalformedInputError, match=f"t {split}: the split holds no images"):
            Dataset("t", num_classes=2, **parts)


def test_labels_must_match_images(tmp_path):
    make_idx_set(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(3, dtype=np.uint8), compress=True)
    with pytest.raises(MalformedInputError, match="one label per image"):
        load_dataset("mnist", root=tmp_path)


@pytest.mark.skipif(not (FASHION_MNIST_ROOT / "train-images-idx3-ubyte.gz").exists(),
                    reason="Debian's dataset-fashion-mnist is not installed")
def test_real_fashion_mnist():
    data = load_dataset("fashion-mnist")
    assert data.x_train.shape == (60_000, 1, 28, 28) and data.x_test.shape == (10_000, 1, 28, 28)
    assert np.bincount(data.y_train).tolist() == [6_000] * 10
