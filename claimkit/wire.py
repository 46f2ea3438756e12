"""Wire primitives: canonical JSON, digests, base64 and strict field parsing.

Everything claimkit hashes or signs is serialised with RFC 8785 (JSON
Canonicalization Scheme) through the ``rfc8785`` package, binary values travel as
standard base64, and digests look like in-toto's ``{"sha256": "<hex>"}``::

    >>> d = Digest.of(canonical_json({"b": 1, "a": [True, None]}))
    >>> d.to_dict()["sha256"][:8]
    '51705a2c'

Parsing is strict on purpose: a verifier that silently ignores an unknown field, a
duplicate key or a wrong type accepts objects that its signer never meant. Every
wire object is read through :class:`Fields`, which names the offending field in its
:class:`~claimkit.errors.MalformedInputError`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import itertools
import json
import math
import os
import re
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, BinaryIO, Callable, TypeVar

import rfc8785

from .errors import MalformedInputError

__all__ = [
    "MAX_DOCUMENT_BYTES",
    "MAX_DEPTH",
    "canonical_json",
    "sha256",
    "Digest",
    "b64encode",
    "b64decode",
    "b64hash",
    "pretty_json",
    "ct_equal",
    "load_json",
    "read_json_file",
    "open_regular_file",
    "read_regular_file",
    "Fields",
    "atomic_write",
]

MAX_DOCUMENT_BYTES = 64 * 1024 * 1024
"""Largest JSON document claimkit parses (a bundle with many queries stays far below)."""

MAX_DEPTH = 32
"""Deepest nesting any claimkit wire object needs; deeper input is refused."""

T = TypeVar("T")


def canonical_json(value: Any) -> bytes:
    """RFC 8785 canonical bytes of a JSON value (the bytes that are hashed and signed)."""
    try:
        return rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as e:
        raise MalformedInputError(f"value cannot be canonicalised: {e}") from None


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def ct_equal(a: bytes, b: bytes) -> bool:
    """Constant-time comparison for digests, MACs and hashes."""
    return hmac.compare_digest(a, b)


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def b64decode(text: str, *, field: str = "value", size: int | None = None) -> bytes:
    """Strict standard-alphabet base64 (padding required, no whitespace)."""
    if not isinstance(text, str):
        raise MalformedInputError(f"{field}: expected a base64 string")
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise MalformedInputError(f"{field}: not valid base64") from None
    if b64encode(raw) != text:
        raise MalformedInputError(f"{field}: non-canonical base64")
    if size is not None and len(raw) != size:
        raise MalformedInputError(f"{field}: expected {size} bytes, got {len(raw)}")
    return raw


def b64hash(value: Any, where: str) -> bytes:
    """A 32-byte hash (Merkle node, proof element) in strict base64."""
    return b64decode(value, field=where, size=32)


def pretty_json(value: Any) -> bytes:
    """Indented, key-sorted JSON for files people read (never for hashing or signing)."""
    return (json.dumps(value, indent=2, sort_keys=True) + "\n").encode()


@dataclass(frozen=True)
class Digest:
    """A SHA-256 digest in the in-toto form ``{"sha256": "<64 lowercase hex>"}``."""

    value: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.value, bytes) or len(self.value) != 32:
            raise MalformedInputError("digest: expected 32 bytes of SHA-256")

    @classmethod
    def of(cls, data: bytes) -> Digest:
        return cls(sha256(data))

    @classmethod
    def of_json(cls, value: Any) -> Digest:
        """Digest of a JSON value's canonical bytes."""
        return cls(sha256(canonical_json(value)))

    @property
    def hex(self) -> str:
        return self.value.hex()

    def to_dict(self) -> dict[str, str]:
        return {"sha256": self.value.hex()}

    @classmethod
    def from_dict(cls, obj: Any, *, field: str = "digest") -> Digest:
        f = Fields(obj, field)
        text = f.str("sha256", max_len=64)
        f.done()
        if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
            raise MalformedInputError(f"{field}.sha256: expected 64 lowercase hex digits")
        return cls(bytes.fromhex(text))

    def matches(self, other: Digest) -> bool:
        return ct_equal(self.value, other.value)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise MalformedInputError(f"duplicate key {key!r} in JSON object")
        out[key] = value
    return out


def _canonical_int(text: str) -> int:
    if text == "-0":
        raise MalformedInputError("-0 is not an integer every reader reads as 0")
    return int(text)


def _no_constants(name: str) -> Any:
    raise MalformedInputError(f"JSON constant {name} is not allowed")


def _check_depth(value: Any, *, strings: bool = False) -> None:
    """Refuse nesting deeper than MAX_DEPTH; only containers are visited. With
    ``strings``, also refuse a key or string holding a lone surrogate (JSON lets
    ``"\\ud800"`` through as an escape; it is no Unicode text, cannot be encoded as UTF-8,
    and RFC 8785 refuses it)."""
    stack = [(value, 1)] if isinstance(value, (dict, list)) else []
    if strings and isinstance(value, str):
        _check_text(value)
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise MalformedInputError(f"JSON nested deeper than {MAX_DEPTH} levels")
        children = item.values() if isinstance(item, dict) else item    # a view: re-iterable
        if strings:
            for text in itertools.chain(item if isinstance(item, dict) else (), children):
                if isinstance(text, str):
                    _check_text(text)
        stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))


