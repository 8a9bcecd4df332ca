"""The fast path's train batches: one random crop per image, cut and resized in DataLoader workers straight
from the memory-mapped store, handed over as uint8 and normalised on the training device.

Why per sample and in workers: a RandomResizedCrop box differs for every image, and so (with the store keeping
each photo's own aspect ratio) does the source size, so there is no batch to vectorise over. torchvision's
uint8 antialiased resize (the v2 kernels, AVX2 on CPU) costs in proportion to the crop and the output, not
out x in as a dense resampling matrix does, and reads the channels-last records without a copy. It agrees with
PIL to within one 8-bit level on photos (tested); interpolations it does not have (lanczos, hamming, box,
nearest) go through PIL for the crop, as the reference path does. Workers send uint8 crops at the model's
input size (a quarter of float32's bytes; on a GPU they cross the bus as uint8) and ``Normalize`` makes them
float on the device.

Stores of small images (every image one size, no side above the model input's: CIFAR, MNIST) go another way
for the plain flip-crop preset: the workers send the stored images with their drawn boxes, and the device cuts,
resizes and normalises the whole batch at once (batch_crops.py; ``TrainInput`` applies whichever came).

The crop box is drawn by torchvision's own ``RandomResizedCrop.get_params`` on each stored image's height and
width (the same draw as the reference path's, on the same aspect ratio), the flip as ``RandomHorizontalFlip``
draws it, both from the torch generator, which ``train_loader`` seeds for each sample from the seed its
sampler drew for that position (zoo.data.order: the workers' own random state never decides a crop, so a
resumed run sees the crops an uninterrupted one does).
"""

from __future__ import annotations

from typing import Any, cast

import torch
from torch import nn

from zoo.cpu_memory import release_inherited_memory
from zoo.data.batch_crops import BatchResizedCrop, SourceBatch, collate_sources
from zoo.data.transforms import (
    TRAIN_RATIO,
    TRAIN_SCALE,
    augment_op,
    check_preset,
    eval_scale_size,
    resolve_config,
)

TENSOR_KERNELS = ("bilinear", "bicubic")  # torchvision's antialiased tensor resize; the rest go through PIL
INTERPOLATIONS = (*TENSOR_KERNELS, "lanczos", "box", "hamming", "nearest")  # every name a timm/PIL config uses


def check_interpolation(name: str) -> str:
    """Every interpolation a timm/PIL data config can name is supported; anything else is an error naming
    it (it used to become bilinear without a word)."""
    if name not in INTERPOLATIONS:
        from zoo.errors import ConfigError

        raise ConfigError(
            f"interpolation {name!r} is not supported by the fast path (data.fast); use one of "
            f"{', '.join(INTERPOLATIONS)}, or data.fast=false for the per-sample PIL path"
        )
    return name


def draw_box(h: int, w: int) -> tuple[int, int, int, int]:
    """(top, left, height, width) of a RandomResizedCrop on an h x w image: torchvision's own draw, from the
    global torch generator, with timm's scale and ratio (the reference path's)."""
    import torchvision.transforms as T

    return T.RandomResizedCrop.get_params(torch.empty(0, h, w), list(TRAIN_SCALE), list(TRAIN_RATIO))


def resized_crop(
    img: torch.Tensor, box: tuple[int, int, int, int], size: tuple[int, int], interpolation: str
) -> torch.Tensor:
    """uint8 [3, h, w] -> the ``box`` (top, left, height, width) resized to ``size``, antialiased, uint8."""
    top, left, height, width = box
    if interpolation in TENSOR_KERNELS:
        from torchvision.transforms import InterpolationMode
        from torchvision.transforms.v2 import functional as F

        mode = InterpolationMode(interpolation)
        if height > size[0] and width < size[1]:
            # PIL resamples vertically first when the rows shrink and the columns grow (torchvision always
            # goes horizontally first); the order shows where bicubic's overshoot is clipped to 8 bits, up
            # to 9 levels apart on photos, so here the passes are made in PIL's order
            crop = img[:, top : top + height, left : left + width]
            crop = F.resize(crop, [size[0], width], interpolation=mode, antialias=True)
            return F.resize(crop, list(size), interpolation=mode, antialias=True)
        return F.resized_crop(img, top, left, height, width, list(size), interpolation=mode, antialias=True)
    import numpy as np
    from PIL import Image
    from timm.data.transforms import str_to_pil_interp

    pil = Image.fromarray(img.permute(1, 2, 0).numpy()).crop((left, top, left + width, top + height))
    out = pil.resize((size[1], size[0]), str_to_pil_interp(interpolation))
    return torch.from_numpy(np.asarray(out).copy()).permute(2, 0, 1)


