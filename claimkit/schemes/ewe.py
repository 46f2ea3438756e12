"""EWE: entangled watermarks (Jia et al. 2021, "Entangled Watermarks as a Defense against
Model Extraction", USENIX Security).

A plain trigger set is learned by a sub-network of its own, which an extractor querying
only task data never reconstructs (§3). EWE makes the watermark share the task's
neurons: training maximises the soft nearest-neighbour loss (SNNL, §4.1 Eq. 1) between
the representations of watermarked source-class inputs and of real target-class inputs,
so a copy that learns the target class learns the watermark with it.

KeyGen (Algorithm 1, lines 1–6; in-distribution watermarks, D_w = D): a clean reference
model is trained on the one engine; source-class training images X_w get a k×k white
trigger at the position where the SNNL gradient with respect to the input, convolved with
the trigger, is largest (lines 2–3; the gradient of the SNNL between [X_w, X_cT] at the
reference model's last three normalisation layers); then, optionally, FGSM steps on each
image (lines 5–6, as in the authors' code): down the target-class logit of the clean
model while it calls more than ``threshold`` of them c_T, up the SNNL in between. The
triggered images are the committed items; the clean model's rate of calling them c_T is
recorded in the verification key (``reference_false_rate``), and a key whose trigger
makes a clean model say c_T at chance rate or more is refused.

Mark (lines 7–14): the engine's normal batches, and after every ``ratio`` of them one
watermark batch [X_w, X_cT] labelled c_T with loss CE − κ·Σ_l SNNL(l) over three layers
(Eq. 2), each layer's temperature following T(l) −= α_T ∇_T SNNL (line 14; Frosst et
al. 2019 learn it to minimise the SNNL while the network maximises it). The extra batches
go through the engine's :class:`~claimkit.ml.train.Interleave` hook: same optimiser,
schedule and autocast as the clean run.

Verify (§4.3.1): the pure decider ``ewe`` counts the opened items the suspect calls c_T
and runs the exact binomial tail against the false-watermark rate, 1/K by default (the
paper's conservative choice in Figure 4), with at least 30 queries.

Defaults and their source: source → target 1 → 7 on digits and MNIST, 8 → 0 on
Fashion-MNIST (the authors' presets); 3×3 trigger (2×2 below 16 pixels); FGSM step 0.01,
10 SNNL iterations, threshold 0.1, temperature rate 0.1 (authors' code); κ = 1 and initial
temperature 1, ours (the authors' code sums the cross-entropy over the batch with κ = 32
and divides cosine distances by 100; on digits, κ from 0.25 to 4 changed the watermark
success after distillation by less than 0.1, and temperature 1 kept 0.54 of it against
0.45 at 100 and 0.39 at 0.2); r = 3, ours (the authors use 1 on MNIST, 2 on Fashion-MNIST,
4 on CIFAR-10; 3 keeps marking within 1.5× the clean run); 100 items; α = 0.01; at least 30
queries (§4.3.1).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import MalformedInputError
from ..protocol.keys import MarkingKey, VerificationKey
from ..wire import b64encode
from .base import MarkOptions, Oracle, data_fields, parse_params

__all__ = ["BACKEND", "SCHEME", "EweParams", "keygen", "snnl", "watermark_images"]

SCHEME = "ewe"
PAIRS = {"digits": (1, 7), "mnist": (1, 7), "fashion-mnist": (8, 0)}
SNNL_LAYERS = 3


@dataclass(frozen=True)
class EweParams:
    num_classes: int
    input_shape: tuple[int, int, int]
    data: str = ""
    data_digest: str = ""
    source: int = -1             # -1: the data set's preset (PAIRS), else class 0
    target: int = -1             # -1: the data set's preset, else class 1
    items: int = 100
    alpha: float = 0.01
    min_queries: int = 30
    fpr: float = 0.0             # 0: 1/K, the paper's conservative bound
    trigger_size: int = 0        # 0: 3, or 2 for images under 16 pixels
    fgsm: bool = True
    fgsm_step: float = 0.01
    fgsm_iters: int = 10
    threshold: float = 0.1
    kappa: float = 1.0
    temperature: float = 1.0
    temperature_lr: float = 0.1
    ratio: int = 3
    reference_epochs: int = -1   # -1: the data set's recipe
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.source < -1 or self.target < -1:     # -1 alone means the preset
            raise MalformedInputError("ewe: source and target are classes, or -1 for the preset")
        src, tgt = self.classes
        if not (0 <= src < self.num_classes and 0 <= tgt < self.num_classes and src != tgt):
            raise MalformedInputError(f"ewe: source and target must be different classes below "
                                      f"{self.num_classes}")
        if not 1 <= self.items <= 100_000 or not 1 <= self.min_queries <= self.items:
            raise MalformedInputError("ewe: items within [1, 100000], min_queries within [1, items]")
        if not 1e-12 <= self.alpha <= 0.5 or not 0 <= self.fpr < 1:
            raise MalformedInputError("ewe: alpha within [1e-12, 0.5], fpr within [0, 1)")
        # finite and bounded: NaN passes every comparison's negation, and a count of 10^9
        # starts work that never ends
        if not (0 <= self.kappa <= 1e6 and 0 < self.temperature <= 1e6
                and 0 <= self.temperature_lr <= 1e6 and 1 <= self.ratio <= 1000):
            raise MalformedInputError("ewe: kappa within [0, 1e6], temperature within (0, 1e6], "
                                      "temperature_lr within [0, 1e6], ratio within [1, 1000]")
        if not -1 <= self.reference_epochs <= 1000:
            raise MalformedInputError("ewe: reference_epochs within [0, 1000] (-1: the recipe's)")
        size = self.trigger_size or (2 if min(self.input_shape[1:]) < 16 else 3)
        if not 1 <= size <= min(self.input_shape[1:]):
            raise MalformedInputError("ewe: trigger_size must fit the image")
        if not 0 < self.fgsm_step <= 1 or not 0 <= self.fgsm_iters <= 1000 \
                or not 0 < self.threshold < 1:
            raise MalformedInputError("ewe: fgsm_step within (0, 1], fgsm_iters within [0, 1000], "
                                      "threshold within (0, 1)")

    @property
    def classes(self) -> tuple[int, int]:
        preset = PAIRS.get(self.data, (0, 1))
        return (preset[0] if self.source < 0 else self.source,
                preset[1] if self.target < 0 else self.target)

    @property
    def trigger(self) -> int:
        return self.trigger_size or (2 if min(self.input_shape[1:]) < 16 else 3)


# -- SNNL -----------------------------------------------------------------------------------
def snnl(h: Any, groups: Any, temperature: Any) -> Any:
    """Soft nearest-neighbour loss (Eq. 1) of representations ``h`` (N, …) with group
    labels ``groups`` (N,): cosine distances of the ReLU'd, flattened representations, as
    in the authors' code. High when the groups are entangled."""
    import torch
    import torch.nn.functional as F

    z = F.normalize(torch.relu(h.float()).flatten(1), dim=1)
    dist = 1 - z @ z.T
    eye = torch.eye(len(z), device=z.device)
    kernel = (torch.exp(-dist / temperature) - eye).clamp(0, 1)
    same = (groups[:, None] == groups[None, :]).float()
    pick = kernel / (1e-5 + kernel.sum(1, keepdim=True)) * same
    return -torch.log(1e-5 + pick.sum(1)).mean()


