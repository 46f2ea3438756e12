"""UBW-P and UBW-C on digits (Li et al. 2022): keys, triggers, the release folder, the
metrics, and the whole CLI story: keygen → mark (a release) → register --dataset →
train a suspect on the release → claim → verify; clean models are never accused."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from click.testing import CliRunner

from claimkit.cli import cli
from claimkit.cli.owner import _specificity_line
from claimkit.errors import DataMissingError, MalformedInputError
from claimkit.ml.data import Dataset, load_dataset
from claimkit.ml.release import DATA_FILE, MANIFEST, load_release, release_digest, write_release
from claimkit.protocol.scheme import decider_for
from claimkit.schemes.base import MarkOptions, get_backend
from claimkit.schemes.ubw import (Trigger, dispersibility, evaluation_images, key_params, make_warp,
                                  ubw_metrics)
from claimkit.wire import Digest, canonical_json

ENV = {"CLAIMKIT_PASSPHRASE": "pw", "CLAIMKIT_LOG_PASSPHRASE": "pw"}
NULL_SEEDS = (11, 12, 13, 14, 15)
# Digits has 359 test images, about 36 per class: UBW-C's items are the source class's.
# UBW-C on 8×8 digits (17 grey levels) has no budget that is both effective and safe, as
# measured: at the paper's ε = 16/255, γ = 0.1 and a 2×2 patch the suspects reach ASR-A
# 3–5 % (p ≈ 1); at ε = 64/255, γ = 0.3 and a 3×3 patch they are accepted (p = 1e-4), but
# the patch alone then covers a seventh of a digit and 11 of 33 clean null models were
# accused too (examples/eval-digits.toml, docs/results.md). The tests keep the safe budget:
# the flow runs, the release is clean-label and ε-bounded, clean models are rejected.
# Those figures are from a cheap schedule (10 steps, one re-training of 3 epochs), which
# the tests keep: with the paper's 5 rounds of 40 steps (the default) the CLI test took
# 156 s on a 2-core CPU that two single-thread bench runs were sharing (5 s with this
# schedule); the default is what implanted on all of Fashion-MNIST (docs/benchmarks.md,
# "UBW-C with the paper's schedule").
PARAMS = {"ubw-p": {"items": "120", "m": "60"},
          "ubw-c": {"items": "40", "m": "30", "steps": "10", "retrains": "1",
                    "surrogate_epochs": "3"}}


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], env=ENV)


def seeded(seed: int):
    rng = np.random.default_rng(seed)
    return lambda n: rng.bytes(n)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def keys(digits):
    return {scheme: get_backend(scheme).keygen(digits, PARAMS[scheme], rng=seeded(i))
            for i, scheme in enumerate(PARAMS)}


@pytest.fixture(scope="module")
def clean_models(tmp_path_factory, digits):
    """Independently trained clean models (other seeds), trained once for the module."""
    from claimkit.ml.jobs import fit_and_save
    folder = tmp_path_factory.mktemp("clean")
    paths = []
    for seed in NULL_SEEDS:
        path = folder / f"clean{seed}.safetensors"
        fit_and_save(digits, path, epochs=5, seed=seed, device="cpu", progress=False)
        paths.append(path)
    return paths


# -- keys and triggers ------------------------------------------------------------------------
def test_keys_are_reproducible_and_hold_what_marking_needs(digits, keys):
    mk = keys["ubw-p"]
    again = get_backend("ubw-p").keygen(digits, PARAMS["ubw-p"], rng=seeded(0))
    assert again.items.values == mk.items.values and again.secret == mk.secret
    vk = mk.verification_key
    assert vk.items == 120 and set(vk.params) == {"num_classes", "input_shape", "data",
                                                  "data_digest", "tau", "alpha", "m"}
    poison = mk.secret["poison"]
    assert len(poison["indices"]) == round(0.1 * len(digits.y_train))
    assert len(set(poison["indices"])) == len(poison["indices"])
    counts = np.bincount(poison["labels"], minlength=10)
    assert counts.min() >= 5 and counts.max() <= 30        # every class about as often
    # Items: test images with their label; the triggered version differs only in the
    # bottom-right 3×3 square (ubw-p), which holds the key's black-and-white pattern.
    trigger = Trigger.from_secret(mk.secret["trigger"])
    pattern = trigger.pattern
    assert pattern.shape == (3, 3) and set(np.unique(pattern)) == {0, 255}
    tests = {digits.x_test[i].tobytes(): int(digits.y_test[i]) for i in range(len(digits.y_test))}
    for value in mk.items.values[:20]:
        image, triggered = (np.frombuffer(base64.b64decode(value[k]), np.uint8)
                            .reshape(1, 8, 8) for k in ("image", "triggered"))
        assert tests[image.tobytes()] == value["label"]
        assert (triggered[0, 5:, 5:] == pattern).all() and (triggered[0, :5] == image[0, :5]).all()
    # ubw-c: items from the source class, a square at random places.
    c = keys["ubw-c"]
    assert {v["label"] for v in c.items.values} == {0} and key_params(c).source == 0
    assert Trigger.from_secret(c.secret["trigger"]).placement == "random"


def test_ubw_c_keys_can_draw_their_source_class_from_those_with_m_test_images(digits):
    """``source=-1``: two owners' UBW-C releases then attack different classes unless their
    keys draw the same one; a class with fewer than m test images (digits: 3 has 28, 7 has
    27) cannot give a claim its m items and is never drawn. An explicit ``source`` is kept,
    the default is class 0, and the trigger does not depend on the class."""
    backend, params = get_backend("ubw-c"), {"items": "40", "m": "30", "source": "-1"}
    drawn = []
    for seed in range(40):
        mk = backend.keygen(digits, params, rng=seeded(seed))
        source = key_params(mk).source
        assert {v["label"] for v in mk.items.values} == {source}
        drawn.append(source)
    assert set(drawn) <= {0, 1, 2, 4, 5, 6, 8, 9} and len(set(drawn)) >= 6
    chosen = backend.keygen(digits, {**params, "source": "3", "m": "20"}, rng=seeded(0))
    again = backend.keygen(digits, params, rng=seeded(0))
    assert key_params(chosen).source == 3 and key_params(again).source == drawn[0] != 3
    plain = backend.keygen(digits, {"items": "40", "m": "30"}, rng=seeded(0))
    assert key_params(plain).source == 0
    assert chosen.secret["trigger"] == again.secret["trigger"]


@pytest.mark.parametrize("shape, side, placement", [((40, 3, 32, 32), 8, "random"),
                                                    ((40, 1, 28, 28), 7, "random"),
                                                    ((9, 1, 8, 8), 3, "corner")])
def test_square_trigger_lands_where_the_places_say(shape, side, placement):
    """The one indexed assignment of ``Trigger.apply`` equals pasting the pattern into
    each image's own square, in every channel, and leaves the input untouched."""
    from claimkit.schemes.ubw import make_patch

    rng = np.random.default_rng(4)
    images = rng.integers(0, 256, shape, dtype=np.uint8)
    before = images.copy()
    trigger = make_patch(rng, side, placement)
    out = trigger.apply(images, np.random.default_rng(9))
    n, _, h, w = shape
    places = np.random.default_rng(9)
    rows, cols = ((places.integers(0, h - side + 1, n), places.integers(0, w - side + 1, n))
                  if placement == "random" else ([h - side] * n, [w - side] * n))
    expected = images.copy()
    for i, (r, c) in enumerate(zip(rows, cols)):
        expected[i, :, r:r + side, c:c + side] = trigger.pattern
    assert (out == expected).all() and (images == before).all()
    assert len({(r, c) for r, c in zip(rows, cols)}) > 1 or placement == "corner"


@pytest.mark.parametrize("placement", ["random", "corner"])
def test_cut_evaluation_set_matches_the_whole_image_for_image(placement):
    """``EvaluationImages.triggered(t, limit)`` (the rank test's cut, which copies only the
    images it keeps) puts the square where the whole set's first ``limit`` images have it."""
    from claimkit.schemes.ubw import EvaluationImages, make_patch

    rng = np.random.default_rng(5)
    ev = EvaluationImages(np.arange(300), rng.integers(0, 256, (300, 1, 12, 12), dtype=np.uint8),
                          rng.integers(0, 10, 300), bytes(range(16)))
    for _ in range(3):
        t = make_patch(rng, 3, placement)
        assert (ev.triggered(t, 40) == ev.triggered(t)[:40]).all()
    assert len(ev.triggered(t, 40)) == 40 and (ev.triggered(t, 0) == ev.triggered(t)).all()


@pytest.mark.parametrize("target", ["contrast", "specific"])
def test_a_target_with_a_reference_is_the_unit_difference_of_the_two_losses(digits, target):
    """−∇_w[L_i(G(x)) − L_i(R)], L_i = mean[CE + λ·H], unit norm, where R is the benign
    image (``contrast``) or the image under its own random square (``specific``); not the
    paper's target, which subtracts nothing."""
    import torch
    import torch.nn.functional as F
    from claimkit.ml.models import build
    from claimkit.ml.train import as_tensor
    from claimkit.schemes.ubw import make_patch
    from claimkit.schemes.ubw_c import _reference, _target_gradient

    model = build("digits-cnn", num_classes=10, input_shape=(1, 8, 8), seed=3).eval()
    trigger = make_patch(np.random.default_rng(0), 2, "random")
    triggered = as_tensor(trigger.apply(digits.x_train[:50], np.random.default_rng(1)), "cpu")
    reference = _reference(digits.x_train[:50], as_tensor(digits.x_train[:50], "cpu"), target,
                           trigger, np.random.default_rng(2))
    y = torch.from_numpy(digits.y_train[:50])

    def loss(x):
        logits = model(x)
        p = torch.softmax(logits, 1)
        return F.cross_entropy(logits, y) + 2.0 * -(p * p.clamp_min(1e-30).log()).sum(1).mean()

    params = list(model.parameters())
    expected = [b - a for a, b in zip(torch.autograd.grad(loss(triggered), params),
                                      torch.autograd.grad(loss(reference), params))]
    expected = torch.cat([e.reshape(-1) for e in expected])
    got = _target_gradient(model, triggered, y, 2.0, 16, reference)
    torch.testing.assert_close(got, expected / expected.norm(), rtol=1e-4, atol=1e-6)
    paper = _target_gradient(model, triggered, y, 2.0, 16)
    assert abs(float(paper @ got)) < 0.999