class SampleCrop:
    """One stored image (uint8 [3, h, w]) -> uint8 [3, H, W]: in train mode with a preset, RandomResizedCrop
    + horizontal flip (+ the preset's augmentation on the 8-bit crop, as on the reference path); otherwise
    (train preset ``none``) the eval geometry, resize to floor(input / crop_pct) and center crop.
    ``upsample=False``: images smaller than the input keep their own size (center square; train: reflect
    pad-and-crop + flip, as for CIFAR). Picklable, for DataLoader workers."""

    def __init__(
        self, data_config: dict[str, Any], train: bool, preset: str = "flip-crop", upsample: bool = True
    ) -> None:
        self.cfg = resolve_config(data_config)
        check_interpolation(self.cfg["interpolation"])
        self.train, self.preset, self.upsample = train, check_preset(preset), upsample
        self.size = tuple(self.cfg["input_size"][1:])
        self.augment = augment_op(preset, self.cfg["mean"]) if train else None

    @property
    def augmenting(self) -> bool:
        return self.train and self.preset != "none"

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        _, h, w = img.shape
        if not self.upsample and min(h, w) < min(self.size):
            return self._own_size(img)
        if self.augmenting:
            box, flip = self.draw(h, w)
            out = resized_crop(img, box, self.size, self.cfg["interpolation"])
            if flip:
                out = out.flip(-1)
        else:
            out = self._eval(img)
        return self.augment(out) if self.augment is not None else out.contiguous()

    @staticmethod
    def draw(h: int, w: int) -> tuple[tuple[int, int, int, int], bool]:
        """The crop box (``draw_box``) and then the flip, drawn as RandomHorizontalFlip draws it."""
        return draw_box(h, w), bool(torch.rand(1) < 0.5)

    def _eval(self, img: torch.Tensor) -> torch.Tensor:
        """timm's eval geometry: resize (shorter side, or both for ``squash``), then center crop."""
        _, h, w = img.shape
        sh, sw = eval_scale_size(self.cfg)
        if self.cfg["crop_mode"] == "squash":
            rh, rw = sh, sw
        elif sh == sw:  # torchvision Resize(int): shorter side to sh, the other truncated
            rh, rw = (sh, int(sh * w / h)) if h <= w else (int(sh * h / w), sh)
        else:  # timm ResizeKeepRatio: the scale that makes both sides at least the target
            ratio = max(sh / h, sw / w)
            rh, rw = round(h * ratio), round(w * ratio)
        out_h, out_w = self.size
        top, left = round((rh - out_h) / 2.0), round((rw - out_w) / 2.0)
        if (rh, rw) != (h, w):
            img = resized_crop(img, (0, 0, h, w), (rh, rw), self.cfg["interpolation"])
        return img[:, top : top + out_h, left : left + out_w]

    def _own_size(self, img: torch.Tensor) -> torch.Tensor:
        import torchvision.transforms as T

        side = min(img.shape[1:])
        out = T.functional.center_crop(img, [side, side])
        if self.augmenting:
            out = T.RandomCrop(side, padding=max(1, side // 8), padding_mode="reflect")(out)
            if torch.rand(1) < 0.5:
                out = out.flip(-1)
        return self.augment(out) if self.augment is not None else out.contiguous()


def crops_in_batches(store: Any, crop: SampleCrop) -> bool:
    """Whether the train crops of ``store`` go as whole batches to the device (batch_crops.py) rather than one
    by one in the workers: a plain flip-crop in bilinear or bicubic, every image one size and every crop
    upsampled (no side above the input's). The batched resize costs out x in per row, so it is kept to small
    images; a photo store (sizes differ) or a preset that augments the 8-bit crop stays per sample."""
    if not (crop.augmenting and crop.augment is None and crop.upsample and crop.cfg["interpolation"] in TENSOR_KERNELS):
        return False
    if len(store) == 0 or not store.uniform:
        return False
    h, w = (int(v) for v in store.sizes[0])
    return h <= crop.size[0] and w <= crop.size[1]


class CroppedStore(torch.utils.data.Dataset):
    """``store[i]`` through ``crop``: (uint8 [3, H, W], label), for a DataLoader with workers; for stores of
    small images (``crops_in_batches``) the stored image, its drawn box and flip, and the label instead (the
    device then cuts the batch). ``store`` may be a function that builds it: it then runs on first use, in this
    process, before any worker starts (a linear probe, which never reads the train loader, decodes nothing)."""

    def __init__(self, store: Any, crop: SampleCrop) -> None:
        self._store, self.crop = store, crop
        self._batched: bool | None = None

    @property
    def store(self) -> Any:
        if callable(self._store):
            self._store = self._store()
        return self._store

    @property
    def batched(self) -> bool:
        if self._batched is None:
            self._batched = crops_in_batches(self.store, self.crop)
        return self._batched

    def __getstate__(self) -> dict[str, Any]:
        return {"_store": self.store, "crop": self.crop, "_batched": self.batched}

    def __len__(self) -> int:
        return len(self.store)

    def __getitem__(self, i: int) -> tuple[Any, ...]:
        img, label = self.store[i]
        if self.batched:
            (top, left, height, width), flip = self.crop.draw(*img.shape[1:])  # SampleCrop's own draws
            return img, torch.tensor([top, left, height, width, int(flip)]), label
        return self.crop(img), label

    def seeded_items(self, keys: list[tuple[int, int]]) -> list[tuple[Any, ...]] | None:
        """``(index, seed)`` keys of a whole batch -> their items, each box drawn under its seed, for small
        images of one size (zoo.data.order.SeededItems calls it; None: take them one by one). The images are
        read in one gather instead of item by item, which took about a fifth of a worker's time per image."""
        from zoo.data.order import seeded_rng

        if not self.batched:
            return None
        store = self.store
        h, w = (int(v) for v in store.sizes[0])
        boxes = []
        for _, seed in keys:
            with seeded_rng(seed):
                (top, left, height, width), flip = self.crop.draw(h, w)
            boxes.append(torch.tensor([top, left, height, width, int(flip)]))
        indices = [i for i, _ in keys]
        return list(zip(store.images[torch.tensor(indices)], boxes, store.labels[indices].tolist()))


def collate_crops(items: list[tuple[Any, ...]]) -> tuple[Any, torch.Tensor]:
    """Per-sample crops stack into a uint8 batch; small sources into a ``SourceBatch``."""
    if len(items[0]) == 3:
        return collate_sources(items)
    return torch.utils.data.default_collate(items)


class Normalize(nn.Module):
    """uint8 [B, 3, H, W] on any device -> float32 (x / 255 - mean) / std, the reference path's ToTensor +
    Normalize, in one multiply and one subtract (to float rounding: ~1e-7; evaluation does not go through it).
    Three passes over the batch instead of four: on a CPU this is memory-bound and costs about as much as
    cutting the crops."""

    def __init__(self, data_config: dict[str, Any]) -> None:
        super().__init__()
        cfg = resolve_config(data_config)
        mean = torch.tensor(cfg["mean"], dtype=torch.float64).view(1, 3, 1, 1)
        std = torch.tensor(cfg["std"], dtype=torch.float64).view(1, 3, 1, 1)
        self.register_buffer("scale", (1 / (255 * std)).float(), persistent=False)
        self.register_buffer("shift", (mean / std).float(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype != torch.uint8:
            from zoo.errors import DataError

            raise DataError(f"Normalize wants uint8 [B, 3, H, W], got {x.dtype} {tuple(x.shape)}")
        with torch.autocast(device_type=x.device.type, enabled=False):
            scale, shift = cast(torch.Tensor, self.scale), cast(torch.Tensor, self.shift)  # buffers
            return x.float().mul_(scale.to(x.device)).sub_(shift.to(x.device))


class TrainInput(nn.Module):
    """The fast path's train batch, as its loader sends it, -> the model's float input on the device: uint8
    crops are normalised (``Normalize``); a ``SourceBatch`` of small images is cut, resized and normalised in
    one pass (batch_crops.BatchResizedCrop)."""

    def __init__(self, data_config: dict[str, Any]) -> None:
        super().__init__()
        cfg = resolve_config(data_config)
        self.normalize, self.interpolation = Normalize(cfg), cfg["interpolation"]
        self.batch_crop = (
            BatchResizedCrop(tuple(cfg["input_size"][1:]), cfg["interpolation"], cfg["mean"], cfg["std"])
            if cfg["interpolation"] in TENSOR_KERNELS
            else None
        )

    def forward(self, x: Any) -> torch.Tensor:
        if isinstance(x, SourceBatch):
            if self.batch_crop is None:
                from zoo.errors import DataError

                raise DataError(f"a SourceBatch is resized bilinear or bicubic, not {self.interpolation!r}")
            return cast(torch.Tensor, self.batch_crop(x))
        return cast(torch.Tensor, self.normalize(x))


def train_loader(
    store: Any,
    data_config: dict[str, Any],
    batch_size: int,
    preset: str = "flip-crop",
    upsample: bool = True,
    num_workers: int = 2,
    sampler: Any = None,
    shuffle: bool = False,
    seed: int = 0,
    drop_last: bool = False,
) -> torch.utils.data.DataLoader:
    """The fast path's train DataLoader: uint8 crops [B, 3, H, W] cut in ``num_workers`` persistent workers,
    or for small images ``SourceBatch``es (``crops_in_batches``); pair it with ``TrainInput`` on the device.
    The order (``sampler``, or a shuffle when ``shuffle``) and each position's crop seed come from the sampler
    in the main process (zoo.data.order), so an epoch's crops are a function of (seed, epoch) alone, whatever
    the workers, and a resumed epoch replays them exactly."""
    from zoo.data.order import SeededItems, seeded_order

    data = SeededItems(CroppedStore(store, SampleCrop(data_config, train=True, preset=preset, upsample=upsample)))
    order = seeded_order(data, seed, sampler, shuffle)
    # its own generator for the workers' base seed, which each new iterator draws: from the global one, a
    # resumed run (whose skip loader makes one more iterator) would shift the main process's draws (mixup)
    return torch.utils.data.DataLoader(
        data,
        batch_size=batch_size,
        sampler=order,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
        drop_last=drop_last,
        collate_fn=collate_crops,
        generator=torch.Generator().manual_seed(seed),
        worker_init_fn=release_inherited_memory,  # zoo.cpu_memory: no copy of the trainer's free memory
    )
