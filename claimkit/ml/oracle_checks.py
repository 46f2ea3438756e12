"""What every oracle checks: image batches, probability rows, limits and wire types.

Shared by the local, ONNX and HTTP oracles (:mod:`claimkit.ml.oracle`), so all three
refuse the same malformed answers with the same one-line errors.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import MalformedInputError, OracleError
from ..wire import (
    MAX_DOCUMENT_BYTES,
)

if TYPE_CHECKING:

    pass

ONNX_DOMAIN = b"claimkit/onnx/v1\n"
ENDPOINT_DOMAIN = b"claimkit/endpoint/v1\n"
DESCRIBE_TYPE = "claimkit/oracle/v1"
QUERY_TYPE = "claimkit/query/v1"
ANSWER_TYPE = "claimkit/answer/v1"
ERROR_TYPE = "claimkit/error/v1"

DEFAULT_TIMEOUT = 30.0               # seconds for one HTTP exchange (see _exchange)
MAX_TIMEOUT = 86_400.0               # a day: finite, and within what a socket accepts
DEFAULT_BATCH = 256                  # images per request a client sends, at most
MAX_BATCH = 4096                     # images per request the protocol allows
MAX_DIM = 4096                       # each of C, H, W
MAX_IMAGE_BYTES = 1 << 24            # C · H · W
MAX_CLASSES = 100_000
MAX_REQUEST_BYTES = MAX_DOCUMENT_BYTES
DEFAULT_MAX_RESPONSE = 16 * 1024 * 1024
PROBABILITY_TOLERANCE = 1e-3         # |row sum − 1| and overshoot above 1
MAX_ONNX_BYTES = 2**31 - 1           # protobuf's limit for one message
_NUMBER_CHARS = 32                   # budget per probability when sizing a request


# -- shared checks --------------------------------------------------------------------------
def _check_images(images: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4:
        raise MalformedInputError("images must be uint8 arrays of shape (N, C, H, W)")
    if tuple(images.shape[1:]) != tuple(shape):
        raise MalformedInputError(f"queries of shape {tuple(images.shape[1:])} for a model "
                                  f"that takes {tuple(shape)}")
    return np.ascontiguousarray(images)


def check_probabilities(p: np.ndarray, where: str) -> np.ndarray:
    """Refuse anything but rows of finite numbers in [0, 1] that sum to 1 (± tolerance)."""
    if not np.isfinite(p).all():
        raise OracleError(f"{where}: NaN or infinite probabilities")
    if (p < 0).any() or (p > 1 + PROBABILITY_TOLERANCE).any():
        raise OracleError(f"{where}: probabilities outside [0, 1]")
    off = np.abs(p.sum(axis=1) - 1) > PROBABILITY_TOLERANCE
    if off.any():
        row = int(np.argmax(off))
        raise OracleError(f"{where}: row {row} sums to {p[row].sum():.6g}, not 1 "
                          f"(± {PROBABILITY_TOLERANCE:g})")
    return p


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64, shifted by the row maximum so it cannot overflow."""
    z = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _one_line(value: Any, limit: int = 200) -> str:
    text = " ".join(str(value).split())
    text = "".join(c if c.isprintable() else "?" for c in text)
    return text if len(text) <= limit else text[:limit] + "…"


@contextmanager
def _oracle_errors() -> Iterator[None]:
    """Report a protocol violation found by the strict JSON readers as an OracleError."""
    try:
        yield
    except OracleError:
        raise
    except MalformedInputError as e:
        raise OracleError(str(e)) from None
