"""What every watermarking backend provides, and what it may ask of a suspect.

The pure half of Verify (queries from openings, the decision from answers) is a
:class:`~claimkit.protocol.scheme.Decider` registered by scheme name. This module is the
torch half: a :class:`Backend` makes keys and marks models or data sets, and turns an
:class:`Oracle` (the suspect, however it is reached) into the ``ask`` function a claim
and a re-check need. The CLI looks backends up by name, so adding a scheme means one
module here and one decider; no command changes::

    backend = get_backend("trigger-set")
    mk = backend.keygen(data, {"items": 100}, rng=os.urandom)
    record = backend.mark(mk, data, "released.safetensors", MarkOptions(device="cuda"))
    ask = backend.answerer(LocalModel.from_file("suspect.safetensors"), mk.verification_key)

Options given on the command line as ``--param KEY=VALUE`` reach ``keygen`` as strings;
:func:`parse_params` turns them into the typed fields of a backend's parameter
dataclass, refusing unknown keys and bad values with one line each.
"""

from __future__ import annotations

import dataclasses
import re
import importlib
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

from ..errors import MalformedInputError
from ..protocol.keys import MarkingKey, VerificationKey
from ..wire import Digest

if TYPE_CHECKING:
    import numpy as np

__all__ = ["Backend", "MarkOptions", "Oracle", "backend_names", "data_fields", "get_backend",
           "parse_params"]

Ask = Callable[[Sequence[Any]], list[Any]]
P = TypeVar("P")


@runtime_checkable
class Oracle(Protocol):
    """Black-box access to a suspect model: class indices and class probabilities.

    ``images`` are uint8 arrays (N, C, H, W). ``subject`` names what was queried: the
    canonical weights digest for a model file, a digest binding the URL and the
    arbiter's nonce for an endpoint.
    """

    input_shape: tuple[int, int, int]
    num_classes: int

    @property
    def subject(self) -> Digest: ...

    def labels(self, images: np.ndarray) -> list[int]: ...

    def probabilities(self, images: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class MarkOptions:
    """How to train when marking; ``None`` takes the data set's recipe."""

    arch: str | None = None
    epochs: int | None = None
    lr: float | None = None
    seed: int = 0
    device: str = "auto"
    start_from: str | None = None     # PreTrained: fine-tune this model file
    progress: bool = True


@runtime_checkable
class Backend(Protocol):
    name: str
    marks: str            # "model" (writes a safetensors model) or "dataset" (writes a folder)
    summary: str          # one line for --help
    params: type          # the parameter dataclass keygen builds with parse_params

    def keygen(self, data: Any, params: Mapping[str, str], *,
               rng: Callable[[int], bytes] = os.urandom) -> MarkingKey: ...

    def mark(self, mk: MarkingKey, data: Any, out: str | os.PathLike[str],
             options: MarkOptions) -> dict[str, Any]: ...

    def answerer(self, oracle: Oracle, vk: VerificationKey) -> Ask: ...


# name → module that defines BACKEND; imported only when asked for (torch is heavy).
_MODULES = {"trigger-set": "claimkit.schemes.trigger_set",
            "move": "claimkit.schemes.move", "ewe": "claimkit.schemes.ewe",
            "ubw-p": "claimkit.schemes.ubw", "ubw-c": "claimkit.schemes.ubw_c"}


def backend_names() -> list[str]:
    return sorted(_MODULES)


def get_backend(name: str) -> Backend:
    if name not in _MODULES:
        raise MalformedInputError(f"unknown scheme {name!r} (known: {', '.join(backend_names())})")
    return importlib.import_module(_MODULES[name]).BACKEND


def data_fields(data: Any) -> dict[str, Any]:
    """The parameters every scheme takes from the data set, not from the user."""
    return {"num_classes": data.num_classes, "input_shape": data.input_shape,
            "data": data.name, "data_digest": data.digest.hex}


def parse_params(cls: type[P], given: Mapping[str, str], fixed: Mapping[str, Any]) -> P:
    """Build the parameter dataclass ``cls`` from ``fixed`` values and user strings.

    ``given`` comes from ``--param KEY=VALUE``: each key must be a field of ``cls`` not in
    ``fixed`` (data-derived fields such as the input shape are not the user's to set).
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    values = dict(fixed)
    for key, raw in given.items():
        if key in fixed:
            raise MalformedInputError(f"--param {key}: fixed at {fixed[key]} here")
        if key not in fields:
            settable = sorted(k for k in fields if k not in fixed)
            raise MalformedInputError(f"--param {key}: unknown for this scheme "
                                      f"(settable: {', '.join(settable)})")
        kind = fields[key].type if isinstance(fields[key].type, str) else fields[key].type.__name__
        try:
            if kind.endswith("| None") and raw.strip().lower() == "none":
                values[key] = None      # the default's meaning, e.g. the recipe's epochs
            elif kind.startswith("int"):       # ASCII digits only: int() takes 1_000 and ٣
                if not re.fullmatch(r"[+-]?[0-9]{1,30}", raw.strip()):
                    raise ValueError(raw)
                values[key] = int(raw)
            elif kind.startswith("float"):
                values[key] = float(raw)
            elif kind.startswith("bool"):
                if raw.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(raw)
                values[key] = raw.lower() in ("true", "1", "yes")
            else:
                values[key] = raw
        except ValueError:
            raise MalformedInputError(f"--param {key}={raw}: expected {kind}") from None
    try:
        return cls(**values)
    except TypeError as e:
        raise MalformedInputError(f"scheme parameters: {e}") from None
