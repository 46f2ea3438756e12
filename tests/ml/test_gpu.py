"""The CUDA path of the engine (bf16 autocast, channels_last, device-resident data).

Skipped without a GPU (see conftest); run on the device machine with ``-m gpu``.
"""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch

from claimkit.ml.data import load_dataset
from claimkit.ml.models import build, load_model, save_model
from claimkit.ml.oracle import LocalModel
from claimkit.ml.train import TrainConfig, _translate, random_offsets, train
from claimkit.schemes import ewe
from claimkit.schemes.ubw_c import matching_gradient
from claimkit.schemes.trigger_set import TriggerSetParams, keygen, trigger_images

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def test_marking_on_cuda_learns_the_triggers_and_the_task(digits):
    mk = keygen(TriggerSetParams(10, digits.input_shape, items=40))
    model = build("digits-cnn", num_classes=10, seed=0)
    record = train(model, digits, TrainConfig(epochs=15, batch_size=64, lr=0.1, device="cuda",
                                              trigger_per_batch=16), triggers=trigger_images(mk),
                   progress=False)
    assert record.device.startswith("cuda") and record.config["bf16"] is None
    assert record.test_accuracy > 0.9
    assert record.trigger_accuracy == 1.0


def test_a_cuda_trained_model_answers_the_same_on_cpu(digits, tmp_path):
    model = build("digits-cnn", num_classes=10, seed=1)
    train(model, digits, TrainConfig(epochs=3, batch_size=64, device="cuda"), progress=False)
    path = tmp_path / "m.safetensors"
    save_model(model, path, arch="digits-cnn", input_shape=(1, 8, 8), num_classes=10)
    on_cpu = LocalModel.from_file(path, device="cpu").labels(digits.x_test)
    on_gpu = LocalModel.from_file(path, device="cuda").labels(digits.x_test)
    agree = np.mean(np.array(on_cpu) == np.array(on_gpu))
    assert agree > 0.99                      # float32 on both; kernels may differ in the last bits
    reloaded, info = load_model(path, device="cuda")
    assert next(reloaded.parameters()).device.type == "cuda" and info.arch == "digits-cnn"


def test_compiled_training_step_matches_eager_quality(digits):
    cfg = TrainConfig(epochs=4, batch_size=64, lr=0.1, device="cuda", compile=True, seed=2)
    record = train(build("digits-cnn", num_classes=10, seed=2), digits, cfg, progress=False)
    assert record.test_accuracy > 0.9
    assert torch.cuda.is_available()


@contextlib.contextmanager
def no_host_sync():
    """Any operation that makes the host wait for the GPU raises inside (CUDA's sync debug
    mode): a copy from pageable memory, ``.item()``, ``nonzero`` and the like."""
    prior = torch.cuda.get_sync_debug_mode()
    torch.cuda.set_sync_debug_mode("error")
    try:
        yield
    finally:
        torch.cuda.set_sync_debug_mode(prior)


def test_the_per_batch_work_of_training_and_crafting_never_waits_for_the_gpu(digits):
    cuda = torch.device("cuda")
    x = torch.rand(64, 1, 8, 8, device=cuda)
    model = build("digits-cnn", num_classes=10, seed=0).to(cuda)
    size = sum(p.numel() for p in model.parameters())
    target = torch.nn.functional.normalize(torch.randn(size, device=cuda), dim=0)
    y = torch.randint(0, 10, (64,), device=cuda)
    with no_host_sync():
        offsets = random_offsets(64, 1, torch.Generator().manual_seed(0), cuda)
        moved = _translate(x, 1, torch.Generator().manual_seed(1))
        grad, _ = matching_gradient(model, x, y, torch.zeros_like(x), target, batch=32,
                                    shift=1, generator=torch.Generator().manual_seed(2))
    assert offsets.device.type == "cuda" and moved.shape == x.shape and grad.shape == x.shape
    on_cpu = random_offsets(64, 1, torch.Generator().manual_seed(0), torch.device("cpu"))
    assert torch.equal(offsets.cpu(), on_cpu)          # the same draws on every device


def test_ewes_watermark_batches_never_wait_for_the_gpu(digits):
    mk = ewe.BACKEND.keygen(digits, {"items": "40", "fgsm_iters": "0", "reference_epochs": "4",
                                     "device": "cuda"}, rng=lambda n: bytes(n))
    model = build("digits-cnn", num_classes=10, seed=0).to("cuda").train()
    interleave = ewe._interleave(mk, digits, torch.device("cuda"), 64, seed=0)
    with no_host_sync(), torch.autocast("cuda", dtype=torch.bfloat16):
        loss = interleave.loss(model)
        loss.backward()
    assert torch.isfinite(loss).item()
