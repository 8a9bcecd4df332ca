"""Small generated datasets in CIFAR-10's Hub schema, for tests and the benchmark scripts (offline). Lives in
tests/, not in the zoo package: nothing in zoo uses it.

CIFAR-10 on the Hub (``uoft-cs/cifar10``) has an ``img`` Image column, a ``label`` ClassLabel with ten
names, and train/test splits. Generating that exact schema lets every code path that will meet the real
dataset (column renaming, label names, carving a validation split) be tested without a download.
"""

from __future__ import annotations

import colorsys
import os
from pathlib import Path
from typing import Literal

import numpy as np

CIFAR10_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

Format = Literal["disk", "parquet", "imagefolder"]


def class_names(num_classes: int) -> list[str]:
    """CIFAR-10's names for ten classes, ``class_00``... otherwise."""
    if num_classes == 10:
        return list(CIFAR10_NAMES)
    width = len(str(num_classes - 1))
    return [f"class_{i:0{width}d}" for i in range(num_classes)]


def _make_image(label: int, num_classes: int, size: int, rng: np.random.Generator, learnable: bool) -> np.ndarray:
    """One HxWx3 uint8 image. Learnable: a per-class hue and stripe direction plus noise, so a tiny model
    separates the classes in a few steps; otherwise pure noise (accuracy must then stay at chance)."""
    if not learnable:
        return rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    r, g, b = colorsys.hsv_to_rgb(label / num_classes, 0.9, 0.9)
    base = np.array([r, g, b], dtype=np.float32) * 255
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    period = max(4.0, size / 4)
    stripes = np.sin(2 * np.pi * (xx if label % 2 else yy) / period)[..., None]
    img = base * (0.75 + 0.2 * stripes) + rng.normal(0, 12, (size, size, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def _split_rows(n_per_class: int, num_classes: int, size: int, seed: int, learnable: bool):
    from PIL import Image

    rng = np.random.default_rng(seed)
    labels = [c for c in range(num_classes) for _ in range(n_per_class)]
    rng.shuffle(labels)
    images = [Image.fromarray(_make_image(int(c), num_classes, size, rng, learnable)) for c in labels]
    return images, [int(c) for c in labels]


def make_cifar_like(
    out_dir: str | os.PathLike,
    n_per_class: int = 20,
    num_classes: int = 10,
    size: int = 32,
    fmt: Format = "disk",
    seed: int = 0,
    learnable: bool = True,
    test_per_class: int | None = None,
) -> str:
    """Write a dataset in CIFAR-10's Hub schema and return the path to load it from.

    ``fmt="disk"``: ``DatasetDict.save_to_disk(out_dir)``;
    ``"parquet"``: ``out_dir/data/{split}-00000-of-00001.parquet``
    (the Hub's repo layout, so ``datasets.load_dataset(out_dir)`` and ``parquet:`` specs both read it);
    ``"imagefolder"``: ``out_dir/{train,test}/<class name>/<n>.png``. The test split has
    ``test_per_class`` (default ``max(2, n_per_class // 4)``) images per class.
    """
    import datasets

    if fmt not in ("disk", "parquet", "imagefolder"):
        raise ValueError(f"fmt={fmt!r}: use 'disk', 'parquet' or 'imagefolder'")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = class_names(num_classes)
    test_per_class = max(2, n_per_class // 4) if test_per_class is None else test_per_class
    splits = {
        "train": _split_rows(n_per_class, num_classes, size, seed, learnable),
        "test": _split_rows(test_per_class, num_classes, size, seed + 1, learnable),
    }
    if fmt == "imagefolder":
        for split, (images, labels) in splits.items():
            for i, (img, lab) in enumerate(zip(images, labels)):
                d = out / split / names[lab]
                d.mkdir(parents=True, exist_ok=True)
                img.save(d / f"{i:05d}.png")
        return str(out)
    features = datasets.Features({"img": datasets.Image(), "label": datasets.ClassLabel(names=names)})
    dd = datasets.DatasetDict(
        {
            split: datasets.Dataset.from_dict({"img": images, "label": labels}, features=features)
            for split, (images, labels) in splits.items()
        }
    )
    if fmt == "disk":
        dd.save_to_disk(str(out))
    else:
        (out / "data").mkdir(exist_ok=True)
        for split, ds in dd.items():
            ds.to_parquet(str(out / "data" / f"{split}-00000-of-00001.parquet"))
    return str(out)


def digits_folder(
    root: str | os.PathLike, cut: dict[int, float] | None = None, seed: int = 0, upscale: int = 1
) -> Path:
    """scikit-learn's 1,797 real 8x8 digits written as PNG image folders (``train/<digit>/*.png`` and
    ``test/<digit>/*.png``, the same stratified 80/20 test split as the ``sklearn:digits`` spec).

    ``cut`` keeps only a fraction of some classes' *training* images ({digit: fraction}, a seeded choice,
    at least one image each): a real folder made imbalanced, while the test split stays balanced, so a
    model that neglects the small classes shows it there. ``upscale`` enlarges each image (nearest)."""
    from PIL import Image
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = (digits.images * (255.0 / 16.0)).round().clip(0, 255).astype(np.uint8)
    labels = digits.target.astype(np.int64)
    idx_train, idx_test = train_test_split(np.arange(len(labels)), test_size=0.2, stratify=labels, random_state=0)
    rng = np.random.default_rng(seed)
    keep = []
    for c in range(10):
        rows = np.sort(idx_train[labels[idx_train] == c])
        if cut and c in cut:
            rows = np.sort(rng.choice(rows, max(1, round(cut[c] * len(rows))), replace=False))
        keep.append(rows)
    root = Path(root)
    for split, idx in (("train", np.concatenate(keep)), ("test", idx_test)):
        for i in idx:
            folder = root / split / str(labels[i])
            folder.mkdir(parents=True, exist_ok=True)
            img = Image.fromarray(images[i])
            if upscale > 1:
                img = img.resize((8 * upscale, 8 * upscale), Image.NEAREST)
            img.save(folder / f"{i:04d}.png")
    return root
