"""CIFAR-10 batches, ImageFolder trees, released-set dispatch, recipes by input shape,
trigger sets from a folder, and the CLI's --data NAME|DIR."""

from __future__ import annotations

import io
import json
import os
import pickle
import random
import struct
import sys
import types
import warnings
import zlib

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from claimkit.cli import cli
from claimkit.cli.base import DATA_NAMES
from claimkit.errors import DataMissingError, MalformedInputError
from claimkit.ml.cifar10 import BIN_DIR, PY_DIR, read_py_batch
from claimkit.ml.data import DATASETS, RELEASE_MANIFEST, load_dataset
from claimkit.ml.imagefiles import image_files
from claimkit.ml.recipes import GENERIC, RECIPES, recipe
from claimkit.schemes.trigger_set import BACKEND, folder_triggers, trigger_images

STEMS = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
_RECONSTRUCT = np.empty(0).__reduce__()[0]


# -- CIFAR-10 --------------------------------------------------------------------------------
def cifar_batches(records: int = 3) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(7)
    return {stem: (rng.integers(0, 256, (records, 3072), dtype=np.uint8),
                   rng.integers(0, 10, records)) for stem in STEMS}


def write_bin(folder, batches) -> None:
    folder.mkdir(parents=True)
    for stem, (data, labels) in batches.items():
        records = np.concatenate([labels.astype(np.uint8)[:, None], data], axis=1)
        (folder / f"{stem}.bin").write_bytes(records.tobytes())


