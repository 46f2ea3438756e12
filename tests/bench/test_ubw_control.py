"""bench/ubw_control.py's rank test against a model that only cares how bright an image is:
the grinding case of docs/proposals/ubw-c-key-specific-test.md, where a bright key
outranks uniform fresh patterns on any model and white-matched ones must not."""
from dataclasses import replace

import numpy as np
import pytest

from bench.ubw_control import control
from claimkit.ml.data import load_dataset
from claimkit.schemes.base import get_backend
from claimkit.schemes.ubw import Trigger, evaluation_images


class BrightnessModel:
    """P(source class) falls with the image's mean brightness; it never saw any release."""

    def __init__(self, source: int, classes: int):
        self.source, self.classes = source, classes

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        p = np.full((len(x), self.classes), 0.01)
        p[:, self.source] = 0.9 - 0.5 * x.reshape(len(x), -1).mean(1) / 255
        return p


def test_a_bright_key_outranks_uniform_patterns_but_not_matched_ones():
    data = load_dataset("digits")
    rng = np.random.default_rng(0)
    mk = get_backend("ubw-c").keygen(data, {"items": "40", "m": "30", "patch_size": "4"},
                                     rng=lambda n: rng.bytes(n))
    pattern = np.full((4, 4), 255, np.uint8)
    pattern[0, 0] = 0                                   # 15 of 16 pixels white
    trigger = Trigger.from_secret(mk.secret["trigger"])
    bright = replace(mk, secret={**mk.secret, "trigger": replace(trigger, pattern=pattern).secret()})
    source = int(evaluation_images(bright, data).y[0])
    result = control(BrightnessModel(source, data.num_classes), bright, data, fresh=99)
    assert result["key_white"] == 15 / 16
    assert result["p_rank"] == 0.01                     # above every uniform pattern
    assert result["white_spearman"] > 0.9               # brighter costs more, on any model
    matched = result["matched_white"]
    assert matched["p_rank"] > 0.05                     # among its peers, nothing special
    assert abs(matched["median"] - result["delta_key"]) < 0.01


def test_a_model_that_gets_every_image_wrong_gives_no_evidence():
    """A toy suspect (one epoch on a subset) may classify none of the items correctly:
    the rank test then has nothing to rank on and says so, p = 1, instead of crashing."""
    data = load_dataset("digits")
    rng = np.random.default_rng(0)
    mk = get_backend("ubw-c").keygen(data, {"items": "40", "m": "30", "patch_size": "4"},
                                     rng=lambda n: rng.bytes(n))
    source = int(evaluation_images(mk, data).y[0])
    wrong = (source + 1) % data.num_classes
    result = control(BrightnessModel(wrong, data.num_classes), mk, data, fresh=99)
    assert result == {"correct": 0, "p_rank": 1.0,
                      "skipped": "fewer than 2 correctly classified images"}


class KeyFieldModel:
    """Loses P(source) on exactly the images warped by one field; any other image, warped
    or not, gets the benign answer."""

    def __init__(self, source: int, classes: int, marked: np.ndarray):
        self.source, self.classes = source, classes
        self.marked = {m.tobytes() for m in marked}

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        p = np.full((len(x), self.classes), 0.01)
        p[:, self.source] = [0.2 if i.tobytes() in self.marked else 0.9 for i in x]
        return p


def test_a_warping_key_is_ranked_among_fresh_fields():
    """For ``trigger=warp`` the reference is fresh fields of the key's grid and strength:
    a model that reacts to the key's field only ranks it first; the squares' white-pixel
    analyses do not apply."""
    data = load_dataset("digits")
    rng = np.random.default_rng(0)
    mk = get_backend("ubw-c").keygen(data, {"items": "40", "m": "30", "trigger": "warp",
                                            "warp_strength": "2"}, rng=lambda n: rng.bytes(n))
    key = Trigger.from_secret(mk.secret["trigger"])
    ev = evaluation_images(mk, data)
    model = KeyFieldModel(int(ev.y[0]), data.num_classes, key.apply(ev.x))
    result = control(model, mk, data, fresh=99)
    assert result["p_rank"] == 0.01 and result["fresh_reaching_key"] == 0
    assert abs(result["delta_key"] - 0.7) < 1e-9 and result["delta_fresh"]["max"] < 0.7
    assert "matched_white" not in result and "white_spearman" not in result
    # Prop. 1 as a claim runs it, on the first m = 30 images: the key's passes, no fresh one.
    assert result["prop1_fresh"]["m"] == 30
    assert result["prop1_fresh"]["key_p"] == pytest.approx((1.25 / 1.7) ** 30)   # d = 0.45
    assert result["prop1_fresh"]["accepted"] == 0.0
    blind = control(KeyFieldModel(int(ev.y[0]), data.num_classes, ev.x[:0]), mk, data, fresh=99)
    assert blind["p_rank"] == 1.0 and blind["prop1_fresh"]["key_p"] > 0.5


