"""Shared fixtures. The lookup-table scheme here exists only to exercise the claim flow
before (and independently of) the ML backends; it is not a product feature."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import pytest

from claimkit.identity import Identity
from claimkit.protocol.keys import MarkingKey
from claimkit.protocol.scheme import LabelMatchDecider, register_decider
from claimkit.registry.entries import Registration, sign_request
from claimkit.registry.log import Registry
from claimkit.registry.receipt import Receipt
from claimkit.wire import Digest

LOOKUP_SCHEME = "test-lookup"
register_decider(LabelMatchDecider(LOOKUP_SCHEME, "input"))

PASSPHRASE = "correct horse battery staple"
# A fixed log key for test registries, so a log (its signatures, and so every challenge
# drawn from them) replays exactly with a FakeClock.
LOG_SEED = b"\x33" * 32


class FakeClock:
    """A settable clock so registry times are deterministic in tests."""

    def __init__(self, start: float = 1_763_884_800.0) -> None:
        self.now = start

    def __call__(self) -> float:
        self.now += 0.001
        return self.now


@dataclass
class LookupModel:
    """A "model" that is a table from input strings to labels."""

    table: dict[str, int]
    default: int = 0

    @property
    def digest(self) -> Digest:
        return Digest.of_json(self.table)

    def answer(self, queries: Sequence[Any]) -> list[int]:
        return [self.table.get(q, self.default) for q in queries]


def lookup_keys(items: int = 64, classes: int = 10, seed: int = 1) -> MarkingKey:
    rng = random.Random(seed)
    values = [{"input": f"trigger-{seed}-{i}", "label": rng.randrange(classes)} for i in range(items)]
    return MarkingKey.create(LOOKUP_SCHEME, {"num_classes": classes, "alpha": 0.01}, values,
                             rng=lambda n: rng.randbytes(n))


def marked_model(mk: MarkingKey, *, keep: float = 1.0, seed: int = 2) -> LookupModel:
    """A model that learned a fraction ``keep`` of the triggers (the rest answer 0)."""
    rng = random.Random(seed)
    table = {v["input"]: v["label"] for v in mk.items.values if rng.random() < keep}
    return LookupModel(table)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def owner() -> Identity:
    return Identity.generate("alice", seed=b"\x11" * 32)


@pytest.fixture
def registry(tmp_path: Path, clock: FakeClock) -> Registry:
    reg = Registry.init(tmp_path / "registry", origin="test.example/claimkit",
                        passphrase=PASSPHRASE, clock=clock, key_strength="min", log_seed=LOG_SEED)
    yield reg
    reg.close()


@pytest.fixture
def mk() -> MarkingKey:
    return lookup_keys()


@pytest.fixture
def registration(registry: Registry, mk: MarkingKey, owner: Identity) -> Receipt:
    vk = mk.verification_key
    request = Registration(owner.public, vk.scheme, vk.digest, vk.items)
    return registry.register(request, sign_request(request, owner))


def register_many(registry: Registry, owner: Identity, n: int) -> None:
    batch = []
    for i in range(n):
        request = Registration(owner.public, LOOKUP_SCHEME, Digest.of(i.to_bytes(8, "big")), 16)
        batch.append((request, sign_request(request, owner)))
    registry.append(batch)



def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip `gpu` tests without CUDA (torch is never imported by the pure suite)."""
    gpu_items = [i for i in items if "gpu" in i.keywords]
    if not gpu_items:
        return
    try:
        import torch
        has_gpu = torch.cuda.is_available()
    except ImportError:
        has_gpu = False
    if not has_gpu:
        skip = pytest.mark.skip(reason="needs a CUDA device")
        for item in gpu_items:
            item.add_marker(skip)




def imported_roots(path) -> set[str]:
    """The top-level packages a Python file imports: the spec-only implementations in
    protocol_spec/interop must never import claimkit."""
    import ast
    roots = set()
    for node in ast.walk(ast.parse(Path(path).read_text())):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            roots.add((node.module or "").split(".")[0])
    return roots