def _check_text(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise MalformedInputError(f"a JSON string holds a lone surrogate: {ascii(text[:40])}") from None


def _finite_float(text: str) -> float:
    """A JSON number that overflows a double (1e400) would be read as infinity, which no
    canonical JSON document holds: refused like the Infinity literal."""
    value = float(text)
    if math.isinf(value):
        raise MalformedInputError(f"number {text[:40]} is beyond the double range")
    return value


# A \u escape of a surrogate (U+D800 to U+DFFF): a pair is fine, a lone one is not.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def load_json(data: bytes | str, *, what: str = "document", max_bytes: int = MAX_DOCUMENT_BYTES,
              canonical_integers: bool = False) -> Any:
    """Parse untrusted JSON: UTF-8 only, bounded size and depth, no duplicate keys, no NaN,
    no lone surrogates. With ``canonical_integers``, ``-0`` is refused too: Python reads it
    as 0, a reader in another language (safetensors' Rust one) as the float -0.0, so a
    file another reader then refuses or reads otherwise would pass our checks."""
    if isinstance(data, str):
        try:
            data = data.encode("utf-8")
        except UnicodeEncodeError:
            raise MalformedInputError(f"{what}: not UTF-8") from None
    if len(data) > max_bytes:
        raise MalformedInputError(f"{what}: larger than {max_bytes} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedInputError(f"{what}: not UTF-8") from None
    try:
        value = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constants,
                           parse_int=_canonical_int if canonical_integers else None,
                           parse_float=_finite_float)
        _check_depth(value, strings=_SURROGATE_ESCAPE.search(text) is not None)
    except MalformedInputError as e:
        raise MalformedInputError(f"{what}: {e}") from None
    except (ValueError, RecursionError) as e:
        raise MalformedInputError(f"{what}: not valid JSON ({e})") from None
    return value


@contextmanager
def open_regular_file(path: str | os.PathLike[str], *,
                      what: str | None = None) -> Iterator[tuple[BinaryIO, os.stat_result]]:
    """An open regular file and its status, or a one-line error.

    Opened without blocking and checked through the descriptor: a FIFO named like an
    input would hang an ``open`` or a ``read``, and ``/dev/zero`` passes a size check on
    the path (size 0) and then never ends. A missing file raises FileNotFoundError, for
    callers that say where to get it; other I/O failures, reads in the ``with`` body
    included, are MalformedInputError.
    """
    label = what or str(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    except FileNotFoundError:
        raise
    except OSError as e:
        raise MalformedInputError(f"{label}: cannot read ({e.strerror})") from None
    except ValueError:                      # os.open refuses a path with a NUL byte
        raise MalformedInputError(f"{label}: not a path (it holds a NUL byte)") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):     # before fdopen, which refuses a directory
            raise MalformedInputError(f"{label}: not a regular file")
        with os.fdopen(fd, "rb", closefd=False) as fh:
            yield fh, st
    except OSError as e:
        raise MalformedInputError(f"{label}: cannot read ({e.strerror})") from None
    finally:
        os.close(fd)


def read_regular_file(path: str | os.PathLike[str], *, max_bytes: int, what: str | None = None,
                      check: Callable[[os.stat_result], None] | None = None) -> bytes:
    """The bytes of a regular file (:func:`open_regular_file`) of at most ``max_bytes``.
    ``check`` sees the open file's status before anything is read (a key file's mode)."""
    label = what or str(path)
    with open_regular_file(path, what=label) as (fh, st):
        if check is not None:
            check(st)
        if st.st_size > max_bytes:
            raise MalformedInputError(f"{label}: larger than {max_bytes} bytes")
        try:
            data = fh.read(st.st_size + 1)    # read(n) reserves n bytes: not max_bytes + 1
        except MemoryError:     # a sparse file within max_bytes can claim more than there is
            raise MalformedInputError(f"{label}: {st.st_size} bytes do not fit in memory") from None
    if len(data) > max_bytes:
        raise MalformedInputError(f"{label}: larger than {max_bytes} bytes")
    return data


def read_json_file(path: str | os.PathLike[str], *, what: str | None = None,
                   max_bytes: int = MAX_DOCUMENT_BYTES) -> Any:
    """Read and strictly parse a JSON file, turning I/O failures into one-line errors."""
    label = what or str(path)
    try:
        data = read_regular_file(path, max_bytes=max_bytes, what=label)
    except FileNotFoundError as e:
        raise MalformedInputError(f"{label}: cannot read ({e.strerror})") from None
    return load_json(data, what=label, max_bytes=max_bytes)


