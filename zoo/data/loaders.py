"""From a loaded dataset to the batches the trainer consumes: the fast path or the reference path.

Fast path (``data.fast: true``): the train split is decoded once into a uint8 store (each photo at its own
aspect ratio, the shorter side bounded); DataLoader workers cut each image's random crop from it with
torchvision's uint8 kernels (crops.py) and the device normalises the uint8 batch; for small images (CIFAR) the
workers send the stored images with their drawn boxes and the device cuts the whole batch at once
(batch_crops.py). ``TrainInput`` is the device side of both.
Reference path: ``datasets.with_transform`` with per-sample PIL transforms in DataLoader workers, as the
Hugging Face examples do. Evaluation is the same on both: zoo eval's PIL transform on the decoded split, so
per-epoch validation figures are zoo eval's. Either way the trainer sees ``(x, y)`` batches and one
transform per side to apply on the device (identity where the loader already normalised).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from zoo.cpu_memory import release_inherited_memory
from zoo.data.balance import train_sampler
from zoo.data.order import SeededItems, seeded_order
from zoo.errors import DataError


@dataclass
class Loaders:
    train: DataLoader
    eval: dict[str, DataLoader]  # "validation", and "test" when the dataset has one
    train_transform: nn.Module  # applied to each train batch on the device
    eval_transform: nn.Module  # applied to each eval batch on the device
    # the augmentation-free view of the train split, for feature extraction (linear probe cache)
    train_plain: DataLoader


def _pixel_collate(batch: list[dict[str, Any]]) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.stack([b["pixel_values"] for b in batch]), torch.tensor([b["label"] for b in batch])


def _with_pil_transform(split: Any, transform: Callable[[Any], torch.Tensor]) -> Any:
    def apply(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        return {"pixel_values": [transform(img) for img in batch["image"]], "label": batch["label"]}

    return split.with_transform(apply)


def _store(split: Any, data_config: dict[str, Any], cache_dir: Path | None) -> Any:
    """Each image stored once at its own aspect ratio; those whose shorter side is above the model's resize
    size (floor(input / crop_pct)) resized down to it, judged image by image (fast.TensorStore.from_split)."""
    from zoo.data.fast import TensorStore, store_size

    return TensorStore.from_split(split, size=store_size(data_config), cache_dir=cache_dir)


def _warn(message: str) -> None:
    warnings.warn(message, UserWarning, stacklevel=3)


def train_batch_size(n_train: int, batch_size: int, warn: Callable[[str], None] = _warn) -> int:
    """The train loader drops its last short batch (as timm's does: every step sees a full batch, and
    mixup, which pairs samples, always gets an even one), so a train split smaller than a batch would give
    no batch at all: use the largest even batch that fits instead, and say so."""
    if n_train >= batch_size:
        return batch_size
    if n_train < 2:
        raise DataError(f"the train split has {n_train} image(s): training needs at least 2")
    fit = n_train - n_train % 2
    warn(
        f"the train split has {n_train} images, fewer than data.batch_size={batch_size}: training on batches "
        f"of {fit} (set data.batch_size={fit} or lower to silence this)"
    )
    return fit


def build_loaders(
    ds: Any,
    data_config: dict[str, Any],
    data_cfg: Any,
    run_dir: Path | None = None,
    seed: int = 0,
    warn: Callable[[str], None] = _warn,
    default_eval_batch: int | None = None,
) -> Loaders:
    """``ds`` is a zoo.data.ImageDataset; ``data_cfg`` the recipe's data section. ``warn`` receives the
    notes on settings this run cannot honour as given (the trainer prints them; default: a UserWarning).
    ``default_eval_batch``: the evaluation batch when the recipe leaves it unset (else twice the train batch)."""
    from zoo.data.crops import TrainInput, train_loader
    from zoo.data.transforms import build_transform

    batch_size = train_batch_size(len(ds["train"]), data_cfg.batch_size, warn)
    eval_batch_size = data_cfg.eval_batch_size or default_eval_batch or 2 * data_cfg.batch_size
    eval_splits = [s for s in ("validation", "test") if s in ds.splits]
    # data.sampler: random shuffles; balanced draws classes equally (zoo.data.balance, DDP-safe). Either way
    # the sampler also gives each position its augmentation seed (zoo.data.order): the crops drawn in the
    # workers are then a function of (seed, epoch, position), and a resumed epoch replays them exactly
    sampler = train_sampler(ds["train"]["label"], data_cfg.sampler, seed)

    train_t = build_transform(data_config, train=True, preset=data_cfg.augment, upsample=data_cfg.upsample)
    eval_t = build_transform(data_config, train=False, upsample=data_cfg.upsample)
    workers = {
        "num_workers": data_cfg.num_workers,
        "persistent_workers": data_cfg.num_workers > 0,
        # forked from a trainer holding freed memory (zoo.cpu_memory): hand the inherited free pages back
        "worker_init_fn": release_inherited_memory,
    }
    # Evaluation (validation, test, and the probe's features) is zoo eval's own: the PIL eval transform on the
    # decoded split (zoo.inference), so the best epoch's validation figure is what zoo eval reports.
    plain = DataLoader(
        _with_pil_transform(ds["train"], eval_t), batch_size=eval_batch_size, collate_fn=_pixel_collate, **workers
    )
    evals = {
        s: DataLoader(
            _with_pil_transform(ds[s], eval_t), batch_size=eval_batch_size, collate_fn=_pixel_collate, **workers
        )
        for s in eval_splits
    }
    if data_cfg.fast:
        # decoded once (shared by the runs of one output folder: the variants of a recipe decode it once);
        # each worker cuts one crop per image from the memory-mapped store and sends it as uint8 (small images:
        # sends the image and its box, and the device cuts the batch)
        cache_dir = Path(run_dir).parent / ".cache" if run_dir else None

        def store() -> Any:  # built on first use (a linear probe never reads the train loader)
            return _store(ds["train"], data_config, cache_dir)

        train = train_loader(
            store,
            data_config,
            batch_size,
            preset=data_cfg.augment,
            upsample=data_cfg.upsample,
            num_workers=data_cfg.num_workers,
            drop_last=True,
            sampler=sampler,
            shuffle=True,
            seed=seed,
        )
        return Loaders(train, evals, TrainInput(data_config), nn.Identity(), plain)

    items = SeededItems(_with_pil_transform(ds["train"], train_t))
    train = DataLoader(
        items,
        batch_size=batch_size,
        drop_last=True,
        sampler=seeded_order(items, seed, sampler),
        generator=torch.Generator().manual_seed(seed),
        collate_fn=_pixel_collate,
        **workers,
    )
    return Loaders(train, evals, nn.Identity(), nn.Identity(), plain)