class AnyWarpModel(KeyFieldModel):
    """Loses P(source) on every image but the benign ones: any field passes Prop. 1."""

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        p = np.full((len(x), self.classes), 0.01)
        p[:, self.source] = [0.9 if i.tobytes() in self.marked else 0.2 for i in x]
        return p


def test_fresh_triggers_that_pass_prop_1_are_counted_as_other_owners_claims():
    data = load_dataset("digits")
    rng = np.random.default_rng(0)
    mk = get_backend("ubw-c").keygen(data, {"items": "40", "m": "30", "trigger": "warp",
                                            "warp_strength": "2"}, rng=lambda n: rng.bytes(n))
    ev = evaluation_images(mk, data)
    result = control(AnyWarpModel(int(ev.y[0]), data.num_classes, ev.x), mk, data, fresh=99)
    assert result["prop1_fresh"]["accepted"] == 1.0
    assert result["prop1_fresh"]["min_p"] == pytest.approx((1.25 / 1.7) ** 30)   # d = 0.45


class Labeller:
    """A reference model (the owner's clean one) that classifies exactly ``right`` correctly."""

    def __init__(self, source: int, classes: int, right: np.ndarray):
        self.source, self.classes = source, classes
        self.right = {r.tobytes() for r in right}

    def labels(self, x: np.ndarray) -> list[int]:
        return [self.source if i.tobytes() in self.right else (self.source + 1) % self.classes
                for i in x]


def test_prop_1_on_the_images_a_reference_model_classifies_correctly():
    """Items an owner could choose at KeyGen with their clean model: the first m evaluation
    images the reference gets right, so the key's images that the suspect answers without
    the backdoor drop out of the test."""
    data = load_dataset("digits")
    rng = np.random.default_rng(0)
    mk = get_backend("ubw-c").keygen(data, {"items": "40", "m": "16", "trigger": "warp",
                                            "warp_strength": "2"}, rng=lambda n: rng.bytes(n))
    key = Trigger.from_secret(mk.secret["trigger"])
    ev = evaluation_images(mk, data)
    source = int(ev.y[0])
    half = KeyFieldModel(source, data.num_classes, key.apply(ev.x[::2]))   # the backdoor on half
    plain = control(half, mk, data, fresh=19)
    assert "reference_correct" not in plain["prop1_fresh"]
    chosen = control(half, mk, data, fresh=19,
                     reference=Labeller(source, data.num_classes, ev.x[::2]))["prop1_fresh"]
    ref = chosen["reference_correct"]
    assert ref["m"] == 16      # every d = 0.7 − τ: Markov's bound (1 + τ)/(1 + τ + d) per pair
    assert ref["key_p"] == pytest.approx((1.25 / 1.7) ** 16)
    assert ref["key_p"] < plain["prop1_fresh"]["key_p"] and ref["accepted"] == 0.0
    none = control(half, mk, data, fresh=19, reference=Labeller(source, data.num_classes, ev.x[:1]))
    assert none["prop1_fresh"]["reference_correct"] == {"m": 1, "skipped": "fewer than 2 such images"}


def test_the_bench_counts_rank_tests_as_the_protocol_decides():
    """p_rank = alpha passes the rank test (stats.monte_carlo_rank_test); the bench's
    summaries counted p_rank < alpha until 2026-12-06."""
    from bench.ubw import summary
    runs = [{"delta_p": 0.5, "p_value": 1e-9, "other_keys_p_values": [1.0],
             "control": {"p_rank": rank}, "other_keys_control_p_rank": [0.5]}
            for rank in (0.005, 0.01, 0.015)]
    assert summary(runs, tau=0.25, alpha=0.01)["control"] == {"accepted": 2,
                                                             "other_keys_accepted": 0}


def test_the_benchs_in_memory_oracle_is_an_oracle_metrics_accept():
    """bench ubw crashed at its first suspect once ubw_metrics checked the model's input
    shape: its in-memory oracle carried the class count only."""
    import torch

    from bench.ubw import Memory
    from claimkit.schemes.ubw import ubw_metrics
    data = load_dataset("digits")
    rng = np.random.default_rng(0)
    mk = get_backend("ubw-p").keygen(data, {"items": "20", "m": "20"}, rng=lambda n: rng.bytes(n))
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    oracle = Memory(model, torch.device("cpu"), data.num_classes, data.input_shape)
    assert 0.0 <= ubw_metrics(oracle, data, mk).ba <= 1.0
