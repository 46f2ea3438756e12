"""bench/model_cache.py: a model is reused only for exactly the run that made it."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from bench.model_cache import ModelCache, recipe_digest
from claimkit.ml.data import Dataset
from claimkit.ml.models import build
from claimkit.ml.train import TrainConfig

CFG = TrainConfig(epochs=1, batch_size=16, seed=3, device="cpu")


def tiny(label_shift: int = 0) -> Dataset:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (32, 1, 8, 8), dtype=np.uint8)
    y = (np.arange(32) + label_shift) % 4
    return Dataset("tiny", x, y, x[:8], y[:8], 4)


def test_digest_names_arch_config_and_every_byte_of_the_data():
    data = tiny()
    base = recipe_digest("mlp", CFG, data)
    assert recipe_digest("mlp", CFG, tiny()) == base
    changed_pixel = Dataset(data.name, data.x_train.copy(), data.y_train, data.x_test,
                            data.y_test, 4)
    changed_pixel.x_train[5, 0, 3, 3] ^= 1
    others = {recipe_digest("fmnist-net", CFG, data), recipe_digest("mlp", replace(CFG, seed=4), data),
              recipe_digest("mlp", replace(CFG, device="cuda"), data),
              recipe_digest("mlp", CFG, tiny(label_shift=1)), recipe_digest("mlp", CFG, changed_pixel)}
    assert base not in others and len(others) == 5


def test_stored_model_comes_back_with_its_record_marked_cached(tmp_path):
    data = tiny()
    model = build("mlp", num_classes=4, input_shape=(1, 8, 8), seed=1).eval()
    cache = ModelCache(tmp_path / "models")
    digest = recipe_digest("mlp", CFG, data)
    assert cache.load(digest, torch.device("cpu")) is None
    cache.store(digest, model, {"test_accuracy": 0.5, "wall_seconds": 9.0}, arch="mlp", data=data)
    loaded, record = cache.load(digest, torch.device("cpu"))
    assert record == {"test_accuracy": 0.5, "wall_seconds": 9.0, "cached": True}
    x = torch.from_numpy(data.x_test).float() / 255
    assert torch.equal(loaded.eval()(x), model(x))


def test_weights_without_a_record_are_a_miss(tmp_path):
    data = tiny()
    model = build("mlp", num_classes=4, input_shape=(1, 8, 8), seed=1)
    cache = ModelCache(tmp_path)
    digest = recipe_digest("mlp", CFG, data)
    cache.store(digest, model, {"wall_seconds": 1.0}, arch="mlp", data=data)
    (tmp_path / f"{digest}.json").unlink()
    assert cache.load(digest, torch.device("cpu")) is None
