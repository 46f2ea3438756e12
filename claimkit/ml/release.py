"""Released data sets: a watermarked training set in one folder, checked when read.

A dataset watermark (UBW-P, UBW-C; Li et al. 2022, §3–§4) is published as a folder that
anyone can train on and that the owner registers by digest before release::

    digest = write_release(marked, "released/", base_digest=data.digest, scheme="ubw-p",
                           key_digest=mk.verification_key.digest)
    data = load_release("released/")        # or load_dataset("released/"), --data released/

The folder holds two files:

* ``data.safetensors`` — the training split as released (uint8 images (N, C, H, W) under
  ``x_train``, int64 labels under ``y_train``) and the unchanged test split (``x_test``,
  ``y_test``). safetensors holds raw arrays only, so reading it never runs code.
* ``claimkit-dataset.json`` — the manifest (protocol_spec/ubw.md §Release, schema
  ``schemas/dataset-manifest.json``): type ``claimkit/dataset/v1``, the base data set's
  name and digest, the scheme and the verification key it was marked with, the class
  count, input shape and split sizes, the file's SHA-256, and the release digest: a
  SHA-256 over the manifest's other members (all but ``file`` and ``digest``) and the
  dataset digest of what the file holds (:attr:`claimkit.ml.data.Dataset.digest`, under
  the base set's name). The release digest is what ``claimkit register --dataset`` binds
  and what a model trained on the release records as its data digest, so the class count
  a model is trained with and the key the release names cannot be edited unseen.

Reading is strict: every manifest field is typed and unknown fields are refused, the
file's SHA-256 and the recomputed dataset digest must equal the manifest's (compared in
constant time), and the file must be a regular file holding exactly the four arrays with
the manifest's shapes, at least one image in each split. Anything else is one
:class:`~claimkit.errors.MalformedInputError` (exit 2) naming the file and the field.
The released set keeps the base set's ``name``, so the training recipes of
:mod:`claimkit.ml.recipes` apply to it unchanged.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataMissingError, MalformedInputError
from ..wire import (Digest, Fields, atomic_write, canonical_json, ct_equal, pretty_json,
                    read_json_file, read_regular_file)
from ..weights import header_from_bytes
from .data import MAX_CLASSES, RELEASE_MANIFEST, Dataset

__all__ = ["DATA_FILE", "MANIFEST", "MANIFEST_TYPE", "Release", "load_release", "read_manifest",
           "release_digest", "write_release"]

MANIFEST = RELEASE_MANIFEST
MANIFEST_TYPE = "claimkit/dataset/v1"
DATA_FILE = "data.safetensors"
MAX_MANIFEST_BYTES = 1 << 20
MAX_DATA_BYTES = 1 << 36
_ARRAYS = {"x_train": ("U8", np.uint8), "y_train": ("I64", np.int64),
           "x_test": ("U8", np.uint8), "y_test": ("I64", np.int64)}
_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")      # whole names: fullmatch
_SCHEME = re.compile(r"[a-z0-9-]{1,32}")
_UNBOUND = ("file", "digest")      # the manifest members the release digest does not cover
RELEASE_DOMAIN = b"claimkit/release/v1\n"


def release_digest(bound: bytes, data_digest: Digest) -> Digest:
    """SHA-256(domain || JCS(the manifest but ``file`` and ``digest``) || "\\n" || the
    dataset digest's 32 bytes): the arrays alone left ``num_classes`` (the width of every
    model trained on the release) and ``verification_key`` (the key ``register --dataset``
    checks) free to edit."""
    return Digest(hashlib.sha256(RELEASE_DOMAIN + bound + b"\n" + data_digest.value).digest())


@dataclass(frozen=True)
class Release(Dataset):
    """A data set read from a release folder: its digest is the release digest, so what
    a model trained on it records is what the owner registered."""

    bound: bytes = b""     # JCS of the manifest members the digest binds

    @property
    def data_digest(self) -> Digest:
        """The dataset digest of the arrays alone (what a release's digest was before the
        manifest was bound, and what the release digest binds with the manifest)."""
        return super().digest

    @property
    def digest(self) -> Digest:
        return release_digest(self.bound, self.data_digest)


def write_release(data: Dataset, out_dir: str | os.PathLike[str], *, base_digest: Digest,
                  scheme: str, key_digest: Digest, extra: dict[str, Any] | None = None) -> Digest:
    """Write ``data`` (already watermarked) as a release folder; returns its release digest.

    ``out_dir`` must be new or empty: a release is never written over another one. The
    data file goes first and the manifest last, each atomically, so a crash leaves no
    manifest that points at a half-written file.
    """
    from safetensors.numpy import save

    if not _NAME.fullmatch(data.name):
        raise MalformedInputError(f"release: data set name {data.name!r} is not a plain name")
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise MalformedInputError(f"{out} exists and is not an empty folder; a release is "
                                  "never written over other files")
    out.mkdir(parents=True, exist_ok=True)
    arrays = {name: np.ascontiguousarray(getattr(data, name)) for name in _ARRAYS}
    blob = save(arrays, metadata={"claimkit.type": MANIFEST_TYPE})
    atomic_write(out / DATA_FILE, blob)
    manifest = {
        "type": MANIFEST_TYPE,
        "name": data.name,
        "base_digest": base_digest.to_dict(),
        "scheme": scheme,
        "verification_key": key_digest.to_dict(),
        "num_classes": data.num_classes,
        "input_shape": list(data.input_shape),
        "train": len(data.y_train),
        "test": len(data.y_test),
        "extra": dict(extra or {}),
    }
    digest = release_digest(canonical_json(manifest), data.digest)
    manifest["file"] = {"name": DATA_FILE, "sha256": hashlib.sha256(blob).hexdigest()}
    manifest["digest"] = digest.to_dict()
    atomic_write(out / MANIFEST, pretty_json(manifest))
    return digest


def read_manifest(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """The manifest of a release folder, every field checked (but not the data file)."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise DataMissingError(f"missing {path} (a released data set holds {MANIFEST} and "
                               f"{DATA_FILE}; write one with claimkit mark)")
    obj = read_json_file(path, max_bytes=MAX_MANIFEST_BYTES)
    f = Fields(obj, str(path))
    f.str("type", choices=(MANIFEST_TYPE,))
    name = f.str("name", max_len=64)
    if not _NAME.fullmatch(name):
        raise MalformedInputError(f"{path}.name: not a plain data set name")
    out: dict[str, Any] = {"name": name, "base_digest": f.digest("base_digest"),
                           "scheme": f.str("scheme", max_len=32),
                           "verification_key": f.digest("verification_key"),
                           "num_classes": f.int("num_classes", lo=2, hi=MAX_CLASSES)}
    if not _SCHEME.fullmatch(out["scheme"]):
        raise MalformedInputError(f"{path}.scheme: not a scheme name")
    shape = f.list("input_shape", max_items=3)
    if len(shape) != 3 or not all(isinstance(d, int) and not isinstance(d, bool)
                                  and 1 <= d <= 4096 for d in shape):
        raise MalformedInputError(f"{path}.input_shape: expected [C, H, W], each within [1, 4096]")
    out["input_shape"] = tuple(shape)
    out["train"] = f.int("train", lo=1, hi=1 << 32)
    out["test"] = f.int("test", lo=1, hi=1 << 32)
    g = Fields(f.obj("file"), f"{path}.file")
    g.str("name", choices=(DATA_FILE,))
    sha = g.str("sha256", max_len=64)
    g.done()
    if not re.fullmatch(r"[0-9a-f]{64}", sha):
        raise MalformedInputError(f"{path}.file.sha256: expected 64 lowercase hex digits")
    out["file_sha256"] = bytes.fromhex(sha)
    out["digest"] = f.digest("digest")
    out["extra"] = f.obj("extra")
    f.done()
    out["bound"] = canonical_json({k: v for k, v in obj.items() if k not in _UNBOUND})
    return out


