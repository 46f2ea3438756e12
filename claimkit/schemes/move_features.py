"""What MOVE's meta-classifier reads from a model, and how it is trained (Li et al., §5.3).

* :func:`augment` — the five black-box augmentations of §5.3 (identity, horizontal
  flip, translations towards the bottom right, the right and the bottom), on uint8
  images, so owner and arbiter query the very same pixels.
* :func:`blackbox_answers` — a suspect's probability vectors for the augmented
  transformed and source images of each item (the recorded answers, Eq. 7–8).
* :func:`gradient_sign_features` — white-box: the per-sample gradients of the loss with
  respect to the weights, sign(∇_w L(f(x′), y)) (Eq. 4), computed for a whole batch at
  once with ``torch.func`` (``vmap`` over ``grad`` of a ``functional_call``), not one
  backward pass per image; :func:`gradient_sign_features_loop` is that loop, kept as
  the reference the tests and the benchmark compare against.
* :func:`train_meta_classifier` — C, a small MLP on those features, victim-like (1)
  against benign (0), exported in the wire form the pure decider evaluates.

The white-box features summarise the sign vector so that one meta-classifier applies to
*every* network of the architecture, not only to the weights it was trained on. Hidden
units have no fixed order: two independently trained networks agree on a permutation of
their channels at best, so a classifier on the raw sign vector learns the identity of the
reference networks and calls any unseen network "stolen" (measured: independent models
scored 0.67–0.99). Kept are the coordinates every network shares — the kernel position
of a convolution (mean sign over all its input/output channel pairs, kh·kw values), the
class of the output layer (mean sign of each class's row) — and, per layer, the deciles
of the per-unit mean signs, a permutation-invariant picture of their spread.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import MalformedInputError
from ..protocol.move_ewe_deciders import AUGMENTATIONS, MetaClassifier

__all__ = ["augment", "blackbox_answers", "gradient_sign_features",
           "gradient_sign_features_loop", "feature_size", "train_meta_classifier"]

QUANTILES = 9


# -- black-box ------------------------------------------------------------------------------
def _shift(x: np.ndarray, dy: int, dx: int) -> np.ndarray:
    out = np.zeros_like(x)
    h, w = x.shape[-2:]
    out[..., dy:, dx:] = x[..., :h - dy, :w - dx]
    return out


def augment(images: np.ndarray) -> list[np.ndarray]:
    """The §5.3 augmentations of uint8 (N, C, H, W) images, in :data:`AUGMENTATIONS` order."""
    views = [images, np.ascontiguousarray(images[..., ::-1]), _shift(images, 1, 1),
             _shift(images, 0, 1), _shift(images, 1, 0)]
    assert len(views) == len(AUGMENTATIONS)
    return views


def blackbox_answers(probabilities: Callable[[np.ndarray], np.ndarray], num_classes: int,
                     transformed: np.ndarray, source: np.ndarray) -> list[Any]:
    """Per item, the suspect's 2·A probability vectors: T_a(x′) for each a, then T_a(x).

    ``probabilities`` is an oracle's: uint8 (N, C, H, W) → (N, K) class probabilities.
    """
    views = augment(transformed) + augment(source)
    probs = np.asarray(probabilities(np.concatenate(views)), dtype=np.float64)
    if probs.shape != (len(views) * len(transformed), num_classes) or not np.isfinite(probs).all():
        raise MalformedInputError("the suspect's probabilities have the wrong shape or are not finite")
    probs = np.clip(probs, 0.0, 1.0).reshape(len(views), len(transformed), -1)
    return [[[float(v) for v in probs[j, i]] for j in range(len(views))]
            for i in range(len(transformed))]


# -- white-box ------------------------------------------------------------------------------
def _summarise(grads: dict[str, torch.Tensor], num_classes: int) -> torch.Tensor:
    """(N, …) per-sample gradients by parameter name → (N, F) permutation-invariant
    summaries of their signs (module docstring)."""
    qs = None
    parts = []
    for name in sorted(grads):
        g = grads[name]
        if g.ndim < 3:       # biases and normalisation scales: skipped, as in the authors' code
            continue
        s = torch.sign(g.float())
        n = s.shape[0]
        if g.ndim == 5:      # convolution (N, out, in, kh, kw)
            parts.append(s.mean((1, 2)).reshape(n, -1))
            units = s.flatten(2).mean(2)
        elif g.shape[1] == num_classes:   # output layer (N, classes, in): rows are classes
            parts.append(s.mean(2))
            units = s.mean(1)
        else:                # hidden linear layer: units in no fixed order
            units = s.mean(2)
        if qs is None:
            qs = torch.linspace(0, 1, QUANTILES, device=s.device)
        parts.append(torch.quantile(units, qs, dim=1).T)
    if not parts:
        raise MalformedInputError("white-box MOVE: the model has no weight matrices or kernels")
    return torch.cat(parts, 1)


def feature_size(model: nn.Module, num_classes: int) -> int:
    size = 0
    for _, p in model.named_parameters():
        if p.ndim == 4:
            size += p.shape[2] * p.shape[3] + QUANTILES
        elif p.ndim == 2:
            size += (num_classes if p.shape[0] == num_classes else 0) + QUANTILES
    return size


def _prepare(images: np.ndarray, labels: np.ndarray, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    if images.dtype != np.uint8 or images.ndim != 4 or labels.shape != (len(images),):
        raise MalformedInputError("white-box MOVE: expected uint8 images (N, C, H, W), one label each")
    x = torch.from_numpy(np.ascontiguousarray(images)).to(device).float().div_(255)
    return x, torch.from_numpy(labels.astype(np.int64)).to(device)


def gradient_sign_features(model: nn.Module, images: np.ndarray, labels: np.ndarray, *,
                           num_classes: int, chunk: int = 128) -> np.ndarray:
    """(N, F) features from per-sample gradients computed with ``torch.func.vmap``."""
    from torch.func import functional_call, grad, vmap

    device = next(model.parameters()).device
    model.eval()
    params = {k: v.detach() for k, v in model.named_parameters()}
    buffers = {k: v.detach() for k, v in model.named_buffers()}

    def loss(p: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(functional_call(model, (p, buffers), (x[None],)), y[None])

    per_sample = vmap(grad(loss), in_dims=(None, 0, 0))
    x, y = _prepare(images, labels, device)
    out = [_summarise(per_sample(params, x[i:i + chunk], y[i:i + chunk]), num_classes)
           for i in range(0, len(x), chunk)]
    return torch.cat(out).cpu().numpy() if out else np.zeros((0, feature_size(model, num_classes)))


def gradient_sign_features_loop(model: nn.Module, images: np.ndarray, labels: np.ndarray, *,
                                num_classes: int) -> np.ndarray:
    """The same features, one backward pass per image (the authors' way; for tests and
    the benchmark only)."""
    device = next(model.parameters()).device
    model.eval()
    names = [k for k, _ in model.named_parameters()]
    x, y = _prepare(images, labels, device)
    rows = []
    for i in range(len(x)):
        loss = F.cross_entropy(model(x[i:i + 1]), y[i:i + 1])
        grads = torch.autograd.grad(loss, list(model.parameters()))
        rows.append(_summarise({k: g[None] for k, g in zip(names, grads)}, num_classes))
    return torch.cat(rows).cpu().numpy()


# -- the meta-classifier -------------------------------------------------------------------------
def train_meta_classifier(positive: np.ndarray, negative: np.ndarray, *, hidden: int,
                          epochs: int, seed: int, lr: float = 1e-3, weight_decay: float = 1e-4,
                          batch_size: int = 128, device: str | torch.device = "cpu",
                          progress: Callable[[int], None] | None = None) -> MetaClassifier:
    """C of §5.3 Eq. 9: a one-hidden-layer MLP, binary cross-entropy, Adam; returns the
    float32 weights in the decider's wire form."""
    if positive.ndim != 2 or negative.ndim != 2 or positive.shape[1] != negative.shape[1] \
            or not len(positive) or not len(negative):
        raise MalformedInputError("meta-classifier: need feature rows of one width for both classes")
    gen = torch.Generator().manual_seed(seed)
    x = torch.from_numpy(np.concatenate([positive, negative]).astype(np.float32)).to(device)
    y = torch.cat([torch.ones(len(positive)), torch.zeros(len(negative))]).to(device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = nn.Sequential(nn.Linear(x.shape[1], hidden), nn.ReLU(), nn.Linear(hidden, 1)).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=weight_decay)
    for epoch in range(epochs):
        order = torch.randperm(len(x), generator=gen).to(device)
        for i in range(0, len(x), batch_size):
            idx = order[i:i + batch_size]
            loss = F.binary_cross_entropy_with_logits(net(x[idx]).squeeze(1), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if progress is not None:
            progress(epoch)
    w1, b1 = net[0].weight.detach().cpu(), net[0].bias.detach().cpu()
    w2, b2 = net[2].weight.detach().cpu()[0], net[2].bias.detach().cpu()
    return MetaClassifier(x.shape[1], hidden, tuple(tuple(float(v) for v in row) for row in w1.tolist()),
                          tuple(b1.tolist()), tuple(w2.tolist()), float(b2[0]))


# -- reference models -------------------------------------------------------------------------
def fit_reference(data: Any, *, arch: str | None, epochs: int | None, seed: int, device: str,
                  progress: bool = False) -> nn.Module:
    """A model trained in memory with the data set's recipe on the one engine: MOVE's
    shadow victims and benign models, EWE's clean model (so keygen costs are whole
    training runs, comparable to ``claimkit train``)."""
    from ..ml.models import build
    from ..ml.recipes import recipe
    from ..ml.train import TrainConfig, train

    r = recipe(data.name)
    model = build(arch or r["arch"], num_classes=data.num_classes, input_shape=data.input_shape,
                  seed=seed)
    cfg = TrainConfig(epochs=r["epochs"] if epochs is None else epochs, lr=r["lr"],
                      batch_size=r["batch"], seed=seed, device=device)
    train(model, data, cfg, progress=progress)
    return model.eval()
