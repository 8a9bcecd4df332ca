"""Split names and the seeded, stratified validation split carved from train when a source has none.

The carving uses scikit-learn's ``train_test_split`` (stratified, seeded) on row indices rather than
``Dataset.train_test_split`` because we want the indices themselves: their hash is recorded so that a later
run can check it got the very same split.
"""
from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from zoo.errors import DataError

SPLIT_ALIASES = {
    "train": "train", "training": "train",
    "validation": "validation", "valid": "validation", "val": "validation", "dev": "validation",
    "test": "test", "testing": "test",
}


def split_alias(name: str) -> str | None:
    """The canonical split ('train', 'validation', 'test') a name stands for, or None."""
    return SPLIT_ALIASES.get(name.lower())


def canonical_splits(dd: Any, what: str) -> Any:
    """Rename splits to train/validation/test; a source without a train split is a DataError."""
    import datasets

    out: dict[str, Any] = {}
    for name, ds in dd.items():
        canon = split_alias(name)
        if canon is None:
            continue  # extra splits (e.g. 'unsupervised') are not used for classification
        if canon in out:
            raise DataError(f"{what} has two splits that both mean {canon!r}: rename one of {list(dd)}")
        out[canon] = ds
    if "train" not in out:
        raise DataError(f"{what} has no train split (found {sorted(dd) or 'none'}); "
                        "add a train split/folder, e.g. train/<class>/*.jpg")
    return datasets.DatasetDict({k: out[k] for k in ("train", "validation", "test") if k in out})


def indices_digest(indices: Any) -> str:
    return hashlib.sha256(np.asarray(indices, dtype=np.int64).tobytes()).hexdigest()[:16]


def carve_validation(train: Any, val_size: float, seed: int) -> tuple[Any, Any, dict[str, Any]]:
    """Split ``train`` into (train, validation) with ``val_size`` (a fraction, or a count if >= 1),
    stratified by label when every class can be represented, seeded. Returns the record to keep."""
    from sklearn.model_selection import train_test_split

    n = len(train)
    if val_size <= 0:
        raise DataError(f"val_size={val_size} must be > 0 to carve a validation split from train")
    n_val = int(round(val_size * n)) if val_size < 1 else int(val_size)
    if not 1 <= n_val < n:
        raise DataError(f"val_size={val_size} gives {n_val} validation images out of {n} training images; "
                        "use a fraction between 0 and 1 or a count smaller than the train split")
    labels = np.asarray(train["label"])
    counts = np.bincount(labels)
    counts = counts[counts > 0]
    stratified = bool(n_val >= len(counts) and n - n_val >= len(counts) and counts.min() >= 2)
    train_idx, val_idx = train_test_split(np.arange(n), test_size=n_val, random_state=seed,
                                          stratify=labels if stratified else None)
    train_idx, val_idx = np.sort(train_idx), np.sort(val_idx)
    record = {"carved": True, "val_size": val_size, "seed": seed, "num_validation": int(n_val),
              "stratified": stratified, "indices_sha256": indices_digest(val_idx)}
    return train.select(train_idx), train.select(val_idx), record
