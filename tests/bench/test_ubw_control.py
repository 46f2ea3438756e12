"""bench/ubw_control.py's rank test against a model that only cares how bright an image is:
the grinding case of docs/proposals/ubw-c-key-specific-test.md, where a bright key
outranks uniform fresh patterns on any model and white-matched ones must not."""
from dataclasses import replace

import numpy as np

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