@pytest.mark.parametrize("placement", ["random", "corner"])
def test_random_triggers_give_each_image_its_own_two_colour_square(placement):
    """``target=specific``'s reference: each image changed only inside one side×side
    square, placed as the trigger places its own, holding black and white pixels
    (make_patch's distribution) and never the key's pattern, the squares differing
    between images."""
    from claimkit.schemes.ubw import make_patch, random_triggers

    side, n = 4, 200
    trigger = make_patch(np.random.default_rng(4), side, placement)
    images = np.full((n, 3, 12, 12), 128, dtype=np.uint8)
    out = random_triggers(images, trigger, np.random.default_rng(5))
    assert (images == 128).all() and out.shape == images.shape
    squares = []
    for before, after in zip(images, out):
        rows, cols = np.nonzero((after != before).any(0))
        r, c = rows.min(), cols.min()
        assert rows.max() - r < side and cols.max() - c < side
        if placement == "corner":
            assert (r, c) == (12 - side, 12 - side)
        square = after[:, r:r + side, c:c + side]
        assert (square == square[0]).all() and set(np.unique(square)) == {0, 255}
        assert not np.array_equal(square[0], trigger.pattern)
        squares.append(square[0].tobytes())
    assert len(set(squares)) == n


def test_random_triggers_never_draw_the_key_pattern():
    """With a 2×2 square only 14 patterns are allowed, so 500 draws would meet the key's
    about 36 times if it were not excluded."""
    from claimkit.schemes.ubw import make_patch, random_triggers

    trigger = make_patch(np.random.default_rng(0), 2, "corner")
    out = random_triggers(np.full((500, 1, 6, 6), 128, dtype=np.uint8), trigger,
                         np.random.default_rng(1))
    corners = out[:, 0, 4:, 4:]
    assert not (corners == trigger.pattern).all(axis=(1, 2)).any()
    assert len({c.tobytes() for c in corners}) == 13


def test_each_target_subtracts_its_own_reference(digits):
    """``paper`` subtracts nothing, ``contrast`` the benign source images, ``specific``
    the same images under random squares (only for a square trigger)."""
    import torch
    from claimkit.ml.train import as_tensor
    from claimkit.schemes.ubw import make_patch, random_triggers
    from claimkit.schemes.ubw_c import _reference

    images = digits.x_train[:50]
    benign = as_tensor(images, "cpu")
    trigger = make_patch(np.random.default_rng(0), 2, "random")
    assert _reference(images, benign, "paper", trigger, np.random.default_rng(1)) is None
    assert _reference(images, benign, "contrast", trigger, np.random.default_rng(1)) is benign
    specific = _reference(images, benign, "specific", trigger, np.random.default_rng(1))
    assert torch.equal(specific, as_tensor(random_triggers(images, trigger,
                                                          np.random.default_rng(1)), "cpu"))
    warp = make_warp(np.random.default_rng(0), 4, 2.0)
    specific = _reference(images, benign, "specific", warp, np.random.default_rng(1))
    assert torch.equal(specific, as_tensor(random_triggers(images, warp,
                                                          np.random.default_rng(1)), "cpu"))


def test_random_triggers_warp_each_image_by_its_own_fresh_field(digits):
    """For a warping key the reference is each image under its own field of the key's grid
    and strength (make_warp's distribution, drawn in order from the generator), not the
    key's field."""
    from claimkit.schemes.ubw import random_triggers

    key = make_warp(np.random.default_rng(0), 4, 2.0)
    images = np.repeat(digits.x_test[:1], 6, axis=0)
    out = random_triggers(images, key, np.random.default_rng(7))
    rng = np.random.default_rng(7)
    for image, got in zip(images, out):
        own = make_warp(rng, 4, 2.0)
        assert (got == own.apply(image[None])[0]).all()
    assert len({o.tobytes() for o in out}) == 6
    assert not (out == key.apply(images)).all(axis=(1, 2, 3)).any()


def test_surrogate_gaps_are_prop_1s_mean_under_each_trigger():
    """``_gaps`` is the mean of P_b − P_p for the true label, over all images, for the
    key's trigger and for other squares; a model blind to the square's pixels loses
    nothing."""
    import torch
    from torch import nn
    from claimkit.schemes.ubw_c import _gaps

    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    benign, triggered, other = (torch.rand(10, 1, 4, 4) for _ in range(3))
    y = torch.randint(0, 3, (10,))

    @torch.no_grad()
    def p(x):
        return torch.softmax(model(x), 1)[torch.arange(10), y]

    got = _gaps(model, benign, triggered, other, y, batch=4)
    assert got["key"] == pytest.approx(float((p(benign) - p(triggered)).mean()), abs=1e-6)
    assert got["any_other"] == pytest.approx(float((p(benign) - p(other)).mean()), abs=1e-6)
    with torch.no_grad():
        model[1].weight[:, -1] = 0     # the bottom-right pixel no longer counts
    corner = benign.clone()
    corner[:, :, 3, 3] = 1
    assert _gaps(model, benign, corner, corner, y, batch=4) == {"key": 0.0, "any_other": 0.0}


@pytest.mark.parametrize("shape, sides", [((1, 8, 8), (3, 2)), ((1, 28, 28), (3, 7)),
                                          ((3, 32, 32), (3, 8))])
def test_default_patch_sides_follow_the_authors_code(shape, sides):
    """UBW-P: the authors' 3×3 square on 32×32 images; UBW-C: their PATCH_SIZE = 8 (App.
    D.2, Table 2: a side of 2 leaves UBW-C at ASR-A 4.4 %), both scaled to the image."""
    from claimkit.schemes.ubw import UBWCParams, UBWPParams
    assert (UBWPParams(10, shape).side, UBWCParams(10, shape).side) == sides
    assert UBWCParams(10, shape, patch_size=3).side == 3


def test_patch_sides_below_the_minimum_are_refused_and_never_drawn():
    """patch_size is 0 (per image size) or within [min_side, side / 2]: a 1×1 square
    cannot hold both colours, and make_patch would draw forever."""
    from claimkit.schemes.ubw import UBWCParams, UBWPParams, make_patch
    for cls, sizes in ((UBWPParams, (1, 2, -1, 5)), (UBWCParams, (1, -1, 5))):
        for size in sizes:
            with pytest.raises(MalformedInputError, match="patch_size must be 0"):
                cls(10, (1, 8, 8), patch_size=size)
    assert UBWPParams(10, (1, 8, 8), patch_size=3).side == 3
    assert UBWCParams(10, (1, 8, 8), patch_size=2).side == 2
    for side in (1, 0, -1):
        with pytest.raises(MalformedInputError, match="at least 2"):
            make_patch(np.random.default_rng(0), side, "corner")


@pytest.mark.parametrize("scheme, params, message", [
    ("ubw-p", {"gamma": "0"}, "gamma"),
    ("ubw-p", {"patch_size": "1"}, "patch_size"),
    ("ubw-c", {"patch_size": "1", "m": "20"}, "patch_size"),
    ("ubw-p", {"tau": "1.5"}, "tau"),
    ("ubw-p", {"trigger": "blend"}, "patch or warp"),
    ("ubw-p", {"epsilon": "8"}, "unknown for this scheme"),
    ("ubw-p", {"decoys": "0.6"}, "decoys"),
    ("ubw-c", {"source": "10"}, "source"),
    ("ubw-c", {"m": "100"}, "fewer than m"),            # digits' test split: 27–47 a class
    ("ubw-c", {"m": "100", "source": "-1"}, "no class has m = 100"),
    ("ubw-c", {"m": "30", "source": "7"}, "fewer than m"),     # class 7 has 27
    ("ubw-c", {"selection": "random", "m": "20"}, "selection"),
    ("ubw-c", {"target": "targeted", "m": "20"}, "target"),
    ("ubw-c", {"warm": "-1", "m": "20"}, "warm"),
    ("ubw-c", {"match_layers": "-1", "m": "20"}, "match_layers"),
    ("ubw-c", {"decay": "cosine", "m": "20"}, "decay"),
    ("ubw-c", {"decoy_class": "target", "m": "20"}, "decoy_class"),
    ("ubw-p", {"decoy_class": "source"}, "decoy_class"),
    ("ubw-c", {"decoy_class": "source", "decoys": "0.5", "m": "20"},   # was capped silently
     "decoys=0.5 asks for 719 decoys; there are 140 training images of class"),
    ("ubw-c", {"decoy_class": "source", "decoys": "0.5", "m": "20", "draw": "log",
               "fresh": "99"}, "asks for 719 decoys"),                # before the draw
    ("ubw-p", {"fresh": "99"}, "fresh: unknown for this scheme"),
    ("ubw-c", {"fresh": "98", "m": "20"}, "fresh=98 can never reach alpha = 0.01.*K >= 99"),
    ("ubw-c", {"fresh": "199", "alpha": "0.001", "m": "20"}, "use K >= 999"),
    ("ubw-c", {"fresh": "1000", "alpha": "1e-12", "m": "100"},    # no K in range reaches it
     r"fresh triggers need alpha >= 0.0001 \(K <= 10000\)"),
    ("ubw-p", {"m": "20", "alpha": "1e-12"}, r"m = 20 pairs can never reach .* use m >= 59"),
    ("ubw-p", {"tau": "0.9999", "alpha": "1e-12"}, "lower tau or raise alpha"),
    ("ubw-c", {"fresh": "-1", "m": "20"}, "fresh must be 0"),
    ("ubw-c", {"fresh": "10001", "m": "20"}, "fresh must be 0"),
    ("ubw-p", {"fresh": "99", "trigger": "warp"}, "fresh: unknown for this scheme"),
    ("ubw-c", {"fresh": "98", "trigger": "warp", "m": "20"}, "fresh=98 can never reach"),
])
def test_bad_parameters_are_refused(digits, scheme, params, message):
    with pytest.raises(MalformedInputError, match=message):
        get_backend(scheme).keygen(digits, params)


def test_warping_trigger_is_a_small_smooth_deterministic_change(digits):
    trigger = make_warp(np.random.default_rng(0), 4, 0.5)
    images = digits.x_test[:50]
    warped = trigger.apply(images)
    assert warped.dtype == np.uint8 and warped.shape == images.shape
    assert (warped != images).any() and (trigger.apply(images) == warped).all()
    assert np.abs(warped.astype(int) - images.astype(int)).mean() < 40
    assert Trigger.from_secret(trigger.secret()).field.tolist() == trigger.field.tolist()
    mk = get_backend("ubw-p").keygen(digits, {"trigger": "warp", "items": "30", "m": "20"},
                                     rng=seeded(3))
    assert Trigger.from_secret(mk.secret["trigger"]).kind == "warp"


