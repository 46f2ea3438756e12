"""DDP on a CPU: two gloo processes train one model, as torchrun would run them."""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from claimkit.ml.data import load_dataset
from claimkit.ml.models import build
from claimkit.ml.train import TrainConfig, train
from claimkit.schemes.trigger_set import TriggerSetParams, keygen, trigger_images


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(WORLD_SIZE=str(world), RANK=str(rank), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    data = load_dataset("digits")
    mk = keygen(TriggerSetParams(10, data.input_shape, items=20), rng=lambda n: b"\x07" * n)
    model = build("digits-cnn", num_classes=10, seed=0)
    record = train(model, data, TrainConfig(epochs=6, batch_size=64, lr=0.1, device="cpu",
                                            trigger_per_batch=8),
                   triggers=trigger_images(mk), progress=False)
    torch.save({"state": model.state_dict(), "acc": record.test_accuracy,
                "world": record.extra.get("world_size")}, f"{out}/rank{rank}.pt")
    torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_two_ranks_train_one_model(tmp_path):
    if not torch.distributed.is_available():
        pytest.skip("torch.distributed is not available")
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    a, b = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert a["world"] == b["world"] == 2
    for name, tensor in a["state"].items():       # DDP keeps the replicas identical
        assert torch.equal(tensor, b["state"][name]), name
    assert a["acc"] > 0.8                          # and they learned the task together