def load_release(path: str | os.PathLike[str], *, marked_with: Digest | None = None) -> Dataset:
    """Read a release folder, checking the file and the data against the manifest.

    ``marked_with``: the verification-key digest the release must name, checked before
    the data is read (``claimkit register --dataset`` binds a release to a key only if
    that key marked it: another key's items could not support a claim on it).
    """
    folder = Path(path)
    manifest = read_manifest(folder)
    if marked_with is not None and not manifest["verification_key"].matches(marked_with):
        raise MalformedInputError(
            f"{folder} was marked with the key whose verification-key digest is "
            f"{manifest['verification_key'].hex}, not {marked_with.hex}; register it with that key")
    file = folder / DATA_FILE
    c, h, w = manifest["input_shape"]
    sizes = {"x_train": manifest["train"] * c * h * w, "y_train": manifest["train"] * 8,
             "x_test": manifest["test"] * c * h * w, "y_test": manifest["test"] * 8}
    limit = min(MAX_DATA_BYTES, sum(sizes.values()) + (1 << 20))
    try:       # regular files only: /dev/zero or a FIFO would never end
        blob = read_regular_file(file, max_bytes=limit)
    except FileNotFoundError:
        raise DataMissingError(f"missing {file}, which {folder / MANIFEST} lists") from None
    if not ct_equal(hashlib.sha256(blob).digest(), manifest["file_sha256"]):
        raise MalformedInputError(f"{file}: SHA-256 differs from the manifest's "
                                  "(the file was changed or damaged)")
    header = header_from_bytes(blob, file)     # the bytes just hashed, not the file again
    shapes = {"x_train": (manifest["train"], c, h, w), "y_train": (manifest["train"],),
              "x_test": (manifest["test"], c, h, w), "y_test": (manifest["test"],)}
    found = {t.name: t for t in header.tensors}
    if set(found) != set(_ARRAYS):
        raise MalformedInputError(f"{file}: expected exactly the arrays "
                                  f"{', '.join(sorted(_ARRAYS))}, found {', '.join(sorted(found))}")
    arrays = {}
    for name, (dtype, np_dtype) in _ARRAYS.items():
        t = found[name]
        if t.dtype != dtype or t.shape != shapes[name]:
            raise MalformedInputError(f"{file}: {name} is {t.dtype} {list(t.shape)}, the manifest "
                                      f"says {dtype} {list(shapes[name])}")
        raw = blob[header.data_start + t.begin:header.data_start + t.end]
        arrays[name] = np.frombuffer(raw, dtype=np.dtype(np_dtype).newbyteorder("<")).astype(
            np_dtype).reshape(t.shape)
    try:        # its message names the base data set: say which folder holds the release
        data = Release(manifest["name"], num_classes=manifest["num_classes"],
                       bound=manifest["bound"], **arrays)
    except MalformedInputError as e:
        raise MalformedInputError(f"{file}: {e}") from None
    if not manifest["digest"].matches(data.digest):
        if manifest["digest"].matches(data.data_digest):
            raise MalformedInputError(f"{folder / MANIFEST}: its digest covers the data only, "
                                      "as an older claimkit wrote it; write the release again "
                                      "with claimkit mark")
        raise MalformedInputError(f"{folder / MANIFEST}: the release digest differs from the one "
                                  "of the data and the manifest's other fields (edited?)")
    return data
