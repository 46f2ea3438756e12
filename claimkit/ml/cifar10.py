"""CIFAR-10 from the files of its distribution, read without trusting them.

Krizhevsky's site (https://www.cs.toronto.edu/~kriz/cifar.html) ships two versions
that claimkit reads, after the user has unpacked one of them:

* the **binary version**, ``cifar-10-batches-bin/``: ``data_batch_1.bin`` …
  ``data_batch_5.bin`` and ``test_batch.bin``, each a run of 3,073-byte records
  (1 label byte, then 3,072 bytes: the red, green and blue 32×32 planes, row-major).
  Read natively with numpy; this is the version we recommend.
* the **python version**, ``cifar-10-batches-py/``: the same batches as pickles. The
  files are not ours, and unpickling one runs whatever it names; even an unpickler with
  a whitelist of globals still runs pickle's machinery (its globals, ``__setstate__``,
  numpy's reconstruction) on the attacker's arguments. So these files are *parsed*,
  never unpickled: :func:`pickletools.genops` reads the opcodes without executing
  anything, and a few of them are interpreted here on our own stack, building only
  plain values (dicts, lists, tuples, ints, bytes, str) and the one uint8 array, via
  :func:`numpy.frombuffer`. Any other global (``os.system``, ``builtins.eval``, …) or
  opcode is refused. torchvision's ``CIFAR10`` unpickles them unrestricted, which is
  why it is not used.

``root`` may be the folder holding either batches folder, or the batches folder
itself::

    arrays = read_cifar10("/data/cifar")   # {"x_train": (50000, 3, 32, 32) uint8, ...}

Nothing is downloaded: a missing file is a :class:`~claimkit.errors.DataMissingError`
naming it; a damaged one a :class:`~claimkit.errors.MalformedInputError`.
"""

from __future__ import annotations

import math
import os
import pickletools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataMissingError, MalformedInputError
from ..wire import read_regular_file

__all__ = ["BIN_DIR", "PY_DIR", "read_bin_batch", "read_cifar10", "read_py_batch"]

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


# -- the python version: a pickle parser that executes nothing -----------------------------
# What the batches' pickles call, and what each call stands for here. Python 3 writes bytes
# below protocol 3 as _codecs.encode(str, "latin1"); numpy's protocol-5 reduce is _frombuffer.
_GLOBALS = {"numpy.core.multiarray _reconstruct": "reconstruct",
            "numpy._core.multiarray _reconstruct": "reconstruct",
            "numpy.core.numeric _frombuffer": "frombuffer",
            "numpy._core.numeric _frombuffer": "frombuffer",
            "numpy ndarray": "ndarray", "numpy dtype": "dtype", "_codecs encode": "encode"}
_CONSTANTS = {"NONE": None, "NEWTRUE": True, "NEWFALSE": False, "EMPTY_TUPLE": ()}
_AS_IS = {"BININT", "BININT1", "BININT2", "SHORT_BINBYTES", "BINBYTES", "BINBYTES8",
          "BYTEARRAY8", "SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8"}
_PY2_STR = {"SHORT_BINSTRING", "BINSTRING"}  # a Python 2 str is bytes; pickletools gives latin-1 text
_MAX_PROTOCOL = 5
_MAX_MEMO = 1 << 20                          # a real batch memoizes ~10,000 file names
# A real batch is ~30,100 opcodes (10,000 labels, 10,000 file names and their memo puts, a
# few dozen for the dict and the array), whichever protocol wrote it. Each opcode builds at
# most one value, so this cap also bounds the values held: 20 MB of EMPTY_DICT once built
# 1.46 GB of dicts, 100 MB of EMPTY_LIST ran out of memory.
_MAX_OPCODES = 1 << 18
_UINT8 = np.dtype(np.uint8)
_UNBUILT = object()                          # an array _reconstruct made, awaiting its BUILD


@dataclass(frozen=True)
class _Global:
    """A global a pickle names: a marker for REDUCE to interpret, never an import."""

    kind: str


