"""``zoo data inspect``: what is in a dataset, what is wrong with it, and a thumbnail grid to look at."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from zoo.data.balance import imbalance_warning
from zoo.data.dataset import ImageDataset, load_dataset

THUMB = 64


def _size_summary(sizes: dict) -> dict[str, Any]:
    if not sizes:
        return {}
    ws = np.array([w for (w, _), n in sizes.items() for _ in range(n)])
    hs = np.array([h for (_, h), n in sizes.items() for _ in range(n)])
    common = sorted(sizes.items(), key=lambda kv: -kv[1])[:5]
    return {
        "distinct": len(sizes),
        "most_common": [[f"{w}x{h}", n] for (w, h), n in common],
        "width": {"min": int(ws.min()), "median": float(np.median(ws)), "max": int(ws.max())},
        "height": {"min": int(hs.min()), "median": float(np.median(hs)), "max": int(hs.max())},
    }


def thumbnail_grid(
    ds: ImageDataset, path: str | os.PathLike, per_class: int = 6, max_classes: int = 20, split: str = "train"
) -> str:
    """A PNG with one row per class (name on the left) of the first ``per_class`` images of that class."""
    from PIL import Image, ImageDraw

    data = ds[split]
    labels = np.asarray(data["label"])
    classes = list(range(min(ds.num_classes, max_classes)))
    label_w = 110
    grid = Image.new("RGB", (label_w + per_class * (THUMB + 2), len(classes) * (THUMB + 2)), "white")
    draw = ImageDraw.Draw(grid)
    for row, c in enumerate(classes):
        y = row * (THUMB + 2)
        draw.text((4, y + THUMB // 2 - 6), ds.label_names[c][:16], fill="black")
        for col, i in enumerate(np.flatnonzero(labels == c)[:per_class]):
            img = data[int(i)]["image"].copy()
            img.thumbnail((THUMB, THUMB))
            if img.size != (THUMB, THUMB):  # upscale tiny images (CIFAR, digits) so they can be seen
                scale = THUMB / max(img.size)
                img = img.resize(
                    (max(1, round(img.size[0] * scale)), max(1, round(img.size[1] * scale))), Image.Resampling.NEAREST
                )
            grid.paste(img, (label_w + col * (THUMB + 2), y))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    grid.save(path)
    return str(path)


def inspect_dataset(
    spec: str, out_dir: str | os.PathLike | None = None, per_class: int = 6, **load_kwargs: Any
) -> tuple[dict[str, Any], ImageDataset]:
    """Load ``spec`` skipping what is unreadable (so every problem is listed, not just the first) and report
    splits, class counts, image sizes and modes, bad files and empty class folders."""
    load_kwargs["on_bad_image"] = "skip"
    ds = load_dataset(spec, run_dir=out_dir, **load_kwargs)
    counts = {
        name: np.bincount(np.asarray(split["label"], dtype=np.int64), minlength=ds.num_classes).tolist()
        for name, split in ds.splits.items()
    }
    report = dict(ds.info())
    report["class_counts"] = {name: dict(zip(ds.label_names, c)) for name, c in counts.items()}
    report["image_sizes"] = _size_summary(ds.stats.get("sizes", {}))
    report["image_modes"] = dict(ds.stats.get("modes", {}))
    report["bad_files"] = [{"path": w, "reason": r} for w, r in ds.bad_images if not r.startswith("empty class folder")]
    report["empty_classes"] = [w for w, r in ds.bad_images if r.startswith("empty class folder")]
    # the whole labelled training pool (train + carved validation): what the user's folder holds
    pool = dict(
        zip(
            ds.label_names,
            np.add(counts["train"], counts["validation"]) if ds.validation.get("carved") else counts["train"],
        )
    )
    report["warnings"] = [w for w in [imbalance_warning({k: int(v) for k, v in pool.items()})] if w]
    if out_dir is not None and len(ds["train"]):
        report["thumbnails"] = thumbnail_grid(ds, Path(out_dir) / "thumbnails.png", per_class=per_class)
    return report, ds
