"""The canonical digest of a model's weights, read from a safetensors file without torch.

A claim names its suspect by digest, so the digest must depend on the weights alone:
re-saving a model (other tensor order, other metadata, other header padding) must not
change it, and an arbiter must compute it offline, fast, and without unpickling
anything. It is

    SHA-256( "claimkit/weights/v1\\n" ||
             for each tensor, names sorted by their UTF-8 bytes:
                 LP(name) || LP(dtype) || LP(JCS(shape)) || LP(raw little-endian bytes) )

with LP(b) = 8-byte big-endian length || b (protocol_spec/weights.md). The file is
parsed strictly to the safetensors format: an 8-byte little-endian header length, a JSON
header of ``{name: {dtype, shape, data_offsets}}`` plus optional ``__metadata__``
(strings only), and a byte buffer that the tensors cover exactly, without holes or
overlap::

    digest = weights_digest("model.safetensors")      # a wire.Digest
"""

from __future__ import annotations

import hashlib
import mmap
import os
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from .errors import MalformedInputError
from .wire import Digest, Fields, canonical_json, load_json, open_regular_file

__all__ = ["DTYPE_SIZES", "TensorInfo", "SafetensorsHeader", "header_from_bytes", "read_header", "weights_digest",
           "weights_digest_from_bytes", "WEIGHTS_DOMAIN"]

WEIGHTS_DOMAIN = b"claimkit/weights/v1\n"
MAX_HEADER_BYTES = 100_000_000  # the safetensors format's own limit
MAX_TENSORS = 1_000_000
DTYPE_SIZES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2, "F16": 2,
    "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "F64": 8, "I64": 8, "U64": 8,
}
_CHUNK = 1 << 24


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int


@dataclass(frozen=True)
class SafetensorsHeader:
    tensors: tuple[TensorInfo, ...]        # sorted by name (UTF-8 bytes)
    metadata: dict[str, str]
    data_start: int                        # file offset of the byte buffer


def _lp(data: bytes) -> bytes:
    return len(data).to_bytes(8, "big") + data


def _tensor(name: str, value: Any, where: str) -> TensorInfo:
    f = Fields(value, where)
    dtype = f.str("dtype", max_len=16)
    if dtype not in DTYPE_SIZES:
        raise MalformedInputError(f"{where}.dtype: unknown dtype {dtype!r}")
    shape = f.list("shape", max_items=64)
    offsets = f.list("data_offsets", max_items=2)
    f.done()
    if not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 1 << 53 for d in shape):
        raise MalformedInputError(f"{where}.shape: expected non-negative integers")
    if len(offsets) != 2 or not all(isinstance(o, int) and not isinstance(o, bool) and o >= 0
                                    for o in offsets) or offsets[0] > offsets[1]:
        raise MalformedInputError(f"{where}.data_offsets: expected [begin, end] with begin <= end")
    count = 1
    for d in shape:
        count *= d
    if count * DTYPE_SIZES[dtype] != offsets[1] - offsets[0]:
        raise MalformedInputError(f"{where}: shape and dtype do not match the byte length")
    return TensorInfo(name, dtype, tuple(shape), offsets[0], offsets[1])


@contextmanager
def _open_regular(path: Path) -> Iterator[tuple[BinaryIO, int]]:
    """:func:`claimkit.wire.open_regular_file` (a model file is not read whole), with a
    missing file a one-line error too."""
    try:
        with open_regular_file(path) as (fh, st):
            yield fh, st.st_size
    except FileNotFoundError as e:
        raise MalformedInputError(f"{path}: cannot read ({e.strerror})") from None


def _read_header(fh: BinaryIO, size: int, path: Path) -> SafetensorsHeader:
    header_len = _header_length(fh.read(8), size, path)
    return _checked_header(fh.read(header_len), size, path)


def read_header(path: str | os.PathLike[str]) -> SafetensorsHeader:
    """Parse and check a safetensors file's header against its size."""
    path = Path(path)
    with _open_regular(path) as (fh, size):
        return _read_header(fh, size, path)


