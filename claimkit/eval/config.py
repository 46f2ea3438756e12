"""The evaluation grid as a TOML file: data, schemes, attacks, seeds, null models.

    name = "fashion-mnist"
    data = "fashion-mnist"           # a data set name or folder, as for --data
    seeds = [0, 1, 2]                # one owner model (and key) per scheme and seed
    alpha = 0.01                     # the decision level reported in the tables
    split = "halves"                 # owners train on half A; "disjoint" nulls on half B
    subset = 0                       # first N training images (0: all), a CPU-sized grid
    test_subset = 0                  # first N test images (0: all)

    [[scheme]]
    name = "trigger-set"
    params = { items = 100 }         # as `claimkit keygen -p KEY=VALUE`
    opened = 50                      # items a claim opens
    opened_sweep = [10, 25]          # claims of these sizes too (default: the grid's)
    pretrained = false               # true: mark a trained clean model (Adi's PreTrained)

    [[attack]]
    name = "ftal"
    params = { epochs = 2 }          # as `claimkit attack NAME -p KEY=VALUE`

    [null]
    seeds = 10                       # clean models, other seeds, the owners' data
    disjoint = 5                     # clean models on the other half of the data
    archs = []                       # clean models of other architectures

Values in ``params`` tables may be TOML numbers or strings; they reach the backends as
the strings the CLI would pass. Unknown keys are refused with the key's name, so a typo
never silently runs a different grid. What can be checked without data or training is
checked when the file loads, so a typo in the last table does not wait for the cells
before it: scheme names, attack names and parameters (the attack's config dataclass, as
``claimkit attack NAME -p`` builds it), and architecture names. Scheme parameters need
the data set (its classes and shape): ``run_grid`` checks them once it is loaded, before
the first cell.
"""

from __future__ import annotations

import hashlib
import os
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from ..attacks import get_attack
from ..errors import ClaimkitError, MalformedInputError
from ..ml import MAX_SEED
from ..schemes.base import backend_names
from ..wire import canonical_json, read_regular_file

__all__ = ["EvalConfig", "SchemeSpec", "AttackSpec", "NullSpec", "load_config"]

T = TypeVar("T")


@dataclass(frozen=True)
class SchemeSpec:
    name: str
    params: dict[str, str] = field(default_factory=dict)
    opened: int | None = None        # default: half the items, at most 100
    opened_sweep: tuple[int, ...] | None = None   # default: the grid's opened_sweep
    pretrained: bool = False         # Adi et al. §4.1 PreTrained: mark a trained clean model

    @property
    def label(self) -> str:
        return _label(self.name, self.params) + (" pretrained" if self.pretrained else "")


@dataclass(frozen=True)
class AttackSpec:
    name: str
    params: dict[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return _label(self.name, self.params)


@dataclass(frozen=True)
class NullSpec:
    seeds: int = 10
    disjoint: int = 0
    archs: tuple[str, ...] = ()


@dataclass(frozen=True)
class EvalConfig:
    name: str
    data: str
    data_root: str | None = None
    arch: str | None = None
    epochs: int | None = None
    subset: int = 0                  # first N training images; 0: all
    test_subset: int = 0             # first N test images; 0: all
    device: str = "auto"
    seeds: tuple[int, ...] = (0,)
    alpha: float = 0.01
    split: str = "full"              # "full" or "halves"
    opened_sweep: tuple[int, ...] = ()
    schemes: tuple[SchemeSpec, ...] = ()
    attacks: tuple[AttackSpec, ...] = ()
    null: NullSpec = NullSpec()

    def sweep(self, scheme: SchemeSpec) -> tuple[int, ...]:
        """The claim sizes swept for ``scheme``: its own, or the grid's."""
        return self.opened_sweep if scheme.opened_sweep is None else scheme.opened_sweep

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "data": self.data, "data_root": self.data_root, "arch": self.arch,
                "epochs": self.epochs, "subset": self.subset, "test_subset": self.test_subset,
                "device": self.device, "seeds": list(self.seeds),
                "alpha": self.alpha, "split": self.split, "opened_sweep": list(self.opened_sweep),
                "schemes": [{"name": s.name, "params": s.params, "opened": s.opened,
                             "pretrained": s.pretrained,
                             "opened_sweep": None if s.opened_sweep is None else list(s.opened_sweep)}
                            for s in self.schemes],
                "attacks": [{"name": a.name, "params": a.params} for a in self.attacks],
                "null": {"seeds": self.null.seeds, "disjoint": self.null.disjoint,
                         "archs": list(self.null.archs)}}