def _layers(model: Any) -> list[Any]:
    """The modules whose outputs EWE entangles: the last three normalisation layers in
    module order. The paper entangles "each layer"; the authors' code takes three
    pre-activations (conv1, conv2 and fc on MNIST; block outputs and the pooled features
    on their ResNet). Here: digits-cnn's three convolutions and fmnist-net's last three,
    before their ReLUs; on resnet18-cifar all three lie inside the last residual stage,
    not at the pooled features (ours, not measured against the authors' choice)."""
    from torch import nn

    norms = [m for m in model.modules() if isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d))]
    if len(norms) < SNNL_LAYERS:
        raise MalformedInputError(f"EWE needs a network with at least {SNNL_LAYERS} "
                                  "normalisation layers to entangle")
    return norms[-SNNL_LAYERS:]


def _forward(model: Any, x: Any) -> tuple[Any, list[Any]]:
    """Logits and the representations of :func:`_layers`, in one forward pass."""
    seen: list[Any] = []
    handles = [m.register_forward_hook(lambda _m, _i, out: seen.append(out)) for m in _layers(model)]
    try:
        logits = model(x)
    finally:
        for h in handles:
            h.remove()
    return logits, seen


def _snnl_sum(model: Any, x: Any, groups: Any, temps: Any) -> tuple[Any, Any]:
    logits, hidden = _forward(model, x)
    return logits, sum(snnl(h, groups, t) for h, t in zip(hidden, temps))


