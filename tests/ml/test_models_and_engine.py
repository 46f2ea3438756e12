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


# -- model files from strangers ------------------------------------------------------------
def _state(**changes):
    state = {k: v.clone().contiguous() for k, v in build("digits-cnn", num_classes=10, seed=0)
             .state_dict().items()}
    return {**state, **changes}


def _write(path, state, *, arch="digits-cnn", shape="[1, 8, 8]", classes="10"):
    from safetensors.torch import save
    path.write_bytes(save(state, metadata={"claimkit.arch": arch, "claimkit.input_shape": shape,
                                           "claimkit.num_classes": classes}))
    return path


@pytest.mark.parametrize("metadata, message", [
    ({"shape": '"188"'}, "must be \\[C, H, W\\]"),
    ({"shape": "[1.9, 8.5, 8]"}, "must be \\[C, H, W\\]"),
    ({"shape": "[1e999, 8, 8]"}, "beyond the double range"),
    ({"shape": "[true, 8, 8]"}, "must be \\[C, H, W\\]"),
    ({"shape": "[" * 100_000 + "]" * 100_000}, "not valid JSON"),
    ({"classes": " 1_0 "}, "not valid JSON"),
    ({"classes": '"10"'}, "num_classes must be an integer"),
    ({"classes": "10.0"}, "num_classes must be an integer"),
])
def test_model_metadata_is_parsed_strictly(tmp_path, metadata, message):
    with pytest.raises(MalformedInputError, match=message):
        load_model(_write(tmp_path / "m.safetensors", _state(), **metadata))


def _f64_overflowing():
    w = _state()["13.weight"].double()
    w[0, 0] = 1e300                                 # cast to float32: infinity
    return w


@pytest.mark.parametrize("changes, message", [
    (lambda: {"13.weight": _f64_overflowing()}, "'13.weight' is F64, expected F32"),
    (lambda: {"13.weight": torch.ones(10, 64, dtype=torch.int32)}, "is I32, expected F32"),
    (lambda: {"13.weight": torch.zeros(10, 64).to(torch.float8_e4m3fn)}, "is F8_E4M3, expected F32"),
    (lambda: {"2.num_batches_tracked": torch.tensor(0, dtype=torch.int32)}, "is I32, expected I64"),
    (lambda: {"1.weight": torch.zeros(32, 1, 5, 5)},
     "has shape \\[32, 1, 5, 5\\], expected \\[32, 1, 3, 3\\]"),
    (lambda: {"evil": torch.zeros(1)}, "unexpected tensor 'evil'"),
])
def test_model_tensors_must_be_the_networks_own(tmp_path, changes, message):
    with pytest.raises(MalformedInputError, match=message):
        load_model(_write(tmp_path / "m.safetensors", _state(**changes())))


def test_metadata_alone_cannot_make_the_loader_allocate(tmp_path, monkeypatch):
    """A 1-tensor file naming an mlp on huge inputs: refused before a layer is allocated."""
    allocated = []
    init = torch.nn.Linear.reset_parameters

    def spy(self):
        if self.weight.device.type != "meta":
            allocated.append(self.weight.numel())
        init(self)
    monkeypatch.setattr(torch.nn.Linear, "reset_parameters", spy)
    for shape in ("[1, 512, 512]", "[4096, 4096, 4096]"):
        with pytest.raises(MalformedInputError, match="must be|do not fit"):
            load_model(_write(tmp_path / "m.safetensors", {"x": torch.zeros(1)}, arch="mlp",
                              shape=shape))
    assert not allocated


def test_the_digest_names_the_bytes_that_were_loaded(tmp_path, monkeypatch):
    """A file swapped while loading: the digest still names the weights in the model."""
    path = _write(tmp_path / "m.safetensors", _state())
    original = weights_digest(path)
    other = _write(tmp_path / "other.safetensors", _state(**{"13.bias": torch.ones(10)}))
    load = torch.nn.Module.load_state_dict

    def swap_after(self, *args, **kwargs):
        result = load(self, *args, **kwargs)
        path.write_bytes(other.read_bytes())
        return result
    monkeypatch.setattr(torch.nn.Module, "load_state_dict", swap_after)
    model, info = load_model(path)
    assert info.digest == original and float(model[-1].bias.detach().abs().sum()) != 10.0
