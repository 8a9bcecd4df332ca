"""Imbalanced training sets: class weights for the loss and a class-balanced sampler.

A folder of 900 normal scans and 60 of a rare finding trains a model that says "normal" and scores 94%
top-1. Two standard corrections, each a recipe key: ``train.class_weights: balanced`` weighs each class's
loss by ``n / (k * n_c)`` (scikit-learn's "balanced" rule), and ``data.sampler: balanced`` draws each epoch's
batches so that every class is equally likely (with replacement, as ``WeightedRandomSampler`` does).

The sampler is DDP-safe by construction: every process draws the same index list from the shared seed and
the epoch number, and accelerate's ``BatchSamplerShard`` gives each process its own share of the batches
(the same path it takes for any custom sampler). Being a pure function of (seed, epoch), it also resumes
mid-epoch exactly: skipping the batches already seen continues the same order.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Sampler

from zoo.errors import ConfigError

log = logging.getLogger("zoo.data")

IMBALANCE_WARN_RATIO = 5.0  # largest class over smallest above which `zoo data inspect` warns


def class_counts(labels: Sequence[int] | np.ndarray, num_classes: int) -> np.ndarray:
    return np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes)


def balanced_class_weights(labels: Sequence[int] | np.ndarray, num_classes: int) -> torch.Tensor:
    """``n / (k * n_c)`` for each class c present (k = classes present), 0 for a class with no images:
    the weighted loss then counts each class as much as the others, whatever its size."""
    counts = class_counts(labels, num_classes).astype(np.float64)
    present = counts > 0
    weights = np.zeros(num_classes)
    weights[present] = counts.sum() / (present.sum() * counts[present])
    return torch.tensor(weights, dtype=torch.float32)


def loss_weights(labels: Sequence[int] | np.ndarray, num_classes: int, mode: str) -> torch.Tensor | None:
    """The ``train.class_weights`` key: None for 'none', the balanced weights for 'balanced'."""
    if mode == "none":
        return None
    if mode == "balanced":
        return balanced_class_weights(labels, num_classes)
    raise ConfigError(f"train.class_weights={mode!r}: use none or balanced")


class BalancedSampler(Sampler[int]):
    """Each epoch, ``num_samples`` indices drawn with replacement so that every class is equally likely.

    The draw depends only on ``seed`` and the epoch set by ``set_epoch`` (accelerate's prepared loader
    calls it), so all processes agree on the order and a resumed epoch replays it."""

    def __init__(
        self, labels: Sequence[int] | np.ndarray | torch.Tensor, seed: int = 0, num_samples: int | None = None
    ) -> None:
        labels = np.asarray(labels, dtype=np.int64)
        counts = np.bincount(labels)
        self.weights = torch.tensor(1.0 / counts[labels], dtype=torch.float64)
        self.num_samples = int(num_samples or len(labels))
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        yield from torch.multinomial(self.weights, self.num_samples, replacement=True, generator=generator).tolist()


def train_sampler(labels: Sequence[int] | np.ndarray | torch.Tensor, mode: str, seed: int) -> BalancedSampler | None:
    """The ``data.sampler`` key for the train labels: None for 'random' (the loaders shuffle as before),
    a BalancedSampler for 'balanced'."""
    if mode == "random":
        return None
    if mode == "balanced":
        return BalancedSampler(labels, seed=seed)
    raise ConfigError(f"data.sampler={mode!r}: use random or balanced")


def imbalance_warning(counts: dict[str, int], ratio: float = IMBALANCE_WARN_RATIO) -> str | None:
    """A warning when the largest class has more than ``ratio`` times the images of the smallest."""
    present = {k: v for k, v in counts.items() if v > 0}
    if len(present) < 2:
        return None
    big = max(present, key=present.__getitem__)
    small = min(present, key=present.__getitem__)
    if present[big] <= ratio * present[small]:
        return None
    return (
        f"classes are imbalanced: {big!r} has {present[big]} training images, {small!r} only {present[small]} "
        f"({present[big] / present[small]:.1f}x). Top-1 will favour the large classes; consider "
        "train.class_weights=balanced or data.sampler=balanced, and train.select_by=val_balanced_acc."
    )
