"""Mixup / CutMix for the trainer, through timm's ``Mixup`` (batch-level, works on the fast path's on-device
batches as well as on collated reference batches). The losses that go with it are in zoo.train.losses."""

from __future__ import annotations

from typing import Any

from zoo.errors import ConfigError


def build_mixup(mixup: float = 0.0, cutmix: float = 0.0, label_smoothing: float = 0.0, num_classes: int = 0) -> Any:
    """timm's ``Mixup`` when mixup or cutmix is on (it also applies label smoothing to the soft targets),
    else None: then plain cross-entropy with ``label_smoothing`` is all the trainer needs
    (see zoo.train.losses.build_loss).
    ``mixup``/``cutmix`` are the Beta-distribution alphas (0 = off); both on means one or the other per batch.
    Their ranges are the recipe schema's to check (zoo.train.schema), once, before anything is built."""
    if mixup == 0 and cutmix == 0:
        return None
    if num_classes < 2:
        raise ConfigError(f"num_classes={num_classes}: mixup/cutmix need the number of classes (>= 2)")
    from timm.data import Mixup

    return Mixup(mixup_alpha=mixup, cutmix_alpha=cutmix, label_smoothing=label_smoothing, num_classes=num_classes)


def check_even_batch(mix: Any, batch_size: int) -> None:
    """Mixup/CutMix pair each sample with another of its batch (timm's ``Mixup`` refuses odd batches);
    train batches are always full, so an even ``data.batch_size`` is all it takes."""
    if mix is not None and batch_size % 2:
        fix = " or ".join(str(b) for b in (batch_size - 1, batch_size + 1) if b > 0)
        raise ConfigError(
            f"train.mixup/train.cutmix need an even data.batch_size, got {batch_size}: use data.batch_size={fix}"
        )