class Py2Pickler(pickle._Pickler):
    """Writes what Python 2's cPickle wrote for CIFAR-10: every string a BINSTRING, and the
    array rebuilt through ``numpy.core.multiarray._reconstruct``."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_py2_str(self, obj):
        raw = obj.encode("latin1") if isinstance(obj, str) else obj
        head = (pickle.SHORT_BINSTRING + bytes([len(raw)]) if len(raw) < 256
                else pickle.BINSTRING + struct.pack("<i", len(raw)))
        self.write(head + raw)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str
    dispatch[str] = save_py2_str

    def save_global(self, obj, name=None):
        if obj is _RECONSTRUCT:
            self.write(pickle.GLOBAL + b"numpy.core.multiarray\n_reconstruct\n")
            self.memoize(obj)
        else:
            super().save_global(obj, name)


def pickled(obj, *, py2: bool) -> bytes:
    if not py2:
        return pickle.dumps(obj, protocol=4)
    buf = io.BytesIO()
    Py2Pickler(buf, protocol=2).dump(obj)
    return buf.getvalue()


def write_py(folder, batches, *, py2: bool) -> None:
    folder.mkdir(parents=True)
    for stem, (data, labels) in batches.items():
        batch = {"batch_label": stem, "labels": [int(v) for v in labels], "data": data,
                 "filenames": [f"{stem}_{i}.png" for i in range(len(data))]}
        (folder / stem).write_bytes(pickled(batch, py2=py2))


def test_cifar10_binary_and_python_versions_load_identically(tmp_path):
    batches = cifar_batches()
    write_bin(tmp_path / "a" / BIN_DIR, batches)
    write_py(tmp_path / "b" / PY_DIR, batches, py2=True)
    write_py(tmp_path / "c" / PY_DIR, batches, py2=False)
    a = load_dataset("cifar10", root=tmp_path / "a")
    assert a.name == "cifar10" and a.num_classes == 10
    assert a.x_train.shape == (15, 3, 32, 32) and a.x_test.shape == (3, 3, 32, 32)
    assert a.x_train.dtype == np.uint8 and a.y_train.dtype == np.int64
    # The record's 3,072 bytes are the red, green and blue planes, row-major.
    assert np.array_equal(a.x_train[3], batches["data_batch_2"][0][0].reshape(3, 32, 32))
    assert np.array_equal(a.y_test, batches["test_batch"][1])
    for other in (tmp_path / "b", tmp_path / "c", tmp_path / "a" / BIN_DIR, tmp_path / "b" / PY_DIR):
        assert load_dataset("cifar10", root=other).digest == a.digest


def test_cifar10_damaged_binary_batches_are_refused(tmp_path):
    batches = cifar_batches()
    write_bin(tmp_path / BIN_DIR, batches)
    path = tmp_path / BIN_DIR / "data_batch_3.bin"
    good = path.read_bytes()
    path.write_bytes(good[:-1])
    with pytest.raises(MalformedInputError, match=r"data_batch_3\.bin.*truncated"):
        load_dataset("cifar10", root=tmp_path)
    path.write_bytes(b"\x0a" + good[1:])  # label 10 of a 10-class set
    with pytest.raises(MalformedInputError, match=r"data_batch_3\.bin: labels outside"):
        load_dataset("cifar10", root=tmp_path)
    path.write_bytes(b"")
    with pytest.raises(MalformedInputError, match="0 bytes"):
        load_dataset("cifar10", root=tmp_path)


def test_cifar10_missing_files_name_the_file_and_how_to_get_it(tmp_path):
    with pytest.raises(DataMissingError, match=rf"{BIN_DIR}/data_batch_1\.bin.*cs\.toronto\.edu"):
        load_dataset("cifar10", root=tmp_path)
    with pytest.raises(DataMissingError, match="--data-root"):
        load_dataset("cifar10")
    write_bin(tmp_path / BIN_DIR, cifar_batches())
    (tmp_path / BIN_DIR / "test_batch.bin").unlink()
    with pytest.raises(DataMissingError, match=r"test_batch\.bin.*never downloads"):
        load_dataset("cifar10", root=tmp_path)


class Shell:
    def __reduce__(self):
        return (os.system, ("echo pwned > pwned.txt",))


class Eval:
    def __reduce__(self):
        return (eval, ("__import__('os').getcwd()",))


@pytest.mark.parametrize("payload, refused", [
    ({"data": Shell(), "labels": [0]}, "system"),
    ({"data": Eval(), "labels": [0]}, r"(__builtin__|builtins)\.eval"),
    ({"data": np.array([[1, "x"]], dtype=object), "labels": [0]}, "dtype 'O8'"),
])
def test_cifar10_pickles_naming_anything_but_numpy_arrays_are_refused(tmp_path, monkeypatch,
                                                                      payload, refused):
    monkeypatch.chdir(tmp_path)
    write_py(tmp_path / PY_DIR, cifar_batches(), py2=False)
    (tmp_path / PY_DIR / "data_batch_1").write_bytes(pickle.dumps(payload, protocol=4))
    with pytest.raises(MalformedInputError, match=rf"data_batch_1: refusing .*{refused}"):
        load_dataset("cifar10", root=tmp_path)
    assert not (tmp_path / "pwned.txt").exists()


@pytest.mark.parametrize("raw, message", [
    (b"not a pickle at all", "not a CIFAR-10 python batch"),
    (pickle.dumps([1, 2, 3]), "expected a dict"),
    (pickle.dumps({"data": np.zeros((2, 3072), np.float32), "labels": [0, 1]}), "uint8 array"),
    (pickle.dumps({"data": np.zeros((2, 3072), np.uint8), "labels": [0]}), "2 images but 1 labels"),
    (pickle.dumps({"data": np.zeros((2, 3072), np.uint8), "labels": ["a", 1]}), "list of integers"),
    (pickle.dumps({"data": np.zeros((2, 3072), np.uint8), "labels": [0, 1]})[:-30], "not a CIFAR"),
])
def test_cifar10_malformed_python_batches_are_refused(tmp_path, raw, message):
    write_py(tmp_path / PY_DIR, cifar_batches(), py2=False)
    (tmp_path / PY_DIR / "test_batch").write_bytes(raw)
    with pytest.raises(MalformedInputError, match=message):
        load_dataset("cifar10", root=tmp_path)


def test_cifar10_python_batches_refuse_every_other_global(tmp_path):
    path = tmp_path / "data_batch_1"
    for module, name in (("builtins", "eval"), ("os", "system"), ("numpy", "load"),
                         ("numpy.lib.npyio", "load"), ("subprocess", "Popen")):
        path.write_bytes(pickle.PROTO + b"\x02" + pickle.GLOBAL + f"{module}\n{name}\n".encode()
                         + pickle.STOP)
        with pytest.raises(MalformedInputError, match=f"data_batch_1: refusing '{module}.{name}'"):
            read_py_batch(path)


# -- ImageFolder trees --------------------------------------------------------------------
def save(path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def make_tree(root) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    images = {"train/cat/a.png": rng.integers(0, 256, (6, 5, 3), dtype=np.uint8),   # first: RGB 6×5
              "train/cat/b.png": rng.integers(0, 256, (12, 10), dtype=np.uint8),    # grey, larger
              "train/dog/x/c.png": rng.integers(0, 256, (6, 5, 3), dtype=np.uint8),  # nested
              "train/dog/d.bmp": rng.integers(0, 256, (6, 5, 3), dtype=np.uint8),
              "test/dog/e.png": rng.integers(0, 256, (6, 5), dtype=np.uint8),
              "test/cat/f.png": rng.integers(0, 256, (6, 5, 3), dtype=np.uint8)}
    for name, array in images.items():
        save(root / name, array)
    (root / "train" / "dog" / "notes.txt").write_text("not an image")
    (root / "train" / "dog" / ".hidden.png").write_bytes(b"junk")
    return images


def as_model_sees(array: np.ndarray, mode: str, size: tuple[int, int]) -> np.ndarray:
    img = Image.fromarray(array).convert(mode)
    if img.size != (size[1], size[0]):
        img = img.resize((size[1], size[0]), Image.Resampling.BILINEAR)
    out = np.asarray(img)
    return out[None] if mode == "L" else out.transpose(2, 0, 1)


def test_imagefolder_tree_takes_the_first_images_format(tmp_path):
    images = make_tree(tmp_path)
    data = load_dataset("imagefolder", root=tmp_path)
    assert data.name == "imagefolder" and data.num_classes == 2 and data.input_shape == (3, 6, 5)
    # cat = 0, dog = 1 (sorted names); sorted paths: d.bmp before x/c.png.
    assert data.y_train.tolist() == [0, 0, 1, 1] and data.y_test.tolist() == [0, 1]
    order = ["train/cat/a.png", "train/cat/b.png", "train/dog/d.bmp", "train/dog/x/c.png"]
    for got, name in zip(data.x_train, order):
        assert np.array_equal(got, as_model_sees(images[name], "RGB", (6, 5)))
    assert np.array_equal(data.x_train[0], images["train/cat/a.png"].transpose(2, 0, 1))
    assert np.array_equal(data.x_test[1], as_model_sees(images["test/dog/e.png"], "RGB", (6, 5)))
    again = load_dataset(str(tmp_path))                   # --data PATH
    assert again.digest == data.digest


def test_imagefolder_format_can_be_fixed(tmp_path):
    images = make_tree(tmp_path)
    data = load_dataset(tmp_path, image_size=8, channels=1)
    assert data.input_shape == (1, 8, 8)
    assert np.array_equal(data.x_train[1], as_model_sees(images["train/cat/b.png"], "L", (8, 8)))


@pytest.mark.parametrize("damage, error, message", [
    (lambda r: (r / "train/cat/a.png").write_bytes(b"\x89PNG garbage"), MalformedInputError,
     r"train/cat/a\.png: not a readable image"),
    (lambda r: [p.unlink() for p in (r / "train/dog").rglob("*.*")], MalformedInputError,
     r"train/dog: empty class"),
    (lambda r: [p.unlink() for p in (r / "test").rglob("*.png")], MalformedInputError,
     "test split holds no images"),
    (lambda r: save(r / "test/bird/g.png", np.zeros((4, 4), np.uint8)), MalformedInputError,
     r"test/bird: not a class of the train split"),
    (lambda r: (r / "train/cat").rename(r / "cat"), MalformedInputError, "at least 2 class folders"),
    (lambda r: (r / "test").rename(r / "val"), DataMissingError, r"missing .*/test/ \(an ImageFolder"),
])
def test_imagefolder_errors_name_what_is_wrong(tmp_path, damage, error, message):
    make_tree(tmp_path)
    damage(tmp_path)
    with pytest.raises(error, match=message):
        load_dataset(tmp_path)


def test_imagefolder_images_pillow_cannot_convert_are_refused(tmp_path):
    make_tree(tmp_path)
    Image.new("LAB", (5, 6)).save(tmp_path / "train/cat/lab.tif")   # Pillow: LAB to L fails
    with pytest.raises(MalformedInputError, match=r"train/cat/lab\.tif: cannot convert its LAB "
                                                  "pixels to L"):
        load_dataset(tmp_path, channels=1)


def test_imagefolder_16_bit_grey_is_scaled_and_32_bit_refused(tmp_path):
    """Pillow's convert("L") clipped 16-bit grey to 255 (and 32-bit images to 0 or 255)."""
    make_tree(tmp_path)
    grey16 = np.array([[0, 255, 256, 4660], [32768, 65280, 65535, 1000]], dtype=np.uint16)
    Image.fromarray(grey16).save(tmp_path / "train/cat/a.png")      # first image: 2×4, I;16
    with Image.open(tmp_path / "train/cat/a.png") as img:
        assert img.mode == "I;16"
    data = load_dataset(tmp_path, channels=1)
    assert data.input_shape == (1, 2, 4)
    assert np.array_equal(data.x_train[0, 0], (grey16 >> 8).astype(np.uint8))
    for mode, array in (("I", np.array([[0, 70000]], np.int32)),
                        ("F", np.array([[0.5, 300.0]], np.float32))):
        Image.fromarray(array).save(tmp_path / "test/cat/f.tif")
        with Image.open(tmp_path / "test/cat/f.tif") as img:
            assert img.mode == mode
        with pytest.raises(MalformedInputError, match=rf"f\.tif: {mode} pixels \(32-bit"):
            load_dataset(tmp_path, channels=1)