def _parse_pickle(raw: bytes) -> Any:
    """The value a CIFAR-10 python batch pickles, from its opcodes, without running pickle.

    ``pickletools.genops`` only decodes opcodes and their arguments; the few opcodes the
    batches use are interpreted here, on our own stack, memo and MARK positions. Raises
    :class:`MalformedInputError` (or ``ValueError`` from genops) on anything else.
    """
    stack: list[Any] = []
    marks: list[int] = []
    memo: dict[int, Any] = {}
    budget = [len(raw)]  # bytes _codecs.encode may still make: no more than the file holds

    def pop(n: int) -> list[Any]:
        if len(stack) - n < (marks[-1] if marks else 0):
            raise MalformedInputError("pickle stack underflow")
        items = stack[len(stack) - n:]
        del stack[len(stack) - n:]
        return items

    def pop_mark() -> list[Any]:
        if not marks:
            raise MalformedInputError("pickle stack underflow (no MARK)")
        items = stack[marks[-1]:]
        del stack[marks.pop():]
        return items

    def top(kind: type | None = None) -> Any:
        if len(stack) <= (marks[-1] if marks else 0) or kind not in (None, type(stack[-1])):
            raise MalformedInputError(f"pickle stack lacks the {kind.__name__ if kind else 'value'} "
                                      "to use")
        return stack[-1]

    for count, (op, arg, pos) in enumerate(pickletools.genops(raw)):
        if count >= _MAX_OPCODES:
            raise MalformedInputError(f"pickle has more than {_MAX_OPCODES} opcodes; a CIFAR-10 "
                                      "batch has about 30,000")
        name = op.name
        if name == "PROTO" and arg > _MAX_PROTOCOL:
            raise MalformedInputError(f"unknown pickle protocol {arg}")
        elif name in ("PROTO", "FRAME"):
            pass
        elif name == "MARK":
            marks.append(len(stack))
        elif name in _CONSTANTS:
            stack.append(_CONSTANTS[name])
        elif name in ("EMPTY_DICT", "EMPTY_LIST"):
            stack.append({} if name == "EMPTY_DICT" else [])
        elif name in _AS_IS:
            stack.append(arg)
        elif name in _PY2_STR:
            stack.append(arg.encode("latin-1"))
        elif name in ("TUPLE1", "TUPLE2", "TUPLE3", "TUPLE"):
            stack.append(tuple(pop_mark() if name == "TUPLE" else pop(int(name[-1]))))
        elif name in ("APPEND", "APPENDS"):
            items = pop(1) if name == "APPEND" else pop_mark()
            top(list).extend(items)
        elif name in ("SETITEM", "SETITEMS"):
            items = pop(2) if name == "SETITEM" else pop_mark()
            keys = items[::2]
            if len(items) % 2 or any(type(k) not in (str, bytes, int) for k in keys):
                raise MalformedInputError("pickle dict keys must be strings or integers")
            top(dict).update(zip(keys, items[1::2]))
        elif name in ("BINPUT", "LONG_BINPUT", "MEMOIZE"):
            index = len(memo) if name == "MEMOIZE" else arg
            if index > _MAX_MEMO:
                raise MalformedInputError(f"pickle memo index {index} out of range")
            memo[index] = top()
        elif name in ("BINGET", "LONG_BINGET"):
            if arg not in memo:
                raise MalformedInputError(f"pickle memo has no entry {arg}")
            stack.append(memo[arg])
        elif name in ("GLOBAL", "STACK_GLOBAL"):
            qualname = arg if name == "GLOBAL" else " ".join(_strings(pop(2)))
            if qualname not in _GLOBALS:
                raise MalformedInputError(f"refusing {qualname.replace(' ', '.')[:100]!r}: a "
                                          "CIFAR-10 batch needs only numpy arrays")
            stack.append(_Global(_GLOBALS[qualname]))
        elif name == "REDUCE":
            func, args = pop(2)
            stack.append(_reduce(func, args, budget))
        elif name == "BUILD":
            (state,) = pop(1)
            stack.append(_build(pop(1)[0], state))
        elif name == "STOP":
            (result,) = pop(1)
            if stack or marks or pos + 1 != len(raw):
                raise MalformedInputError("pickle has more after its value (trailing bytes?)")
            return result
        else:
            raise MalformedInputError(f"refusing pickle opcode {name}: a CIFAR-10 batch needs "
                                      "only plain values and numpy arrays")
    raise AssertionError("genops stops at STOP or raises")  # pragma: no cover