# -- watermark generation (Algorithm 1, lines 1–6) ------------------------------------------
def _position(model: Any, xw: Any, xt: Any, size: int, temps: Any) -> tuple[int, int]:
    """Lines 2–3: argmax over positions of conv(∇_{X_w} SNNL([X_w, X_cT]), trigger)."""
    import torch
    import torch.nn.functional as F

    total = torch.zeros_like(xw[0])
    half = 128
    for i in range(0, len(xw), half):
        a = xw[i:i + half].clone().requires_grad_(True)
        b = xt[torch.arange(len(a), device=xt.device) % len(xt)]
        groups = torch.cat([torch.ones(len(a)), torch.zeros(len(b))]).to(xw.device)
        _, loss = _snnl_sum(model, torch.cat([a, b]), groups, temps)
        total += torch.autograd.grad(loss, a)[0].sum(0)
    score = F.conv2d(total.sum(0)[None, None], torch.ones(1, 1, size, size, device=xw.device))[0, 0]
    row, col = divmod(int(score.argmax()), score.shape[1])
    return row, col


def _refine(model: Any, xw: Any, xt: Any, target: int, p: EweParams, temps: Any) -> Any:
    """Lines 5–6, the authors' loop: FGSM down the clean model's target logit while it
    calls more than ``threshold`` of the batch c_T, FGSM up the SNNL between, then five
    more steps down the target logit."""
    import torch

    out = []
    step = p.fgsm_step
    for i in range(0, len(xw), 128):
        x = xw[i:i + 128].clone()
        b = xt[torch.arange(len(x), device=xt.device) % len(xt)]
        groups = torch.cat([torch.ones(len(x)), torch.zeros(len(b))]).to(x.device)

        def down(x: Any) -> Any:
            x = x.clone().requires_grad_(True)
            g = torch.autograd.grad(model(x)[:, target].sum(), x)[0]
            return (x - step * g.sign()).clamp(0, 1).detach()

        downs = 0
        for _ in range(p.fgsm_iters):
            while downs < 50:
                with torch.no_grad():
                    rate = float((model(x).argmax(1) == target).float().mean())
                if rate <= p.threshold:
                    break
                x, downs = down(x), downs + 1
            a = x.clone().requires_grad_(True)
            _, loss = _snnl_sum(model, torch.cat([a, b]), groups, temps)
            x = (x + step * torch.autograd.grad(loss, a)[0].sign()).clamp(0, 1).detach()
        for _ in range(5):
            x = down(x)
        out.append(x)
    return torch.cat(out)


def _check_counts(data: Any, p: EweParams) -> None:
    source, target = p.classes
    have, targets = int((data.y_train == source).sum()), int((data.y_train == target).sum())
    if have < p.items or not targets:
        raise MalformedInputError(f"ewe: {data.name} has {have} training images of class "
                                  f"{source} for {p.items} items (and {targets} of class {target})")


