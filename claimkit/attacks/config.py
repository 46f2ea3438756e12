"""Every attack's hyper-parameters, in one place, each with its unit and its source.

Plain frozen dataclasses with no torch import, so the command line can list the attacks
and check ``-p KEY=VALUE`` options before loading any model. ``None`` means "the data
set's training recipe" (:mod:`claimkit.ml.recipes`): the epochs, batch and learning rates
its owner used, which is what Adi et al. 2018 (§5.4) grant their strong attacker ("the
same amount of training instances and epochs as in training the model").

A field's value reaches the attack unchanged; a value out of range is refused here with
one line, before any work starts.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import MalformedInputError
from ..ml import MAX_EPOCHS

__all__ = ["DataFreeConfig", "DistillConfig", "ExtractConfig", "FineTuneConfig", "PiracyConfig",
           "PruneConfig", "TransferConfig"]

LAYERS = ("all", "last", "fc")
PRUNE_METHODS = ("magnitude", "channel")


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise MalformedInputError(message)


def _check_training(epochs: int | None, lr: float | None, batch_size: int | None,
                    data_fraction: float, *, least_epochs: int = 1) -> None:
    """``least_epochs`` is 0 for pruning alone; any other attack with no epoch returns the
    victim unchanged (or an untrained student) and would look like a result."""
    _check(epochs is None or least_epochs <= epochs <= MAX_EPOCHS,
           f"epochs must be within [{least_epochs}, {MAX_EPOCHS}]")
    _check(lr is None or 0 < lr <= 10, "lr must be within (0, 10]")
    _check(batch_size is None or 1 <= batch_size <= 1 << 20, "batch_size must be ≥ 1")
    _check(0 < data_fraction <= 1, "data_fraction must be within (0, 1]")


@dataclass(frozen=True)
class FineTuneConfig:
    """FTLL / FTAL / RTLL / RTAL (Adi et al. 2018, §5.4) and UBW's fine-tuning (App. C.3).

    ``layers``: ``all``; ``last`` (the output layer only, the rest frozen, batch-norm
    statistics included); ``fc`` (every fully connected layer, the convolutions frozen:
    UBW App. C.3). ``reinit`` draws the output layer afresh first (the RT variants).
    ``data_fraction``: the share of the training split the attacker holds (a seeded
    sample). ``lr`` defaults to the recipe's fine-tuning rate, 0.01: the top of the
    0.001–0.01 range of Adi et al.'s code, whose paper fine-tunes at the last rate of
    training (§5.7).
    """

    layers: str = "all"
    reinit: bool = False
    epochs: int | None = None        # None: the recipe's training epochs (Adi et al. §5.4)
    lr: float | None = None          # peak rate; None: the recipe's ft_lr
    batch_size: int | None = None    # images per step; None: the recipe's
    data_fraction: float = 1.0

    def __post_init__(self) -> None:
        _check(self.layers in LAYERS, f"layers must be one of {', '.join(LAYERS)}")
        _check_training(self.epochs, self.lr, self.batch_size, self.data_fraction)


@dataclass(frozen=True)
class TransferConfig:
    """Transfer learning keeping the original output layer (Adi et al. 2018, §5.5).

    The attacker fine-tunes every layer on another task (``target``: a data set name or
    a directory, its files under ``target_root``) behind a fresh output layer, the RTAL
    setting the paper reports; the original output layer is put back for verification.
    """

    target: str = ""
    target_root: str = ""
    epochs: int | None = None        # None: the target's recipe epochs (the paper: 20)
    lr: float | None = None          # None: the target recipe's ft_lr
    batch_size: int | None = None
    data_fraction: float = 1.0       # of the target's training split

    def __post_init__(self) -> None:
        _check_training(self.epochs, self.lr, self.batch_size, self.data_fraction)


@dataclass(frozen=True)
class PruneConfig:
    """Magnitude pruning and fine-pruning (UBW App. C.3; Liu et al., RAID 2018).

    ``magnitude``: in every convolution and linear layer, the ``rate`` fraction of
    weights with the smallest absolute value is set to zero. ``channel``: the
    ``rate`` fraction of the channels feeding the output layer (the last convolution's
    channels after pooling; hidden units for an MLP) that are least active on
    ``data_fraction`` of the clean training data is cut, as UBW does with 10 %.
    ``epochs`` > 0 then fine-tunes on the same data with the pruned weights held at zero.
    """

    method: str = "magnitude"
    rate: float = 0.5                # fraction of weights (magnitude) or channels (channel)
    epochs: int | None = 0           # None: the recipe's fine-tuning epochs
    lr: float | None = None          # None: the recipe's ft_lr
    batch_size: int | None = None
    data_fraction: float = 1.0

    def __post_init__(self) -> None:
        _check(self.method in PRUNE_METHODS, f"method must be one of {', '.join(PRUNE_METHODS)}")
        _check(0 <= self.rate < 1, "rate must be within [0, 1)")
        _check_training(self.epochs, self.lr, self.batch_size, self.data_fraction,
                        least_epochs=0)


@dataclass(frozen=True)
class DistillConfig:
    """Knowledge distillation (Hinton et al. 2015), MOVE §2.1's dataset-accessible attack.

    The student learns ``alpha`` · T² · KL(teacher_T ‖ student_T) + (1 − alpha) · CE on the
    true labels, the teacher's soft targets computed on each augmented batch. ``student``
    names its architecture ("" = the victim's).
    """

    student: str = ""
    temperature: float = 4.0
    alpha: float = 0.9
    epochs: int | None = None        # None: the recipe's training epochs
    lr: float | None = None          # None: the recipe's training lr (MOVE §6: SGD at 0.1)
    batch_size: int | None = None
    data_fraction: float = 1.0

    def __post_init__(self) -> None:
        _check(0 < self.temperature <= 100, "temperature must be within (0, 100]")
        _check(0 <= self.alpha <= 1, "alpha must be within [0, 1]")
        _check_training(self.epochs, self.lr, self.batch_size, self.data_fraction)


@dataclass(frozen=True)
class ExtractConfig:
    """Label-query and logit-query extraction (MOVE §2.1 and §6; EWE §4 threat model).

    The attacker asks the victim about ``budget`` images of its ``pool`` (``train`` or
    ``test``: that split of the data given; ``noise``: uniform random images; anything
    else: a data set name or directory, its training split, files under ``pool_root``),
    once each, and trains a ``student`` on the answers: the labels (label-query) or the
    probabilities at ``temperature`` (logit-query, a KL loss; MOVE §6 minimises the
    KL divergence for 20 epochs). With ``pool=test`` the copy's accuracy and agreement,
    measured on the test split, are measured on images it was trained on.
    """

    budget: int | None = None        # queries (images); None: the whole pool
    pool: str = "train"
    pool_root: str = ""
    student: str = ""
    temperature: float = 1.0
    epochs: int | None = 20          # MOVE §6; None: the recipe's training epochs
    lr: float | None = None          # None: the recipe's training lr
    batch_size: int | None = None

    def __post_init__(self) -> None:
        _check(self.budget is None or 1 <= self.budget <= 100_000_000,
               "budget must be within [1, 100000000] queries")
        _check(bool(self.pool), "pool must name train, test, noise, a data set or a directory")
        _check(0 < self.temperature <= 100, "temperature must be within (0, 100]")
        _check_training(self.epochs, self.lr, self.batch_size, 1.0)


@dataclass(frozen=True)
class DataFreeConfig:
    """Data-free adversarial distillation (Fang et al. 2019, DFAD: MOVE's zero-shot [14]).

    A generator maps ``latent``-dimensional noise to images; each iteration takes one
    generator step (Adam at ``generator_lr``) that maximises the L1 distance between
    the victim's and the student's logits, then ``student_steps`` student steps (the
    engine's SGD and schedule at ``lr``) that minimise it, on ``batch_size`` images.
    DFAD's defaults: latent 256, width 128, generator lr 1e-3, 5 student steps, student
    lr 0.1.
    """

    student: str = ""
    iterations: int = 1000
    student_steps: int = 5
    batch_size: int = 256
    latent: int = 256
    width: int = 128                 # the generator's widest layer (channels)
    lr: float = 0.1
    generator_lr: float = 1e-3

    def __post_init__(self) -> None:
        _check(1 <= self.iterations <= 10_000_000, "iterations must be ≥ 1")
        _check(2 <= self.width <= 4096, "width must be within [2, 4096]")
        _check(1 <= self.student_steps <= 100, "student_steps must be within [1, 100]")
        _check(2 <= self.batch_size <= 1 << 16, "batch_size must be within [2, 65536]")
        _check(1 <= self.latent <= 4096, "latent must be within [1, 4096]")
        _check(0 < self.lr <= 10 and 0 < self.generator_lr <= 10, "learning rates within (0, 10]")


@dataclass(frozen=True)
class PiracyConfig:
    """Ownership piracy (Adi et al. 2018, §3 and §5.5): the thief embeds its own trigger
    set (``items`` images, procedural or from ``trigger_dir``) by fine-tuning every layer
    for as many epochs as the owner trained, to claim the model as its own."""

    items: int = 100                 # the paper's trigger-set size
    trigger_dir: str = ""
    epochs: int | None = None        # None: the recipe's training epochs (§5.5)
    lr: float | None = None          # None: the recipe's ft_lr
    batch_size: int | None = None
    data_fraction: float = 1.0
    trigger_per_batch: int | None = None   # None: the recipe's

    def __post_init__(self) -> None:
        _check(2 <= self.items <= 100_000, "items must be within [2, 100000]")
        _check(self.trigger_per_batch is None or 1 <= self.trigger_per_batch <= 4096,
               "trigger_per_batch must be within [1, 4096]")
        _check_training(self.epochs, self.lr, self.batch_size, self.data_fraction)