def _label(name: str, params: dict[str, str]) -> str:
    return name + "".join(f" {k}={v}" for k, v in sorted(params.items()))


def _check_keys(table: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise MalformedInputError(f"{where}: unknown key {unknown[0]!r} (allowed: {', '.join(sorted(allowed))})")


def _params(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise MalformedInputError(f"{where}.params must be a table")
    out = {}
    for k, v in value.items():
        if isinstance(v, bool):
            out[k] = "true" if v else "false"
        elif isinstance(v, (int, float, str)):
            out[k] = str(v)
        else:
            raise MalformedInputError(f"{where}.params.{k}: a number, string or boolean")
    return out


def _int(value: Any, where: str, lo: int = 0, hi: int = 10**6) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise MalformedInputError(f"{where}: an integer within [{lo}, {hi}]")
    return value


def _located(where: str, check: Callable[..., T], *args: Any) -> T:
    """``check(*args)``, its one-line error prefixed with where in the config it came from."""
    try:
        return check(*args)
    except ClaimkitError as e:
        raise MalformedInputError(f"{where}: {e}") from None


def _check_scheme_name(name: str, where: str) -> None:
    """The registry ``claimkit keygen --scheme`` offers; no backend module is imported."""
    if name not in backend_names():
        raise MalformedInputError(f"{where}: unknown scheme {name!r} "
                                  f"(known: {', '.join(backend_names())})")


def _check_archs(named: list[tuple[str, str]]) -> None:
    """Each (where, architecture) is a network :func:`claimkit.ml.models.build` knows."""
    if not named:
        return
    from ..ml.models import ARCHITECTURES   # imports torch: only when an architecture is named
    for where, arch in named:
        if arch not in ARCHITECTURES:
            raise MalformedInputError(f"{where}: unknown architecture {arch!r} "
                                      f"(known: {', '.join(ARCHITECTURES)})")


def _sweep(value: Any, where: str) -> tuple[int, ...]:
    if not isinstance(value, list):
        raise MalformedInputError(f"{where}: opened_sweep must be a list")
    return _distinct(tuple(_int(k, f"{where}: opened_sweep[]", 1) for k in value),
                     f"{where}: opened_sweep")


def _distinct(values: tuple[Any, ...], where: str) -> tuple[Any, ...]:
    """A grid's axis: each value once, or two cells get one id and the report counts
    every claim twice."""
    seen = [v for i, v in enumerate(values) if v in values[:i]]
    if seen:
        raise MalformedInputError(f"{where}: {seen[0]!r} appears more than once")
    return values


def _tables(raw: dict[str, Any], key: str, where: str) -> list[Any]:
    """The ``[[key]]`` tables: a list (each checked by the caller)."""
    value = raw.get(key, [])
    if not isinstance(value, list):
        raise MalformedInputError(f"{where}: {key} must be [[{key}]] tables")
    return value


def load_config(path: str | os.PathLike[str]) -> EvalConfig:
    """Parse and check an evaluation config; relative data paths are taken from its folder."""
    path = Path(path)
    try:    # a regular file (a FIFO would hang the read), of at most 1 MiB
        raw = tomllib.loads(read_regular_file(path, max_bytes=1 << 20).decode("utf-8"))
    except OSError as e:
        raise MalformedInputError(f"{path}: {e.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise MalformedInputError(f"{path}: not valid TOML ({e})") from None
    _check_keys(raw, {"name", "data", "data_root", "arch", "epochs", "subset", "test_subset",
                      "device", "seeds", "alpha", "split", "opened_sweep", "scheme", "attack", "null"}, str(path))
    if not isinstance(raw.get("data"), str):
        raise MalformedInputError(f"{path}: 'data' (a data set name or folder) is required")
    schemes = []
    for i, s in enumerate(_tables(raw, "scheme", str(path))):
        where = f"{path}: scheme[{i}]"
        if not isinstance(s, dict) or not isinstance(s.get("name"), str):
            raise MalformedInputError(f"{where}: a table with a 'name'")
        _check_keys(s, {"name", "params", "opened", "opened_sweep", "pretrained"}, where)
        sweep = None if s.get("opened_sweep") is None else _sweep(s["opened_sweep"], where)
        if not isinstance(s.get("pretrained", False), bool):
            raise MalformedInputError(f"{where}.pretrained must be true or false")
        _check_scheme_name(s["name"], f"{where}.name")
        schemes.append(SchemeSpec(s["name"], _params(s.get("params"), where),
                                  None if s.get("opened") is None else _int(s["opened"], f"{where}.opened", 1),
                                  sweep, s.get("pretrained", False)))
    if not schemes:
        raise MalformedInputError(f"{path}: at least one [[scheme]]")
    _distinct(tuple(s.label for s in schemes), f"{path}: scheme labels")
    attacks = []
    for i, a in enumerate(_tables(raw, "attack", str(path))):
        where = f"{path}: attack[{i}]"
        if not isinstance(a, dict) or not isinstance(a.get("name"), str):
            raise MalformedInputError(f"{where}: a table with a 'name'")
        _check_keys(a, {"name", "params"}, where)
        spec = AttackSpec(a["name"], _params(a.get("params"), where))
        attack = _located(f"{where}.name", get_attack, spec.name)
        # the config dataclass run_attack will build from these strings, checks and all
        _located(f"{where}.params", attack.make_config, spec.params)
        attacks.append(spec)
    _distinct(tuple(a.label for a in attacks), f"{path}: attack labels")
    null_raw = raw.get("null", {})
    if not isinstance(null_raw, dict):
        raise MalformedInputError(f"{path}: [null] must be a table")
    _check_keys(null_raw, {"seeds", "disjoint", "archs"}, f"{path}: null")
    archs = null_raw.get("archs", [])
    if not isinstance(archs, list) or not all(isinstance(a, str) for a in archs):
        raise MalformedInputError(f"{path}: null.archs must be a list of architecture names")
    null = NullSpec(_int(null_raw.get("seeds", 10), f"{path}: null.seeds", 0, 1000),
                    _int(null_raw.get("disjoint", 0), f"{path}: null.disjoint", 0, 1000),
                    _distinct(tuple(archs), f"{path}: null.archs"))
    arch = raw.get("arch")
    if arch is not None and not isinstance(arch, str):
        raise MalformedInputError(f"{path}: arch must be an architecture name")
    _check_archs(([] if arch is None else [(f"{path}: arch", arch)])
                 + [(f"{path}: null.archs[{i}]", a) for i, a in enumerate(archs)])
    split = raw.get("split", "halves" if null.disjoint else "full")
    if split not in ("full", "halves"):
        raise MalformedInputError(f"{path}: split must be 'full' or 'halves'")
    if null.disjoint and split != "halves":
        raise MalformedInputError(f"{path}: null.disjoint needs split = 'halves'")
    seeds = raw.get("seeds", [0])
    if not isinstance(seeds, list) or not 1 <= len(seeds) <= 1000 or not all(
            isinstance(s, int) and not isinstance(s, bool) and 0 <= s <= MAX_SEED for s in seeds):
        raise MalformedInputError(f"{path}: seeds must be a list of 1 to 1000 integers "
                                  f"within [0, {MAX_SEED}]")
    _distinct(tuple(seeds), f"{path}: seeds")
    alpha = raw.get("alpha", 0.01)
    if not isinstance(alpha, (int, float)) or not 0 < alpha < 0.5:
        raise MalformedInputError(f"{path}: alpha within (0, 0.5)")
    data = raw["data"]
    if os.sep in data or data.startswith("."):
        data = str((path.parent / data).resolve())
    data_root = raw.get("data_root")
    if data_root is not None:
        if not isinstance(data_root, str) or not data_root or "\0" in data_root:
            raise MalformedInputError(f"{path}: data_root must be a folder's path")
        data_root = str((path.parent / data_root).resolve())      # as data: from the config's folder
    return EvalConfig(
        name=str(raw.get("name", path.stem)), data=data, data_root=data_root,
        arch=arch, epochs=None if raw.get("epochs") is None else _int(raw["epochs"],
                                                                      f"{path}: epochs", 0, 10_000),
        subset=_int(raw.get("subset", 0), f"{path}: subset", 0, 10**8),
        test_subset=_int(raw.get("test_subset", 0), f"{path}: test_subset", 0, 10**8),
        device=str(raw.get("device", "auto")), seeds=tuple(seeds), alpha=float(alpha), split=split,
        opened_sweep=_sweep(raw.get("opened_sweep", []), str(path)),
        schemes=tuple(schemes), attacks=tuple(attacks), null=null)


def job_key(**fields: Any) -> str:
    """A cached artifact's name: SHA-256 of the canonical JSON of what produced it."""
    return hashlib.sha256(b"claimkit/eval/job/v1\n" + canonical_json(fields)).hexdigest()[:32]
