"""Run an evaluation grid: owner models, attacked copies, null models, and every claim.

    cfg = load_config("examples/eval-digits-smoke.toml")
    results = run_grid(cfg, "eval-out")          # eval-out/results.jsonl, eval-out/models/
    write_report(cfg, "eval-out")                # eval-out/report/index.md

Every trained model is cached under ``models/`` by the hash of what produced it (data
digest, scheme and key digest, attack and its parameters, seed, epochs), so a re-run
reuses it. Every evaluated cell is one line of ``results.jsonl``, appended and flushed
to disk when the cell is done, so a run killed half-way resumes where it stopped and a
finished cell is never computed twice.

Claims here skip the registry: a cell opens ``opened`` items chosen by a seeded draw,
asks the suspect through the scheme's answerer and runs the scheme's pure decider, the
same decision ``claimkit verify`` recomputes. Keys are derived from the config (name,
scheme, seed), so they are reproducible and **not secret**: evaluation keys only. Beside
its claim, each cell records the model's test accuracy and, for a data set scheme, what
the release taught it (UBW §5.1's ASR-A, ASR-C and Dp under the key's trigger): an attack
can remove the effect, or only the claim's power to show it.

Null models (the false-claim side, MOVE §4): clean models of other seeds on the owners'
data, clean models on the *other half* of the training data (``split = "halves"``:
owners train on half A, these on half B), and clean models of other architectures.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ClaimkitError, MalformedInputError
from ..ml.data import Dataset, load_dataset
from ..protocol.keys import MarkingKey
from ..protocol.scheme import Evidence, decider_for
from ..schemes.base import Backend, MarkOptions, Oracle, data_fields, get_backend, parse_params
from ..wire import canonical_json
from .config import AttackSpec, EvalConfig, SchemeSpec, job_key

__all__ = ["run_grid", "claim_evidence", "derived_rng", "split_halves", "RESULTS_FILE"]

RESULTS_FILE = "results.jsonl"
NULL_SEED_BASE = 1000


def derived_rng(tag: str) -> Callable[[int], bytes]:
    """A deterministic byte source (SHAKE-256 of tag and a counter) for evaluation keys."""
    counter = itertools.count()

    def rng(n: int) -> bytes:
        return hashlib.shake_256(f"claimkit/eval/rng/v1\n{tag}\n{next(counter)}".encode()).digest(n)

    return rng


def split_halves(data: Dataset) -> tuple[Dataset, Dataset]:
    """Two disjoint halves of the training split (fixed permutation), same test split."""
    order = np.random.default_rng(0).permutation(len(data.y_train))
    a, b = np.sort(order[: len(order) // 2]), np.sort(order[len(order) // 2:])
    return (replace(data, x_train=data.x_train[a], y_train=data.y_train[a]),
            replace(data, x_train=data.x_train[b], y_train=data.y_train[b]))


def claim_evidence(backend: Backend, mk: MarkingKey, oracle: Oracle, opened: int,
                   seed: int) -> Evidence:
    """Open ``opened`` items (a seeded draw), ask the suspect, decide: a claim without a log.
    The seed stands in for the log's challenge, also for UBW-C's fresh triggers."""
    vk = mk.verification_key
    if not 1 <= opened <= vk.items:
        raise MalformedInputError(f"cannot open {opened} of {vk.items} items")
    indices = sorted(random.Random(seed).sample(range(vk.items), opened))
    openings = mk.open(indices)
    decider = decider_for(vk.scheme)
    challenge = hashlib.sha256(f"claimkit/eval/challenge/v1\n{seed}".encode()).digest()
    answers = backend.answerer(oracle, vk)(decider.queries(vk, openings, challenge=challenge))
    return decider.decide(vk, openings, answers)


@dataclass(frozen=True)
class _Cell:
    id: str
    kind: str                       # owner | attack | null | opened
    scheme: SchemeSpec
    seed: int
    attack: AttackSpec | None = None
    null: str | None = None         # "seed:1003", "disjoint:1001", "arch:resnet18-cifar:1000"
    opened: int | None = None


class _Grid:
    def __init__(self, cfg: EvalConfig, out: Path, device: str | None, progress: bool) -> None:
        self.cfg, self.out, self.progress = cfg, out, progress
        self.device = device or cfg.device
        self.models = out / "models"
        full = load_dataset(cfg.data, root=cfg.data_root)
        if cfg.subset or cfg.test_subset:
            n, t = cfg.subset or len(full.y_train), cfg.test_subset or len(full.y_test)
            full = replace(full, x_train=full.x_train[:n], y_train=full.y_train[:n],
                           x_test=full.x_test[:t], y_test=full.y_test[:t])
        self.data, self.other_half = split_halves(full) if cfg.split == "halves" else (full, None)
        # Scheme parameters need the data set (its classes and shape), so they are checked
        # here, before the first cell, rather than by each scheme's first keygen.
        for i, scheme in enumerate(cfg.schemes):
            try:
                parse_params(get_backend(scheme.name).params, scheme.params, data_fields(self.data))
            except ClaimkitError as e:
                raise MalformedInputError(f"{cfg.name}: scheme[{i}].params: {e}") from None
        self.models.mkdir(parents=True, exist_ok=True)
        self._keys: dict[tuple[str, int], MarkingKey] = {}
        self._oracles: dict[Path, Any] = {}
        self._effects: dict[tuple[Path, str, int], dict[str, Any]] = {}
        self._labels: dict[Path, np.ndarray] = {}

    # -- models ---------------------------------------------------------------------------
    def key(self, scheme: SchemeSpec, seed: int) -> MarkingKey:
        if (scheme.label, seed) not in self._keys:
            rng = derived_rng(f"{self.cfg.name}\n{scheme.label}\n{seed}")
            mk = get_backend(scheme.name).keygen(self.data, scheme.params, rng=rng)
            items = mk.verification_key.items     # checked before the owner's model trains
            for opened in (scheme.opened, *self.cfg.sweep(scheme)):
                if opened is not None and opened > items:
                    raise MalformedInputError(f"{self.cfg.name}: {scheme.label}: cannot open "
                                              f"{opened} of the key's {items} items")
            self._keys[scheme.label, seed] = mk
        return self._keys[scheme.label, seed]

    def _fit(self, data: Dataset, path: Path, *, arch: str | None, seed: int) -> None:
        from ..ml.jobs import fit_and_save
        fit_and_save(data, path, arch=arch, epochs=self.cfg.epochs, seed=seed, device=self.device,
                     progress=False)

    def owner_model(self, scheme: SchemeSpec, seed: int) -> Path:
        mk = self.key(scheme, seed)
        backend = get_backend(scheme.name)
        fields = {"pretrained": True} if scheme.pretrained else {}
        name = job_key(kind="owner", data=self.data.digest.hex, scheme=scheme.name,
                       vk=mk.verification_key.digest.hex, arch=self.cfg.arch, epochs=self.cfg.epochs,
                       seed=seed, **fields)
        path = self.models / f"{name}.safetensors"
        if not path.exists():
            if scheme.pretrained and backend.marks != "model":
                raise MalformedInputError(f"{scheme.name} marks a data set: pretrained does not apply")
            if scheme.pretrained:   # Adi et al. §4.1 PreTrained: fine-tune a clean model
                clean = self.models / (job_key(kind="clean", data=self.data.digest.hex,
                                               arch=self.cfg.arch, epochs=self.cfg.epochs,
                                               seed=seed) + ".safetensors")
                if not clean.exists():
                    self._fit(self.data, clean, arch=self.cfg.arch, seed=seed)
                backend.mark(mk, self.data, path, MarkOptions(
                    arch=self.cfg.arch, seed=seed, device=self.device, start_from=str(clean),
                    progress=False))
            elif backend.marks == "model":
                backend.mark(mk, self.data, path, MarkOptions(
                    arch=self.cfg.arch, epochs=self.cfg.epochs, seed=seed, device=self.device,
                    progress=False))
            else:                   # a data set scheme: the owner's release, then a model on it;
                from ..ml.release import load_release   # the grid's epochs are the model's
                release = self.models / f"{name}.release"
                backend.mark(mk, self.data, release,
                             MarkOptions(seed=seed, device=self.device, progress=False))
                self._fit(load_release(release), path, arch=self.cfg.arch, seed=seed)
        return path

    def attacked_model(self, cell: _Cell) -> Path:
        from ..attacks import run_attack
        victim = self.owner_model(cell.scheme, cell.seed)
        assert cell.attack is not None
        name = job_key(kind="attack", victim=victim.stem, attack=cell.attack.name,
                       params=cell.attack.params, seed=cell.seed)
        path = self.models / f"{name}.safetensors"
        if not path.exists():
            run_attack(cell.attack.name, victim, self.data, path, cell.attack.params,
                       device=self.device, seed=cell.seed)
        return path

    def null_model(self, null: str) -> Path:
        kind, _, rest = null.partition(":")
        arch, seed = (rest.rsplit(":", 1) if kind == "arch" else (self.cfg.arch, rest))
        data = self.other_half if kind == "disjoint" else self.data
        assert data is not None
        name = job_key(kind="null", data=data.digest.hex, arch=arch, epochs=self.cfg.epochs,
                       seed=int(seed))
        path = self.models / f"{name}.safetensors"
        if not path.exists():
            self._fit(data, path, arch=arch, seed=int(seed))
        return path

    def oracle(self, path: Path) -> Any:
        from ..ml.oracle import LocalModel
        if path not in self._oracles:
            self._oracles.clear()           # keep one model on the device at a time
            self._oracles[path] = LocalModel.from_file(path, device=self.device)
        return self._oracles[path]

    def labels(self, model: Path, oracle: Any) -> np.ndarray:
        """``model``'s labels of the test images, once per model: a null model is
        evaluated under every key of the grid, an owner's model in each opened-sweep cell."""
        if model not in self._labels:
            self._labels[model] = np.array(oracle.labels(self.data.x_test))
        return self._labels[model]

    # -- cells ----------------------------------------------------------------------------
    def cells(self) -> Iterator[_Cell]:
        cfg = self.cfg
        nulls = ([f"seed:{NULL_SEED_BASE + i}" for i in range(cfg.null.seeds)]
                 + [f"disjoint:{NULL_SEED_BASE + i}" for i in range(cfg.null.disjoint)]
                 + [f"arch:{a}:{NULL_SEED_BASE}" for a in cfg.null.archs])
        for scheme in cfg.schemes:
            for seed in cfg.seeds:
                base = f"{scheme.label}|seed={seed}"
                yield _Cell(f"owner|{base}", "owner", scheme, seed)
                for k in cfg.sweep(scheme):
                    yield _Cell(f"opened|{base}|k={k}", "opened", scheme, seed, opened=k)
                for attack in cfg.attacks:
                    yield _Cell(f"attack|{base}|{attack.label}", "attack", scheme, seed, attack=attack)
                for null in nulls:
                    yield _Cell(f"null|{base}|{null}", "null", scheme, seed, null=null)

    def effect(self, backend: Backend, model: Path, cell: _Cell, oracle: Any,
               labels: np.ndarray) -> dict[str, Any] | None:
        """A data set scheme's own metrics of ``model`` under the cell's key (UBW §5.1:
        ASR-A, ASR-C, Dp), once per model and key (an owner's opened-sweep cells share
        its model); None for a model scheme."""
        metrics = getattr(backend, "metrics", None)
        if metrics is None:
            return None
        memo = (model, cell.scheme.label, cell.seed)
        if memo not in self._effects:
            measured = metrics(oracle, self.data, self.key(cell.scheme, cell.seed), benign=labels)
            self._effects[memo] = {k: v for k, v in measured.to_dict().items() if k != "ba"}
        return self._effects[memo]

    def evaluate(self, cell: _Cell) -> dict[str, Any]:
        if cell.kind == "attack":
            model = self.attacked_model(cell)
        elif cell.kind == "null":
            assert cell.null is not None
            model = self.null_model(cell.null)
        else:
            model = self.owner_model(cell.scheme, cell.seed)
        oracle = self.oracle(model)
        mk = self.key(cell.scheme, cell.seed)
        opened = cell.opened or cell.scheme.opened or min(100, max(1, mk.verification_key.items // 2))
        backend = get_backend(cell.scheme.name)
        evidence = claim_evidence(backend, mk, oracle, opened, seed=cell.seed)
        labels = self.labels(model, oracle)
        result = evidence.result
        effect = self.effect(backend, model, cell, oracle, labels)
        return {"id": cell.id, "kind": cell.kind, "scheme": cell.scheme.name,
                "scheme_label": cell.scheme.label, "seed": cell.seed,
                "attack": cell.attack.name if cell.attack else None,
                "attack_label": cell.attack.label if cell.attack else None,
                "attack_params": cell.attack.params if cell.attack else None,
                "null": cell.null, "opened": opened, "model": model.stem,
                "test_accuracy": float(np.mean(labels == self.data.y_test)),
                "test": result.test, "statistic": result.statistic, "p_value": result.p_value,
                "accepted": evidence.accepted, "details": evidence.details, "effect": effect}


def _done(path: Path) -> set[str]:
    done = set()
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                done.add(json.loads(line)["id"])
            except (ValueError, KeyError, TypeError):
                continue                    # a line cut short by a kill: that cell reruns
    return done


def run_grid(cfg: EvalConfig, out: str | os.PathLike[str], *, device: str | None = None,
             progress: bool = True) -> Path:
    """Evaluate every cell not yet in ``out/results.jsonl``; returns that file."""
    from tqdm import tqdm

    out = Path(out)
    grid = _Grid(cfg, out, device, progress)     # checks what needs the data before out exists
    (out / "config.json").write_bytes(canonical_json(cfg.to_dict()))
    results = out / RESULTS_FILE
    _repair_tail(results)
    done = _done(results)
    todo = [c for c in grid.cells() if c.id not in done]
    with open(results, "a", encoding="utf-8") as fh:
        for cell in tqdm(todo, desc="eval", unit="cell", disable=not progress or None):
            row = grid.evaluate(cell)
            fh.write(json.dumps(row, sort_keys=True) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
    return results


def _repair_tail(path: Path) -> None:
    """Drop a last line left without its newline by a kill, so appends start clean."""
    if path.exists():
        raw = path.read_bytes()
        if raw and not raw.endswith(b"\n"):
            path.write_bytes(raw[: raw.rfind(b"\n") + 1])
