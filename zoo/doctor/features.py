"""Pooled features of every split, through the disk cache the linear probe and ``zoo rank`` share.

One frozen pass per backbone and split; the entry is keyed by weights, data fingerprint and preprocessing
(zoo.train.feature_cache), so ``zoo rank`` on the same data and image size, a later ``linear_probe`` run, or a
second ``zoo data doctor`` read it back instead of extracting again. Several backbones: their L2-normalised
features are concatenated (an ensemble of views, the cheapest lever on label-issue precision).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zoo.data.loaders import build_loaders
from zoo.registry import create_model
from zoo.train.feature_cache import FeatureCache, feature_key
from zoo.train.features import extract_features
from zoo.train.schema import DataConfig

UPSAMPLE_CAP = 8  # as zoo rank: never more than 8x the images' own side (an 8x8 digit at 64 px holds all it has)


def image_side(split: Any, n: int = 64) -> int:
    """The median longer side of the first ``n`` images (what the default input size is capped by)."""
    return int(statistics.median(max(im.size) for im in split.select(range(min(len(split), n)))["image"]))


def input_size(model_size: int, side: int, requested: int | None) -> int:
    return requested or min(model_size, max(UPSAMPLE_CAP * side, 32))


def l2_normalise(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def split_features(
    ds: Any,
    models: Sequence[str],
    *,
    image_size: int | None = None,
    cache_dir: str | Path | None = None,
    batch_size: int = 128,
    device: str | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """{split: features [N, D]} (each backbone's block L2-normalised, then concatenated) and a record of
    what was run: per model the input size, whether the cache answered, and the extraction time."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu":
        torch.set_flush_denormal(True)  # as the trainer: pretrained weights make slow denormals on x86
    cache = FeatureCache(cache_dir) if cache_dir is not None else None
    side = image_side(ds["train"])
    splits = list(ds.keys())
    blocks: dict[str, list[np.ndarray]] = {s: [] for s in splits}
    record: dict[str, Any] = {"models": [], "device": device}
    for name in models:
        model = create_model(name, pretrained=True)
        size = input_size(int(model.data_config["input_size"][-1]), side, image_size)
        model.data_config["input_size"] = (3, size, size)
        model.eval().to(device)
        batch = min(batch_size, len(ds["train"]))  # a small train split is no reason to warn here
        loaders = build_loaders(
            ds,
            model.data_config,
            DataConfig(spec=ds.spec, augment="none", batch_size=batch, eval_batch_size=batch_size, num_workers=0),
            run_dir=Path(cache_dir) / "doctor" if cache_dir is not None else None,
        )
        eval_tf = loaders.eval_transform.to(device)
        info: dict[str, Any] = {"model": name, "input_size": size, "cached": [], "extract_seconds": 0.0}
        for split in splits:
            key = feature_key(model, ds[split], model.data_config)
            hit = cache.get(key) if cache is not None else None
            if hit is None:
                loader = loaders.train_plain if split == "train" else loaders.eval[split]
                start = time.perf_counter()
                feats, labels = extract_features(model, loader, None, eval_tf, desc=f"{name} {split}", leave=True)
                info["extract_seconds"] += time.perf_counter() - start
                if cache is not None:
                    cache.put(key, feats, labels)
            else:
                feats = hit[0]
                info["cached"].append(split)
            blocks[split].append(l2_normalise(feats.double().numpy()).astype(np.float32))
        info["extract_seconds"] = round(info["extract_seconds"], 2)
        record["models"].append(info)
        del model
    return {s: np.concatenate(b, axis=1) for s, b in blocks.items()}, record
