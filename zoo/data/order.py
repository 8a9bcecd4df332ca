"""The train order and each sample's augmentation seed, both drawn in the main process by the sampler.

Why: random crops and flips are drawn in DataLoader workers, whose random state no checkpoint captures
(accelerate saves the main process's RNGs and the sampler's, not the workers'; and a resumed run starts new
workers). So a run killed mid-epoch and resumed would see other crops than an uninterrupted one. Here the
sampler yields ``(index, crop_seed)`` pairs: the index from the order (a shuffle, or the balanced sampler), the
seed from a generator seeded by (run seed, epoch), one per position in the epoch. Both are pure functions of
(seed, epoch, position), so a resumed epoch (``set_epoch`` + accelerate's ``skip_first_batches``, which replays
the sampler and drops the batches already seen) gets the very same crops, with any number of workers. Under DDP
every process iterates the same full sampler (accelerate's ``BatchSamplerShard`` picks its batches), so the
seeds agree too. ``SeededItems`` then runs each item under its seed: torch's (and Python's and NumPy's) global
generators are seeded from it for that one item and restored after, so torchvision's own draws
(``RandomResizedCrop.get_params``, the flip, RandAugment) keep their semantics.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sized
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

_SEED_MIX = 100_003  # seed * _SEED_MIX + epoch, as BalancedSampler does
_CROP_STREAM = 0x5EED  # a different stream from the order's, for the same (seed, epoch)


class EpochShuffle(Sampler[int]):
    """A permutation of ``range(len(data))`` that depends only on ``seed`` and the epoch (``set_epoch``): the
    shuffle of ``shuffle=True``, without a generator whose state a resume would have to restore. The length
    is read when iterated (a store built on first use is not built by making the loader)."""

    def __init__(self, data: Sized, seed: int = 0) -> None:
        self.data, self.seed, self.epoch = data, int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.data)

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed * _SEED_MIX + self.epoch)
        yield from torch.randperm(len(self), generator=generator).tolist()


class CropSeeds(Sampler[tuple[int, int]]):
    """``order``'s indices, each paired with a crop seed drawn for its position in the epoch from a generator
    seeded by (``seed``, epoch). ``set_epoch`` reaches ``order`` too (accelerate calls it on the sampler)."""

    def __init__(self, order: Sampler[int], seed: int = 0) -> None:
        self.order, self.seed, self.epoch = order, int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if hasattr(self.order, "set_epoch"):
            self.order.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.order)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        generator = torch.Generator().manual_seed((self.seed * _SEED_MIX + self.epoch) ^ _CROP_STREAM)
        seeds = torch.randint(0, 2**62, (len(self),), generator=generator).tolist()
        yield from zip(self.order, seeds)


@contextmanager
def seeded_rng(seed: int) -> Iterator[None]:
    """torch's, Python's and NumPy's global generators seeded from ``seed`` inside, restored after. In a
    DataLoader worker they are seeded and not restored: nothing there draws from them between items (each
    seeded item seeds them again), and saving and restoring them (NumPy's state alone is 2.5 KB) cost more
    than drawing a crop box does."""
    if torch.utils.data.get_worker_info() is not None:
        _seed_all(seed)
        yield
        return
    py, npy = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        _seed_all(seed)
        try:
            yield
        finally:
            random.setstate(py)
            np.random.set_state(npy)


def _seed_all(seed: int) -> None:
    # the CPU generator only: torch.manual_seed also queues a seed for every lazily initialised device (CUDA,
    # XPU, ...), each with a formatted stack trace, about 0.2 ms an item on a machine without them
    torch.default_generator.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)


class SeededItems(Dataset):
    """``dataset[i]`` for an index from ``CropSeeds``: ``(i, seed)`` runs under ``seeded_rng(seed)``; a plain
    index as the dataset itself would (from the process's generators)."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: int | tuple[int, int]) -> Any:
        if isinstance(key, tuple):
            i, seed = key
            with seeded_rng(seed):
                return self.dataset[i]
        return self.dataset[key]

    def __getitems__(self, keys: list[Any]) -> list[Any]:
        """A batch's items at once (the DataLoader's fetcher calls it): the dataset's own ``seeded_items``
        where it has one and takes these keys (one read for the whole batch), else item by item."""
        many = getattr(self.dataset, "seeded_items", None)
        if many is not None and keys and all(isinstance(k, tuple) for k in keys):
            items = many(keys)
            if items is not None:
                return list(items)
        return [self[k] for k in keys]


def seeded_order(data: Sized, seed: int, sampler: Sampler[int] | None = None, shuffle: bool = True) -> CropSeeds:
    """The train loader's sampler: ``sampler`` (e.g. the balanced one) or a seeded shuffle (or the plain
    order), each position with its crop seed."""
    if sampler is None:
        sampler = EpochShuffle(data, seed) if shuffle else torch.utils.data.SequentialSampler(data)
    return CropSeeds(sampler, seed)


__all__ = ["CropSeeds", "EpochShuffle", "SeededItems", "seeded_order", "seeded_rng"]
