"""A resumed epoch sees the crops an uninterrupted one does, with crops cut in DataLoader workers.

Resume = a new train loader (new workers), prepared by accelerate as the trainer prepares it, set to the epoch,
with the batches already trained skipped (accelerate's ``skip_first_batches``, as zoo.train.loop does)."""

from __future__ import annotations

import pytest
import torch
from accelerate.data_loader import prepare_data_loader, skip_first_batches

from zoo.backbones.base import make_data_config
from zoo.data import load_dataset
from zoo.data.loaders import build_loaders
from zoo.train.schema import DataConfig


@pytest.fixture(scope="module")
def photos(photo_corpus):
    return load_dataset(photo_corpus, val_size=0.2, progress=False)


class _DS:
    def __init__(self, splits: dict) -> None:
        self.splits = splits

    def __getitem__(self, k: str):
        return self.splits[k]


def _train_loader(photos, fast: bool, sampler: str, workers: int):
    ds = _DS({"train": photos["train"].select(range(16)), "validation": photos["validation"]})
    cfg = DataConfig(batch_size=4, augment="flip-crop", num_workers=workers, sampler=sampler, fast=fast)
    loader = build_loaders(ds, make_data_config(32), cfg, seed=7, warn=pytest.fail).train
    return prepare_data_loader(loader, num_processes=1, process_index=0, put_on_device=False, use_seedable_sampler=True)


def _epoch(loader, epoch: int, skip: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    loader.set_epoch(epoch)
    batches = skip_first_batches(loader, skip) if skip else loader
    return [(x.clone(), y.clone()) for x, y in batches]


def _same(a, b) -> bool:
    return len(a) == len(b) and all(torch.equal(xa, xb) and torch.equal(ya, yb) for (xa, ya), (xb, yb) in zip(a, b))


@pytest.mark.parametrize(("fast", "sampler"), [(True, "random"), (True, "balanced"), (False, "random")])
def test_resumed_epoch_gets_the_uninterrupted_crops_with_workers(photos, fast, sampler):
    ref = _train_loader(photos, fast, sampler, workers=2)
    first = _epoch(ref, 0)
    second = _epoch(ref, 1)
    assert len(second) == 4 and not _same(first, second)  # the epochs differ: the crops are random
    resumed = _epoch(_train_loader(photos, fast, sampler, workers=2), 1, skip=2)
    assert len(resumed) == 2 and _same(resumed, second[2:])
    # the crops do not depend on the workers at all: no workers give the same epoch
    assert _same(_epoch(_train_loader(photos, fast, sampler, workers=0), 1), second)


@pytest.mark.parametrize(("fast", "workers"), [(True, 0), (True, 2), (False, 0)])
def test_train_batches_leave_the_main_process_generators_alone(photos, fast, workers):
    """Nothing the train loader draws comes from the main process's global generators (which a checkpoint
    saves, and mixup/cutmix and dropout draw from): neither the crops nor the workers' base seed, which each
    new iterator draws (a resumed epoch makes one more, its skip loader)."""
    import random

    import numpy as np

    loader = _train_loader(photos, fast, "random", workers)
    before = torch.get_rng_state(), random.getstate(), np.random.get_state()[1].copy()
    for epoch in (0, 1):
        _epoch(loader, epoch)
    _epoch(_train_loader(photos, fast, "random", workers), 1, skip=2)
    assert torch.equal(torch.get_rng_state(), before[0])
    assert random.getstate() == before[1] and np.array_equal(np.random.get_state()[1], before[2])


def test_a_crop_seed_touches_only_the_cpu_generator(monkeypatch):
    """``seeded_rng`` seeds torch's CPU generator alone: ``torch.manual_seed`` would also queue a seed for every
    lazily initialised device, formatting a stack trace each time (it cost more per image than the crop box)."""
    from zoo.data.order import seeded_rng

    def refuse(*_args, **_kwargs):
        raise AssertionError("a device generator was seeded")

    for device in ("cuda", "xpu", "mps", "mtia"):
        module = getattr(torch, device, None)
        if module is not None and hasattr(module, "manual_seed_all"):
            monkeypatch.setattr(module, "manual_seed_all", refuse)
    with seeded_rng(5):
        first = torch.rand(3)
    with seeded_rng(5):
        assert torch.equal(torch.rand(3), first)
    assert torch.equal(torch.rand(3, generator=torch.Generator().manual_seed(5)), first)  # torch.manual_seed's draws
