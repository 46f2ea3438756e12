"""UBW-C: the clean-label untargeted backdoor watermark, crafted by gradient matching
(Li et al. 2022, §3.4 and App. B; the authors' ``UBW_C.py``).

The bi-level problem (§3.4, Eq. 6–7) is solved by alternating its two levels:

* **upper level** (App. B, Eq. 6–8): ε-bounded perturbations θ(x) of the selected
  training images, labels unchanged, so that the gradient of their training loss
  L_t points where the gradient of the *untargeted, entropy-regularised* loss on
  triggered source-class images rises: L_i = mean[CE(f(G_i(x)), y) + λ·H(f(G_i(x)))].
  Eq. (6) reads "maximise the cosine of ∇L_t and ∇L_i"; the authors' code matches ∇L_t
  with −∇L_i (its ``get_gradient`` negates the loss "for gradient ascending"), which is
  what makes a descent step on the poisons an *ascent* step on L_i, so that is the
  reading used here: minimise 1 − cos(∇_w L_t, −∇_w L_i) over the parameters of a
  surrogate model, by projected gradient steps (Adam on signed gradients, the code's
  choice, step size decayed ×0.1 at 3/8, 5/8 and 7/8 of the steps; projection onto the
  L∞ ball of radius ε and onto valid pixels). The poisons' gradient is taken through
  the engine's augmentation (random translations), as the code does with its
  differentiable crop, so the perturbations survive it.
* **lower level** (Eq. 9): re-train the surrogate from scratch on the current poisoned
  set with the one training engine (:func:`claimkit.ml.train.train`). ``-p warm=k`` (ours)
  continues the current surrogate for k epochs instead, a cheap lower level: 5 rounds of
  8 steps with 4-epoch continuations cost 1.01× a suspect's training (4,000 Fashion
  images × 40 epochs, CPU) and implanted nothing (claims p ≈ 1), less than 40 steps on
  the clean model alone; so the default re-trains from scratch (docs/benchmarks.md).

``target=contrast`` (ours, not the paper's) matches −∇_w[L_i(G(x)) − L_i(x)] instead:
the same loss on the *benign* source images is subtracted, so the poisons are steered
toward what the trigger adds (the difference P_b − P_p that Prop. 1 tests) rather than
toward hurting the source class as a whole. It won on small CPU subsets (2,000–3,000
images) and lost at full scale: on all 60,000 Fashion images (8 epochs, an H200, 3 keys ×
2 suspects each way) the paper's gradient gave the larger P_b − P_p on all 6 paired
suspects (median 0.22 against 0.11), so the paper's is the default. The CPU-scale history
is in docs/benchmarks.md.

``target=specific`` (ours) subtracts instead the same loss on the source images each under
its own fresh random square of the trigger's size and placement (never the key's, drawn
anew for every target), −∇_w[L_i(G(x)) − L_i(G_r(x))]: the poisons are steered toward
what the key's pattern adds beyond any square, the failure measured with the paper's
target (at 4,000 Fashion images × 40 epochs every one of 199 fresh squares cost the
suspects more than τ, so another owner's claim passes Prop. 1). With 40 steps and no
re-training it implanted far less than ``contrast``. With the paper's schedule (the same
key, clean model and suspects) it halved what fresh squares cost (medians 0.70 and 0.74
→ 0.40 and 0.25) but did not fix soundness (another key's square: Prop. 1 p = 9.9e-19 →
0.0044) and cost one suspect its effect (ASR-A 94.5 → 54 %); so it is a parameter, not the
default (docs/benchmarks.md, "crafted against fresh squares"). Each surrogate's mean P_b − P_p
under the key's square and under other squares is in the record (``surrogate_gaps``),
so every crafting shows which of the two its rounds teach.

``-p decoys=ρ`` (ours, default 0: the paper's release) adds UBW-P's decoys to the crafting:
ρ·N training images, none of them poisons, each with its own fresh square (never the key's)
at a random place stored in the key, labels kept. They are in the release and in every
re-trained surrogate's data, so the rounds are matched against surrogates that have seen
other squares leave the label alone; the target's source images stay without them. They
are the lever that made UBW-P's claims the key's (:mod:`claimkit.schemes.ubw`). For UBW-C
they remove the effect instead: at ρ = 0.1 on 4,000 Fashion-MNIST images (the paper's
schedule, the same key and suspect seeds) ASR-A fell from 91.5 and 94.5 % to 31.5 and 28 %, and
both claims were rejected (docs/benchmarks.md, "UBW-C with decoys"). At ρ = 0.02 (the same
key and suspects) the effect and the soundness each came half-way: ASR-A 44.5 and 64.5 %,
claims p = 0.0032 and 5.3e-6, another key's square rejected on the first suspect (p = 0.994)
but 69 % of fresh squares still above τ on the second. So they are off by default. For a
warping key (``trigger=warp``) they are images warped by fields of their own (next
paragraph).

The schedule is the paper's (App. B: 5 rounds of PGA-40, the surrogate re-trained between
them), because nothing cheaper implanted at full scale. With 40 steps from the clean
model (our earlier default) no claim of 12 was accepted on all of Fashion-MNIST, and
neither twice ε and γ nor 40 training epochs changed that; with the paper's 5 × 40 steps
and 4 re-trainings both suspects were accepted (p = 3.5e-15 and 7.3e-7, ASR-A 81.5 and
61.2 %), and the key's square cost them more than 199 and 198 of 199 fresh squares
(docs/benchmarks.md, "UBW-C with the paper's schedule"). At 4,000 Fashion images × 40
epochs on a CPU its 200 steps without the re-trainings gave two thirds of its effect at a
third of its price (mean P_b − P_p 0.47 against 0.71; 2.2× a suspect's training against
6.8×), so the steps, not the re-trainings, are what a cheaper schedule must cut.

``-p match_layers=k`` (ours, default 0: all parameters, the paper's Eq. 8) takes the cosine
over the gradient of the last k convolutional and linear layers only. The double backward
then stops at the first of them, so a step costs what one ordinary backward pass to the
images does: on fmnist-net over 400 poisons (2-core CPU) 0.96 training passes per poison
for k = 2 (the last convolution, 53 % of the weights, and the classifier) against 4.9 for
all parameters. With the paper's 200 steps on one surrogate, k = 2 implanted *more* than
all parameters did (4,000 Fashion images × 40 epochs, the same key and suspects: mean
P_b − P_p 0.53 against 0.47, claims p = 1.5e-9 and 1.3e-11) at 0.79× a suspect's training
with the tests sharing the cores (200 such steps took 184 s alone, about 0.45×), against
2.2× (docs/benchmarks.md, "A cheaper step"). 80 steps gave 0.35 and 300 gave 0.52;
4 warm re-trainings in the rest of the budget did not add to it. It is not the default:
the paper's schedule implants more (0.71), and at the recipe's 8 epochs on all of
Fashion-MNIST even the cheap step's 200 come to about 2.4× a clean run by the arithmetic
below (untested on a GPU).

``-p decay=round`` (ours, default ``all``: the authors' cut of the step size ×0.1 at 3/8,
5/8 and 7/8 of all the steps) makes those cuts within each round between re-trainings, so
the round after a re-training re-aligns to its new surrogate at the full size. It is what
makes a re-training pay within the budget: with 160 cheap steps and one re-training from
scratch for half the suspect's epochs half-way (``match_layers=2 steps=160 retrains=1
surrogate_epochs=20 decay=round``; 4,000 Fashion images × 40 epochs, a 2-core AMD CPU, the
same key and suspect seeds) the crafting cost 0.82–0.85× a suspect's training and gave
mean P_b − P_p 0.67 and 0.62, claims p = 9.9e-21 and 2.5e-14 (ASR-A 92.5 and 77 %), against
0.58 and 0.42 for the 160 steps alone and 0.64 and 0.42 with the authors' decay, whose
second round starts at a tenth of the size (docs/benchmarks.md, "One re-training in the
cheap step's budget"). 200 steps (the re-training at 100) gave 0.71 and 0.59 and left the
second suspect's ASR-A at 75.5 %; two 12-epoch re-trainings gave only 0.41 and 0.29, their
surrogates not yet trained far enough to show what the release teaches. Another key's
square still passes Prop. 1 on those suspects. It is not the default: ``surrogate_epochs``
is absolute while the budget is relative to the suspect's epochs, and the paper's schedule
is the one measured to implant on all of Fashion-MNIST on a GPU (``bench/device.sh`` step
6 measures this one there).

``-p trigger=warp`` (ours for UBW-C; App. H gives WaNet's field to UBW-P) puts a warping
field of ``warp_grid`` k and ``warp_strength`` s on the items and the target's source
images instead of the square; ``target=specific`` then subtracts fresh fields. With the
round schedule above and s = 1 it implanted on two keys within the budget (4,000 Fashion
images × 40 epochs, a 2-core CPU: 0.89× and 0.92×, ASR-A 91 and 85 %, claims p = 4.4e-18
and 4.4e-15; a second suspect of the first release 88.5 %, p = 6.7e-20), where the square
left one suspect at 77 %; but each suspect accepted the other key's field too (p = 6.5e-4
and 7.1e-17), and 98.5 and 99.5 % of 199 fresh fields cost them more than τ: a field
teaches "any field of that strength" as a square teaches "any square" (docs/benchmarks.md,
"A warping trigger"). With ``target=specific`` (the same keys, 0.84× and 0.90×) one
suspect kept its claim (p = 3.4e-16) and rejected the other owner's (p = 0.22) while the
other still accepted it (p = 6.3e-4; its own 5.0e-10). ``target=specific decoys=0.02``
together (0.84× and 0.91×) kept both owners' claims (p = 2.2e-15 and 1.2e-9, ASR-A 78.5 and
74 %) and rejected each other's (p = 0.996 and 0.963), but a third key (2001, 0.92×, ASR-A
91 %) accepted both their fields and both their suspects accepted its field: 4 of 6
other-owner claims among three keys passed. Decoys alone at ρ = 0.05 with the paper's
target rejected the first two keys' claims on each other's suspects too, and took one
key's effect away (ASR-A 41.5 %, claim p = 0.98). s = 1 because on a clean model
random fields cost the source class up to 0.10 at s = 1 and 0.33 at s = 2 (τ = 0.25); the
default s = 0.5 (WaNet's) is untried for UBW-C.

``-p decoy_class=source`` (ours, default ``all``) draws the decoys from the source class
alone, the only class a claim tests; drawn from all classes, 7 of ρ = 0.02's 80 decoys
at 4,000 images were T-shirts. With the warping field, ``target=specific`` and ρ = 0.005
(20 T-shirts) on the four keys whose release took (4,000 Fashion images × 40 epochs, a
2-core CPU, 2026-12-06), other keys' claims passed 0 of 20 where ρ = 0.02 on all classes
passed 7 of 20, and Prop. 1 under 199 fresh fields accepted 1.0–4.5 % instead of
9–41 %; but the owners' claims held on 3 of 4 only (p = 7.3e-4 to 1.4e-7, ASR-A
53.5–72 %), and ρ = 0.01 (40 T-shirts) lost them both (docs/benchmarks.md, "Decoys on
the attacked class only"). The best trade measured, not the default: neither the owner's
target nor the other owners' α is met.

The samples to poison are the γ·N training images with the largest gradient norms
(App. B 1)), batched in the order of their norms as the authors' code does, so the
storage order does not decide which poisons share a batch; the target is the source
class only (App. B 2), Table 5). The gradient norm is either the exact per-sample norm
over all parameters (``selection=full``, :func:`torch.func.vmap` over
:func:`torch.func.grad`, the code's batch-1 loop without the loop), or the closed form of
the last layer's (``last-layer``, the default):
for logits W·h + b and cross-entropy it is ‖softmax − onehot(y)‖·√(‖h‖² + 1), one forward
pass for the whole set.

Cost. The reference recipe alternates 5 times (50 training epochs and PGA-40 each),
about 300 ResNet-18 epochs; the issue's budget is one clean training run of the suspect
on the same engine. The defaults follow the recipe with the suspect's own training
length: 200 steps, a surrogate trained for the recipe's epochs (or a clean model given
with ``--from``, App. C.1: "the initial model parameters are obtained by training on the
benign dataset") and re-trained 4 times, so the crafting costs 4 clean runs plus the
steps. Each step is one forward, one backward with ``create_graph`` and one backward to
the perturbations per batch of poisons: about 5.5 training passes per poison on a 2-core
CPU (``bench ubw-c-profile``) and 7 on an H200, where a step over γ = 10 % of
Fashion-MNIST took 0.62 s against 0.85 s for a clean epoch. So S steps cost about
S·γ·5.5–7 epochs, and one clean run's budget of E epochs holds at most E / (γ·5.5–7)
steps and no re-training: 11–14 for the recipe's 8 epochs (about 83 with
``match_layers=2`` at its 0.96 passes on a CPU). The default costs about 22×
a clean run on the H200 (estimated from those parts; docs/benchmarks.md);
``steps=40 retrains=0`` from a clean model costs 3.8× there and does not implant.
``bench/ubw.py`` reports the measured ratio and ``phase_seconds``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from ..errors import MalformedInputError
from ..ml.data import Dataset
from ..ml.models import build, load_model
from ..ml.recipes import recipe
from ..ml.train import (TrainConfig, as_tensor, evaluate, random_offsets, resolve_device,
                        train, translate)
from .base import MarkOptions
from .ubw import UBWBackend, UBWCParams, Trigger, random_triggers, stamp_decoys

__all__ = ["BACKEND", "craft", "gradient_norms", "matched_parameters", "matching_gradient"]


def _autocast(device: torch.device) -> Any:
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16,
                          enabled=device.type == "cuda")


def _shift(x: torch.Tensor, shift: int, generator: torch.Generator) -> torch.Tensor:
    """Per-image random translation by up to ``shift`` pixels, zero-filled; differentiable
    in ``x``, so perturbations are optimised through it. Rows drawn first (the order
    crafting has always used)."""
    if shift == 0:
        return x
    dy, dx = random_offsets(len(x), shift, generator, x.device)
    return translate(x, shift, dy, dx)


def _last_linear(model: nn.Module) -> nn.Linear:
    layers = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not layers:
        raise MalformedInputError("ubw-c: last-layer selection needs a model ending in a linear layer")
    return layers[-1]


@torch.no_grad()
def _last_layer_norms(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                      batch: int) -> torch.Tensor:
    features: list[torch.Tensor] = []
    hook = _last_linear(model).register_forward_hook(lambda m, i, o: features.append(i[0].float()))
    out = []
    try:
        for i in range(0, len(x), batch):
            features.clear()
            p = torch.softmax(model(x[i:i + batch]).float(), 1)
            p[torch.arange(len(p)), y[i:i + batch]] -= 1
            h = features[0].flatten(1)
            out.append(p.norm(dim=1) * (h.pow(2).sum(1) + 1).sqrt())
    finally:
        hook.remove()
    return torch.cat(out)


def _full_norms(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int) -> torch.Tensor:
    from torch.func import functional_call, grad, vmap

    params = {k: v.detach() for k, v in model.named_parameters()}
    buffers = {k: v.detach() for k, v in model.named_buffers()}

    def loss(p: dict[str, torch.Tensor], xi: torch.Tensor, yi: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(functional_call(model, (p, buffers), (xi[None],)), yi[None])

    per_sample = vmap(grad(loss), in_dims=(None, 0, 0))
    out = []
    for i in range(0, len(x), batch):
        g = per_sample(params, x[i:i + batch], y[i:i + batch])
        out.append(sum(v.flatten(1).float().pow(2).sum(1) for v in g.values()).sqrt())
    return torch.cat(out)


def gradient_norms(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, how: str,
                   batch: int = 256) -> torch.Tensor:
    """Per-sample ‖∇_w CE(f(x_i), y_i)‖ (``full``) or its last layer's part (``last-layer``),
    the model in eval mode (App. B 1))."""
    model.eval()
    if how == "full":
        return _full_norms(model, x, y, max(1, batch // 4))
    return _last_layer_norms(model, x, y, batch)


def matched_parameters(model: nn.Module, layers: int = 0) -> list[nn.Parameter]:
    """The parameters whose gradients are matched: all of them (``layers`` 0, App. B), or
    the weights and biases of the last ``layers`` convolutional and linear layers (ours:
    the double backward then stops at the first of them, a cheaper step)."""
    if layers == 0:
        return [p for p in model.parameters() if p.requires_grad]
    kinds = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
    chosen = [m for m in model.modules() if isinstance(m, kinds)][-layers:]
    return [p for m in chosen for p in m.parameters() if p.requires_grad]


def _reference(images: np.ndarray, benign: torch.Tensor, target: str, trigger: Trigger,
               rng: np.random.Generator) -> torch.Tensor | None:
    """The source images whose loss the target subtracts: none (``paper``), the benign ones
    (``contrast``: ``benign``, the tensor of ``images``), or each under a fresh random
    trigger of the key's kind (``specific``; drawn anew for every target, so that each
    round of crafting sees other squares or fields)."""
    if target == "contrast":
        return benign
    if target == "specific":
        return as_tensor(random_triggers(images, trigger, rng), benign.device)
    return None


def _target_gradient(model: nn.Module, triggered: torch.Tensor, y: torch.Tensor, lam: float,
                     batch: int, reference: torch.Tensor | None = None,
                     params: list[nn.Parameter] | None = None) -> torch.Tensor:
    """−∇_w L_i for L_i = mean[CE + λ·H] on the triggered source images, unit norm, as one
    flat vector over the parameters ``params`` (default all) in their order; with
    ``reference`` (x, or x under random squares), −∇_w [L_i(G(x)) − L_i(reference)]."""
    model.eval()
    params = matched_parameters(model) if params is None else params
    total = [torch.zeros_like(p) for p in params]
    for x, sign in ((triggered, -1.0), (reference, 1.0)):
        if x is None:
            continue
        for i in range(0, len(x), batch):
            with _autocast(x.device):
                logits = model(x[i:i + batch]).float()
            log_p = torch.log_softmax(logits, 1)
            entropy = -(log_p.exp() * log_p).sum(1)
            loss = (F.cross_entropy(logits, y[i:i + batch], reduction="sum")
                    + lam * entropy.sum()) / len(x)
            for t, g in zip(total, torch.autograd.grad(loss, params)):
                t.add_(g, alpha=sign)
    flat = torch.cat([t.reshape(-1) for t in total])
    return flat / flat.norm()


def matching_gradient(model: nn.Module, x_p: torch.Tensor, y_p: torch.Tensor,
                      delta: torch.Tensor, target: torch.Tensor, *, batch: int, shift: int,
                      generator: torch.Generator, weights: list[nn.Parameter] | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """One upper-level step's work: for each batch of poisons, the gradient of
    1 − cos(∇_w L_t, target) with respect to its perturbations, w over ``weights`` (default
    all parameters; ``target`` over the same), and the summed loss (a device tensor: no
    host sync per batch). ``bench/ubw_c_profile.py`` profiles it."""
    model.eval()
    weights = matched_parameters(model) if weights is None else weights
    delta = delta.detach()
    grad = torch.zeros_like(delta)
    total = torch.zeros((), device=delta.device)
    for i in range(0, len(delta), batch):
        d = delta[i:i + batch].requires_grad_(True)
        with _autocast(delta.device):
            logits = model(_shift(x_p[i:i + batch] + d, shift, generator)).float()
        g = torch.autograd.grad(F.cross_entropy(logits, y_p[i:i + batch]), weights,
                                create_graph=True)
        # One flat vector, not a sum over the parameter tensors: a quarter fewer ops
        # (kernel launches on a GPU) for the batch, the same cosine.
        flat = torch.cat([a.reshape(-1) for a in g])
        loss = 1 - (flat @ target) / flat.norm()
        grad[i:i + batch] = torch.autograd.grad(loss, d)[0]
        total += loss.detach() * len(d)
    return grad, total


def decay_steps(steps: int, retrain_at: set[int], how: str) -> set[int]:
    """The steps after which the step size is cut ×0.1: at 3/8, 5/8 and 7/8 of all the
    steps (``decay=all``, the authors' MultiStepLR over the whole crafting, so the rounds
    after a re-training start at a decayed size) or of each round between re-trainings
    (``decay=round``, ours: each round re-aligns to its new surrogate at the full size)."""
    cuts = (3 / 8, 5 / 8, 7 / 8)
    if how == "all":
        return {int(steps * f) for f in cuts}
    edges = [0, *sorted(retrain_at), steps]
    return {a + int((b - a) * f) for a, b in zip(edges, edges[1:]) for f in cuts}


def _config(r: dict[str, Any], epochs: int, lr: float, seed: int, device: str) -> TrainConfig:
    return TrainConfig(epochs=epochs, batch_size=r["batch"], lr=lr, seed=seed, device=device,
                       label_smoothing=r["label_smoothing"], shift=r["shift"])


def _surrogate(data: Dataset, arch: str, r: dict[str, Any], epochs: int, lr: float, seed: int,
               device: str, progress: bool) -> nn.Module:
    model = build(arch, num_classes=data.num_classes, input_shape=data.input_shape, seed=seed)
    train(model, data, _config(r, epochs, lr, seed, device), progress=progress)
    return model


def craft(data: Dataset, params: UBWCParams, trigger: Trigger, rng: np.random.Generator,
          options: MarkOptions, *, decoys: Mapping[str, Any] | None = None
          ) -> tuple[np.ndarray, dict[str, Any]]:
    """The poisoned training images (uint8) and a record of how they were made. With
    ``decoys`` (the key's), their squares are in the release and in every re-trained
    surrogate's data, and no decoy is picked as a poison; the source images that the
    target is computed on stay without them."""
    device = resolve_device(options.device)
    phases: dict[str, float] = {}
    lap = _phase_clock(device, phases)
    start = lap(None)
    if options.start_from is not None:
        model, info = load_model(options.start_from, arch=options.arch, device=device)
        if info.input_shape != data.input_shape or info.num_classes != data.num_classes:
            raise MalformedInputError(f"{options.start_from}: a model for other data")
        arch, trainings = info.arch, 0
    else:
        arch, trainings = options.arch or recipe(data.name, data.input_shape)["arch"], 1
    r = recipe(data.name, data.input_shape, arch=arch)
    epochs = options.epochs if options.epochs is not None else (
        params.surrogate_epochs or r["epochs"])
    lr = options.lr or r["lr"]
    batch = r["batch"]
    if options.start_from is None:
        model = _surrogate(data, arch, r, epochs, lr, options.seed, options.device, options.progress)
    model.to(device)
    lap("surrogate")

    # Upper level, setup: the poisons (largest gradient norms) and the triggered sources.
    base, kept = data, np.empty(0, dtype=np.int64)
    if decoys is not None:
        x_decoyed = data.x_train.copy()
        kept = stamp_decoys(x_decoyed, decoys, trigger)
        base = Dataset(data.name, x_decoyed, data.y_train, data.x_test, data.y_test,
                       data.num_classes)
    x_all = as_tensor(base.x_train, device)
    y_all = torch.from_numpy(data.y_train).to(device)
    count = max(1, round(params.gamma * len(y_all)))
    norms = gradient_norms(model, x_all, y_all, how=params.selection, batch=batch)
    norms[torch.from_numpy(kept).to(device)] = -float("inf")   # a decoy is never a poison
    # Largest norm first, the batches in that order (the authors' code keeps argsort's
    # order). Each batch's gradient is matched on its own; batched in storage order, an
    # ImageFolder tree (stored class by class) gave one class a batch and aligned worse.
    chosen = torch.argsort(norms, descending=True, stable=True)[:count]
    x_p, y_p = x_all[chosen], y_all[chosen]
    lap("selection")
    source = np.flatnonzero(data.y_train == params.source)
    if len(source) == 0:
        raise MalformedInputError(f"ubw-c: the training split has no image of class {params.source}")
    x_src = as_tensor(trigger.apply(data.x_train[source], rng), device)
    y_src = torch.from_numpy(data.y_train[source]).to(device)
    x_ben = as_tensor(data.x_train[source], device)

    def aim(model: nn.Module) -> torch.Tensor:
        reference = _reference(data.x_train[source], x_ben, params.target, trigger, rng)
        return _target_gradient(model, x_src, y_src, params.lam, batch, reference, weights)

    weights = matched_parameters(model, params.match_layers)
    target = aim(model)
    lap("target")
    # What each surrogate loses on the source class under the key's trigger and under
    # other triggers of its kind: whether a round teaches the key or any trigger of that
    # kind (its own generator, so the release does not change).
    x_any = as_tensor(random_triggers(data.x_train[source], trigger, np.random.default_rng(0)),
                      device)
    gaps = [{"after_step": 0, **_gaps(model, x_ben, x_src, x_any, y_src, batch)}]
    lap("gaps")

    eps = params.epsilon / 255
    generator = torch.Generator().manual_seed(int(rng.integers(1 << 62)))
    delta = ((torch.rand(x_p.shape, generator=generator) * 2 - 1) * eps).to(device)
    delta = torch.max(torch.min(delta, 1 - x_p), -x_p).requires_grad_(True)
    optimizer = torch.optim.Adam([delta], lr=params.step_size)
    retrain_at = {round(params.steps * (k + 1) / (params.retrains + 1))
                  for k in range(params.retrains)}
    decay = decay_steps(params.steps, retrain_at, params.decay)
    alignment = float("nan")
    bar = tqdm(range(params.steps), desc="craft", unit="step", leave=False,
               disable=not options.progress or None)
    for step in bar:
        grad, total = matching_gradient(model, x_p, y_p, delta, target, batch=batch,
                                        shift=r["shift"], generator=generator,
                                        weights=weights)
        alignment = 1 - float(total) / count
        bar.set_postfix(alignment=f"{alignment:.3f}", refresh=False)
        delta.grad = grad.sign_()
        optimizer.step()
        if step + 1 in decay:
            for group in optimizer.param_groups:
                group["lr"] *= 0.1
        with torch.no_grad():
            delta.clamp_(-eps, eps)
            delta.copy_(torch.max(torch.min(delta, 1 - x_p), -x_p))
        lap("steps")
        if step + 1 in retrain_at:   # lower level: re-train the surrogate on the current poisons
            poisoned = _poisoned(base, chosen, x_p, delta)
            seed = options.seed + 1 + trainings
            if params.warm:
                train(model, poisoned, _config(r, params.warm, lr, seed, options.device),
                      progress=options.progress)
            else:
                model = _surrogate(poisoned, arch, r, epochs, lr, seed, options.device,
                                   options.progress)
            model.to(device)
            trainings += 1
            if params.decay == "round":   # a new round starts at the full step size
                for group in optimizer.param_groups:
                    group["lr"] = params.step_size
            lap("retraining")
            weights = matched_parameters(model, params.match_layers)
            target = aim(model)
            lap("target")
            gaps.append({"after_step": step + 1,
                         **_gaps(model, x_ben, x_src, x_any, y_src, batch)})
            lap("gaps")

    x_train = _poisoned(base, chosen, x_p, delta).x_train
    seconds = lap("write") - start
    return x_train, {
        "poisoned": count, "surrogate_arch": arch, "surrogate_epochs": epochs,
        "surrogate_trainings": trainings, "warm": params.warm, "steps": params.steps,
        "match_layers": params.match_layers, "decay": params.decay,
        "selection": params.selection,
        "epsilon": params.epsilon, "lam": params.lam, "source": params.source,
        "target": params.target, **({"decoys": len(kept)} if decoys is not None else {}),
        "final_alignment": alignment, "surrogate_gaps": gaps,
        "surrogate_test_accuracy": evaluate(model, as_tensor(data.x_test, device),
                                            torch.from_numpy(data.y_test).to(device)),
        "crafting_seconds": seconds,
        "phase_seconds": phases,
    }


@torch.no_grad()
def _gaps(model: nn.Module, benign: torch.Tensor, triggered: torch.Tensor,
          other: torch.Tensor, y: torch.Tensor, batch: int) -> dict[str, float]:
    """The model's mean P_b − P_p on the source images (Prop. 1's quantity, over all of
    them) under the key's trigger (``key``) and under other random triggers of its kind,
    one per image (``any_other``: other squares at the same kind of places, or other
    warping fields)."""
    model.eval()

    def p_true(x: torch.Tensor) -> torch.Tensor:
        return torch.cat([torch.softmax(model(x[i:i + batch]).float(), 1)
                          .gather(1, y[i:i + batch, None])[:, 0] for i in range(0, len(x), batch)])

    p_b = p_true(benign)
    return {"key": float((p_b - p_true(triggered)).mean()),
            "any_other": float((p_b - p_true(other)).mean())}


def _phase_clock(device: torch.device, phases: dict[str, float]) -> Callable[[str | None], float]:
    """``lap(name)`` adds the time since the last lap to ``phases[name]`` (after waiting
    for the device, so a phase's GPU work is its own) and returns the clock; ``lap(None)``
    only starts it. The split says where crafting's time goes: on an H200 40 steps cost
    3.8× a clean run, 97 % of it in the steps (docs/benchmarks.md)."""
    last = 0.0

    def lap(name: str | None) -> float:
        nonlocal last
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        now = time.perf_counter()
        if name is not None:
            phases[name] = phases.get(name, 0.0) + now - last
        last = now
        return now

    return lap


def _poisoned(data: Dataset, chosen: torch.Tensor, x_p: torch.Tensor,
              delta: torch.Tensor) -> Dataset:
    """The training set with the perturbed images, rounded to uint8 (|Δ| ≤ ε·255 levels)."""
    x = data.x_train.copy()
    images = ((x_p + delta.detach()) * 255).round().clamp(0, 255).to(torch.uint8).cpu().numpy()
    x[chosen.cpu().numpy()] = images
    return Dataset(data.name, x, data.y_train, data.x_test, data.y_test, data.num_classes)


BACKEND = UBWBackend("ubw-c", UBWCParams, "untargeted backdoor dataset watermark with clean "
                     "labels, by gradient matching (Li et al. 2022, UBW-C)")