class Fields:
    """Strict reader of one JSON object: typed getters, then :meth:`done` refuses extras.

    >>> f = Fields({"size": 3}, "checkpoint")
    >>> f.int("size", lo=0)
    3
    >>> f.done()
    """

    def __init__(self, obj: Any, where: str) -> None:
        if not isinstance(obj, dict):
            raise MalformedInputError(f"{where}: expected a JSON object")
        self._obj = obj
        self._seen: set[str] = set()
        self.where = where

    def path(self, name: str) -> str:
        return f"{self.where}.{name}"

    def has(self, name: str) -> bool:
        return name in self._obj

    def _get(self, name: str, optional: bool) -> Any:
        self._seen.add(name)
        if name not in self._obj:
            if optional:
                return None
            raise MalformedInputError(f"{self.path(name)}: missing")
        return self._obj[name]

    def raw(self, name: str, *, optional: bool = False) -> Any:
        return self._get(name, optional)

    def str(self, name: str, *, max_len: int = 4096, optional: bool = False,
            choices: tuple[str, ...] | None = None) -> Any:
        value = self._get(name, optional)
        if value is None and optional:
            return None
        if not isinstance(value, str):
            raise MalformedInputError(f"{self.path(name)}: expected a string")
        if len(value) > max_len:
            raise MalformedInputError(f"{self.path(name)}: longer than {max_len} characters")
        if choices is not None and value not in choices:
            raise MalformedInputError(f"{self.path(name)}: expected one of {', '.join(choices)}")
        return value

    def int(self, name: str, *, lo: int = 0, hi: int = 2**63 - 1, optional: bool = False) -> Any:
        value = self._get(name, optional)
        if value is None and optional:
            return None
        if not isinstance(value, int) or isinstance(value, bool):
            raise MalformedInputError(f"{self.path(name)}: expected an integer")
        if not lo <= value <= hi:
            raise MalformedInputError(f"{self.path(name)}: {value} outside [{lo}, {hi}]")
        return value

    def float(self, name: str, *, lo: float = float("-inf"), hi: float = float("inf"),
              optional: bool = False) -> Any:
        value = self._get(name, optional)
        if value is None and optional:
            return None
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise MalformedInputError(f"{self.path(name)}: expected a number")
        if not lo <= value <= hi:
            raise MalformedInputError(f"{self.path(name)}: {value} outside [{lo}, {hi}]")
        return float(value)

    def bool(self, name: str, *, optional: bool = False) -> Any:
        value = self._get(name, optional)
        if value is None and optional:
            return None
        if not isinstance(value, bool):
            raise MalformedInputError(f"{self.path(name)}: expected true or false")
        return value

    def bytes(self, name: str, *, size: int | None = None, max_size: int = 16 * 1024 * 1024,
              optional: bool = False) -> Any:
        value = self._get(name, optional)
        if value is None and optional:
            return None
        if isinstance(value, str) and len(value) > (max_size + 2) // 3 * 4:
            raise MalformedInputError(f"{self.path(name)}: larger than {max_size} bytes")
        return b64decode(value, field=self.path(name), size=size)

    def digest(self, name: str, *, optional: bool = False) -> Any:
        value = self._get(name, optional)
        if value is None and optional:
            return None
        return Digest.from_dict(value, field=self.path(name))

    def obj(self, name: str, *, optional: bool = False) -> Any:
        value = self._get(name, optional)
        if value is None and optional:
            return None
        if not isinstance(value, dict):
            raise MalformedInputError(f"{self.path(name)}: expected a JSON object")
        return value

    def list(self, name: str, *, max_items: int = 100_000, optional: bool = False) -> Any:
        value = self._get(name, optional)
        if value is None and optional:
            return None
        if not isinstance(value, list):
            raise MalformedInputError(f"{self.path(name)}: expected a list")
        if len(value) > max_items:
            raise MalformedInputError(f"{self.path(name)}: more than {max_items} items")
        return value

    def each(self, name: str, parse: Callable[[Any, str], T], *, max_items: int = 100_000,
             optional: bool = False) -> tuple[T, ...] | None:
        """Parse every element of a list with ``parse(value, path)``."""
        items = self.list(name, max_items=max_items, optional=optional)
        if items is None:
            return None
        return tuple(parse(v, f"{self.path(name)}[{i}]") for i, v in enumerate(items))

    def done(self) -> None:
        extra = sorted(set(self._obj) - self._seen)
        if extra:
            raise MalformedInputError(f"{self.where}: unknown field {extra[0]!r}")


def atomic_write(path: str | os.PathLike[str], data: bytes, *, mode: int = 0o644) -> None:
    """Write a file so a crash leaves either the old file or the new one, never half.

    The bytes go to a temporary file in the same directory with ``mode`` set before
    anything is written, are fsynced, then renamed over ``path``; the directory is
    fsynced so the rename itself survives a power cut.
    """
    target = Path(path)
    directory = target.parent if str(target.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    except OSError as e:    # name the file asked for, not the temporary one
        raise OSError(e.errno, e.strerror, str(target)) from None
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(e, OSError) and e.filename == tmp:
            raise OSError(e.errno, e.strerror, str(target)) from None
        raise
    dfd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