def _strings(items: list[Any]) -> list[str]:
    if any(type(s) is not str for s in items):
        raise MalformedInputError("STACK_GLOBAL needs two strings")
    return items


def _reduce(func: Any, args: Any, budget: list[int]) -> Any:
    """What calling ``func(*args)`` would give, for the few calls a batch makes."""
    kind = func.kind if type(func) is _Global else None
    if type(args) is not tuple:
        raise MalformedInputError("pickle REDUCE arguments must be a tuple")
    if kind == "encode" and len(args) == 2 and type(args[0]) is str and _is(args[1], "latin1"):
        budget[0] -= len(args[0])
        try:
            if budget[0] >= 0:
                return args[0].encode("latin-1")
        except UnicodeEncodeError:
            pass
        raise MalformedInputError("pickle's _codecs.encode makes more bytes than the file holds, "
                                  "or ones that are not latin-1")
    if kind == "dtype" and len(args) == 3:
        if not _is(args[0], "u1", b"u1"):
            shown = repr(args[0][:20]) if type(args[0]) in (str, bytes) else type(args[0]).__name__
            raise MalformedInputError(f"refusing numpy dtype {shown}: a CIFAR-10 batch holds "
                                      "only uint8 arrays")
        return _UINT8
    if kind == "reconstruct" and len(args) == 3 and _is(args[0], _Global("ndarray")):
        return _UNBUILT
    if kind == "frombuffer" and len(args) == 4 and _is(args[3], "C", "F"):
        return _array(args[0], args[1], args[2], fortran=args[3] == "F")
    raise MalformedInputError(f"pickle makes a call a CIFAR-10 batch does not ({kind or 'no global'})")


def _build(target: Any, state: Any) -> Any:
    """What ``target.__setstate__(state)`` would give, for a uint8 dtype and an array."""
    if type(state) is not tuple:
        raise MalformedInputError("pickle BUILD state must be a tuple")
    # dtype state: (version, byte order, subarray, names, fields, size, alignment, flags)
    if (target is _UINT8 and len(state) == 8 and _is(state[0], 3)
            and all(_is(v, c) for v, c in zip(state[2:], (None, None, None, -1, -1, 0)))):
        return _UINT8
    if target is _UNBUILT and len(state) == 5 and _is(state[0], 1):
        _, shape, dtype, fortran, data = state
        if not _is(fortran, False, True, 0, 1):
            raise MalformedInputError("pickle array order must be a boolean")
        return _array(data, dtype, shape, fortran=bool(fortran))
    raise MalformedInputError("pickle BUILD sets the state of something a CIFAR-10 batch lacks")


def _is(value: Any, *choices: Any) -> bool:
    """``value in choices``, without letting a parsed array or tuple answer ``==``."""
    return any(type(value) is type(c) and value == c for c in choices)


def _array(data: Any, dtype: Any, shape: Any, *, fortran: bool) -> np.ndarray:
    """A view of ``data`` as a uint8 array of ``shape``, checked before numpy sees it."""
    if dtype is not _UINT8:
        raise MalformedInputError("refusing a numpy array that is not a uint8 array")
    if type(data) not in (bytes, bytearray):
        raise MalformedInputError("pickle array data must be raw bytes")
    if not (type(shape) is tuple and 1 <= len(shape) <= 2
            and all(type(n) is int and n >= 0 for n in shape)):
        raise MalformedInputError("pickle array shape must be one or two sizes")
    if math.prod(shape) != len(data):
        raise MalformedInputError(f"pickle array of shape {shape} needs {math.prod(shape)} bytes, "
                                  f"has {len(data)}")
    return np.frombuffer(data, dtype=np.uint8).reshape(shape, order="F" if fortran else "C")


def read_py_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One python batch (a pickle, parsed and never unpickled) → images and labels."""
    raw = _read_bounded(path)
    try:
        batch = _parse_pickle(raw)
    except MalformedInputError as e:
        raise MalformedInputError(f"{path}: {e}") from None
    except ValueError as e:  # pickletools' own complaints: truncated, unknown opcode, bad text
        raise MalformedInputError(f"{path}: not a CIFAR-10 python batch ({str(e)[:200]})") from None
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