def test_warp_decoys_are_images_warped_by_fields_of_their_own(tmp_path, digits):
    """A warping key's decoys (WaNet's noise mode in spirit): each decoy image warped by
    its own field of the key's grid and strength, stored in the key, labels kept; the
    poisons carry the key's field."""
    from claimkit.schemes.ubw import stamp_decoys

    backend = get_backend("ubw-p")
    mk = backend.keygen(digits, {**PARAMS["ubw-p"], "trigger": "warp", "warp_strength": "2",
                                 "decoys": "0.2"}, rng=seeded(4))
    key = Trigger.from_secret(mk.secret["trigger"])
    decoys = mk.secret["decoys"]
    idx = np.asarray(decoys["indices"])
    fields = np.frombuffer(base64.b64decode(decoys["fields"]), "<f4").reshape(len(idx), 4, 4, 2)
    assert len(idx) == round(0.2 * len(digits.y_train))
    assert not set(idx) & set(mk.secret["poison"]["indices"])
    record = backend.mark(mk, digits, tmp_path / "rel", MarkOptions(progress=False))
    data = load_release(tmp_path / "rel")
    assert record["decoys"] == len(idx) and (data.y_train[idx] == digits.y_train[idx]).all()
    for i, field in zip(idx[:10], fields):
        own = Trigger("warp", None, "corner", field.astype(np.float64), key.strength)
        assert (data.x_train[i] == own.apply(digits.x_train[i:i + 1])[0]).all()
    assert (data.x_train[idx] != key.apply(digits.x_train[idx])).any(axis=(1, 2, 3)).mean() > 0.9
    poisoned = np.asarray(mk.secret["poison"]["indices"])
    assert (data.x_train[poisoned] == key.apply(digits.x_train[poisoned])).all()
    with pytest.raises(MalformedInputError, match="decoys.fields"):
        stamp_decoys(digits.x_train.copy(), {**decoys, "fields": decoys["fields"][:-8]}, key)


def test_ubw_c_can_warp_instead_of_a_square(tmp_path, digits, clean_models):
    """``trigger=warp`` (ours for UBW-C; App. H gives it to UBW-P): the key holds a warping
    field, its items are the source images warped by it, and the crafting targets the
    warped source images and records what other fields cost each surrogate."""
    backend = get_backend("ubw-c")
    mk = backend.keygen(digits, {**PARAMS["ubw-c"], "steps": "3", "retrains": "0",
                                 "trigger": "warp", "warp_strength": "2"}, rng=seeded(6))
    trigger = Trigger.from_secret(mk.secret["trigger"])
    assert trigger.kind == "warp" and trigger.strength == 2.0
    items = mk.items.values
    benign, triggered = (np.stack([np.frombuffer(base64.b64decode(v[k]), np.uint8)
                                   for v in items]).reshape(-1, 1, 8, 8)
                         for k in ("image", "triggered"))
    assert (triggered == trigger.apply(benign)).all() and {v["label"] for v in items} == {0}
    record = backend.mark(mk, digits, tmp_path / "rel", MarkOptions(
        device="cpu", progress=False, start_from=str(clean_models[0])))
    assert all(set(g) == {"after_step", "key", "any_other"} for g in record["surrogate_gaps"])
    data = load_release(tmp_path / "rel")
    moved = np.abs(data.x_train.astype(int) - digits.x_train.astype(int))
    assert 0 < moved.max() <= mk.secret["params"]["epsilon"]


def test_ubw_c_warp_decoys_are_images_warped_by_their_own_fields_and_never_poisons(
        tmp_path, digits, clean_models):
    """The combination measured in docs/benchmarks.md ("A warping trigger"): a warping
    UBW-C key crafted against fresh fields with decoys. Each decoy is released exactly as
    its own field warps it (``stamp_decoys``, checked against each field on its own in the
    UBW-P test above), never perturbed as a poison, labels kept."""
    from claimkit.schemes.ubw import stamp_decoys

    backend = get_backend("ubw-c")
    mk = backend.keygen(digits, {**PARAMS["ubw-c"], "steps": "3", "retrains": "0",
                                 "trigger": "warp", "warp_strength": "2",
                                 "target": "specific", "decoys": "0.2"}, rng=seeded(7))
    own = digits.x_train.copy()
    idx = stamp_decoys(own, mk.secret["decoys"], Trigger.from_secret(mk.secret["trigger"]))
    record = backend.mark(mk, digits, tmp_path / "rel", MarkOptions(
        device="cpu", progress=False, start_from=str(clean_models[0])))
    assert record["decoys"] == len(idx) == round(0.2 * len(digits.y_train))
    data = load_release(tmp_path / "rel")
    assert (data.y_train == digits.y_train).all()
    assert (data.x_train[idx] == own[idx]).all() and (own[idx] != digits.x_train[idx]).any()
    rest = np.setdiff1d(np.arange(len(digits.y_train)), idx)
    moved = np.abs(data.x_train[rest].astype(int) - digits.x_train[rest].astype(int))
    assert 0 < moved.max() <= mk.secret["params"]["epsilon"]
    assert (moved.reshape(len(rest), -1).max(1) > 0).sum() <= record["poisoned"]


def test_dispersibility_is_definition_1():
    labels = np.zeros(40, dtype=np.int64)
    assert dispersibility(labels, np.zeros(40, dtype=np.int64), 10) == 0.0
    assert np.isclose(dispersibility(labels, np.arange(40) % 4, 10), np.log(4))
    # Two classes, weighted by their sizes: (30·ln 2 + 10·0) / 40.
    labels = np.array([0] * 30 + [1] * 10)
    predicted = np.array([0, 1] * 15 + [1] * 10)
    assert np.isclose(dispersibility(labels, predicted, 10), 30 * np.log(2) / 40)


def test_metrics_follow_section_5(digits, keys):
    class Fixed:           # right on every benign image, "wrong" on every triggered one
        input_shape, num_classes = (1, 8, 8), 10

        def labels(self, images):
            known = {digits.x_test[i].tobytes(): int(digits.y_test[i])
                     for i in range(len(digits.y_test))}
            return [known.get(x.tobytes(), int(x.sum()) % 10) for x in images]

    m = ubw_metrics(Fixed(), digits, keys["ubw-p"])
    assert m.ba == 1.0 and m.evaluated == len(digits.y_test)
    assert m.asr_a == m.asr_c and m.asr_a > 0.85 and m.dp > 1.0
    # The benign labels a caller has already (the evaluation grid's) give the same figures;
    # labels of another split are refused, not compared image for image with these.
    benign = Fixed().labels(digits.x_test)
    assert ubw_metrics(Fixed(), digits, keys["ubw-p"], benign=benign) == m
    with pytest.raises(MalformedInputError, match="benign labels for"):
        ubw_metrics(Fixed(), digits, keys["ubw-p"], benign=benign[:-1])


def test_evaluation_images_put_every_trigger_at_the_keys_places(digits, keys):
    mk = keys["ubw-c"]
    ev = evaluation_images(mk, digits)
    assert (ev.y == key_params(mk).source).all() and len(ev.y) == (digits.y_test == ev.y[0]).sum()
    assert (digits.x_test[ev.index] == ev.x).all()
    side = key_params(mk).side
    white, black = (Trigger("patch", np.full((side, side), v, np.uint8), "random", None, 0.0)
                    for v in (255, 0))
    a, b = ev.triggered(white), ev.triggered(black)
    assert (a == 255).any() and (ev.triggered(white) == a).all()     # the same places each call
    # Where the white square went, the black one went: every pixel differs only inside it.
    assert ((a != b) <= (a == 255)).all() and ((a == b) == ((a == ev.x) & (b == ev.x))).all()


def test_poisons_never_keep_their_own_label_unless_drawn_as_the_paper_does(digits):
    """By default each poison's label comes from the K − 1 classes other than its own;
    ``labels=uniform`` (§3.3) draws from all K. The key's images, items and decoys are the
    same either way."""
    backend = get_backend("ubw-p")
    paper = backend.keygen(digits, {**PARAMS["ubw-p"], "labels": "uniform"}, rng=seeded(7))
    mk = backend.keygen(digits, PARAMS["ubw-p"], rng=seeded(7))
    assert key_params(mk).labels == "others" and key_params(paper).labels == "uniform"
    indices = np.asarray(mk.secret["poison"]["indices"])
    labels = np.asarray(mk.secret["poison"]["labels"])
    assert indices.tolist() == paper.secret["poison"]["indices"]
    assert mk.items.values == paper.items.values and mk.secret["decoys"] == paper.secret["decoys"]
    own = digits.y_train[indices]
    assert (labels != own).all() and labels.min() >= 0 and labels.max() < 10
    shifts = np.bincount((labels - own) % 10, minlength=10)
    assert shifts[0] == 0 and shifts[1:].min() >= 5         # uniform over the nine others
    # The paper's draw keeps about a tenth of the labels.
    assert 5 <= (np.asarray(paper.secret["poison"]["labels"]) == own).sum() <= 35
    with pytest.raises(MalformedInputError, match="labels must be uniform or others"):
        backend.keygen(digits, {**PARAMS["ubw-p"], "labels": "shuffled"}, rng=seeded(7))


def test_decoys_carry_other_squares_at_the_triggers_place_with_their_labels(tmp_path, digits):
    backend = get_backend("ubw-p")
    mk = backend.keygen(digits, {**PARAMS["ubw-p"], "decoys": "0.2"}, rng=seeded(5))
    poisoned, decoys = set(mk.secret["poison"]["indices"]), mk.secret["decoys"]["indices"]
    assert len(decoys) == round(0.2 * len(digits.y_train)) and not poisoned & set(decoys)
    record = backend.mark(mk, digits, tmp_path / "rel", MarkOptions(device="cpu"))
    assert record["decoys"] == len(decoys)
    data = load_release(tmp_path / "rel")
    key = Trigger.from_secret(mk.secret["trigger"]).pattern
    s = key.shape[0]
    corner = data.x_train[decoys, 0, -s:, -s:]
    # Each decoy's square is a pattern of both colours, never the key's; the rest of the
    # image and the label are the base set's.
    assert set(np.unique(corner)) == {0, 255} and not (corner == key).all(axis=(1, 2)).any()
    assert ((corner == 0).any(axis=(1, 2)) & (corner == 255).any(axis=(1, 2))).all()
    assert (data.x_train[decoys, :, :-s] == digits.x_train[decoys, :, :-s]).all()
    assert (data.x_train[decoys, :, :, :-s] == digits.x_train[decoys, :, :, :-s]).all()
    assert (data.y_train[decoys] == digits.y_train[decoys]).all()
    changed = set(np.flatnonzero((data.x_train != digits.x_train).any(axis=(1, 2, 3))))
    assert changed <= poisoned | set(decoys)
    plain = backend.keygen(digits, {**PARAMS["ubw-p"], "decoys": "0"}, rng=seeded(5))
    assert "decoys" not in plain.secret and plain.secret["poison"] == mk.secret["poison"]


