"""From a loaded dataset to the batches the trainer consumes: the fast path or the reference path.

Fast path (``data.fast: true``): each split is decoded once into a uint8 tensor store; DataLoaders batch
uint8 tensors and the resize/crop/flip/normalise happen as batched tensor ops on the training device
(``BatchTransform``). Reference path: ``datasets.with_transform`` with per-sample PIL transforms in
DataLoader workers, as the Hugging Face examples do. Either way the trainer sees ``(x, y)`` batches and
one ``batch_transform`` to apply on the device (identity on the reference path).
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

from zoo.data.balance import train_sampler
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
    """Small images (CIFAR, digits) are stored at their own size and upsampled per batch on the device;
    large or mixed-size photos are pre-resized once to the model's resize size, then cached on disk."""
    from zoo.data.fast import TensorStore, store_size
    from zoo.errors import DataError

    size = store_size(data_config)
    if max(split[0]["image"].size) > size:
        return TensorStore.from_split(split, size=size, cache_dir=cache_dir)
    try:
        return TensorStore.from_split(split, size=None, cache_dir=cache_dir)
    except DataError:  # mixed sizes: bring them to one
        return TensorStore.from_split(split, size=size, cache_dir=cache_dir)


def _warn(message: str) -> None:
    warnings.warn(message, UserWarning, stacklevel=3)


def _default(section: Any, key: str) -> Any:
    """The schema's default of a recipe key, read from the section's own pydantic model (no import of the
    schema from this lower layer)."""
    return type(section).model_fields[key].default


def train_batch_size(n_train: int, batch_size: int, warn: Callable[[str], None] = _warn) -> int:
    """The train loader drops its last short batch (as timm's does: every step sees a full batch, and
    mixup, which pairs samples, always gets an even one), so a train split smaller than a batch would give
    no batch at all: use the largest even batch that fits instead, and say so."""
    if n_train >= batch_size:
        return batch_size
    if n_train < 2:
        raise DataError(f"the train split has {n_train} image(s): training needs at least 2")
    fit = n_train - n_train % 2
    warn(f"the train split has {n_train} images, fewer than data.batch_size={batch_size}: training on batches "
         f"of {fit} (set data.batch_size={fit} or lower to silence this)")
    return fit


def build_loaders(ds: Any, data_config: dict[str, Any], data_cfg: Any, run_dir: Path | None = None,
                  seed: int = 0, warn: Callable[[str], None] = _warn) -> Loaders:
    """``ds`` is a zoo.data.ImageDataset; ``data_cfg`` the recipe's data section. ``warn`` receives the
    notes on settings this run cannot honour as given (the trainer prints them; default: a UserWarning)."""
    from zoo.data.fast import BatchTransform
    from zoo.data.transforms import build_transform

    batch_size = train_batch_size(len(ds["train"]), data_cfg.batch_size, warn)
    eval_batch_size = data_cfg.eval_batch_size or 2 * data_cfg.batch_size
    eval_splits = [s for s in ("validation", "test") if s in ds.splits]
    generator = torch.Generator().manual_seed(seed)
    # data.sampler: random shuffles; balanced draws classes equally (zoo.data.balance, DDP-safe)
    sampler = train_sampler(ds["train"]["label"], data_cfg.sampler, seed)
    order: dict[str, Any] = {"sampler": sampler} if sampler is not None else {"shuffle": True, "generator": generator}

    if data_cfg.fast:
        # shared by the runs of one output folder (the variants of a recipe decode the images once)
        cache_dir = Path(run_dir).parent / ".cache" if run_dir else None
        stores = {s: _store(ds[s], data_config, cache_dir) for s in ["train", *eval_splits]}
        # In-memory uint8 tensors, fetched a batch at a time: worker processes would only add start-up cost.
        # 0 is what happens anyway, and the default was not asked for: nothing to tell
        if data_cfg.num_workers not in (0, _default(data_cfg, "num_workers")):
            warn(f"data.num_workers={data_cfg.num_workers} is ignored on the fast path (data.fast: true): images "
                 "are decoded once into a tensor store and batched in this process; data.fast=false uses "
                 "DataLoader workers")
        train = stores["train"].loader(batch_size, drop_last=True, **order)
        plain = stores["train"].loader(eval_batch_size)
        evals = {s: stores[s].loader(eval_batch_size) for s in eval_splits}
        train_tf: nn.Module = BatchTransform(data_config, train=True, preset=data_cfg.augment, upsample=data_cfg.upsample)
        eval_tf: nn.Module = BatchTransform(data_config, train=False, upsample=data_cfg.upsample)
        return Loaders(train, evals, train_tf, eval_tf, plain)

    train_t = build_transform(data_config, train=True, preset=data_cfg.augment, upsample=data_cfg.upsample)
    eval_t = build_transform(data_config, train=False, upsample=data_cfg.upsample)
    workers = dict(num_workers=data_cfg.num_workers, persistent_workers=data_cfg.num_workers > 0,
                   collate_fn=_pixel_collate)
    train = DataLoader(_with_pil_transform(ds["train"], train_t), batch_size=batch_size, drop_last=True, **order,
                       **workers)
    plain = DataLoader(_with_pil_transform(ds["train"], eval_t), batch_size=eval_batch_size, **workers)
    evals = {s: DataLoader(_with_pil_transform(ds[s], eval_t), batch_size=eval_batch_size, **workers)
             for s in eval_splits}
    return Loaders(train, evals, nn.Identity(), nn.Identity(), plain)
