"""Helpers shared by the benchmarks: device description, timing, JSON output."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, Callable


def device() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform()}


def sync(device: Any) -> None:
    """Wait for a CUDA device's queued work, so a timer reads the work's end (no-op on a CPU)."""
    if device.type == "cuda":
        import torch

        torch.cuda.synchronize(device)


@contextmanager
def blocking_copies() -> Iterator[None]:
    """The engine's per-batch host→device copies as they were until 2026-12-04: a plain
    ``.to(device)``, which on CUDA waits for every queued kernel. The baseline against
    which a bench measures :func:`claimkit.ml.train.to_device` (queued copies)."""
    import claimkit.ml.train as engine

    queued = engine.to_device
    engine.to_device = lambda t, device: t.to(device)
    try:
        yield
    finally:
        engine.to_device = queued


def per_call(fn: Callable[[], Any], *, repeat: int, rounds: int = 5) -> dict[str, float]:
    """Median and min over ``rounds`` of the mean time of ``repeat`` calls, in ms."""
    fn()
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(repeat):
            fn()
        samples.append((time.perf_counter() - start) / repeat * 1000)
    return {"median_ms": statistics.median(samples), "min_ms": min(samples)}


def wall_of_process(argv: list[str], *, runs: int = 7, env: dict[str, str] | None = None) -> dict[str, float]:
    """Median wall seconds of a whole process, after one warm-up run."""
    subprocess.run(argv, capture_output=True, env=env)
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, capture_output=True, env=env)
        samples.append(time.perf_counter() - start)
    return {"median_s": statistics.median(samples), "min_s": min(samples), "max_s": max(samples)}


def envelope(name: str, results: dict[str, Any]) -> dict[str, Any]:
    return {"bench": name, "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
            "device": device(), "command": " ".join(["python -m bench"] + sys.argv[1:]),
            "results": results}


def emit(name: str, results: dict[str, Any]) -> None:
    print(json.dumps(envelope(name, results), indent=2))


def save_partial(name: str, results: dict[str, Any], path: str | None) -> None:
    """What a long bench has measured so far, as :func:`emit` would print it with
    ``"partial": true``, written to ``path`` (if given) in one rename: a run stopped at a
    time limit (a device lease) still leaves its finished parts."""
    if path:
        tmp = f"{path}.tmp"
        with open(tmp, "w") as fh:
            json.dump({**envelope(name, results), "partial": True}, fh, indent=2)
        os.replace(tmp, path)
