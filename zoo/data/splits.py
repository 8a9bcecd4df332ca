"""Split names and the seeded, stratified validation split carved from train when a source has none.

The carving uses scikit-learn's ``train_test_split`` (stratified, seeded) on row indices rather than
``Dataset.train_test_split`` because we want the indices themselves: their hash is recorded so that a later
run can check it got the very same split.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

import numpy as np

from zoo.errors import DataError

log = logging.getLogger("zoo.data")

SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "validation": "validation",
    "valid": "validation",
    "val": "validation",
    "dev": "validation",
    "test": "test",
    "testing": "test",
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
        raise DataError(
            f"{what} has no train split (found {sorted(dd) or 'none'}); "
            "add a train split/folder, e.g. train/<class>/*.jpg"
        )
    return datasets.DatasetDict({k: out[k] for k in ("train", "validation", "test") if k in out})


def indices_digest(indices: Any) -> str:
    return hashlib.sha256(np.asarray(indices, dtype=np.int64).tobytes()).hexdigest()[:16]


def check_classes(train: Any, label_names: list[str], what: str) -> None:
    """A classifier needs at least two classes with training images: one class 'learns' top-1 1.0 and
    means nothing. Raises a DataError naming the classes found and how to add the missing ones."""
    counts = np.bincount(np.asarray(train["label"], dtype=np.int64), minlength=len(label_names))
    present = [label_names[i] for i in np.flatnonzero(counts)]
    if len(present) < 2:
        found = f"{len(present)} class ({present[0]!r})" if present else "no class"
        listed = f"; label names: {label_names[:10]}" if len(label_names) > len(present) else ""
        raise DataError(
            f"{what} has training images of {found}{listed}: a classifier needs at least two. "
            "Add a folder per class (train/<class>/*.jpg, at least two classes), or point "
            "label_column (data.label_column) at the column that holds the classes."
        )


def carve_validation(
    train: Any, val_size: float, seed: int, label_names: list[str] | None = None
) -> tuple[Any, Any, dict[str, Any]]:
    """``carve_indices``, applied: (train rows, validation rows, record)."""
    train_idx, val_idx, record = carve_indices(train, val_size, seed, label_names)
    return train.select(train_idx), train.select(val_idx), record


def carve_indices(
    train: Any, val_size: float, seed: int, label_names: list[str] | None = None
) -> tuple[Any, Any, dict[str, Any]]:
    """Split ``train`` into (train, validation) with ``val_size`` (a fraction, or a count if >= 1),
    stratified by label, seeded. Returns the sorted row indices of each side and the record to keep.

    A class with fewer than two images cannot be on both sides: it stays in train, is named in a warning
    and in the record (``unstratified_classes``), and the other classes are still stratified. When the
    validation split is smaller than the number of classes nothing can be stratified: that is warned too."""
    from sklearn.model_selection import train_test_split

    n = len(train)
    if val_size <= 0:
        raise DataError(f"val_size={val_size} must be > 0 to carve a validation split from train")
    n_val = int(round(val_size * n)) if val_size < 1 else int(val_size)
    if not 1 <= n_val < n:
        raise DataError(
            f"val_size={val_size} gives {n_val} validation images out of {n} training images; "
            "use a fraction between 0 and 1 or a count smaller than the train split"
        )
    labels = np.asarray(train["label"], dtype=np.int64)
    counts = np.bincount(labels)
    names = label_names or [str(i) for i in range(len(counts))]
    tiny = [int(c) for c in np.flatnonzero((counts > 0) & (counts < 2))]
    pool = np.flatnonzero(~np.isin(labels, tiny))  # rows that can be split by class
    n_classes = int((counts >= 2).sum())
    stratified = bool(n_classes and n_classes <= n_val < len(pool) and len(pool) - n_val >= n_classes)
    if stratified:
        train_idx, val_idx = train_test_split(pool, test_size=n_val, random_state=seed, stratify=labels[pool])
        train_idx = np.concatenate([train_idx, np.flatnonzero(np.isin(labels, tiny))])
    else:
        train_idx, val_idx = train_test_split(np.arange(n), test_size=n_val, random_state=seed)
        log.warning(
            f"validation split of {n_val} image(s) for {int((counts > 0).sum())} classes is not "
            "stratified: raise data.val_size (--val-size) so each class can have a validation image"
        )
    if tiny:
        shown = ", ".join(f"{names[c]!r} ({counts[c]} image)" for c in tiny[:10])
        log.warning(
            f"class(es) too small to stratify, kept in train with no validation image: {shown}"
            f"{' ...' if len(tiny) > 10 else ''}; add images of them (at least two per class) "
            "for a validation accuracy that covers every class"
        )
    train_idx, val_idx = np.sort(train_idx), np.sort(val_idx)
    record = {
        "carved": True,
        "val_size": val_size,
        "seed": seed,
        "num_validation": int(n_val),
        "stratified": stratified,
        "indices_sha256": indices_digest(val_idx),
    }
    if tiny:
        record["unstratified_classes"] = [names[c] for c in tiny]
    return train_idx, val_idx, record
