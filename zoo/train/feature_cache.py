"""A disk cache of pooled features, shared by the linear probe (trainer) and ``zoo rank``.

Features depend on three things only, so the key is made of exactly those:
  - the backbone's weights (a digest of its state dict, the classifier left out: a reset head changes no
    feature, so a ranked ImageNet model and the same model with a new 10-class head share an entry),
  - the data (the ``datasets`` fingerprint of the split, which changes with every select or shuffle),
  - the preprocessing (the resolved data config, fast or reference path, upsampling, precision).
``zoo rank`` on a dataset therefore fills the entry that a later ``linear_probe`` run of the same model,
data and image size reads instead of extracting again.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from datasets import Dataset
from safetensors.torch import load_file, save_file

from zoo.data.transforms import resolve_config

CACHE_VERSION = 1


def weights_digest(model: torch.nn.Module) -> str:
    """A digest of every parameter and buffer that feeds ``forward_features`` (the classifier excluded)."""
    get_classifier: Any = getattr(model, "get_classifier", None)  # a Backbone's; a bare module has none
    head = get_classifier() if get_classifier is not None else None
    skip = {t.data_ptr() for t in head.state_dict().values()} if isinstance(head, torch.nn.Module) else set()
    h = hashlib.blake2b(digest_size=16)
    for name, tensor in model.state_dict().items():
        if tensor.data_ptr() in skip:
            continue
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def feature_key(
    model: torch.nn.Module,
    split: Dataset,
    data_config: dict[str, Any],
    *,
    fast: bool = True,
    upsample: bool = True,
    precision: str = "no",
) -> dict[str, Any]:
    """The record a cache entry is keyed by (and stores beside the tensors, for inspection)."""
    cfg = resolve_config(data_config)
    return {
        "v": CACHE_VERSION,
        "model": getattr(model, "name", type(model).__name__),
        "weights": weights_digest(model),
        # datasets keeps a content fingerprint on every Dataset (see zoo.data.fast.TensorStore.cache_key)
        "data": split._fingerprint,
        "n": len(split),
        "preprocess": {
            **{k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items()},
            "fast": bool(fast),
            "upsample": bool(upsample),
            "precision": precision,
        },
    }


class FeatureCache:
    """``root/features/<hash>.safetensors`` holding ``features`` [N, D] and ``labels`` [N]."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.dir = Path(root) / "features"

    @staticmethod
    def digest(key: dict[str, Any]) -> str:
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]

    def path(self, key: dict[str, Any]) -> Path:
        return self.dir / f"{self.digest(key)}.safetensors"

    def get(self, key: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor] | None:
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            data = load_file(str(path))
            return data["features"], data["labels"]
        except Exception:  # noqa: BLE001 (a truncated or foreign file is a miss, never a crash: it is rewritten)
            return None

    def put(self, key: dict[str, Any], features: torch.Tensor, labels: torch.Tensor) -> Path:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp")
        save_file(
            {"features": features.float().contiguous(), "labels": labels.long().contiguous()},
            str(tmp),
            metadata={"key": json.dumps(key, sort_keys=True)},
        )
        os.replace(tmp, path)  # atomic: a reader sees the whole file or none
        return path