def watermark_images(model: Any, data: Any, p: EweParams, *, device: Any) -> np.ndarray:
    """The triggered (and refined) source-class images, uint8 (N, C, H, W)."""
    import torch

    from ..ml.train import as_tensor

    source, target = p.classes
    _check_counts(data, p)
    src = data.x_train[data.y_train == source][:p.items]
    tgt = data.x_train[data.y_train == target]
    model.eval()
    xw, xt = as_tensor(src, device), as_tensor(tgt, device)
    temps = [torch.tensor(p.temperature, device=device)] * SNNL_LAYERS
    row, col = _position(model, xw, xt, p.trigger, temps)
    xw[:, :, row:row + p.trigger, col:col + p.trigger] = 1.0
    if p.fgsm:
        xw = _refine(model, xw, xt, target, p, temps)
    return xw.mul(255).round().clamp(0, 255).to(torch.uint8).cpu().numpy()


def keygen(p: EweParams, data: Any, *, rng: Callable[[int], bytes] = os.urandom,
           progress: bool = True) -> MarkingKey:
    """A clean reference model, then the watermarked source-class images as items."""
    import torch

    from ..ml.train import as_tensor, predict, resolve_device
    from .move_features import fit_reference

    device = resolve_device(p.device)
    _check_counts(data, p)
    seed = rng(32)
    ref_seed = int.from_bytes(hashlib.sha256(seed + b"ewe/reference").digest()[:4], "big") >> 1
    clean = fit_reference(data, arch=None, epochs=None if p.reference_epochs < 0 else p.reference_epochs,
                          seed=ref_seed, device=str(device), progress=progress)
    images = watermark_images(clean, data, p, device=device)
    source, target = p.classes
    with torch.no_grad():
        false_rate = float((predict(clean, as_tensor(images, device)) == target).float().mean())
    fpr = p.fpr or 1.0 / data.num_classes
    if false_rate >= fpr:
        raise MalformedInputError(
            f"ewe: a clean model calls {false_rate:.0%} of the watermarked class-{source} images "
            f"class {target}, not below the false-watermark rate {fpr:.3g}; choose other classes "
            "or a smaller trigger")
    public = {"num_classes": data.num_classes, "input_shape": list(data.input_shape),
              "data": data.name, "data_digest": data.digest.hex, "source": source,
              "target": target, "alpha": p.alpha, "min_queries": p.min_queries,
              "reference_false_rate": false_rate}
    if p.fpr:
        public["fpr"] = p.fpr
    training = {k: getattr(p, k) for k in ("kappa", "temperature", "temperature_lr", "ratio")}
    values = [{"image": b64encode(img.tobytes())} for img in images]
    return MarkingKey.create(SCHEME, public, values, rng=rng,
                             secret={"seed": b64encode(seed), "training": training})