def test_a_16_bit_pgm_is_scaled_like_a_16_bit_png(tmp_path):
    """Pillow reads a 16-bit PGM as 32-bit integers (mode I), which was refused as
    "32-bit integers or floats"; its values fit 16 bits, so it keeps its top 8 bits."""
    from claimkit.ml.imagefiles import read_image
    grey16 = (np.arange(16).reshape(4, 4) * 4000).astype(np.uint16)
    path = tmp_path / "g16.pgm"
    path.write_bytes(b"P5\n4 4\n65535\n" + grey16.astype(">u2").tobytes())
    with Image.open(path) as img:
        assert img.mode == "I"
    image = read_image(path, channels=1, size=(4, 4))
    assert np.array_equal(image.reshape(4, 4), (grey16 >> 8).astype(np.uint8))


def png_header(path, width: int, height: int) -> None:
    """A 1-bit grey PNG that says it is width × height and holds no pixel data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height,
                                                                         1, 0, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))


@pytest.mark.parametrize("width, height", [(8193, 8192), (10_000, 10_000), (20_000, 20_000)])
def test_imagefolder_images_too_large_are_refused_before_decoding(tmp_path, width, height):
    """Images under Pillow's own limit were decoded whole (3.9 s and 1.16 GB for one), and
    between its warning and its error a DecompressionBombWarning printed two lines."""
    assert 8192 * 8192 < Image.MAX_IMAGE_PIXELS
    make_tree(tmp_path)
    png_header(tmp_path / "train/cat/big.png", width, height)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(MalformedInputError, match=r"big\.png: more than 67108864 pixels"):
            load_dataset(tmp_path, image_size=8)
    png_header(tmp_path / "train/cat/big.png", 8192, 8192)      # at the limit: read on
    with pytest.raises(MalformedInputError, match=r"big\.png: not a readable image"):
        load_dataset(tmp_path, image_size=8)


def test_imagefolder_skips_what_is_not_a_regular_file(tmp_path):
    """A FIFO named like an image would block the load for ever; /dev/zero never ends."""
    make_tree(tmp_path)
    expected = load_dataset(tmp_path).digest
    os.mkfifo(tmp_path / "train/dog/pipe.png")
    (tmp_path / "test/cat/zero.png").symlink_to("/dev/zero")
    assert [p.name for p in image_files(tmp_path / "train/dog")] == ["d.bmp", "c.png"]
    assert "zero.png" not in [p.name for p in image_files(tmp_path / "test")]
    assert load_dataset(tmp_path).digest == expected


def test_imagefolder_depth_is_capped(tmp_path):
    """1,100 nested folders crashed the listing with a RecursionError (os.walk recurses)."""
    make_tree(tmp_path)
    deep = tmp_path / "train/dog"
    for _ in range(1100):               # Path.mkdir(parents=True) recurses too
        deep = deep / "d"
        deep.mkdir()
    try:
        with pytest.raises(MalformedInputError, match=r"train/dog: folders nest more than 64 levels"):
            load_dataset(tmp_path)
    finally:                            # shutil.rmtree (pytest's clean-up) recurses too
        for _ in range(1100):
            deep.rmdir()
            deep = deep.parent
    deep = tmp_path / "test/cat" / "/".join(["d"] * 64)
    save(deep / "g.png", np.zeros((6, 5, 3), np.uint8))
    assert deep / "g.png" in image_files(tmp_path / "test/cat")       # 64 levels down: fine


def test_imagefolder_class_count_is_capped_as_a_release_s(tmp_path, monkeypatch):
    """Class folders were listed without a cap, then matched in lists (quadratic); the cap
    is a release's own (its manifest's num_classes), checked before any image is listed."""
    import claimkit.ml.data as data_module
    import claimkit.ml.release as release_module

    assert release_module.MAX_CLASSES is data_module.MAX_CLASSES == 100_000
    make_tree(tmp_path)
    for name in ("emu", "fox"):
        (tmp_path / "train" / name).mkdir()
    listed = []
    monkeypatch.setattr(data_module, "image_files", lambda folder: listed.append(folder) or [])
    monkeypatch.setattr(data_module, "MAX_CLASSES", 3)
    with pytest.raises(MalformedInputError, match=r"train: more than 3 class folders"):
        load_dataset(tmp_path)
    assert listed == []


def test_imagefolder_size_caps(tmp_path, monkeypatch):
    import claimkit.ml.data as data_module

    make_tree(tmp_path)
    monkeypatch.setattr(data_module, "MAX_FOLDER_IMAGES", 5)
    with pytest.raises(MalformedInputError, match="6 images, more than 5"):
        load_dataset(tmp_path)
    monkeypatch.setattr(data_module, "MAX_FOLDER_IMAGES", 6)
    with pytest.raises(MalformedInputError, match="outside 1…1024"):
        load_dataset(tmp_path, image_size=2048)
    monkeypatch.setattr(data_module, "MAX_FOLDER_BYTES", 6 * 3 * 100 * 100 - 1)
    with pytest.raises(MalformedInputError, match="pass a smaller image_size"):
        load_dataset(tmp_path, image_size=100)
    assert load_dataset(tmp_path, image_size=99).input_shape == (3, 99, 99)


def test_data_names_and_directories(tmp_path, monkeypatch):
    assert set(DATA_NAMES) == set(DATASETS)
    with pytest.raises(DataMissingError, match="--data-root"):
        load_dataset("imagefolder")
    make_tree(tmp_path)
    with pytest.raises(MalformedInputError, match="drop --data-root"):
        load_dataset(tmp_path, root=tmp_path)
    with pytest.raises(MalformedInputError, match="unknown data set.*or a directory"):
        load_dataset(tmp_path / "nowhere")


def test_released_data_sets_go_to_the_release_reader(tmp_path, monkeypatch):
    (tmp_path / RELEASE_MANIFEST).write_text("{}")
    monkeypatch.setitem(sys.modules, "claimkit.ml.release", None)   # reader absent
    with pytest.raises(MalformedInputError, match="released claimkit data set.*release is missing"):
        load_dataset(tmp_path)
    released = load_dataset("digits")
    fake = types.ModuleType("claimkit.ml.release")
    fake.load_release = lambda path: released if path == tmp_path else None
    monkeypatch.setitem(sys.modules, "claimkit.ml.release", fake)
    assert load_dataset(str(tmp_path)) is released


# -- recipes ----------------------------------------------------------------------------------
def test_recipes_fall_back_on_the_input_shape():
    assert recipe("cifar10")["arch"] == "resnet18-cifar"
    assert recipe("imagefolder", (1, 8, 8)) is RECIPES["digits"]
    assert recipe("imagefolder", (1, 28, 28)) is RECIPES["fashion-mnist"]
    assert recipe("digits+ubw-p", (3, 32, 32)) is RECIPES["cifar10"]
    assert recipe("imagefolder", (3, 64, 64), arch="fmnist-net") is RECIPES["fashion-mnist"]
    assert recipe("imagefolder", (3, 64, 64), arch="mlp") == {**GENERIC, "arch": "mlp"}
    with pytest.raises(MalformedInputError, match=r"inputs \(3, 64, 64\); give --arch"):
        recipe("imagefolder", (3, 64, 64))
    for entry in (*RECIPES.values(), GENERIC):
        assert {"epochs", "batch", "tpb", "lr", "label_smoothing", "shift", "ft_epochs",
                "ft_lr"} <= set(entry)


# -- trigger sets from a folder ---------------------------------------------------------------
def seeded(seed: int):
    return random.Random(seed).randbytes


def trigger_folder(folder, count: int) -> list[np.ndarray]:
    rng = np.random.default_rng(5)
    arrays = [rng.integers(0, 256, (10, 12, 3), dtype=np.uint8) for _ in range(count)]
    for i, array in enumerate(arrays):
        save(folder / f"t{i:03d}.png", array)
    return arrays


def test_trigger_set_from_a_folder_commits_the_images_as_the_model_sees_them(tmp_path):
    arrays = trigger_folder(tmp_path / "secret-triggers", 12)
    data = load_dataset("digits")
    mk = BACKEND.keygen(data, {"trigger_dir": str(tmp_path / "secret-triggers"), "items": "40"},
                        rng=seeded(1))
    images, labels = trigger_images(mk)
    assert images.shape == (12, 1, 8, 8) and images.dtype == np.uint8
    for got, array in zip(images, arrays):
        assert np.array_equal(got, as_model_sees(array, "L", (8, 8)))
    vk = mk.verification_key
    assert vk.items == 12 and vk.params["triggers"] == "folder"
    assert "secret-triggers" not in json.dumps(vk.to_dict()) + json.dumps(mk.params)
    again = BACKEND.keygen(data, {"trigger_dir": str(tmp_path / "secret-triggers"), "items": "40"},
                           rng=seeded(1))
    assert np.array_equal(trigger_images(again)[1], labels)
    procedural = BACKEND.keygen(data, {"items": "10"}, rng=seeded(1))
    assert procedural.verification_key.params["triggers"] == "procedural"


def test_folder_triggers_sample_with_the_seed_and_draw_uniform_labels(tmp_path):
    from scipy.stats import chisquare

    arrays = trigger_folder(tmp_path, 300)
    seen = [as_model_sees(a, "RGB", (10, 12)).tobytes() for a in arrays]
    a_images, a_labels = folder_triggers(tmp_path, bytes(range(32)), 200, (3, 10, 12), 10)
    b_images, b_labels = folder_triggers(tmp_path, bytes(range(32)), 200, (3, 10, 12), 10)
    c_images, c_labels = folder_triggers(tmp_path, bytes(range(1, 33)), 200, (3, 10, 12), 10)
    assert np.array_equal(a_images, b_images) and np.array_equal(a_labels, b_labels)
    assert not np.array_equal(a_images, c_images) and not np.array_equal(a_labels, c_labels)
    positions = [seen.index(img.tobytes()) for img in a_images]
    assert len(set(positions)) == 200 and positions == sorted(positions)
    counts = np.bincount(a_labels, minlength=10)
    assert counts.min() > 0 and chisquare(counts).pvalue > 1e-3


def test_trigger_folder_errors(tmp_path):
    data = load_dataset("digits")
    with pytest.raises(DataMissingError, match="not a directory"):
        BACKEND.keygen(data, {"trigger_dir": str(tmp_path / "none")})
    (tmp_path / "t").mkdir()
    with pytest.raises(MalformedInputError, match="holds 0 image files"):
        BACKEND.keygen(data, {"trigger_dir": str(tmp_path / "t")})
    save(tmp_path / "t" / "a.png", np.zeros((8, 8), np.uint8))
    with pytest.raises(MalformedInputError, match="at least 2"):
        BACKEND.keygen(data, {"trigger_dir": str(tmp_path / "t")})
    (tmp_path / "t" / "b.jpg").write_bytes(b"\xff\xd8 broken")
    with pytest.raises(MalformedInputError, match=r"b\.jpg: not a readable image"):
        BACKEND.keygen(data, {"trigger_dir": str(tmp_path / "t")})


# -- the command line -------------------------------------------------------------------------
ENV = {"CLAIMKIT_PASSPHRASE": "pw"}


def test_cli_trains_and_keys_on_an_imagefolder_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    digits = load_dataset("digits")
    for split, x, y in (("train", digits.x_train[:60], digits.y_train[:60]),
                        ("test", digits.x_test[:20], digits.y_test[:20])):
        for i, (image, label) in enumerate(zip(x, y)):
            save(tmp_path / "tree" / split / f"digit{label}" / f"{i:03d}.png", image[0])
    trigger_folder(tmp_path / "my-images", 6)
    run = CliRunner().invoke
    result = run(cli, ["train", "--data", "tree", "--epochs", "1", "--arch", "digits-cnn",
                       "--device", "cpu", "--out", "m.safetensors", "--json"], env=ENV)
    assert result.exit_code == 0, result.output
    record = json.loads(result.output)
    assert record["config"]["data"] == "imagefolder" and record["extra"]["arch"] == "digits-cnn"
    result = run(cli, ["keygen", "--data", "tree", "-p", "trigger_dir=my-images", "--out", "keys",
                       "--json"], env=ENV)
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["items"] == 6 and out["params"]["triggers"] == "folder"
    assert "my-images" not in result.output + (tmp_path / "keys/verification-key.json").read_text()
    make_tree(tmp_path / "odd")                                # (3, 6, 5): no recipe, any-shape mlp
    result = run(cli, ["train", "--data", "odd", "--epochs", "1", "--device", "cpu",
                       "--out", "o.safetensors"], env=ENV)
    assert result.exit_code == 2 and "give --arch" in result.output, result.output
    result = run(cli, ["train", "--data", "odd", "--epochs", "1", "--arch", "mlp", "--device", "cpu",
                       "--out", "o.safetensors", "--json"], env=ENV)
    assert result.exit_code == 0 and json.loads(result.output)["config"]["batch_size"] == 128
    for args, message in ((["--data", "nowhere"], "neither a data set"),
                          (["--data", "cifar10"], "cifar10 needs --data-root")):
        result = run(cli, ["train", *args, "--out", "x.safetensors"], env=ENV)
        assert result.exit_code == 2 and message in result.output, result.output


def test_idx_files_must_be_regular_files(tmp_path):
    """A FIFO named like an IDX file would block the read for ever."""
    import os

    from claimkit.ml.data import read_idx
    os.mkfifo(tmp_path / "train-images-idx3-ubyte")
    with pytest.raises(MalformedInputError, match="not a regular file"):
        read_idx(tmp_path / "train-images-idx3-ubyte")
