"""The fast path's store: every image of a split decoded once into a memory-mapped uint8 record file, each
at its own aspect ratio with its shorter side bounded (decode.py), read back without decoding again.

crops.py cuts the training crops from it in DataLoader workers; the per-sample PIL path (transforms.py)
stays the reference, and evaluation always runs zoo eval's PIL transform on the decoded split (loaders.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zoo.data.decode import decode_split
from zoo.data.transforms import eval_scale_size, resolve_config
from zoo.errors import DataError

STORE_VERSION = 3  # 3: variable-size records at each image's own aspect ratio (decode.py)


def store_size(data_config: dict[str, Any]) -> int:
    """The bound on a stored image's shorter side: timm's eval resize size, floor(input / crop_pct), the
    most any crop of the model's pipeline needs at full detail (larger photos are resized down to it once)."""
    return max(eval_scale_size(resolve_config(data_config)))


class TensorStore(torch.utils.data.Dataset):
    """uint8 images at their own sizes and aspect ratios, decoded once: one flat uint8 array of records
    (height x width x 3 each, back to back) and an index [N, 3] of (offset, height, width), as FFCV lays out
    variable-size images. ``store[i] -> (image uint8 [3, h, w], label)``; the image is a view of the
    (memory-mapped) record in channels-last layout, which torchvision's uint8 resize kernels read fastest."""

    def __init__(
        self, data: np.ndarray, index: np.ndarray, labels: Any, fingerprint: str | None = None, keep: Any = None
    ) -> None:
        index = np.asarray(index, dtype=np.int64)
        if index.ndim != 2 or index.shape[1] != 3:
            raise DataError(f"TensorStore wants an index [N, 3] of (offset, height, width), got {index.shape}")
        if len(index) != len(labels):
            raise DataError(f"{len(index)} images but {len(labels)} labels")
        self.data, self.index = data, index
        self.labels = torch.as_tensor(np.asarray(labels), dtype=torch.long)
        self.fingerprint = fingerprint
        self._keep = keep  # a temporary folder that must live as long as the memory map

    @classmethod
    def from_images(cls, images: torch.Tensor, labels: Any) -> TensorStore:
        """A store from uint8 images [N, 3, h, w] already in memory (tests, small arrays)."""
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise DataError(f"TensorStore wants uint8 images [N, 3, h, w], got {images.dtype} {tuple(images.shape)}")
        n, _, h, w = images.shape
        data = images.permute(0, 2, 3, 1).contiguous().numpy().reshape(-1)
        index = np.stack([np.arange(n) * h * w * 3, np.full(n, h), np.full(n, w)], 1)
        return cls(data, index, labels)

    def __len__(self) -> int:
        return len(self.index)

    def image(self, i: int) -> torch.Tensor:
        offset, h, w = (int(v) for v in self.index[i])
        return torch.from_numpy(self.data[offset : offset + h * w * 3]).view(h, w, 3).permute(2, 0, 1)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.image(i), int(self.labels[i])

    @property
    def sizes(self) -> np.ndarray:
        """[N, 2] (height, width) of every stored image."""
        return self.index[:, 1:]

    @property
    def uniform(self) -> bool:
        return bool((self.sizes == self.sizes[0]).all())

    @property
    def images(self) -> torch.Tensor:
        """All images as one uint8 [N, 3, h, w] view, for stores whose images share one size (CIFAR)."""
        if not self.uniform:
            raise DataError("images of different sizes have no [N, 3, h, w] view; read them one by one (store[i])")
        n, (h, w) = len(self), self.sizes[0]
        flat = torch.from_numpy(self.data[: n * h * w * 3])
        return flat.view(n, int(h), int(w), 3).permute(0, 3, 1, 2)

    def __reduce__(self) -> Any:  # DataLoader workers started by spawn: map the file again, do not copy it
        if isinstance(self.data, np.memmap) and self.data.filename:
            return (_reopen, (self.data.filename, self.index, self.labels, self.fingerprint))
        return (TensorStore, (np.asarray(self.data), self.index, self.labels, self.fingerprint))

    # ---- building ------------------------------------------------------------------------------
    @staticmethod
    def cache_key(split: Any, size: int | None) -> str:
        # datasets keeps a content fingerprint on every Dataset (updated by each transform); it is the
        # documented way to key caches, though only exposed as the attribute _fingerprint
        key = json.dumps(
            {
                "v": STORE_VERSION,
                "source": split._fingerprint,
                "n": len(split),
                "size": size,
                "resize": "shorter side bounded, bicubic, aspect kept",
            },
            sort_keys=True,
        )
        return hashlib.sha256(key.encode()).hexdigest()[:20]

    @classmethod
    def from_split(
        cls,
        split: Any,
        size: int | None = None,
        cache_dir: str | os.PathLike | None = None,
        progress: bool = True,
        num_proc: int | None = None,
    ) -> TensorStore:
        """Decode a split (``image``/``label`` columns) once. Each image keeps its aspect ratio; with
        ``size=S`` an image whose shorter side is above S is resized so that it is S (never up; the longer
        side capped at decode.MAX_ASPECT x the shorter). The decision is made for every image on its own.
        With ``cache_dir`` the store is written there (keyed by the split's fingerprint and ``size``) and
        memory-mapped back by later calls instead of decoding again. Decoding runs in ``num_proc`` worker
        processes (default: all cores for large splits; see decode.py)."""
        key = cls.cache_key(split, size)
        labels = np.asarray(split["label"], dtype=np.int64)
        if cache_dir is None:  # a temporary folder, kept as long as the store
            tmp = tempfile.TemporaryDirectory(prefix="zoo-store-")
            data, index = decode_split(split, size, Path(tmp.name) / "records.bin", num_proc, progress)
            return cls(data, index, labels, key, keep=tmp)
        base = Path(cache_dir) / f"store-{key}"
        if not (base / "done").is_file():
            # every process writes files of its own and renames them into place: DDP ranks that build the
            # same store at once each end with a whole one (identical bytes), never with another's half
            base.mkdir(parents=True, exist_ok=True)
            tag = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
            _, index = decode_split(split, size, base / f"records.bin.tmp-{tag}", num_proc, progress)
            for name, array in (("index.npy", index), ("labels.npy", labels)):
                np.save(base / f"{name}.tmp-{tag}.npy", array)
                os.replace(base / f"{name}.tmp-{tag}.npy", base / name)
            os.replace(base / f"records.bin.tmp-{tag}", base / "records.bin")
            (base / f"done.tmp-{tag}").write_text("ok\n")
            os.replace(base / f"done.tmp-{tag}", base / "done")
        return _reopen(str(base / "records.bin"), np.load(base / "index.npy"), np.load(base / "labels.npy"), key)


def _reopen(path: str, index: np.ndarray, labels: Any, fingerprint: str | None) -> TensorStore:
    return TensorStore(np.memmap(path, dtype=np.uint8, mode="c"), index, labels, fingerprint)
