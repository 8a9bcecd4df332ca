"""The fast path: decode every image once into a uint8 tensor store, then crop, resize, flip and
normalise whole batches as tensor ops on the device the model runs on.

The per-sample PIL path (transforms.py) stays the reference; ``BatchTransform`` in eval mode reproduces it
to within one 8-bit level (tested), because both use PIL's resampling weights (see resample.py).
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from zoo.data.decode import decode_split
from zoo.data.resample import apply_weights, check_interpolation, resample_weights, rrc_boxes
from zoo.data.transforms import (TRAIN_RATIO, TRAIN_SCALE, augment_op, check_preset, eval_scale_size,
                                 resolve_config)
from zoo.errors import DataError

STORE_VERSION = 2  # 2: the parallel decoder (decode.py)


def store_size(data_config: dict[str, Any]) -> int:
    """The side to pre-resize large photos to so the eval crop sees what the reference path sees:
    timm's resize size, floor(input / crop_pct)."""
    return max(eval_scale_size(resolve_config(data_config)))


class TensorStore(torch.utils.data.Dataset):
    """uint8 images [N, 3, h, w] and int64 labels [N], decoded once. ``store[i] -> (image, label)``."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, fingerprint: str | None = None) -> None:
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise DataError(f"TensorStore wants uint8 images [N, 3, h, w], got {images.dtype} {tuple(images.shape)}")
        if len(images) != len(labels):
            raise DataError(f"{len(images)} images but {len(labels)} labels")
        self.images, self.labels, self.fingerprint = images, labels.long(), fingerprint

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.images[i], int(self.labels[i])

    def __getitems__(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Batched fetch for DataLoader (one gather instead of B lookups); pair with ``collate=store.collate``."""
        idx = torch.as_tensor(indices)
        return self.images[idx], self.labels[idx]

    @staticmethod
    def collate(batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        if isinstance(batch, tuple):  # from __getitems__
            return batch
        return torch.stack([b[0] for b in batch]), torch.tensor([b[1] for b in batch])

    def loader(self, batch_size: int, shuffle: bool = False, drop_last: bool = False,
               generator: torch.Generator | None = None, **kwargs: Any) -> torch.utils.data.DataLoader:
        """A DataLoader yielding (uint8 images [B, 3, h, w], labels [B]) by batched indexing."""
        return torch.utils.data.DataLoader(self, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last,
                                           generator=generator, collate_fn=self.collate, **kwargs)

    # ---- building ------------------------------------------------------------------------------
    @staticmethod
    def cache_key(split: Any, size: int | None) -> str:
        # datasets keeps a content fingerprint on every Dataset (updated by each transform); it is the
        # documented way to key caches, though only exposed as the attribute _fingerprint
        key = json.dumps({"v": STORE_VERSION, "source": split._fingerprint, "n": len(split), "size": size,
                          "resize": "shorter-side bicubic + center crop"}, sort_keys=True)
        return hashlib.sha256(key.encode()).hexdigest()[:20]

    @classmethod
    def from_split(cls, split: Any, size: int | None = None, cache_dir: str | os.PathLike | None = None,
                   progress: bool = True, num_proc: int | None = None) -> "TensorStore":
        """Decode a split (``image``/``label`` columns) once. ``size=None`` keeps the native size (all images
        must share it, as CIFAR's do); ``size=S`` resizes the shorter side to S and center-crops S x S.
        With ``cache_dir`` the store is written there (keyed by the split's fingerprint and ``size``) and
        memory-mapped back by later calls instead of decoding again. Decoding runs in ``num_proc`` worker
        processes (default: all cores for large splits) that stream to the file (see decode.py)."""
        key = cls.cache_key(split, size)
        if cache_dir is not None:
            base = Path(cache_dir) / f"store-{key}"
            if (base / "done").is_file():
                images = torch.from_numpy(np.load(base / "images.npy", mmap_mode="c"))
                labels = torch.from_numpy(np.load(base / "labels.npy"))
                return cls(images, labels, key)
        images, labels = cls._decode(split, size, progress,
                                     None if cache_dir is None else Path(cache_dir) / f"store-{key}", num_proc)
        return cls(images, labels, key)

    @staticmethod
    def _decode(split: Any, size: int | None, progress: bool, out: Path | None,
                num_proc: int | None) -> tuple[torch.Tensor, torch.Tensor]:
        labels = np.asarray(split["label"], dtype=np.int64)
        if out is None:  # no cache: a temporary file, unlinked once mapped (the mapping keeps it alive)
            with tempfile.TemporaryDirectory(prefix="zoo-store-") as tmp:
                arr = decode_split(split, size, Path(tmp) / "images.npy", num_proc, progress)
            return torch.from_numpy(arr), torch.from_numpy(labels)
        out.mkdir(parents=True, exist_ok=True)
        decode_split(split, size, out / "images.npy.tmp", num_proc, progress)
        os.replace(out / "images.npy.tmp", out / "images.npy")
        np.save(out / "labels.npy", labels)
        (out / "done").write_text("ok\n")
        return torch.from_numpy(np.load(out / "images.npy", mmap_mode="c")), torch.from_numpy(labels)


class BatchTransform(nn.Module):
    """uint8 [B, 3, h, w] on any device -> float32 normalised [B, 3, H, W] on that device.

    Eval: resize to floor(input / crop_pct) and center crop (timm's eval transform). Train presets:
    ``none`` (= eval), ``flip-crop`` (per-sample RandomResizedCrop with timm's scale/ratio + horizontal flip),
    ``randaugment`` / ``trivialaugment`` (flip-crop to 8-bit images at the input size, then the PIL path's
    own augmentation per sample: ``transforms.augment_op``). ``upsample=False`` keeps sources smaller than
    the input at their own size (center square; train: reflect-pad-and-crop + flip, as for CIFAR)."""

    box_cache_bytes = 64 << 20  # the per-box weight cache starts again past this size (see _box_weights)

    def __init__(self, data_config: dict[str, Any], train: bool, preset: str = "flip-crop",
                 upsample: bool = True, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.cfg = resolve_config(data_config)
        check_interpolation(self.cfg["interpolation"])
        self.train_mode, self.preset, self.upsample = train, check_preset(preset), upsample
        self.generator = generator
        mean = torch.tensor(self.cfg["mean"], dtype=torch.float32).view(1, 3, 1, 1)
        std = torch.tensor(self.cfg["std"], dtype=torch.float32).view(1, 3, 1, 1)
        # normalise in one fused step: x * (1 / (255 std)) - mean / std
        self.register_buffer("scale", 1.0 / (255.0 * std), persistent=False)
        self.register_buffer("shift", mean / std, persistent=False)
        self._augment: nn.Module | None = augment_op(preset, self.cfg["mean"]) if train else None
        self._weights: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}
        self._box_cache: dict[tuple, dict[int, torch.Tensor]] = {}

    @property
    def augmenting(self) -> bool:
        return self.train_mode and self.preset != "none"

    def extra_repr(self) -> str:
        return (f"input_size={self.cfg['input_size']}, interpolation={self.cfg['interpolation']}, "
                f"train={self.train_mode}, preset={self.preset!r}, upsample={self.upsample}")

    def _normalise(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul_(self.scale.to(x.device)).sub_(self.shift.to(x.device))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype != torch.uint8 or x.ndim != 4 or x.shape[1] != 3:
            raise DataError(f"BatchTransform wants uint8 [B, 3, h, w], got {x.dtype} {tuple(x.shape)}")
        _, out_h, out_w = self.cfg["input_size"]
        b, _, h, w = x.shape
        if not self.upsample and min(h, w) < min(out_h, out_w):
            return self._own_size(x)
        dev = x.device
        if self.augmenting:
            boxes, flip = self._draw(b, h, w)
            wy = self._box_weights("y", h, boxes[:, 0], boxes[:, 2], torch.zeros_like(flip), out_h, dev)
            wx = self._box_weights("x", w, boxes[:, 1], boxes[:, 3], flip, out_w, dev)
        else:
            wy, wx = self._eval_weights(h, w, dev)
        if self._augment is None:
            return apply_weights(x, wy.to(dev), wx.to(dev), self.scale, self.shift)
        # the augmentation sees 8-bit crops at the input size, exactly as on the PIL path
        crops = apply_weights(x, wy.to(dev), wx.to(dev)).add_(0.5).floor_().to(torch.uint8)  # PIL: half up
        return self._normalise(self._augment_each(crops))

    def _draw(self, b: int, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Random crop boxes [B, 4] (top, left, height, width) and horizontal flips [B] for a batch."""
        boxes = rrc_boxes(b, h, w, TRAIN_SCALE, TRAIN_RATIO, self.generator)
        return boxes, torch.rand(b, generator=self.generator) < 0.5

    def _augment_each(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 [B, 3, H, W] -> float32 0..255, the preset's augmentation drawn per sample."""
        return torch.stack([self._augment(img) for img in x]).float()

    def _box_weights(self, axis: str, size: int, start: torch.Tensor, length: torch.Tensor, flip: torch.Tensor,
                     out: int, dev: torch.device) -> torch.Tensor:
        """Per-sample [B, out, size] weights for random boxes, built once per distinct (start, length, flip).

        Boxes are whole pixels, so a small source has few distinct ones (a 32-pixel side: at most 1,122
        per axis); building each once and gathering them per batch took a third off the train-mode batch
        time on CIFAR-sized sources. The cache is dropped when it passes ~64 MB (large sources)."""
        key = (start * (size + 1) + length) * 2 + flip.long()
        uniq, inverse = torch.unique(key, return_inverse=True)
        keys = uniq.tolist()
        cache = self._box_cache.setdefault((axis, size, out, str(dev)), {})
        missing = [k for k in keys if k not in cache]
        if missing:
            held = sum(len(c) * k[1] * k[2] for k, c in self._box_cache.items()) + len(missing) * size * out
            if held * 4 > self.box_cache_bytes:  # full: start again, building every box this batch needs
                for c in self._box_cache.values():
                    c.clear()
                missing = keys
            m = torch.tensor(missing)
            bits, box = m % 2, m // 2
            built = resample_weights(size, (box // (size + 1)).to(dev), (box % (size + 1)).to(dev), out,
                                     self.cfg["interpolation"], flip=bits.bool())
            cache.update(zip(missing, built))
        return torch.stack([cache[k] for k in keys])[inverse.to(dev)]

    def _eval_weights(self, h: int, w: int, dev: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """The eval resize + center crop as one [1, out, in] matrix per axis, cached per source size."""
        key = (h, w, str(dev))
        if key not in self._weights:
            _, out_h, out_w = self.cfg["input_size"]
            (rh, rw), (oy, ox) = self._eval_geometry(h, w)
            zero = torch.zeros(1, device=dev)
            interp = self.cfg["interpolation"]
            self._weights[key] = (
                resample_weights(h, zero, zero + h, out_h, interp, out_offset=oy, out_full=rh),
                resample_weights(w, zero, zero + w, out_w, interp, out_offset=ox, out_full=rw),
            )
        return self._weights[key]

    def _eval_geometry(self, h: int, w: int) -> tuple[tuple[int, int], tuple[int, int]]:
        """(resized height, width), (crop top, left) of timm's eval transform for an h x w source."""
        _, out_h, out_w = self.cfg["input_size"]
        sh, sw = eval_scale_size(self.cfg)
        if self.cfg["crop_mode"] == "squash":
            rh, rw = sh, sw
        elif sh == sw:  # torchvision Resize(int): shorter side to sh, the other truncated
            rh, rw = (sh, int(sh * w / h)) if h <= w else (int(sh * h / w), sh)
        else:  # timm ResizeKeepRatio: the scale that makes both sides at least the target
            ratio = max(sh / h, sw / w)
            rh, rw = round(h * ratio), round(w * ratio)
        return (rh, rw), (int(round((rh - out_h) / 2.0)), int(round((rw - out_w) / 2.0)))

    def _own_size(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        x = x[:, :, top:top + side, left:left + side].float()
        if self.augmenting:
            pad = max(1, side // 8)
            padded = nn.functional.pad(x, (pad, pad, pad, pad), mode="reflect")
            oy = torch.randint(0, 2 * pad + 1, (b,), generator=self.generator).to(x.device)
            ox = torch.randint(0, 2 * pad + 1, (b,), generator=self.generator).to(x.device)
            flip = (torch.rand(b, generator=self.generator) < 0.5).to(x.device)
            ar = torch.arange(side, device=x.device)
            rows = (oy[:, None] + ar)[:, None, :, None].expand(b, 3, side, side + 2 * pad)
            x = padded.gather(2, rows)
            cols = torch.where(flip[:, None], ox[:, None] + side - 1 - ar, ox[:, None] + ar)
            x = x.gather(3, cols[:, None, None, :].expand(b, 3, side, side))
        if self._augment is not None:  # integer pixels so far: the uint8 round trip is exact
            x = self._augment_each(x.to(torch.uint8))
        return self._normalise(x.contiguous())