def test_another_owners_square_has_no_claim_on_a_suspect(tmp_path, digits):
    """Key 2000's suspect and key 0's claim, as in `bench ubw --data digits --keys 4`: on
    the paper's release (no decoys, labels from all K classes) the other owner's corner
    square is accepted; with the defaults it is rejected and the owner's own claim still
    accepted."""
    from claimkit.ml.jobs import fit_and_save
    from claimkit.ml.oracle import LocalModel

    backend = get_backend("ubw-p")
    params = {"m": "100", "items": "220"}
    other = backend.keygen(digits, params, rng=seeded(0))

    def p_value(mk, model) -> float:
        vk, decider = mk.verification_key, decider_for(mk.scheme)
        openings = mk.open(range(vk.items))
        answers = backend.answerer(model, vk)(decider.queries(vk, openings))
        return decider.decide(vk, openings, answers).result.p_value

    def suspect(chosen: dict[str, str], folder: Path):
        mk = backend.keygen(digits, {**params, **chosen}, rng=seeded(2000))
        backend.mark(mk, digits, folder, MarkOptions(device="cpu"))
        fit_and_save(load_release(folder), folder / "suspect.safetensors", seed=100,
                     device="cpu", progress=False)
        return mk, LocalModel.from_file(folder / "suspect.safetensors", device="cpu")

    _, plain = suspect({"decoys": "0", "labels": "uniform"}, tmp_path / "plain")
    assert p_value(other, plain) < 0.01                  # the paper's release: a false claim
    mk, decoyed = suspect({}, tmp_path / "decoys")       # the defaults: decoys, other labels
    assert p_value(mk, decoyed) < 1e-10 and p_value(other, decoyed) > 0.5


# -- the release folder ------------------------------------------------------------------------
def test_release_round_trip_and_tampering(tmp_path, digits, keys):
    mk = keys["ubw-p"]
    out = tmp_path / "rel"
    record = get_backend("ubw-p").mark(mk, digits, out, MarkOptions(device="cpu"))
    data = load_release(out)
    assert data.name == "digits" and data.digest.hex == record["dataset_digest"]
    assert (data.x_test == digits.x_test).all() and (data.y_test == digits.y_test).all()
    changed = np.flatnonzero((data.x_train != digits.x_train).any(axis=(1, 2, 3)))
    assert set(changed) <= set(mk.secret["poison"]["indices"]) | set(mk.secret["decoys"]["indices"])
    assert len(changed) > 100
    assert load_dataset(str(out)).digest == data.digest
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["scheme"] == "ubw-p" and manifest["base_digest"]["sha256"] == digits.digest.hex
    assert manifest["verification_key"]["sha256"] == mk.verification_key.digest.hex
    with pytest.raises(MalformedInputError, match="not an empty folder"):
        write_release(data, out, base_digest=digits.digest, scheme="ubw-p",
                      key_digest=mk.verification_key.digest)

    def tampered(edit) -> str:
        bad = tmp_path / f"bad{len(list(tmp_path.iterdir()))}"
        shutil.copytree(out, bad)
        edit(bad)
        with pytest.raises((MalformedInputError, DataMissingError)) as e:
            load_release(bad)
        result = run("train", "--data", bad, "--epochs", "0", "--out", tmp_path / "m.safetensors")
        assert result.exit_code == 2 and str(e.value) in result.output
        return str(e.value)

    def flip(folder, offset=-5):
        blob = bytearray((folder / DATA_FILE).read_bytes())
        blob[offset] ^= 1
        (folder / DATA_FILE).write_bytes(bytes(blob))

    def manifest_edit(change):
        def edit(folder):
            obj = json.loads((folder / MANIFEST).read_text())
            change(obj)
            (folder / MANIFEST).write_text(json.dumps(obj))
        return edit

    assert "SHA-256 differs" in tampered(flip)
    assert "unknown field 'note'" in tampered(manifest_edit(lambda o: o.update(note=1)))
    assert "train: expected an integer" in tampered(manifest_edit(lambda o: o.update(train="1")))
    assert "input_shape" in tampered(manifest_edit(lambda o: o.update(input_shape=[1, 8])))
    assert "file.name" in tampered(manifest_edit(lambda o: o["file"].update(name="../x")))
    # Python's $ matches before a final newline: names are matched whole.
    assert ".name: not a plain" in tampered(manifest_edit(lambda o: o.update(name="digits\n")))
    assert ".scheme: not a scheme name" in tampered(manifest_edit(lambda o: o.update(scheme="")))
    assert "digest differs" in tampered(manifest_edit(
        lambda o: o["digest"].update(sha256="0" * 64)))
    assert "missing" in tampered(lambda f: (f / DATA_FILE).unlink())
    # A consistent manifest over a file with other arrays: refused on its content.
    def relabel(folder):
        from safetensors.numpy import save
        arrays = {"x_train": data.x_train, "y_train": data.y_train, "x_test": data.x_test,
                  "y_test": data.y_test.astype(np.int32)}
        blob = save(arrays)
        (folder / DATA_FILE).write_bytes(blob)
        manifest_edit(lambda o: o["file"].update(
            sha256=hashlib.sha256(blob).hexdigest()))(folder)
    assert "y_test is I32" in tampered(relabel)


def tiny_release(folder: Path) -> Dataset:
    """A small release (not marked: the reader checks the file, not the watermark)."""
    rng = np.random.default_rng(5)
    data = Dataset("tiny", rng.integers(0, 256, (6, 1, 4, 4), dtype=np.uint8), np.arange(6) % 2,
                   rng.integers(0, 256, (3, 1, 4, 4), dtype=np.uint8), np.arange(3) % 2, 2)
    write_release(data, folder, base_digest=data.digest, scheme="ubw-p",
                  key_digest=Digest(b"\x01" * 32))
    return data


@pytest.mark.parametrize("special", ["fifo", "dev-zero", "directory"])
def test_release_data_file_must_be_a_regular_file(tmp_path, special):
    """Its size said nothing about what was then read: /dev/zero (size 0) never ends,
    a FIFO blocks for ever."""
    tiny_release(tmp_path)
    (tmp_path / DATA_FILE).unlink()
    {"fifo": lambda p: os.mkfifo(p), "dev-zero": lambda p: p.symlink_to("/dev/zero"),
     "directory": lambda p: p.mkdir()}[special](tmp_path / DATA_FILE)
    with pytest.raises(MalformedInputError, match=f"{DATA_FILE}: not a regular file"):
        load_release(tmp_path)


def test_release_header_is_read_from_the_hashed_bytes(tmp_path, monkeypatch):
    """The file changing after it was read and hashed changes nothing that is loaded."""
    import claimkit.ml.release as release
    from safetensors.numpy import save

    data = tiny_release(tmp_path)
    other = save({name: getattr(data, name) for name in ("x_train", "y_train", "x_test", "y_test")},
                 metadata={"claimkit.type": "claimkit/dataset/v1", "padding": "x" * 100})
    real = release.ct_equal

    def replace_file_then_compare(a: bytes, b: bytes) -> bool:
        (tmp_path / DATA_FILE).write_bytes(other)   # another header length: other offsets
        return real(a, b)

    monkeypatch.setattr(release, "ct_equal", replace_file_then_compare)
    assert load_release(tmp_path).data_digest == data.digest


@pytest.mark.parametrize("member, value", [
    ("num_classes", 3), ("verification_key", {"sha256": "07" * 32}), ("scheme", "ubw-c"),
    ("base_digest", {"sha256": "00" * 32}), ("extra", {"note": 1}), ("name", "other")])
