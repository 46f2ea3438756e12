"""Data-parallel training on several GPUs, launched with ``torchrun``.

    torchrun --nproc_per_node 4 -m claimkit.cli train --data fashion-mnist --out m.safetensors

Under ``torchrun`` (``WORLD_SIZE`` > 1 in the environment) the engine joins the process
group (NCCL on CUDA, gloo on a CPU), puts each process on ``cuda:LOCAL_RANK``, wraps the
model in ``DistributedDataParallel`` and gives every process its share of each batch:
the batch order is drawn from the shared seed, so all ranks agree on it, and rank r takes
every world-th image of it (and of the triggers riding on it). ``batch_size`` stays the
global batch, so a recipe means the same thing on one GPU or eight. Only rank 0 writes
files. Without ``torchrun`` nothing here does anything.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["World", "world", "is_main", "barrier", "sync_buffers"]


@dataclass(frozen=True)
class World:
    rank: int
    size: int
    device: torch.device


def world(device: str = "auto") -> World | None:
    """The process group this process belongs to (joining it on first use), or None."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or not dist.is_available():
        return None
    cuda = torch.cuda.is_available() and device in ("auto", "cuda") or device.startswith("cuda")
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if cuda:
        torch.cuda.set_device(local)
    return World(dist.get_rank(), dist.get_world_size(),
                 torch.device("cuda", local) if cuda else torch.device("cpu"))


def is_main() -> bool:
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def sync_buffers(model: torch.nn.Module) -> None:
    """Give every rank rank 0's buffers (BatchNorm statistics), so all hold one model.

    DDP broadcasts buffers at the start of each forward pass; after the last step each
    rank still holds its own running statistics.
    """
    if dist.is_available() and dist.is_initialized():
        for buffer in model.buffers():
            dist.broadcast(buffer.data, src=0)
