"""The CUDA path of the engine (bf16 autocast, channels_last, device-resident data).

Skipped without a GPU (see conftest); run on the device machine with ``-m gpu``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from claimkit.ml.data import load_dataset
from claimkit.ml.models import build, load_model, save_model
from claimkit.ml.oracle import LocalModel
from claimkit.ml.train import TrainConfig, train
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