# -- Mark (Algorithm 1, lines 7–14) -----------------------------------------------------------
def _interleave(mk: MarkingKey, data: Any, device: Any, batch_size: int, seed: int) -> Any:
    import torch

    from ..ml.train import Interleave, as_tensor, to_device
    from .trigger_set import decode_queries

    cfg = mk.secret.get("training")
    if not isinstance(cfg, dict) or set(cfg) != {"kappa", "temperature", "temperature_lr", "ratio"}:
        raise MalformedInputError("marking key: the EWE secret lacks its training settings")
    vk = mk.verification_key
    target = vk.params["target"]
    xw = as_tensor(decode_queries([v["image"] for v in mk.items.values], vk), device)
    xt = as_tensor(data.x_train[data.y_train == target], device)
    temps = torch.full((SNNL_LAYERS,), float(cfg["temperature"]), device=device, requires_grad=True)
    half = max(1, batch_size // 2)
    gen = torch.Generator().manual_seed(seed)   # on the CPU: the same draws on every device
    offsets = torch.arange(half, device=device)
    groups = torch.cat([torch.ones(half), torch.zeros(half)]).to(device)
    labels = torch.full((2 * half,), target, device=device)
    cursor = [0]

    def loss(model: Any) -> Any:
        # Nothing here waits for the GPU: the one draw per batch is copied asynchronously.
        a = xw[(offsets + cursor[0]) % len(xw)]
        cursor[0] = (cursor[0] + half) % len(xw)
        b = xt[to_device(torch.randint(0, len(xt), (half,), generator=gen), device)]
        logits, hidden = _forward(model, torch.cat([a, b]))
        used = temps.clone()   # the update below must not touch what backward saved
        total = sum(snnl(h, groups, t) for h, t in zip(hidden, used))
        (grad,) = torch.autograd.grad(total, temps, retain_graph=True)
        with torch.no_grad():
            temps.sub_(float(cfg["temperature_lr"]) * grad).clamp_(min=1e-2)
        temps.grad = None
        return torch.nn.functional.cross_entropy(logits.float(), labels) \
            - float(cfg["kappa"]) * total

    return Interleave(every=int(cfg["ratio"]), loss=loss)


class EweBackend:
    """EWE behind the :class:`~claimkit.schemes.base.Backend` interface."""

    name = SCHEME
    marks = "model"
    params = EweParams
    summary = "entangled watermarks: SNNL-trained source→target watermark (Jia et al. 2021)"

    def keygen(self, data: Any, params: Mapping[str, str], *,
               rng: Callable[[int], bytes] = os.urandom) -> MarkingKey:
        p = parse_params(self.params, params, data_fields(data))
        return keygen(p, data, rng=rng)

    def mark(self, mk: MarkingKey, data: Any, out: str | os.PathLike[str],
             options: MarkOptions) -> dict[str, Any]:
        """Train (FromScratch, or PreTrained with ``start_from``) with interleaved
        watermark batches; the record gives the watermark success on the items."""
        import torch

        from ..ml.jobs import save_with_record
        from ..ml.models import build, load_model
        from ..ml.recipes import recipe
        from ..ml.train import TrainConfig, as_tensor, predict, resolve_device, train
        from .trigger_set import decode_queries

        if mk.scheme != SCHEME:
            raise MalformedInputError(f"not an EWE key (scheme {mk.scheme!r})")
        r = recipe(data.name)
        if options.start_from is not None:
            model, info = load_model(options.start_from, arch=options.arch)
            arch, epochs, lr = info.arch, r["ft_epochs"], r["ft_lr"]
        else:
            arch, epochs, lr = options.arch or r["arch"], r["epochs"], r["lr"]
            model = build(arch, num_classes=data.num_classes, input_shape=data.input_shape,
                          seed=options.seed)
        cfg = TrainConfig(epochs=epochs if options.epochs is None else options.epochs,
                          lr=lr if options.lr is None else options.lr, batch_size=r["batch"],
                          seed=options.seed, device=options.device)
        device = resolve_device(options.device)
        interleave = _interleave(mk, data, device, cfg.batch_size, options.seed)
        record = train(model, data, cfg, interleave=interleave, progress=options.progress)
        vk = mk.verification_key
        images = as_tensor(decode_queries([v["image"] for v in mk.items.values], vk), device)
        with torch.no_grad():
            success = float((predict(model.to(device), images) == vk.params["target"]).float().mean())
        record.trigger_accuracy = success
        record.extra.update(start_from=None if options.start_from is None else str(options.start_from),
                            watermark_success=success)
        save_with_record(model, out, arch=arch, data=data, record=record)
        return record.to_dict()

    def answerer(self, oracle: Oracle, vk: VerificationKey) -> Callable[[Sequence[Any]], list[Any]]:
        """Queries (opened watermarked images) → the suspect's class indices."""
        from .trigger_set import decode_queries

        if oracle.num_classes != vk.params.get("num_classes"):
            raise MalformedInputError(f"the suspect has {oracle.num_classes} classes; the key "
                                      f"is for {vk.params.get('num_classes')}")
        return lambda queries: oracle.labels(decode_queries(queries, vk))


BACKEND = EweBackend()
