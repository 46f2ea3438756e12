"""Models, model files, the training engine and the trigger-set scheme, on a CPU."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from claimkit.errors import MalformedInputError
from claimkit.ml.data import load_dataset
from claimkit.ml.models import build, load_model, save_model
from claimkit.ml.oracle import LocalModel
from claimkit.ml.train import TrainConfig, random_offsets, to_device, train
from claimkit.schemes.trigger_set import (TriggerSetParams, decode_queries, keygen, make_triggers,
                                          trigger_images)
from claimkit.weights import weights_digest

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def trained(digits):
    model = build("digits-cnn", num_classes=10)
    record = train(model, digits, TrainConfig(epochs=4, batch_size=64, lr=0.1, seed=3), progress=False)
    return model, record


def test_clean_training_learns_and_records_the_run(trained, digits):
    _, record = trained
    assert record.test_accuracy > 0.9
    assert record.config["data_digest"] == digits.digest.hex and record.device == "cpu"
    assert record.wall_seconds > 0 and record.trigger_accuracy is None


def test_training_is_repeatable_with_a_seed(digits):
    a, b = build("digits-cnn", num_classes=10, seed=7), build("digits-cnn", num_classes=10, seed=7)
    cfg = TrainConfig(epochs=1, batch_size=64, seed=5)
    ra, rb = train(a, digits, cfg, progress=False), train(b, digits, cfg, progress=False)
    assert ra.test_accuracy == rb.test_accuracy
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_the_random_offsets_are_the_cpu_generators_two_draws():
    # Training on a GPU queues these copies instead of waiting (to_device); the values must
    # stay the CPU generator's, the same on every device.
    offsets = random_offsets(50, 2, torch.Generator().manual_seed(3), torch.device("cpu"))
    gen = torch.Generator().manual_seed(3)
    first, second = (torch.randint(0, 5, (50,), generator=gen) for _ in range(2))
    assert offsets.shape == (2, 50) and torch.equal(offsets[0], first)
    assert torch.equal(offsets[1], second) and int(offsets.max()) <= 4
    x = torch.arange(6)
    assert torch.equal(to_device(x, torch.device("cpu")), x)


def test_marking_embeds_the_triggers(digits):
    mk = keygen(TriggerSetParams(10, (1, 8, 8), items=40))
    model = build("digits-cnn", num_classes=10)
    record = train(model, digits, TrainConfig(epochs=10, batch_size=64, lr=0.1, seed=1,
                                              trigger_per_batch=16),
                   triggers=trigger_images(mk), progress=False)
    assert record.trigger_accuracy == 1.0 and record.test_accuracy > 0.9


def test_model_files_round_trip_with_a_stable_digest(trained, tmp_path):
    model, _ = trained
    digest = save_model(model, tmp_path / "a.safetensors", arch="digits-cnn",
                        input_shape=(1, 8, 8), num_classes=10)
    loaded, info = load_model(tmp_path / "a.safetensors")
    assert info.digest == digest and info.arch == "digits-cnn"
    save_model(loaded, tmp_path / "b.safetensors", arch="digits-cnn", input_shape=(1, 8, 8),
               num_classes=10)
    assert weights_digest(tmp_path / "b.safetensors") == digest
    x = torch.rand(5, 1, 8, 8)
    model.eval()
    assert torch.equal(model(x).argmax(1), loaded(x).argmax(1))


def test_bad_model_files_are_refused(trained, tmp_path):
    model, _ = trained
    save_model(model, tmp_path / "ok.safetensors", arch="digits-cnn", input_shape=(1, 8, 8),
               num_classes=10)
    (tmp_path / "pickle.safetensors").write_bytes(pickle.dumps(model.state_dict()))
    with pytest.raises(MalformedInputError):
        load_model(tmp_path / "pickle.safetensors")
    with pytest.raises(MalformedInputError, match="holds a digits-cnn"):
        load_model(tmp_path / "ok.safetensors", arch="fmnist-net")
    broken = build("digits-cnn", num_classes=10)
    broken.load_state_dict(model.state_dict())
    with torch.no_grad():
        broken[-1].weight[0, 0] = float("nan")
    save_model(broken, tmp_path / "nan.safetensors", arch="digits-cnn", input_shape=(1, 8, 8),
               num_classes=10)
    with pytest.raises(MalformedInputError, match="NaN"):
        load_model(tmp_path / "nan.safetensors")
    with pytest.raises(MalformedInputError, match="takes inputs"):
        build("digits-cnn", num_classes=10, input_shape=(1, 28, 28))
    with pytest.raises(MalformedInputError, match="unknown architecture"):
        build("vgg-99", num_classes=10)
    oracle = LocalModel.from_file(tmp_path / "ok.safetensors")
    with pytest.raises(MalformedInputError, match="shape"):
        oracle.labels(np.zeros((2, 1, 28, 28), dtype=np.uint8))


def test_trigger_keys_are_reproducible_and_labels_uniform():
    seed = bytes(range(32))
    a, la = make_triggers(seed, 2000, (1, 8, 8), 10)
    b, lb = make_triggers(seed, 2000, (1, 8, 8), 10)
    assert np.array_equal(a, b) and np.array_equal(la, lb)
    counts = np.bincount(la, minlength=10)
    assert counts.min() > 150 and counts.max() < 250   # uniform: 200 ± 5 sd
    c, _ = make_triggers(bytes(32), 10, (1, 8, 8), 10)
    assert not np.array_equal(a[:10], c)
    mk = keygen(TriggerSetParams(10, (1, 8, 8), items=12))
    images, labels = trigger_images(mk)
    assert images.shape == (12, 1, 8, 8) and labels.shape == (12,)
    with pytest.raises(MalformedInputError):
        decode_queries(["AAAA"], mk.verification_key)


def test_trigger_queries_are_strict_canonical_base64():
    """The answerer's decoder refuses what the wire format refuses (encoding.md)."""
    from claimkit.wire import b64encode
    mk = keygen(TriggerSetParams(10, (1, 2, 2), items=2))
    vk = mk.verification_key
    assert decode_queries([b64encode(bytes([1, 2, 3, 4]))], vk).tolist() == [[[[1, 2], [3, 4]]]]
    for bad, message in [("AQIDBB==", "non-canonical"), ("AQID BA==", "not valid"),
                         ("AQIDBA==\n", "not valid"), (b"AQIDBA==", "expected a base64"),
                         (None, "expected a base64"), ("AQID", "expected 4 bytes")]:
        with pytest.raises(MalformedInputError, match=r"query 1: " + message):
            decode_queries(["AQIDBA==", bad], vk)
    with pytest.raises(MalformedInputError, match="expected a list"):
        decode_queries("AQIDBA==", vk)