def test_release_digest_binds_the_manifest(tmp_path, member, value):
    """The digest once covered the name and arrays only: ``num_classes`` (the width of
    every model trained on the release) or ``verification_key`` (what ``register
    --dataset`` checks) could be edited and the release still loaded, under its digest."""
    data = tiny_release(tmp_path / "rel")
    registered = load_release(tmp_path / "rel").digest
    assert registered != data.digest        # not the arrays' digest alone
    manifest = json.loads((tmp_path / "rel" / MANIFEST).read_text())
    manifest[member] = value
    (tmp_path / "rel" / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(MalformedInputError, match="release digest differs"):
        load_release(tmp_path / "rel")
    # Re-sealed by whoever edited it, it is another release, with another digest.
    manifest["digest"] = release_digest(
        canonical_json({k: v for k, v in manifest.items() if k not in ("file", "digest")}),
        Dataset.digest.fget(SimpleNamespace(**{**vars(data), "name": manifest["name"]}))).to_dict()
    (tmp_path / "rel" / MANIFEST).write_text(json.dumps(manifest))
    assert load_release(tmp_path / "rel").digest != registered


def test_release_labels_outside_the_classes_name_the_folder(tmp_path):
    """The refusal named the base data set ("tiny train: ..."), not the folder given."""
    from safetensors.numpy import save

    data = tiny_release(tmp_path)
    arrays = {name: getattr(data, name) for name in ("x_train", "y_train", "x_test", "y_test")}
    arrays["y_train"] = np.where(np.arange(6) == 0, 2, data.y_train)     # label 2 of 2 classes
    blob = save(arrays, metadata={"claimkit.type": "claimkit/dataset/v1"})
    (tmp_path / DATA_FILE).write_bytes(blob)
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    manifest["file"]["sha256"] = hashlib.sha256(blob).hexdigest()
    (tmp_path / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(MalformedInputError) as e:
        load_release(tmp_path)
    assert str(e.value) == f"{tmp_path / DATA_FILE}: tiny train: labels outside [0, 2)"


def test_a_release_whose_digest_covers_the_data_only_says_so(tmp_path):
    data = tiny_release(tmp_path)
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    manifest["digest"] = data.digest.to_dict()       # as claimkit wrote it before
    (tmp_path / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(MalformedInputError, match="older claimkit"):
        load_release(tmp_path)


def test_release_splits_must_hold_images(tmp_path):
    from types import SimpleNamespace

    from safetensors.numpy import save

    data = tiny_release(tmp_path)
    # A consistent release (file hash and dataset digest match) with an empty test split.
    arrays = {"x_train": data.x_train, "y_train": data.y_train,
              "x_test": data.x_test[:0], "y_test": data.y_test[:0]}
    blob = save(arrays, metadata={"claimkit.type": "claimkit/dataset/v1"})
    (tmp_path / DATA_FILE).write_bytes(blob)
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    manifest["test"] = 0
    manifest["file"]["sha256"] = hashlib.sha256(blob).hexdigest()
    manifest["digest"] = Dataset.digest.fget(SimpleNamespace(name="tiny", **arrays)).to_dict()
    (tmp_path / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(MalformedInputError, match=r"\.test: 0 outside \[1, "):
        load_release(tmp_path)


def test_wire_objects_match_their_schemas(tmp_path, digits, keys):
    import jsonschema
    from referencing import Registry, Resource

    spec = Path(__file__).parents[2] / "protocol_spec" / "schemas"
    schemas = {p.name: json.loads(p.read_text()) for p in spec.glob("*.json")}
    registry = Registry().with_resources(
        (s["$id"], Resource.from_contents(s)) for s in schemas.values())

    def validate(instance, schema):
        jsonschema.Draft202012Validator(schema, registry=registry).validate(instance)

    get_backend("ubw-p").mark(keys["ubw-p"], digits, tmp_path / "rel", MarkOptions(device="cpu"))
    validate(json.loads((tmp_path / "rel" / MANIFEST).read_text()), schemas["dataset-manifest.json"])
    ubw = schemas["ubw.json"]["$id"]
    for mk in keys.values():
        validate(mk.verification_key.params, {"$ref": f"{ubw}#/$defs/params"})
        for value in mk.items.values[:5]:
            validate(value, {"$ref": f"{ubw}#/$defs/item"})
    validate([[0.9, 0.1], [1, 0]], {"$ref": f"{ubw}#/$defs/answers"})
    with pytest.raises(jsonschema.ValidationError):
        validate([[0.9, 1.1], [1, 0]], {"$ref": f"{ubw}#/$defs/answers"})


# -- the whole story from the command line ------------------------------------------------------
@pytest.fixture(scope="module")
def owner(tmp_path_factory, keys):
    folder = tmp_path_factory.mktemp("owner")
    assert run("keys", "new", "--out", folder / "owner.key").exit_code == 0
    assert run("registry", "init", folder / "reg").exit_code == 0
    for scheme, mk in keys.items():
        mk.save(folder / scheme, "pw", strength="min")
    return folder


def claim_and_verify(owner, scheme: str, model, open_: int) -> tuple[int, dict]:
    bundle = owner / f"{scheme}-{model.stem}.bundle.json"
    result = run("claim", owner / scheme, "--receipt", owner / f"{scheme}.receipt", "--registry",
                 owner / "reg", "--model", model, "--identity", owner / "owner.key",
                 "--open", open_, "--out", bundle)
    assert result.exit_code == 0, result.output
    result = run("verify", bundle, "--registry-key", owner / "reg" / "log.vkey", "--model", model,
                 "--json")
    assert result.exit_code in (0, 1), result.output
    report = json.loads(result.output)
    assert report["evidence"]["result"]["test"] == "paired-t-margin"
    assert report["evidence"]["details"]["pairs"] == open_ and report["observer"] == "arbiter"
    return result.exit_code, report


def mark_register_train(owner, scheme: str) -> tuple:
    keydir, rel = owner / scheme, owner / f"{scheme}-release"
    result = run("mark", keydir, "--data", "digits", "--device", "cpu", "--out", rel)
    assert result.exit_code == 0, result.output
    assert "register it before release" in result.output
    # UBW-C (re-trained once here) shows its last surrogate's losses before the release.
    assert ("under the key's trigger and" in result.output) == (scheme == "ubw-c")
    result = run("register", keydir, "--registry", owner / "reg", "--identity", owner / "owner.key",
                 "--dataset", rel, "--out", owner / f"{scheme}.receipt", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["subject"]["sha256"] == load_release(rel).digest.hex
    suspect = owner / f"{scheme}-suspect.safetensors"
    result = run("train", "--data", rel, "--seed", "7", "--device", "cpu", "--out", suspect)
    assert result.exit_code == 0, result.output
    return keydir, rel, suspect


@pytest.fixture(scope="module")
def flow(owner):
    """``flow(scheme)``: mark → register → train a suspect, once per module for each scheme,
    whichever test asks first (the UBW-C test claims under the UBW-P key too, so it must not
    rely on the UBW-P test having run)."""
    done: dict[str, tuple] = {}

    def run_flow(scheme: str) -> tuple:
        if scheme not in done:
            done[scheme] = mark_register_train(owner, scheme)
        return done[scheme]

    return run_flow


def test_ubw_p_from_the_command_line(owner, flow, clean_models):
    keydir, rel, suspect = flow("ubw-p")
    result = run("metrics", keydir, "--data", rel, "--model", suspect, "--json")
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.output)
    baseline = json.loads(run("metrics", keydir, "--data", "digits", "--model", clean_models[0],
                              "--json").output)
    assert metrics["ba"] > 0.9 and metrics["asr_a"] > baseline["asr_a"] + 0.05
    assert metrics["dp"] > baseline["dp"]
    assert claim_and_verify(owner, "ubw-p", suspect, 60)[0] == 0
    assert claim_and_verify(owner, "ubw-p", clean_models[0], 30)[0] == 1


def test_ubw_c_from_the_command_line(owner, flow, digits, keys, clean_models):
    """The flow and the release's clean-label, ε-bounded form. The suspect's acceptance
    is not asserted: on digits neither this schedule (PARAMS) nor the paper's implants the
    backdoor (0 of 6 suspects, docs/benchmarks.md, "Nor do the digits")."""
    _, rel, suspect = flow("ubw-c")
    released = load_release(rel)
    assert (released.y_train == digits.y_train).all()
    diff = released.x_train.astype(int) - digits.x_train.astype(int)
    changed = np.flatnonzero(np.abs(diff).reshape(len(diff), -1).max(1) > 0)
    assert 0 < len(changed) <= round(0.1 * len(digits.y_train))
    assert np.abs(diff).max() <= key_params(keys["ubw-c"]).epsilon
    claim_and_verify(owner, "ubw-c", suspect, 19)                  # 38 items: two claims of 19
    assert claim_and_verify(owner, "ubw-c", clean_models[0], 19)[0] == 1
    # A model trained on another owner's watermarked set: the UBW-P owner has no claim on it.
    flow("ubw-p")                                                  # its key registered
    assert claim_and_verify(owner, "ubw-p", suspect, 30)[0] == 1


def test_mark_warns_when_the_last_surrogate_loses_no_more_than_tau():
    """At CPU scale no UBW-C release whose last surrogate lost no more than τ under the key's
    trigger gave its owner a claim (docs/benchmarks.md, "Which classes take a UBW-C
    release"): `mark` says so before the release, and only then."""
    gaps = [{"after_step": 0, "key": 0.15, "any_other": 0.13},
            {"after_step": 80, "key": 0.73, "any_other": 0.44}]
    line = _specificity_line({"source": 4, "surrogate_gaps": gaps}, 0.25)
    assert "loses 0.73 of class 4's probability" in line and "0.44 under other" in line
    assert "warning" not in line
    gaps[-1]["key"] = 0.25
    assert "warning: not more than the key's margin τ = 0.25" in _specificity_line(
        {"surrogate_gaps": gaps}, 0.25)
    assert "warning" not in _specificity_line({"surrogate_gaps": gaps}, 0.2)
    assert _specificity_line({"surrogate_gaps": gaps[:1]}, 0.25) == ""   # never re-trained


def test_keygen_says_how_many_items_the_key_commits(tmp_path, digits):
    # ℓ is at most the candidate test images: -p items=100000 gives the whole test split
    result = run("keygen", "--scheme", "ubw-p", "--data", "digits", "-p", "items=100000",
                 "--out", tmp_path / "k")
    assert result.exit_code == 0, result.output
    assert f"(secret; {len(digits.y_test)} committed items)" in result.output


def test_metrics_refuse_a_model_of_another_class_count(digits):
    """A 3-class model measured against a 10-class key gave BA 0.11, ASR-A 0.89, exit 0."""
    from claimkit.schemes.ubw import ubw_metrics
    mk = get_backend("ubw-p").keygen(digits, {"items": "20", "m": "20"}, rng=seeded(1))

    class ThreeClasses:
        input_shape, num_classes = (1, 8, 8), 3

        def labels(self, images): return [0] * len(images)
    with pytest.raises(MalformedInputError, match="into 3 classes; the key is for"):
        ubw_metrics(ThreeClasses(), digits, mk)


def test_metrics_refuses_other_keys(tmp_path, clean_models):
    assert run("keygen", "--data", "digits", "-p", "items=10", "--out", tmp_path / "k").exit_code == 0
    result = run("metrics", tmp_path / "k", "--data", "digits", "--model", clean_models[0])
    assert result.exit_code == 2 and "holds a trigger-set key" in result.output


def test_independent_models_are_never_accused(digits, keys, clean_models):
    from claimkit.ml.oracle import LocalModel
    for path in clean_models:
        oracle = LocalModel.from_file(path, device="cpu")
        for mk in keys.values():
            vk = mk.verification_key
            openings = mk.open(range(vk.items))
            decider = decider_for(mk.scheme)
            answers = get_backend(mk.scheme).answerer(oracle, vk)(decider.queries(vk, openings))
            evidence = decider.decide(vk, openings, answers)
            assert not evidence.accepted and evidence.result.p_value > 0.01, (path, mk.scheme)


@pytest.mark.parametrize("target", ["contrast", "specific"])
def test_ubw_c_crafting_does_not_depend_on_the_storage_order(digits, clean_models, target):
    """Each batch of poisons is matched on its own, so the batches must not follow the
    storage order: an ImageFolder tree is stored class by class, and one class a batch
    aligned worse (a Fashion-MNIST key: 0.61, and 0.77 batched by norm). Poisons are
    batched by gradient norm, as in the authors' code: the same set stored by class
    crafts the same perturbations."""
    from claimkit.schemes.ubw import UBWCParams, make_patch
    from claimkit.schemes.ubw_c import craft

    params = UBWCParams(num_classes=10, input_shape=(1, 8, 8), steps=20, retrains=0,
                        target=target)
    trigger = make_patch(np.random.default_rng(1), 2, "random")
    options = MarkOptions(device="cpu", progress=False, start_from=str(clean_models[0]))
    by_class = np.argsort(digits.y_train, kind="stable")
    stored_by_class = Dataset(digits.name, digits.x_train[by_class], digits.y_train[by_class],
                              digits.x_test, digits.y_test, digits.num_classes)
    x, record = craft(digits, params, trigger, np.random.default_rng(2), options)
    x_by_class, record_by_class = craft(stored_by_class, params, trigger,
                                        np.random.default_rng(2), options)
    assert np.abs(x.astype(int) - digits.x_train.astype(int)).max() <= params.epsilon
    changed = np.abs(x_by_class.astype(int) - x[by_class].astype(int))
    assert (changed.reshape(len(x), -1).max(1) > 1).sum() == 0   # float rounding: ±1 level
    assert abs(record["final_alignment"] - record_by_class["final_alignment"]) < 1e-3
    # Where the time went: every phase of this schedule, and no more than the whole.
    phases = record["phase_seconds"]
    assert set(phases) == {"surrogate", "selection", "target", "gaps", "steps", "write"}
    assert 0 < sum(phases.values()) <= record["crafting_seconds"] + 1e-6


def test_ubw_c_alternates_with_surrogates_trained_as_long_as_the_recipe(digits, clean_models):
    """The lower level of App. B: between rounds of steps the surrogate is re-trained on the
    current poisons, by default for the recipe's epochs (digits: 15), the paper's
    "train the model" rather than a shortened run."""
    from claimkit.ml.recipes import recipe
    from claimkit.schemes.ubw import UBWCParams, make_patch
    from claimkit.schemes.ubw_c import craft

    params = UBWCParams(num_classes=10, input_shape=(1, 8, 8), steps=2, retrains=1)
    options = MarkOptions(device="cpu", progress=False, start_from=str(clean_models[0]))
    x, record = craft(digits, params, make_patch(np.random.default_rng(1), 2, "random"),
                      np.random.default_rng(2), options)
    assert record["surrogate_trainings"] == 1
    assert record["surrogate_epochs"] == recipe("digits")["epochs"] == 15
    assert set(record["phase_seconds"]) == {"surrogate", "selection", "target", "gaps",
                                           "steps", "retraining", "write"}
    # Each surrogate's losses under the key's square and other squares: the starting one
    # and the re-trained one.
    assert [g["after_step"] for g in record["surrogate_gaps"]] == [0, 1]
    assert all(set(g) == {"after_step", "key", "any_other"} and -1 <= g["key"] <= 1
               for g in record["surrogate_gaps"])
    assert np.abs(x.astype(int) - digits.x_train.astype(int)).max() <= params.epsilon


def test_ubw_c_warm_retraining_continues_the_surrogate_on_the_current_poisons(
        digits, clean_models, monkeypatch):
    """``warm=k`` (ours, the cheap lower level): each re-training continues the current
    surrogate for k epochs on the poisoned set as it stands, instead of a new model
    trained for the recipe's epochs."""
    import claimkit.schemes.ubw_c as ubw_c
    from claimkit.schemes.ubw import UBWCParams, make_patch

    calls = []
    real_train = ubw_c.train

    def spy(model, data, config, **kwargs):
        calls.append((model, data.x_train.copy(), config.epochs))
        return real_train(model, data, config, **kwargs)

    def no_build(*args, **kwargs):
        raise AssertionError("a warm re-training builds no new model")

    monkeypatch.setattr(ubw_c, "train", spy)
    monkeypatch.setattr(ubw_c, "build", no_build)
    params = UBWCParams(num_classes=10, input_shape=(1, 8, 8), steps=4, retrains=2, warm=1)
    options = MarkOptions(device="cpu", progress=False, start_from=str(clean_models[0]))
    x, record = ubw_c.craft(digits, params, make_patch(np.random.default_rng(1), 2, "random"),
                            np.random.default_rng(2), options)
    assert [epochs for _, _, epochs in calls] == [1, 1]
    assert calls[0][0] is calls[1][0]                 # one surrogate, continued
    assert record["warm"] == 1 and record["surrogate_trainings"] == 2
    assert [g["after_step"] for g in record["surrogate_gaps"]] == [0, 1, 3]
    for _, x_seen, _ in calls:                        # the poisons as they stood
        moved = (x_seen != digits.x_train).reshape(len(x_seen), -1).any(1).sum()
        assert 0 < moved <= record["poisoned"]
    assert not np.array_equal(calls[0][1], calls[1][1])   # steps came between the two


@pytest.mark.parametrize("decay, sizes", [
    ("all", [0, 0, 0, 1, 1, 2, 2, 3]),      # the authors': ×0.1 after steps 3, 5 and 7 of 8
    ("round", [0, 1, 2, 3, 0, 1, 2, 3]),    # ours: each of the two rounds from the full size
])
def test_ubw_c_step_size_decays_over_all_steps_or_each_round(digits, clean_models,
                                                             monkeypatch, decay, sizes):
    """``decay``: the step size is cut ×0.1 at 3/8, 5/8 and 7/8 of all the steps (the
    authors' MultiStepLR) or of each round between re-trainings, the next round starting
    at the full size again. The sizes each step was taken with, as 0.025·10^−k."""
    import torch
    import claimkit.schemes.ubw_c as ubw_c
    from claimkit.schemes.ubw import UBWCParams, make_patch

    taken = []
    real_step = torch.optim.Adam.step

    def spy(self, *args, **kwargs):
        taken.append(self.param_groups[0]["lr"])
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", spy)
    params = UBWCParams(num_classes=10, input_shape=(1, 8, 8), steps=8, retrains=1, warm=1,
                        decay=decay)
    options = MarkOptions(device="cpu", progress=False, start_from=str(clean_models[0]))
    _, record = ubw_c.craft(digits, params, make_patch(np.random.default_rng(1), 2, "random"),
                            np.random.default_rng(2), options)
    assert record["decay"] == decay and record["surrogate_trainings"] == 1
    assert taken == pytest.approx([0.025 * 10.0 ** -k for k in sizes])


def test_ubw_c_can_match_the_last_layers_only(digits, clean_models):
    """``match_layers=k`` (ours, a cheaper step): the cosine is taken over the gradient of
    the last k convolutional and linear layers only. For the last linear layer W·h + b the
    gradient of the mean cross-entropy has the closed form ((p − y)·hᵀ, p − y)/n, so the
    step's loss and its gradient to the perturbations are checked against that."""
    import torch
    import torch.nn.functional as F
    from torch import nn
    from claimkit.ml.models import load_model
    from claimkit.ml.train import as_tensor
    from claimkit.schemes.ubw import UBWCParams, make_patch
    from claimkit.schemes.ubw_c import craft, matched_parameters, matching_gradient

    model, _ = load_model(clean_models[0], device="cpu")
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    linear = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    assert matched_parameters(model) == list(model.parameters())
    assert matched_parameters(model, 1) == [linear.weight, linear.bias]
    assert matched_parameters(model, 2) == [convs[-1].weight, linear.weight, linear.bias]

    x = as_tensor(digits.x_train[:40], torch.device("cpu"))
    y = torch.from_numpy(digits.y_train[:40])
    delta = torch.full_like(x, 0.02)
    target = torch.randn(linear.weight.numel() + linear.bias.numel(),
                         generator=torch.Generator().manual_seed(0))
    target /= target.norm()
    grad, total = matching_gradient(model, x, y, delta, target, batch=40, shift=0,
                                    generator=torch.Generator(),
                                    weights=matched_parameters(model, 1))

    d = delta.clone().requires_grad_(True)
    features = []
    hook = linear.register_forward_hook(lambda m, i, o: features.append(i[0]))
    logits = model(x + d)
    hook.remove()
    error = (torch.softmax(logits, 1) - F.one_hot(y, 10)) / len(y)
    closed = torch.cat([(error.T @ features[0]).reshape(-1), error.sum(0)])
    loss = 1 - closed @ target / closed.norm()
    loss.backward()
    assert float(total) == pytest.approx(loss.item() * len(y), rel=1e-4)
    assert torch.allclose(grad, d.grad, rtol=1e-3, atol=1e-7) and d.grad.abs().sum() > 0

    params = UBWCParams(num_classes=10, input_shape=(1, 8, 8), steps=2, retrains=0,
                        match_layers=2)
    options = MarkOptions(device="cpu", progress=False, start_from=str(clean_models[0]))
    x_marked, record = craft(digits, params, make_patch(np.random.default_rng(1), 2, "random"),
                             np.random.default_rng(2), options)
    assert record["match_layers"] == 2 and 0 < record["final_alignment"] <= 1
    moved = np.abs(x_marked.astype(int) - digits.x_train.astype(int))
    assert 0 < moved.max() <= params.epsilon


def test_ubw_c_decoys_are_other_squares_at_random_places_and_never_poisons(tmp_path, digits,
                                                                           clean_models):
    """UBW-C's decoys (ours): other squares at random places, labels kept, in the release
    and in the re-trained surrogates' data; no decoy is picked as a poison."""
    backend = get_backend("ubw-c")
    mk = backend.keygen(digits, {**PARAMS["ubw-c"], "steps": "4", "decoys": "0.2"},
                        rng=seeded(5))
    decoys = mk.secret["decoys"]
    idx, rows, cols = (np.asarray(decoys[k]) for k in ("indices", "rows", "cols"))
    assert len(idx) == round(0.2 * len(digits.y_train)) and len(set(zip(rows, cols))) > 1
    record = backend.mark(mk, digits, tmp_path / "rel", MarkOptions(
        device="cpu", progress=False, start_from=str(clean_models[0])))
    assert record["decoys"] == len(idx) and record["surrogate_trainings"] == 1
    data = load_release(tmp_path / "rel")
    key = Trigger.from_secret(mk.secret["trigger"]).pattern
    s = key.shape[0]
    squares = np.stack([data.x_train[i, 0, r:r + s, c:c + s] for i, r, c in zip(idx, rows, cols)])
    assert not (squares == key).all(axis=(1, 2)).any()
    assert ((squares == 0).any(axis=(1, 2)) & (squares == 255).any(axis=(1, 2))).all()
    # Outside its square a decoy is the base image, so it was not perturbed as a poison.
    outside = np.ones(data.x_train[idx].shape, dtype=bool)
    for j, (r, c) in enumerate(zip(rows, cols)):
        outside[j, :, r:r + s, c:c + s] = False
    assert (data.x_train[idx][outside] == digits.x_train[idx][outside]).all()
    assert (data.y_train == digits.y_train).all()
    rest = np.setdiff1d(np.arange(len(digits.y_train)), idx)
    moved = np.abs(data.x_train[rest].astype(int) - digits.x_train[rest].astype(int))
    assert moved.max() <= mk.secret["params"]["epsilon"]
    assert record["poisoned"] // 2 < (moved.reshape(len(rest), -1).max(1) > 0).sum() <= record["poisoned"]
    plain = backend.keygen(digits, PARAMS["ubw-c"], rng=seeded(5))
    assert "decoys" not in plain.secret and plain.secret["trigger"] == mk.secret["trigger"]


def test_ubw_c_decoys_can_come_from_the_source_class_only(digits):
    """``decoy_class=source`` (ours): the same share of the training set, every decoy an
    image of the attacked class, where a release must learn that other triggers change
    nothing; the default draws them from all classes, as it did before the option."""
    backend = get_backend("ubw-c")
    params = {**PARAMS["ubw-c"], "decoys": "0.02", "source": "3", "m": "20"}
    drawn = backend.keygen(digits, params, rng=seeded(5)).secret["decoys"]["indices"]
    assert len(set(digits.y_train[drawn].tolist())) > 1
    mk = backend.keygen(digits, {**params, "decoy_class": "source"}, rng=seeded(5))
    idx = np.asarray(mk.secret["decoys"]["indices"])
    assert len(idx) == round(0.02 * len(digits.y_train)) and (digits.y_train[idx] == 3).all()
    assert len(set(idx.tolist())) == len(idx)
    # A share beyond the class is refused (it once took the whole class, silently).
    with pytest.raises(MalformedInputError, match="asks for 719 decoys; there are 155"):
        backend.keygen(digits, {**params, "decoys": "0.5", "decoy_class": "source"},
                       rng=seeded(5))


def test_decoy_places_outside_the_images_are_refused(digits):
    from claimkit.schemes.ubw import make_patch, stamp_decoys
    from claimkit.wire import b64encode

    trigger = make_patch(np.random.default_rng(1), 2, "random")
    decoys = {"indices": [0], "patterns": b64encode(bytes([0, 255, 0, 255])), "rows": [7],
              "cols": [0]}
    with pytest.raises(MalformedInputError, match="decoy places"):
        stamp_decoys(digits.x_train.copy(), decoys, trigger)
    stamp_decoys(digits.x_train.copy(), {**decoys, "rows": [6]}, trigger)


@pytest.mark.gpu
def test_ubw_c_crafts_on_cuda(tmp_path, digits):
    import torch
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    backend = get_backend("ubw-c")
    mk = backend.keygen(digits, {"items": "30", "m": "20", "steps": "3", "retrains": "1"},
                        rng=seeded(5))
    record = backend.mark(mk, digits, tmp_path / "rel", MarkOptions(device="cuda", progress=False))
    assert record["poisoned"] == round(0.1 * len(digits.y_train)) and record["crafting_seconds"] > 0
    released = load_release(tmp_path / "rel")
    assert np.abs(released.x_train.astype(int) - digits.x_train.astype(int)).max() <= 16


# -- fresh triggers (ours; docs/proposals/ubw-c-key-specific-test.md, step 1) ---------------------
def registered_claims(tmp_path: Path, mk):
    """A registry holding ``mk``'s key for alice, alice's identity, and claim(model path,
    digest) → (bundle, the arbiter's report, the model): alice's claim opening 15 items,
    round-tripped through JSON and verified by an arbiter who re-queries the model."""
    from claimkit.claim.bundle import ClaimBundle
    from claimkit.claim.make import make_claim
    from claimkit.claim.verify import verify_claim
    from claimkit.identity import Identity
    from claimkit.ml.oracle import LocalModel
    from claimkit.registry.entries import Registration, sign_request
    from claimkit.registry.log import Registry

    from conftest import LOG_SEED, PASSPHRASE, FakeClock

    vk = mk.verification_key
    registry = Registry.init(tmp_path / "reg", origin="test.example/fresh", passphrase=PASSPHRASE,
                             clock=FakeClock(), key_strength="min", log_seed=LOG_SEED)
    owner = Identity.generate("alice", seed=b"\x11" * 32)
    request = Registration(owner.public, vk.scheme, vk.digest, vk.items)
    registration = registry.register(request, sign_request(request, owner))

    def claim(path: Path, digest: Digest):
        model = LocalModel.from_file(path, device="cpu")
        ask = get_backend(vk.scheme).answerer(model, vk)
        bundle = make_claim(registry, mk, registration, digest, ask=ask, identity=owner, k=15)
        bundle = ClaimBundle.from_json(bundle.to_json())
        return bundle, verify_claim(bundle, log_key=registry.log_key, oracle=ask), model

    return registry, owner, claim


def assert_a_fresh_claim(bundle, report) -> None:
    """The arbiter's re-query gave the owner's answers, K + 2 = 101 for each of 15 items,
    and the verdict is Prop. 1's and the rank test's together, p the larger."""
    ev = report.evidence
    assert report.observer == "arbiter" and report.answers_differ == 0
    assert [len(a) for a in bundle.predicate.answers.values] == [101] * 15
    assert ev.result.test == "paired-t-margin-and-rank" and ev.details["fresh"] == 99
    assert ev.result.p_value == max(ev.details["p_prop1"], ev.details["p_rank"])
    assert ev.accepted == (ev.details["p_prop1"] < 0.01 and ev.details["p_rank"] <= 0.01)


def test_ubw_c_with_fresh_triggers_from_keygen_to_an_arbiters_requery(tmp_path, digits, keys,
                                                                      clean_models):
    """keygen -p fresh=99 → mark → train → claim → verify, with the arbiter re-querying.
    As for the flow above, whether digits implants the backdoor is not asserted: the
    verdict's p is the larger of Prop. 1's and the rank test's, the arbiter recomputes
    the same answers, an edited fresh answer is caught, and a clean model is rejected."""
    import copy
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "claim"))
    from test_flow import resign

    from claimkit.claim.verify import verify_claim
    from claimkit.errors import VerificationError
    from claimkit.ml.jobs import fit_and_save
    from claimkit.ml.oracle import LocalModel
    from claimkit.protocol.ubw_decider import UBWDecider

    backend = get_backend("ubw-c")
    mk = backend.keygen(digits, {**PARAMS["ubw-c"], "fresh": "99"}, rng=seeded(21))
    vk = mk.verification_key
    assert (vk.params["fresh"], vk.params["side"]) == (99, 2)
    assert all(len(v["place"]) == 2 for v in mk.items.values)
    default = keys["ubw-c"]                                # without fresh: as before
    assert not {"fresh", "side"} & default.verification_key.params.keys()
    assert all("place" not in v for v in default.items.values)
    backend.mark(mk, digits, tmp_path / "rel", MarkOptions())
    suspect, _ = fit_and_save(load_release(tmp_path / "rel"), tmp_path / "suspect.safetensors",
                              epochs=5, seed=7, device="cpu", progress=False)

    registry, owner, claim = registered_claims(tmp_path, mk)
    bundle, report, _ = claim(tmp_path / "suspect.safetensors", suspect)
    assert_a_fresh_claim(bundle, report)
    assert all(q["fresh"]["count"] == 99 for q in bundle.predicate.queries)

    # A fresh answer edited: the bundle's evidence no longer follows from its answers; with
    # the evidence recomputed too, the arbiter's re-query counts the edited answer.
    predicate = copy.deepcopy(bundle.statement.predicate)
    predicate["answers"]["values"][3][50] = 1.0 - predicate["answers"]["values"][3][50]
    with pytest.raises(VerificationError, match="evidence differs"):
        verify_claim(resign(bundle, predicate, owner), log_key=registry.log_key)
    answers = predicate["answers"]["values"]
    predicate["evidence"] = UBWDecider("ubw-c").decide(
        vk, bundle.predicate.openings, answers).to_dict()
    forged = resign(bundle, predicate, owner)
    ask = backend.answerer(LocalModel.from_file(tmp_path / "suspect.safetensors", device="cpu"), vk)
    assert verify_claim(forged, log_key=registry.log_key, oracle=ask).answers_differ == 1

    _, clean, _ = claim(clean_models[0], Digest.of(clean_models[0].read_bytes()))
    assert not clean.accepted
    registry.close()



def test_ubw_c_with_fresh_warping_fields_from_keygen_to_an_arbiters_requery(tmp_path, digits,
                                                                           clean_models):
    """keygen -p trigger=warp -p fresh=99 → mark → train → claim → verify: the key names the
    field's grid and strength (not a side), the items carry the key's field (no triggered
    image), the answerer's P_p is on the image warped by it, the arbiter's re-query gives
    the same answers and a clean model is rejected; keys without fresh are unchanged."""
    from claimkit.ml.jobs import fit_and_save

    backend = get_backend("ubw-c")
    params = {**PARAMS["ubw-c"], "steps": "2", "retrains": "0", "trigger": "warp",
              "warp_strength": "2"}
    mk = backend.keygen(digits, {**params, "fresh": "99"}, rng=seeded(6))
    vk = mk.verification_key
    assert {k: vk.params[k] for k in ("fresh", "grid", "warp_strength")} == \
        {"fresh": 99, "grid": 4, "warp_strength": 2.0} and "side" not in vk.params
    trigger = Trigger.from_secret(mk.secret["trigger"])
    assert all(set(v) == {"image", "label", "field"} for v in mk.items.values)
    assert {v["field"] for v in mk.items.values} == {mk.secret["trigger"]["field"]}
    plain = backend.keygen(digits, params, rng=seeded(6))      # without fresh: as before
    assert list(plain.items.values) == [{**v, "triggered": base64.b64encode(trigger.apply(
        np.frombuffer(base64.b64decode(v["image"]), np.uint8).reshape(1, 1, 8, 8).copy()).tobytes())
        .decode()} for v in ({"image": w["image"], "label": w["label"]} for w in mk.items.values)]
    assert plain.verification_key.params == {k: v for k, v in vk.params.items()
                                             if k not in ("fresh", "grid", "warp_strength")}
    backend.mark(mk, digits, tmp_path / "rel", MarkOptions(
        device="cpu", progress=False, start_from=str(clean_models[0])))
    suspect, _ = fit_and_save(load_release(tmp_path / "rel"), tmp_path / "suspect.safetensors",
                              epochs=3, seed=7, device="cpu", progress=False)

    registry, _, claim = registered_claims(tmp_path, mk)
    bundle, report, model = claim(tmp_path / "suspect.safetensors", suspect)
    assert_a_fresh_claim(bundle, report)
    opened = [o.value for o in bundle.predicate.openings]
    benign = np.stack([np.frombuffer(base64.b64decode(v["image"]), np.uint8).reshape(1, 8, 8)
                       for v in opened])                  # np.stack copies: writable
    labels = np.array([v["label"] for v in opened])
    p_p = model.probabilities(trigger.apply(benign))[np.arange(15), labels]
    assert [a[1] for a in bundle.predicate.answers.values] == pytest.approx(p_p, abs=1e-6)

    _, clean, _ = claim(clean_models[1], Digest.of(clean_models[1].read_bytes()))
    assert not clean.accepted
    registry.close()


def test_fresh_triggers_from_the_command_line(tmp_path, clean_models):
    """The CLI carries a fresh key's claim end to end: keygen -p fresh=99, register, claim,
    verify (an independently trained clean model: rejected, on the combined test)."""
    keydir, reg = tmp_path / "keys", tmp_path / "reg"
    assert run("keys", "new", "--out", tmp_path / "owner.key").exit_code == 0
    assert run("registry", "init", reg).exit_code == 0
    result = run("keygen", "--scheme", "ubw-c", "--data", "digits", "-p", "items=40", "-p", "m=20",
                 "-p", "fresh=99", "--out", keydir, "--json")
    assert result.exit_code == 0, result.output
    assert run("register", keydir, "--registry", reg, "--identity", tmp_path / "owner.key",
               "--out", tmp_path / "receipt.json").exit_code == 0
    bundle = tmp_path / "bundle.json"
    result = run("claim", keydir, "--receipt", tmp_path / "receipt.json", "--registry", reg,
                 "--model", clean_models[0], "--identity", tmp_path / "owner.key", "--out", bundle)
    assert result.exit_code == 0, result.output
    result = run("verify", bundle, "--registry-key", reg / "log.vkey", "--json")
    assert result.exit_code == 1, result.output
    evidence = json.loads(result.output)["evidence"]
    assert evidence["result"]["test"] == "paired-t-margin-and-rank"
    assert evidence["details"]["pairs"] == 20 and evidence["details"]["fresh"] == 99
    result = run("keygen", "--scheme", "ubw-c", "--data", "digits", "-p", "fresh=50",
                 "--out", tmp_path / "k2")
    assert result.exit_code == 2 and "K >= 99" in result.output, result.output


def test_a_drawn_key_from_the_command_line(tmp_path, monkeypatch):
    """keygen -p draw=log → draw → mark → register → train → claim → verify, the CLI's
    whole flow for a key whose trigger comes from the log; register and mark refuse an
    undrawn key, a key is drawn once, and a draw interrupted after its entry was logged
    completes from the receipt kept in KEYDIR, without drawing again."""
    import claimkit.schemes.ubw as ubw
    from claimkit.registry.log import Registry

    keydir, reg, owner = tmp_path / "keys", tmp_path / "reg", tmp_path / "owner.key"
    assert run("keys", "new", "--out", owner).exit_code == 0
    assert run("registry", "init", reg).exit_code == 0
    params = [a for k, v in {**PARAMS["ubw-c"], "m": "20"}.items() for a in ("-p", f"{k}={v}")]
    result = run("keygen", "--scheme", "ubw-c", "--data", "digits", *params,
                 "-p", "fresh=99", "-p", "draw=log", "--out", keydir)
    assert result.exit_code == 0 and "claimkit draw" in result.output, result.output
    assert "trigger_commitment" in json.loads((keydir / "verification-key.json").read_text())["params"]
    register = ("register", keydir, "--registry", reg, "--identity", owner)
    result = run(*register, "--out", tmp_path / "early.json")
    assert result.exit_code == 2 and "not been drawn" in result.output, result.output
    result = run("mark", keydir, "--data", "digits", "--device", "cpu", "--out", tmp_path / "x")
    assert result.exit_code == 2 and "not been drawn yet" in result.output, result.output

    # A key sealed at another strength than the CLI's (through the API) is sealed again at it.
    from claimkit.protocol.keys import MarkingKey
    phrase = ENV["CLAIMKIT_PASSPHRASE"]
    MarkingKey.load(keydir, phrase).save(keydir, phrase, strength="min", overwrite=True)

    def stop(*_):
        raise KeyboardInterrupt
    monkeypatch.setattr(ubw, "complete_draw", stop)      # the draw is logged, then the run stops
    assert run("draw", keydir, "--registry", reg, "--identity", owner).exit_code != 0
    monkeypatch.undo()
    assert (keydir / "trigger-draw.json").exists()
    with Registry.open(reg) as log:
        size = log.size
    result = run("draw", keydir, "--registry", reg, "--identity", owner, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["index"] == size - 1
    with Registry.open(reg) as log:
        assert log.size == size and log.audit().draws == 1
    result = run("draw", keydir, "--registry", reg, "--identity", owner)
    assert result.exit_code == 2 and "drawn already" in result.output, result.output
    assert MarkingKey.sealed_strength(keydir) == "min"

    rel, suspect = tmp_path / "rel", tmp_path / "suspect.safetensors"
    assert run("mark", keydir, "--data", "digits", "--device", "cpu", "--out", rel).exit_code == 0
    assert run(*register, "--dataset", rel, "--out", tmp_path / "receipt.json").exit_code == 0
    assert run("train", "--data", rel, "--seed", "7", "--device", "cpu", "--epochs", "5",
               "--out", suspect).exit_code == 0
    bundle = tmp_path / "bundle.json"
    result = run("claim", keydir, "--receipt", tmp_path / "receipt.json", "--registry", reg,
                 "--model", suspect, "--identity", owner, "--out", bundle)
    assert result.exit_code == 0, result.output
    payload = json.loads(base64.b64decode(json.loads(bundle.read_text())["payload"]))
    assert set(payload["predicate"]["trigger_draw"]) == {"receipt", "secret", "consistency"}
    result = run("verify", bundle, "--registry-key", reg / "log.vkey", "--model", suspect, "--json")
    assert result.exit_code in (0, 1), result.output
    report = json.loads(result.output)
    assert report["observer"] == "arbiter" and report["answers_differ"] == 0
    assert report["evidence"]["result"]["test"] == "paired-t-margin-and-rank"


def test_draw_refuses_what_a_verifier_would(tmp_path):
    """`claimkit draw` and `register` refuse a kept receipt of another key, a corrupt
    one, and a draw by someone else (which a verifier would refuse at claim time), with
    a message that names the file; a key drawn by another owner is reported with how to
    go on."""
    import shutil

    reg, alice, bob = tmp_path / "reg", tmp_path / "alice.key", tmp_path / "bob.key"
    for who in (alice, bob):
        assert run("keys", "new", "--out", who).exit_code == 0
    assert run("registry", "init", reg).exit_code == 0
    for name in ("k1", "k2", "k3"):
        assert run("keygen", "--scheme", "ubw-c", "--data", "digits", "-p", "items=40",
                   "-p", "m=20", "-p", "fresh=99", "-p", "draw=log",
                   "--out", tmp_path / name).exit_code == 0
    assert run("draw", tmp_path / "k1", "--registry", reg, "--identity", alice).exit_code == 0
    shutil.copy(tmp_path / "k1" / "trigger-draw.json", tmp_path / "k2" / "trigger-draw.json")
    result = run("draw", tmp_path / "k2", "--registry", reg, "--identity", alice)
    assert result.exit_code == 2 and "k2/trigger-draw.json is not this key's draw" in result.output
    (tmp_path / "k2" / "trigger-draw.json").write_text("{}")
    result = run("register", tmp_path / "k2", "--registry", reg, "--identity", alice,
                 "--out", tmp_path / "r.json")
    assert result.exit_code == 2 and "is not this key's draw" in result.output, result.output
    shutil.copytree(tmp_path / "k3", tmp_path / "k3-bob")         # bob draws alice's key first
    assert run("draw", tmp_path / "k3-bob", "--registry", reg, "--identity", bob).exit_code == 0
    result = run("draw", tmp_path / "k3", "--registry", reg, "--identity", alice)
    assert result.exit_code == 1 and "already drawn" in result.output and \
        "--receipt" in result.output, result.output
    result = run("draw", tmp_path / "k3", "--registry", reg, "--identity", alice, "--receipt",
                 tmp_path / "k3-bob" / "trigger-draw.json")
    assert result.exit_code == 2 and "drawn by bob" in result.output, result.output
    assert not (tmp_path / "k3" / "trigger-draw.json").exists()


def test_a_suspect_answering_nan_is_an_oracle_error(digits):
    """np.clip keeps NaN: a suspect's NaN probability reached the decider as the owner's
    malformed answer. It is the suspect's failure: OracleError, before any answer."""
    from claimkit.errors import OracleError
    from claimkit.protocol.scheme import decider_for

    mk = get_backend("ubw-c").keygen(digits, {**PARAMS["ubw-c"], "fresh": "99"}, rng=seeded(3))
    vk = mk.verification_key
    queries = decider_for("ubw-c").queries(vk, mk.open([0, 1]), challenge=b"\x07" * 32)

    class NaNOnFresh:
        num_classes = 10

        def probabilities(self, images):
            out = np.full((len(images), 10), 0.1)
            if len(images) > 2:         # the benign and key images pass, a fresh one is NaN
                out[-1, :] = np.nan
            return out

    with pytest.raises(OracleError, match="NaN or infinite"):
        get_backend("ubw-c").answerer(NaNOnFresh(), vk)(queries)


def test_a_release_file_with_an_extra_array_is_refused(tmp_path):
    """The four arrays and nothing else: a file carrying more (under a matching hash) is
    not the release the manifest describes."""
    from safetensors.numpy import save

    data = tiny_release(tmp_path)
    arrays = {name: getattr(data, name) for name in ("x_train", "y_train", "x_test", "y_test")}
    arrays["x_extra"] = data.x_train
    blob = save(arrays, metadata={"claimkit.type": "claimkit/dataset/v1"})
    (tmp_path / DATA_FILE).write_bytes(blob)
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    manifest["file"]["sha256"] = hashlib.sha256(blob).hexdigest()
    (tmp_path / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(MalformedInputError, match="expected exactly the arrays"):
        load_release(tmp_path)


def test_a_release_is_loaded_for_a_key_only_if_it_names_that_key(tmp_path):
    data = tiny_release(tmp_path)
    assert load_release(tmp_path, marked_with=Digest(b"\x01" * 32)).data_digest == data.digest
    with pytest.raises(MalformedInputError, match="was marked with the key whose"):
        load_release(tmp_path, marked_with=Digest(b"\x02" * 32))


def _rewrite_data(folder: Path, arrays: dict) -> None:
    """Replace the data file and update the file's SHA-256 in the manifest (which the
    release digest does not cover): what someone editing the data set would do."""
    from safetensors.numpy import save
    blob = save(arrays, metadata={"claimkit.type": "claimkit/dataset/v1"})
    (folder / DATA_FILE).write_bytes(blob)
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest["file"]["sha256"] = hashlib.sha256(blob).hexdigest()
    (folder / MANIFEST).write_text(json.dumps(manifest))


def test_edited_data_under_an_updated_file_hash_is_refused(tmp_path):
    """The file's SHA-256 is not bound; the release digest binds the arrays themselves."""
    data = tiny_release(tmp_path)
    arrays = {name: getattr(data, name).copy() for name in ("x_train", "y_train", "x_test", "y_test")}
    arrays["x_train"][0, 0, 0, 0] ^= 1                     # one pixel of one training image
    _rewrite_data(tmp_path, arrays)
    with pytest.raises(MalformedInputError, match="release digest differs"):
        load_release(tmp_path)


def test_arrays_of_another_shape_with_the_same_bytes_are_refused(tmp_path):
    data = tiny_release(tmp_path)
    arrays = {name: getattr(data, name) for name in ("x_train", "y_train", "x_test", "y_test")}
    arrays["x_train"] = data.x_train.reshape(6, 1, 2, 8)
    _rewrite_data(tmp_path, arrays)
    with pytest.raises(MalformedInputError, match=r"x_train is U8 \[6, 1, 2, 8\], the manifest says"):
        load_release(tmp_path)


def test_the_release_digest_is_its_definition(tmp_path):
    data = tiny_release(tmp_path)
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    bound = canonical_json({k: v for k, v in manifest.items() if k not in ("file", "digest")})
    expected = hashlib.sha256(b"claimkit/release/v1\n" + bound + b"\n" + data.digest.value).hexdigest()
    assert load_release(tmp_path).digest.hex == expected == manifest["digest"]["sha256"]


def test_a_data_file_far_larger_than_its_arrays_is_refused_before_it_is_read(tmp_path):
    tiny_release(tmp_path)
    with open(tmp_path / DATA_FILE, "ab") as f:
        f.write(b"\0" * (2 << 20))
    with pytest.raises(MalformedInputError, match="larger than"):
        load_release(tmp_path)


@pytest.mark.parametrize("change, message", [
    (lambda m: m["file"].update(extra=1), "unknown field 'extra'"),
    (lambda m: m["file"].update(sha256="Z" * 64), "file.sha256: expected 64 lowercase hex"),
    (lambda m: m["file"].update(sha256=m["file"]["sha256"].upper()),
     "file.sha256: expected 64 lowercase hex"),
])
def test_the_manifests_file_member_is_checked(tmp_path, change, message):
    tiny_release(tmp_path)
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    change(manifest)
    (tmp_path / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(MalformedInputError, match=message):
        load_release(tmp_path)
