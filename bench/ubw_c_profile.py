"""Where a UBW-C crafting step's time goes, and what would make it cheaper.

    python -m bench ubw-c-profile --data fashion-mnist --device cuda [--poisons 6000]

On an H200 (docs/benchmarks.md, 2026-12-04) one crafting step over 6,000 Fashion-MNIST
poisons took 0.62 s, three quarters of a clean epoch over all 60,000 images: per image
about 7 training passes (this bench on a 2-core CPU: 5.5). The paper's schedule takes 200
steps, so the steps are most of its price. This times one step
(:func:`claimkit.schemes.ubw_c.matching_gradient`) on the same model and images under
variants of what the GPU may be slow at: the batch (the recipe's; 4× larger, a quarter of
the kernel launches but the cosine taken over larger batches, so not the same crafting),
the gradient matched over the last 1–3 layers only (``-p match_layers``, not the same
crafting), the model's memory format (contiguous; channels_last, as the training engine uses on
CUDA), cuDNN's autotuner, and the random shifts' copies to the device blocking as they
were until 2026-12-04 (:func:`bench.common.blocking_copies`; the same code on a CPU);
against one training epoch over the same images on the
engine (:func:`claimkit.ml.train.train`). Then it lists the heaviest ops of the default
step under :mod:`torch.profiler`, by their own device time. The model is an untrained
one of the recipe's architecture: its weights do not change the kernels. Prints JSON.
"""

from __future__ import annotations

import argparse
import time
from typing import Any, Callable

import torch

from claimkit.ml.data import Dataset, load_dataset
from claimkit.ml.models import build
from claimkit.ml.recipes import recipe
from claimkit.ml.train import TrainConfig, as_tensor, resolve_device, train
from claimkit.schemes.ubw_c import matched_parameters, matching_gradient

from .common import blocking_copies, emit, sync


def _seconds(fn: Callable[[], Any], device: torch.device, repeats: int) -> float:
    """Mean wall seconds of ``fn`` over ``repeats`` calls after one warm-up."""
    fn()
    sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    sync(device)
    return (time.perf_counter() - start) / repeats


def profile_step(data: Dataset, device: torch.device, poisons: int, repeats: int,
                 top: int) -> dict[str, Any]:
    r = recipe(data.name, data.input_shape)
    model = build(r["arch"], num_classes=data.num_classes, input_shape=data.input_shape,
                  seed=0).to(device)
    x_p = as_tensor(data.x_train[:poisons], device)
    y_p = torch.from_numpy(data.y_train[:poisons]).to(device)
    delta = torch.zeros_like(x_p)

    def unit(size: int) -> torch.Tensor:
        v = torch.randn(size, generator=torch.Generator().manual_seed(0)).to(device)
        return v / v.norm()

    target = unit(sum(p.numel() for p in model.parameters() if p.requires_grad))

    def step(batch: int, layers: int = 0) -> Callable[[], Any]:
        generator = torch.Generator().manual_seed(0)
        weights = matched_parameters(model, layers)
        aim = target if layers == 0 else unit(sum(w.numel() for w in weights))
        return lambda: matching_gradient(model, x_p, y_p, delta, aim, batch=batch,
                                         shift=r["shift"], generator=generator, weights=weights)

    seconds = {"default": _seconds(step(r["batch"]), device, repeats),
               "batch_x4": _seconds(step(4 * r["batch"]), device, repeats)}
    for layers in (1, 2, 3):   # -p match_layers=k: the gradient of the last k layers only
        seconds[f"match_layers_{layers}"] = _seconds(step(r["batch"], layers), device, repeats)
    with blocking_copies():
        seconds["blocking_copies"] = _seconds(step(r["batch"]), device, repeats)
    if device.type == "cuda":
        prior, torch.backends.cudnn.benchmark = torch.backends.cudnn.benchmark, True
        seconds["cudnn_benchmark"] = _seconds(step(r["batch"]), device, repeats)
        torch.backends.cudnn.benchmark = prior
    model.to(memory_format=torch.channels_last)
    seconds["channels_last"] = _seconds(step(r["batch"]), device, repeats)
    model.to(memory_format=torch.contiguous_format)

    subset = Dataset(data.name, data.x_train[:poisons], data.y_train[:poisons],
                     data.x_test[:1], data.y_test[:1], data.num_classes)
    cfg = TrainConfig(epochs=1, batch_size=r["batch"], lr=r["lr"], seed=0, device=str(device),
                      shift=r["shift"])
    epoch = min(train(build(r["arch"], num_classes=data.num_classes,
                            input_shape=data.input_shape, seed=0), subset, cfg,
                      progress=False).wall_seconds for _ in range(2))   # the first warms up

    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    run = step(r["batch"])
    with torch.profiler.profile(activities=activities) as prof:
        run()
        sync(device)
    field = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    events = sorted(prof.key_averages(), key=lambda e: getattr(e, field), reverse=True)
    total = sum(getattr(e, field) for e in events)
    heaviest = [{"op": e.key, "calls": e.count, "self_ms": getattr(e, field) / 1000,
                 "share": getattr(e, field) / total if total else 0.0} for e in events[:top]]
    return {"poisons": poisons, "batch": r["batch"], "repeats": repeats,
            "step_seconds": seconds, "training_epoch_seconds": epoch,
            "step_over_epoch": {k: v / epoch for k, v in seconds.items()},
            "profiled_by": field, "heaviest_ops": heaviest}


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(prog="python -m bench ubw-c-profile")
    p.add_argument("--data", default="fashion-mnist")
    p.add_argument("--data-root", default=None)
    p.add_argument("--device", default="auto")
    p.add_argument("--poisons", type=int, default=6000,
                   help="images in a step: γ = 0.1 of Fashion-MNIST's 60,000")
    p.add_argument("--repeats", type=int, default=3, help="timed steps per variant")
    p.add_argument("--top", type=int, default=15, help="heaviest ops listed")
    args = p.parse_args(argv)
    device = resolve_device(args.device)
    data = load_dataset(args.data, root=args.data_root)
    if not 1 <= args.poisons <= len(data.y_train):
        p.error(f"--poisons must be within [1, {len(data.y_train)}]")
    report = profile_step(data, device, args.poisons, args.repeats, args.top)
    emit("ubw-c-profile", {"data": data.name, "device": str(device),
                           "gpu": torch.cuda.get_device_name(device)
                           if device.type == "cuda" else None, **report})
