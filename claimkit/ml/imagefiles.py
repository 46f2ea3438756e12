"""Folders of image files → uint8 (N, C, H, W) arrays, in a fixed order.

Used by ImageFolder data sets (:mod:`claimkit.ml.data`) and by trigger sets drawn from
a user's folder (:mod:`claimkit.schemes.trigger_set`). Files are found recursively,
sorted by their path relative to the folder (so the order, hence a data set's digest,
does not depend on the file system), decoded by Pillow (torchvision's own image
dependency), converted to grey ("L", 1 channel) or "RGB" (3 channels) and resized
bilinearly to one fixed size::

    paths = image_files("triggers/")
    channels, size = image_spec(paths[0])      # e.g. (3, (32, 32))
    images = read_images(paths, channels=3, size=(32, 32))

A file Pillow cannot decode is one :class:`~claimkit.errors.MalformedInputError`
naming it.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import MalformedInputError

__all__ = ["IMAGE_SUFFIXES", "MAX_DEPTH", "MAX_PIXELS", "MAX_SIDE", "image_files", "image_spec", "read_image", "read_images"]

# torchvision's ImageFolder extensions (IMG_EXTENSIONS), compared case-insensitively.
IMAGE_SUFFIXES = frozenset({".bmp", ".gif", ".jpeg", ".jpg", ".pgm", ".png", ".ppm", ".tif",
                            ".tiff", ".webp"})
MAX_SIDE = 1024     # the models here take up to 32×32; larger targets are a mistake
# Decoded whole before it is resized: 8× the largest target a side (64 MiB of grey), under
# Pillow's own limit (89.5 M pixels, a warning of two lines, then 2× that an error).
MAX_PIXELS = (8 * MAX_SIDE) ** 2
MAX_DEPTH = 64      # folders below the one given; os.walk recurses, ~1,000 levels crash it
_MODES = {1: "L", 3: "RGB"}
_GREY16 = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})


def image_files(folder: str | os.PathLike[str]) -> list[Path]:
    """Image files under ``folder``, sorted by relative path.

    Hidden names and anything but regular files (after symlinks) are skipped, as other
    non-image files are: opening a FIFO named ``x.png`` would block for ever. Folders
    more than :data:`MAX_DEPTH` levels down are refused before os.walk recurses into
    them (1,100 levels were a RecursionError).
    """
    folder = Path(folder)
    found = []
    for top, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        if dirs and len(Path(top).relative_to(folder).parts) >= MAX_DEPTH:
            raise MalformedInputError(f"{folder}: folders nest more than {MAX_DEPTH} levels deep "
                                      f"({Path(top, dirs[0])})"[:300])
        found += [Path(top, f) for f in files
                  if not f.startswith(".") and Path(f).suffix.lower() in IMAGE_SUFFIXES
                  and Path(top, f).is_file()]
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())


def _open(path: Path, mode: str | None = None):  # -> PIL.Image.Image
    """The decoded image, converted to ``mode`` if given.

    Converting is checked too: Pillow decodes some modes it cannot convert (LAB to RGB
    raises ValueError), and that is as much the file's fault as a damaged one.
    """
    from PIL import Image

    too_large = MalformedInputError(f"{path}: more than {MAX_PIXELS} pixels; images are "
                                    f"resized to at most {MAX_SIDE}×{MAX_SIDE}, resize it first")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                if img.width * img.height > MAX_PIXELS:      # before decoding any pixel
                    raise too_large
                img.load()
                pgm = img.format == "PPM"   # a copy forgets its format
                img = img.copy()     # closing the file closes the image too
    except MalformedInputError:
        raise
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise too_large from None
    except Exception as e:  # noqa: BLE001 - Pillow raises OSError, ValueError, SyntaxError, ...
        raise MalformedInputError(f"{path}: not a readable image ({type(e).__name__})") from None
    # Pillow's convert("L") clips wider pixels to 0…255 (a 16-bit photo turns white): 16-bit
    # grey keeps its top 8 bits; 32-bit integers and floats have no one 8-bit scale.
    sixteen = img.mode in _GREY16
    if img.mode == "I" and pgm:      # Pillow reads a 16-bit PGM as I
        pixels = np.asarray(img)
        sixteen = bool(pixels.size) and 0 <= pixels.min() and pixels.max() <= 0xFFFF
    if sixteen:
        img = Image.fromarray((np.asarray(img) >> 8).astype(np.uint8))
    elif img.mode in ("I", "F"):
        raise MalformedInputError(f"{path}: {img.mode} pixels (32-bit integers or floats) have "
                                  "no 8-bit scale; save the image with 8 or 16 bits a channel")
    if mode is None or img.mode == mode:
        return img
    try:
        return img.convert(mode)
    except Exception:  # noqa: BLE001 - ValueError, OSError, ... from Pillow's converters
        raise MalformedInputError(f"{path}: cannot convert its {img.mode} pixels to {mode}") from None


def image_spec(path: str | os.PathLike[str]) -> tuple[int, tuple[int, int]]:
    """The channel count (1 for grey modes, 3 otherwise) and (height, width) of one image."""
    from PIL import Image

    img = _open(Path(path))
    channels = 1 if Image.getmodebase(img.mode) == "L" else 3
    return channels, (img.height, img.width)


def read_image(path: str | os.PathLike[str], *, channels: int,
               size: tuple[int, int]) -> np.ndarray:
    """One image as uint8 (channels, height, width), converted and resized (bilinear)."""
    from PIL import Image

    if channels not in _MODES:
        raise MalformedInputError(f"images must have 1 or 3 channels, not {channels}")
    h, w = size
    if not (1 <= h <= MAX_SIDE and 1 <= w <= MAX_SIDE):
        raise MalformedInputError(f"image size {h}×{w} is outside 1…{MAX_SIDE} pixels a side")
    img = _open(Path(path), _MODES[channels])
    if img.size != (w, h):
        img = img.resize((w, h), Image.Resampling.BILINEAR)
    array = np.asarray(img, dtype=np.uint8)
    return array[None] if channels == 1 else array.transpose(2, 0, 1)


def read_images(paths: Sequence[Path], *, channels: int, size: tuple[int, int]) -> np.ndarray:
    out = np.empty((len(paths), channels, *size), dtype=np.uint8)
    for i, path in enumerate(paths):
        out[i] = read_image(path, channels=channels, size=size)
    return out