def header_from_bytes(blob: bytes, where: str | os.PathLike[str]) -> SafetensorsHeader:
    """The same checks on a whole file already in memory (``where`` names it in errors):
    for a caller that hashed these bytes and must parse exactly them."""
    header_len = _header_length(blob[:8], len(blob), where)
    return _checked_header(blob[8:8 + header_len], len(blob), where)


def _header_length(prefix: bytes, size: int, where: str | os.PathLike[str]) -> int:
    if len(prefix) < 8:
        raise MalformedInputError(f"{where}: not a safetensors file (too short)")
    (header_len,) = struct.unpack("<Q", prefix)
    if header_len > MAX_HEADER_BYTES or 8 + header_len > size:
        raise MalformedInputError(f"{where}: not a safetensors file (bad header length)")
    return header_len


def _checked_header(raw: bytes, size: int, where: str | os.PathLike[str]) -> SafetensorsHeader:
    """The header JSON ``raw`` of a ``size``-byte file, checked strictly."""
    if not raw.startswith(b"{"):
        raise MalformedInputError(f"{where}: not a safetensors file (header is not JSON)")
    header = load_json(raw.rstrip(b" "), what=f"{where} header", max_bytes=MAX_HEADER_BYTES,
                       canonical_integers=True)
    if not isinstance(header, dict):
        raise MalformedInputError(f"{where}: safetensors header must be a JSON object")
    metadata = header.pop("__metadata__", {})
    if not isinstance(metadata, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise MalformedInputError(f"{where}: __metadata__ must map strings to strings")
    if len(header) > MAX_TENSORS:
        raise MalformedInputError(f"{where}: more than {MAX_TENSORS} tensors")
    tensors = sorted((_tensor(name, value, f"{where}: tensor {name!r}")
                      for name, value in header.items()), key=lambda t: t.name.encode("utf-8"))
    # The tensors must tile the byte buffer exactly: no holes, no overlap, nothing after.
    position = 0
    for t in sorted(tensors, key=lambda t: (t.begin, t.end)):
        if t.begin != position:
            raise MalformedInputError(f"{where}: tensor {t.name!r} leaves a hole or overlaps")
        position = t.end
    data_start = 8 + len(raw)
    if data_start + position != size:
        raise MalformedInputError(f"{where}: tensors cover {position} bytes, the buffer has "
                                  f"{size - data_start}")
    return SafetensorsHeader(tuple(tensors), dict(metadata), data_start)


def weights_digest(path: str | os.PathLike[str]) -> Digest:
    """The canonical digest of the weights in a safetensors file (see module docstring).

    The header and the bytes hashed come from one open file, never from two opens of
    a path that could be swapped in between."""
    path = Path(path)
    with _open_regular(path) as (fh, size):
        header = _read_header(fh, size, path)
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as view:
            return _digest(header, view)


def weights_digest_from_bytes(blob: bytes, where: str | os.PathLike[str],
                              header: SafetensorsHeader | None = None) -> Digest:
    """The same digest of a whole file already in memory (``header``: its parsed header,
    when the caller has it), for a caller that must name exactly the bytes it loaded."""
    return _digest(header or header_from_bytes(blob, where), memoryview(blob))


def _digest(header: SafetensorsHeader, view: Any) -> Digest:
    h = hashlib.sha256(WEIGHTS_DOMAIN)
    for t in header.tensors:
        h.update(_lp(t.name.encode("utf-8")))
        h.update(_lp(t.dtype.encode("ascii")))
        h.update(_lp(canonical_json(list(t.shape))))
        h.update((t.end - t.begin).to_bytes(8, "big"))  # LP of the bytes, streamed
        start, end = header.data_start + t.begin, header.data_start + t.end
        for offset in range(start, end, _CHUNK):
            h.update(view[offset:min(offset + _CHUNK, end)])
    return Digest(h.digest())
